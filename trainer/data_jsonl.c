/* data_jsonl.c — JSONL datasets: one JSON object per line, parsed with cJSON; the lines,
 * the choice of form and the language-model form (the generic form is data_jsonl_generic.c).
 *
 * Owns reading and validating JSONL. The file is mapped and every record is parsed and
 * checked once at open (about 80 MB/s), so a malformed line fails before training starts,
 * with the file and 1-based line number in the message; blank lines are skipped (and
 * counted).
 *
 * The first record decides the form. Language-model form: keys among input_ids, labels,
 * attention_mask, with input_ids present and labels (if any) an array. Its records become
 * a token store (data_internal.h): ids in one int32 arena (4 B per token), labels
 * (4 B per token) only once some record has labels or a 0 in its mask, the mask (1 B per
 * token) only once some record has one, and 8 B per record; the map is closed after open.
 * Ids and labels must be integers in [0, 2^31) (labels may also be -100), masks 0 or 1, all
 * arrays of one record of one length, input_ids non-empty. Without labels, labels are the
 * ids, except -100 where the record's mask is 0. Any other first record starts the generic
 * form. */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/data_internal.h"

/* ---- lines ---- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* The next non-blank line (without its '\n' or "\r\n"); 0 at the end of the file. */
int ot_jsonl_next_line(ot_line_iter *it, const char **s, size_t *n) {
    while (it->p < it->end) {
        const char *a = it->p, *nl = memchr(a, '\n', (size_t)(it->end - a));
        const char *b = nl ? nl : it->end;
        it->p = nl ? nl + 1 : it->end;
        it->line++;
        const char *q = a;
        while (q < b && is_space(*q)) q++;
        if (q == b) continue;
        while (b > a && b[-1] == '\r') b--;
        *s = a;
        *n = (size_t)(b - a);
        return 1;
    }
    return 0;
}

/* Parses one line into a JSON object. */
ot_status ot_jsonl_parse_object(const char *path, int64_t line, const char *s, size_t n, cJSON **out) {
    const char *end = NULL;
    *out = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!j)
        return ot_errorf(OT_E_FORMAT, "'%s' line %lld: invalid JSON at column %lld", path, (long long)line,
                         (long long)(end && end >= s ? end - s + 1 : 1));
    while (end < s + n && is_space(*end)) end++;
    if (end != s + n) {
        cJSON_Delete(j);
        return ot_errorf(OT_E_FORMAT, "'%s' line %lld: unexpected text after the JSON value at column %lld", path,
                         (long long)line, (long long)(end - s + 1));
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ot_errorf(OT_E_FORMAT, "'%s' line %lld: expected a JSON object per line", path, (long long)line);
    }
    *out = j;
    return OT_OK;
}

const char *ot_jsonl_kind(const cJSON *v) {
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsBool(v)) return "a boolean";
    return "null";
}

/* ---- language-model form ---- */

enum { LM_IDS, LM_LABELS, LM_MASK };
static const char *const lm_keys[3] = {"input_ids", "labels", "attention_mask"};

static int lm_key(const char *name) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, lm_keys[i]) == 0) return i;
    return -1;
}

static int looks_lm(const cJSON *obj) {
    int has_ids = 0;
    for (const cJSON *c = obj->child; c; c = c->next) {
        int k = lm_key(c->string);
        if (k < 0 || (k == LM_LABELS && !cJSON_IsArray(c))) return 0;
        has_ids |= k == LM_IDS;
    }
    return has_ids;
}

typedef struct lm_build {
    int64_t cap;      /* token capacity of arena / labels / mask */
    int64_t docs_cap; /* capacity of doc_start */
} lm_build;

/* Checks that field `k` is an array of valid values of length `want` (or any non-empty
 * length when want < 0) and returns its length. */
