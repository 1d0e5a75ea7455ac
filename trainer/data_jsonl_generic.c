/* data_jsonl_generic.c — generic JSONL records: graph input names (plus labels) mapping to
 * numbers or rectangular nested arrays of numbers.
 *
 * Owns validating generic records and turning them into batches. Every record has the
 * first record's keys. Only the line offsets are kept (16 B per record) and the file's map
 * stays open; a batch re-parses its records. A key is int64 when every number of it in the
 * file is written as an integer literal (no '.', 'e', 'E'), else float32: decided over the
 * whole file at open, so a key has one dtype in every batch. cJSON keeps only a double, so
 * literals are read from the text (num_scan), which also makes int64 values exact. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/data_internal.h"

/* ---- generic form ---- */

/* Number literals of a line in document order, which is the order a depth-first walk of
 * cJSON's tree visits its numbers. */
typedef struct num_scan {
    const char *p, *end;
} num_scan;

static int is_num_char(char c) {
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

static int next_number(num_scan *sc, const char **lit, size_t *len) {
    const char *p = sc->p, *end = sc->end;
    while (p < end) {
        char c = *p;
        if (c == '"') { /* skip a string, escapes included */
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\') p++;
            p++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            const char *s = p;
            while (p < end && is_num_char(*p)) p++;
            *lit = s;
            *len = (size_t)(p - s);
            sc->p = p;
            return 1;
        } else {
            p++;
        }
    }
    sc->p = end;
    return 0;
}

/* One walk over a record's value for a key: validates (shape, element types, ranges) and,
 * when dst is set, writes the numbers. */
typedef struct gwalk {
    const char *path, *key;
    int64_t line;
    num_scan sc;
    int ndim;
    int64_t dims[OT_MAX_DIMS];
    int64_t idx[OT_MAX_DIMS];
    int saw_float; /* a float literal was seen */
    void *dst;     /* NULL: validate only */
    int dst_float;
    int64_t pos;
} gwalk;

static const char *index_str(const gwalk *w, int level, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "%s", w->key);
    for (int i = 0; i < level && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "[%lld]", (long long)w->idx[i]);
    return buf;
}

/* The shape of v, read along first elements; the walk then checks every element. */
static ot_status value_shape(gwalk *w, const cJSON *v) {
    w->ndim = 0;
    while (cJSON_IsArray(v)) {
        if (w->ndim == OT_MAX_DIMS - 1)
            return ot_errorf(OT_E_UNSUPPORTED, "'%s' line %lld: %s nests more than %d arrays deep", w->path,
                             (long long)w->line, w->key, OT_MAX_DIMS - 1);
        w->dims[w->ndim++] = cJSON_GetArraySize(v);
        v = v->child;
        if (!v) break;
    }
    return OT_OK;
}

static ot_status walk_number(gwalk *w, const cJSON *v, int level) {
    char at[256];
    const char *lit = NULL;
    size_t len = 0;
    if (!next_number(&w->sc, &lit, &len))
        return ot_errorf(OT_E_INTERNAL, "'%s' line %lld: lost track of numbers at %s", w->path, (long long)w->line,
                         index_str(w, level, at, sizeof at));
    int is_float = memchr(lit, '.', len) || memchr(lit, 'e', len) || memchr(lit, 'E', len);
    if (!isfinite(v->valuedouble))
        return ot_errorf(OT_E_INVALID, "'%s' line %lld: %s is %.*s, not a finite number", w->path, (long long)w->line,
                         index_str(w, level, at, sizeof at), (int)len, lit);
    long long iv = 0;
    if (!is_float) {
        char buf[64];
        if (len >= sizeof buf)
            return ot_errorf(OT_E_INVALID, "'%s' line %lld: %s: integer literal too long", w->path, (long long)w->line,
                             index_str(w, level, at, sizeof at));
        memcpy(buf, lit, len);
        buf[len] = '\0';
        errno = 0;
        iv = strtoll(buf, NULL, 10);
        if (errno == ERANGE)
            return ot_errorf(OT_E_INVALID, "'%s' line %lld: %s is %s, outside the int64 range", w->path,
                             (long long)w->line, index_str(w, level, at, sizeof at), buf);
    }
    w->saw_float |= is_float;
    if (w->dst) {
        if (w->dst_float) ((float *)w->dst)[w->pos++] = (float)v->valuedouble;
        else ((int64_t *)w->dst)[w->pos++] = iv;
    }
    return OT_OK;
}

static ot_status walk(gwalk *w, const cJSON *v, int level) {
    char at[256];
    if (level == w->ndim) {
        if (!cJSON_IsNumber(v))
            return ot_errorf(OT_E_INVALID, "'%s' line %lld: %s is %s, expected %s", w->path, (long long)w->line,
                             index_str(w, level, at, sizeof at), ot_jsonl_kind(v),
                             cJSON_IsArray(v) ? "a number (the array is ragged)" : "a number");
        return walk_number(w, v, level);
    }
    if (!cJSON_IsArray(v))
        return ot_errorf(OT_E_INVALID, "'%s' line %lld: %s is %s, expected an array of %lld (the array is ragged)",
                         w->path, (long long)w->line, index_str(w, level, at, sizeof at), ot_jsonl_kind(v),
                         (long long)w->dims[level]);
    int64_t n = cJSON_GetArraySize(v);
    if (n != w->dims[level])
        return ot_errorf(OT_E_SHAPE, "'%s' line %lld: %s has %lld entries, expected %lld (the array is ragged)",
                         w->path, (long long)w->line, index_str(w, level, at, sizeof at), (long long)n,
                         (long long)w->dims[level]);
    int64_t i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        w->idx[level] = i;
        OT_TRY(walk(w, c, level + 1));
    }
    return OT_OK;
}

static int key_index(const ot_jsonl_generic *g, const char *name) {
    for (int i = 0; i < g->n_keys; i++)
        if (strcmp(g->keys[i], name) == 0) return i;
    return -1;
}

/* Checks a record's keys against the first record's; seen has n_keys entries. */
static ot_status check_keys(const ot_dataset *ds, const cJSON *obj, int64_t line, uint8_t *seen) {
    const ot_jsonl_generic *g = &ds->gen;
    memset(seen, 0, (size_t)g->n_keys);
    for (const cJSON *c = obj->child; c; c = c->next) {
        int k = key_index(g, c->string);
        if (k < 0)
            return ot_errorf(OT_E_INVALID, "'%s' line %lld: key '%s' is not in the first record (line %lld)", ds->path,
                             (long long)line, c->string, (long long)g->rec_line[0]);
        if (seen[k])
            return ot_errorf(OT_E_INVALID, "'%s' line %lld: duplicate key '%s'", ds->path, (long long)line,
                             c->string);
        seen[k] = 1;
    }
    for (int k = 0; k < g->n_keys; k++)
        if (!seen[k])
            return ot_errorf(OT_E_INVALID, "'%s' line %lld: missing key '%s' (the first record, line %lld, has it)",
                             ds->path, (long long)line, g->keys[k], (long long)g->rec_line[0]);
    return OT_OK;
}

static ot_status generic_record(ot_dataset *ds, const cJSON *obj, const char *text, size_t n, int64_t line,
                                uint8_t *seen) {
    ot_jsonl_generic *g = &ds->gen;
    OT_TRY(check_keys(ds, obj, line, seen));
    gwalk w;
    memset(&w, 0, sizeof w);
    w.path = ds->path;
    w.line = line;
    w.sc = (num_scan){text, text + n};
    for (const cJSON *c = obj->child; c; c = c->next) {
        w.key = c->string;
        w.saw_float = 0;
        OT_TRY(value_shape(&w, c));
        OT_TRY(walk(&w, c, 0));
        if (w.saw_float) g->key_float[key_index(g, c->string)] = 1;
    }
    return OT_OK;
}

static ot_status push_record(ot_jsonl_generic *g, int64_t off, int64_t line, int64_t *cap) {
    if (g->n_records == *cap) {
        int64_t c = *cap ? *cap * 2 : 1024;
        int64_t *o = realloc(g->rec_off, (size_t)c * sizeof *o);
        if (o) g->rec_off = o;
        int64_t *l = o ? realloc(g->rec_line, (size_t)c * sizeof *l) : NULL;
        if (l) g->rec_line = l;
        if (!l) return ot_errorf(OT_E_NOMEM, "out of memory indexing %lld records", (long long)g->n_records);
        *cap = c;
    }
    g->rec_off[g->n_records] = off;
    g->rec_line[g->n_records] = line;
    g->n_records++;
    return OT_OK;
}