static ot_status lm_check(const char *path, int64_t line, const cJSON *v, int k, int64_t want, int64_t *len) {
    const char *key = lm_keys[k];
    if (!cJSON_IsArray(v))
        return ot_errorf(OT_E_INVALID, "'%s' line %lld: %s must be an array, got %s", path, (long long)line, key,
                         ot_jsonl_kind(v));
    int64_t n = cJSON_GetArraySize(v);
    if (want < 0 && n == 0) return ot_errorf(OT_E_INVALID, "'%s' line %lld: input_ids is empty", path, (long long)line);
    if (want >= 0 && n != want)
        return ot_errorf(OT_E_SHAPE, "'%s' line %lld: %s has %lld entries, input_ids has %lld", path, (long long)line,
                         key, (long long)n, (long long)want);
    int64_t i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e))
            return ot_errorf(OT_E_INVALID, "'%s' line %lld: %s[%lld] is %s, expected an integer", path,
                             (long long)line, key, (long long)i, ot_jsonl_kind(e));
        double x = e->valuedouble;
        int ok = x == floor(x) && x >= 0 && x <= INT32_MAX;
        if (k == LM_LABELS) ok |= x == -100;
        if (k == LM_MASK) ok = x == 0 || x == 1;
        if (!ok) {
            const char *want_s = k == LM_IDS    ? "an integer token id in [0, 2^31)"
                                 : k == LM_MASK ? "0 or 1"
                                                : "-100 or an integer in [0, 2^31)";
            return ot_errorf(OT_E_INVALID, "'%s' line %lld: %s[%lld] is %.17g, expected %s", path, (long long)line,
                             key, (long long)i, x, want_s);
        }
    }
    *len = n;
    return OT_OK;
}

/* Grows the token arrays that exist to hold `need` tokens. */
static ot_status lm_reserve(ot_token_store *ts, lm_build *b, int64_t need) {
    if (need <= b->cap) return OT_OK;
    int64_t cap = b->cap ? b->cap : 4096;
    while (cap < need) cap *= 2;
    int32_t *a = realloc(ts->arena, (size_t)cap * sizeof *a);
    if (a) ts->arena = a;
    int32_t *l = a && ts->labels ? realloc(ts->labels, (size_t)cap * sizeof *l) : NULL;
    if (l) ts->labels = l;
    uint8_t *m = a && ts->mask ? realloc(ts->mask, (size_t)cap) : NULL;
    if (m) ts->mask = m;
    if (!a || (ts->labels && !l) || (ts->mask && !m))
        return ot_errorf(OT_E_NOMEM, "out of memory holding %lld tokens", (long long)need);
    b->cap = cap;
    return OT_OK;
}

static ot_status lm_record(const char *path, ot_token_store *ts, lm_build *b, const cJSON *obj, int64_t line) {
    const cJSON *f[3] = {NULL, NULL, NULL};
    for (const cJSON *c = obj->child; c; c = c->next) {
        int k = lm_key(c->string);
        if (k < 0)
            return ot_errorf(OT_E_INVALID,
                             "'%s' line %lld: unexpected key '%s' (language-model records hold input_ids, labels and "
                             "attention_mask)",
                             path, (long long)line, c->string);
        if (f[k])
            return ot_errorf(OT_E_INVALID, "'%s' line %lld: duplicate key '%s'", path, (long long)line, c->string);
        f[k] = c;
    }
    if (!f[LM_IDS]) return ot_errorf(OT_E_INVALID, "'%s' line %lld: missing input_ids", path, (long long)line);
    int64_t n, m;
    OT_TRY(lm_check(path, line, f[LM_IDS], LM_IDS, -1, &n));
    if (f[LM_LABELS]) OT_TRY(lm_check(path, line, f[LM_LABELS], LM_LABELS, n, &m));
    int mask_zero = 0;
    if (f[LM_MASK]) {
        OT_TRY(lm_check(path, line, f[LM_MASK], LM_MASK, n, &m));
        for (const cJSON *e = f[LM_MASK]->child; e; e = e->next) mask_zero |= e->valuedouble == 0;
    }

    const int64_t t0 = ts->n_tokens;
    OT_TRY(lm_reserve(ts, b, t0 + n));
    if (!ts->labels && (f[LM_LABELS] || mask_zero)) { /* earlier records: labels were their ids */
        ts->labels = malloc((size_t)b->cap * sizeof *ts->labels);
        if (!ts->labels) return ot_errorf(OT_E_NOMEM, "out of memory holding labels of %lld tokens", (long long)b->cap);
        memcpy(ts->labels, ts->arena, (size_t)t0 * sizeof *ts->labels);
    }
    if (!ts->mask && f[LM_MASK]) { /* earlier records: all attended */
        ts->mask = malloc((size_t)b->cap);
        if (!ts->mask) return ot_errorf(OT_E_NOMEM, "out of memory holding a mask of %lld tokens", (long long)b->cap);
        memset(ts->mask, 1, (size_t)t0);
    }
    const cJSON *e = f[LM_IDS]->child;
    const cJSON *l = f[LM_LABELS] ? f[LM_LABELS]->child : NULL, *k = f[LM_MASK] ? f[LM_MASK]->child : NULL;
    for (int64_t i = 0; i < n; i++, e = e->next) {
        int32_t id = (int32_t)e->valuedouble;
        int mk = k ? (int)k->valuedouble : 1;
        ts->arena[t0 + i] = id;
        if (ts->labels) ts->labels[t0 + i] = l ? (int32_t)l->valuedouble : mk ? id : -100;
        if (ts->mask) ts->mask[t0 + i] = (uint8_t)mk;
        if (l) l = l->next;
        if (k) k = k->next;
    }
    if (ts->n_docs + 2 > b->docs_cap) {
        int64_t cap = b->docs_cap ? b->docs_cap * 2 : 1024;
        int64_t *d = realloc(ts->doc_start, (size_t)cap * sizeof *d);
        if (!d) return ot_errorf(OT_E_NOMEM, "out of memory indexing %lld records", (long long)ts->n_docs);
        ts->doc_start = d;
        b->docs_cap = cap;
    }
    ts->doc_start[ts->n_docs++] = t0;
    ts->n_tokens = t0 + n;
    return OT_OK;
}

static ot_status open_lm(ot_dataset *ds, ot_line_iter *it, cJSON *first) {
    ot_token_store *ts = &ds->tok;
    lm_build b = {0, 0};
    ds->kind = OT_DS_TOKENS;
    ot_status s = lm_record(ds->path, ts, &b, first, it->line);
    const char *line;
    size_t n;
    while (s == OT_OK && ot_jsonl_next_line(it, &line, &n)) {
        cJSON *obj;
        s = ot_jsonl_parse_object(ds->path, it->line, line, n, &obj);
        if (s == OT_OK) s = lm_record(ds->path, ts, &b, obj, it->line);
        cJSON_Delete(obj);
    }
    if (s != OT_OK) return s;
    ts->doc_start[ts->n_docs] = ts->n_tokens;
    /* Give back the growth slack (shrinking realloc cannot fail in practice; keep the old
     * block if it does). */
    int32_t *a = realloc(ts->arena, (size_t)ts->n_tokens * sizeof *a);
    if (a) ts->arena = a;
    int32_t *l = ts->labels ? realloc(ts->labels, (size_t)ts->n_tokens * sizeof *l) : NULL;
    if (l) ts->labels = l;
    uint8_t *k = ts->mask ? realloc(ts->mask, (size_t)ts->n_tokens) : NULL;
    if (k) ts->mask = k;
    ts->segs = calloc(1, sizeof *ts->segs);
    if (!ts->segs) return ot_errorf(OT_E_NOMEM, "out of memory");
    ts->segs[0] = (ot_tok_seg){ts->arena, OT_I32, 0, ts->n_tokens};
    ts->n_segs = 1;
    return OT_OK;
}

ot_status ot_data_open_jsonl(ot_dataset *ds) {
    ot_mapped_file map;
    OT_TRY(ot_mapped_open(&map, ds->path));
    if (map.size == 0) {
        ot_mapped_close(&map);
        return ot_errorf(OT_E_INVALID, "'%s' is empty", ds->path);
    }
    ot_line_iter it = {map.data, (const char *)map.data + map.size, 0};
    if (map.size >= 3 && memcmp(it.p, "\xEF\xBB\xBF", 3) == 0) it.p += 3; /* a UTF-8 byte order mark */
    const char *text;
    size_t n;
    if (!ot_jsonl_next_line(&it, &text, &n)) {
        ot_mapped_close(&map);
        return ot_errorf(OT_E_INVALID, "'%s' holds no records (only blank lines)", ds->path);
    }
    cJSON *first;
    ot_status s = ot_jsonl_parse_object(ds->path, it.line, text, n, &first);
    if (s != OT_OK) {
        ot_mapped_close(&map);
        return s;
    }
    if (looks_lm(first)) {
        s = open_lm(ds, &it, first);
        ot_mapped_close(&map); /* the tokens are in the store now */
    } else {
        ds->gen.map = map; /* closed with the dataset */
        s = ot_jsonl_open_generic(ds, &it, first, text, n);
    }
    cJSON_Delete(first);
    return s;
}