ot_status ot_jsonl_open_generic(ot_dataset *ds, ot_line_iter *it, const cJSON *first, const char *text, size_t n) {
    ot_jsonl_generic *g = &ds->gen;
    ds->kind = OT_DS_GENERIC;
    int nk = cJSON_GetArraySize(first);
    if (nk == 0)
        return ot_errorf(OT_E_INVALID, "'%s' line %lld: the record has no keys", ds->path, (long long)it->line);
    g->keys = calloc((size_t)nk, sizeof *g->keys);
    g->key_float = calloc((size_t)nk, 1);
    uint8_t *seen = malloc((size_t)nk);
    if (!g->keys || !g->key_float || !seen) {
        free(seen);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    ot_status s = OT_OK;
    for (const cJSON *c = first->child; s == OT_OK && c; c = c->next) {
        if (key_index(g, c->string) >= 0) s = ot_errorf(OT_E_INVALID, "'%s' line %lld: duplicate key '%s'", ds->path,
                                                        (long long)it->line, c->string);
        else if (!(g->keys[g->n_keys++] = strdup(c->string))) s = ot_errorf(OT_E_NOMEM, "out of memory");
    }
    const char *base = g->map.data;
    int64_t cap = 0;
    if (s == OT_OK) s = push_record(g, text - base, it->line, &cap);
    if (s == OT_OK) s = generic_record(ds, first, text, n, it->line, seen);
    const char *line;
    size_t len;
    while (s == OT_OK && ot_jsonl_next_line(it, &line, &len)) {
        cJSON *obj;
        s = ot_jsonl_parse_object(ds->path, it->line, line, len, &obj);
        if (s == OT_OK) s = push_record(g, line - base, it->line, &cap);
        if (s == OT_OK) s = generic_record(ds, obj, line, len, it->line, seen);
        cJSON_Delete(obj);
    }
    free(seen);
    return s;
}

void ot_jsonl_generic_free(ot_jsonl_generic *g) {
    ot_mapped_close(&g->map);
    free(g->rec_off);
    free(g->rec_line);
    for (int i = 0; i < g->n_keys; i++) free(g->keys[i]);
    free(g->keys);
    free(g->key_float);
    memset(g, 0, sizeof *g);
}

/* ---- generic batches ---- */

/* The text of record r (up to its line end, '\r' trimmed). */
static void record_text(const ot_jsonl_generic *g, int64_t r, const char **s, size_t *n) {
    const char *a = (const char *)g->map.data + g->rec_off[r], *end = (const char *)g->map.data + g->map.size;
    const char *nl = memchr(a, '\n', (size_t)(end - a));
    const char *b = nl ? nl : end;
    while (b > a && b[-1] == '\r') b--;
    *s = a;
    *n = (size_t)(b - a);
}

static ot_status fill_record(ot_dataset *ds, int64_t r, int b, int bsz, ot_tensor **t, int64_t first_line) {
    const ot_jsonl_generic *g = &ds->gen;
    const int64_t line = g->rec_line[r];
    const char *text;
    size_t n;
    record_text(g, r, &text, &n);
    cJSON *obj;
    OT_TRY(ot_jsonl_parse_object(ds->path, line, text, n, &obj));
    gwalk w;
    memset(&w, 0, sizeof w);
    w.path = ds->path;
    w.line = line;
    w.sc = (num_scan){text, text + n};
    ot_status s = OT_OK;
    for (const cJSON *c = obj->child; s == OT_OK && c; c = c->next) {
        int k = key_index(g, c->string);
        if (k < 0) {
            s = ot_errorf(OT_E_INTERNAL, "'%s' line %lld: key '%s' changed since open", ds->path, (long long)line,
                          c->string);
            break;
        }
        w.key = c->string;
        s = value_shape(&w, c);
        if (s != OT_OK) break;
        if (!t[k]) {
            int64_t dims[OT_MAX_DIMS];
            dims[0] = bsz;
            memcpy(dims + 1, w.dims, (size_t)w.ndim * sizeof *dims);
            s = ot_tensor_new(&t[k], g->key_float[k] ? OT_F32 : OT_I64, w.ndim + 1, dims);
            if (s != OT_OK) break;
        } else if (!ot_shape_equal(w.ndim, w.dims, t[k]->ndim - 1, t[k]->dims + 1)) {
            char got[128], want[128];
            ot_shape_str(got, sizeof got, w.ndim, w.dims);
            ot_shape_str(want, sizeof want, t[k]->ndim - 1, t[k]->dims + 1);
            s = ot_errorf(OT_E_SHAPE, "'%s' line %lld: %s has shape %s, but line %lld of the same batch has %s",
                          ds->path, (long long)line, c->string, got, (long long)first_line, want);
            break;
        }
        w.dst = t[k]->data;
        w.dst_float = g->key_float[k];
        w.pos = b * ot_shape_numel(w.ndim, w.dims);
        s = walk(&w, c, 0);
    }
    cJSON_Delete(obj);
    return s;
}

ot_status ot_jsonl_generic_batch(ot_dataset *ds, const int64_t *rows, int b, ot_batch *out) {
    const ot_jsonl_generic *g = &ds->gen;
    ot_tensor **t = calloc((size_t)g->n_keys, sizeof *t);
    if (!t) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_status s = OT_OK;
    for (int i = 0; s == OT_OK && i < b; i++) s = fill_record(ds, rows[i], i, b, t, g->rec_line[rows[0]]);
    for (int k = 0; k < g->n_keys; k++) {
        if (s == OT_OK) s = ot_batch_push(out, g->keys[k], t[k]); /* frees t[k] on failure */
        else ot_tensor_free(t[k]);
    }
    free(t);
    if (s == OT_OK) out->tokens = b;
    return s;
}
