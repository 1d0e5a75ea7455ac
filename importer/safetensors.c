/* safetensors.c — the safetensors reader; see onnxtune/safetensors.h.
 *
 * Owns: the validated view of one safetensors image (mapped from a file, or memory the caller
 * keeps alive). It accepts what the reference implementation (huggingface/safetensors,
 * read_metadata and Metadata::validate) accepts, checked by tests/parity against the Python
 * package, except where noted as stricter:
 *   - at least 8 bytes; header length N <= 100,000,000 and 8 + N <= file size;
 *   - the header is valid UTF-8 and one JSON object with only JSON whitespace around it (the
 *     writer pads with spaces; the reference also reads leading whitespace); raw control
 *     bytes are refused (JSON forbids them; cJSON would skip them as whitespace);
 *   - every key other than "__metadata__" is a tensor whose entry is an object with "dtype"
 *     (a known string), "shape" (non-negative integers) and "data_offsets" ([begin, end]);
 *     integers are read exactly from the header text, so "2.0", "2e0" and "02" are refused
 *     as the reference refuses them; other keys in an entry are ignored, as the reference
 *     does; a field given twice is refused;
 *   - sorted by (begin, end), the entries tile the data buffer from 0 without gaps or
 *     overlap, each spanning exactly numel x element size bytes (overflow-checked), and the
 *     last ends exactly at the end of the file;
 *   - "__metadata__" is null or an object of string values.
 * Stricter than the reference (it keeps the last of duplicates or stores types we cannot):
 * a tensor name or metadata key given twice, rank above OT_MAX_DIMS, a dimension above
 * INT64_MAX, and the F8/F6/F4/C64 dtypes (refused as unsupported, by name).
 * Invariants after open: tensors are in offset order; every view lies inside the image and
 * is aligned for its element type (a misaligned one is copied once, here, into a malloc'd
 * buffer this handle frees); names point into the parsed header, which lives as long as the
 * handle. Nothing here writes to the image. */
#include "onnxtune/safetensors.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "importer/mapped_file.h"
#include "importer/safetensors_internal.h"

#define ST_MAX_HEADER 100000000u

struct ot_safetensors {
    char *name;          /* for messages */
    ot_mapped_file map;  /* set when opened from a file */
    const unsigned char *image; /* the whole file image (map or caller's memory) */
    size_t image_size;
    cJSON *root;         /* the parsed header: owns names and metadata strings */
    const cJSON *meta;   /* "__metadata__" object, or NULL */
    int n;
    const char **names;  /* offset order */
    ot_tensor *tensors;  /* offset order; views (owned = 0) */
    void **copies;       /* per tensor: malloc'd aligned copy, or NULL */
    const char ***by_name; /* pointers into names, sorted by name, for ot_safetensors_find */
};

size_t ot_utf8_bad_offset(const void *buf, size_t n) {
    const unsigned char *s = buf;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) len = 2;
        else if (c == 0xe0) len = 3, lo = 0xa0;
        else if (c == 0xed) len = 3, hi = 0x9f;
        else if (c >= 0xe1 && c <= 0xef) len = 3;
        else if (c == 0xf0) len = 4, lo = 0x90;
        else if (c >= 0xf1 && c <= 0xf3) len = 4;
        else if (c == 0xf4) len = 4, hi = 0x8f;
        else return i;
        if (n - i < len) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) return i;
        i += len;
    }
    return n;
}

static const struct {
    const char *name;
    ot_dtype dt;
} st_dtypes[] = {
    {"F64", OT_F64}, {"F32", OT_F32}, {"F16", OT_F16}, {"BF16", OT_BF16}, {"I64", OT_I64},
    {"I32", OT_I32}, {"I16", OT_I16}, {"I8", OT_I8},   {"U8", OT_U8},     {"U16", OT_U16},
    {"U32", OT_U32}, {"U64", OT_U64}, {"BOOL", OT_BOOL},
};

/* Names the reference knows but onnxtune does not store: refused as unsupported, not as
 * malformed, so the message says what to do about it. */
static const char *const st_known_unsupported[] = {"F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};

const char *ot_safetensors_dtype_name(ot_dtype dt) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dt == dt) return st_dtypes[i].name;
    return NULL;
}

void ot_safetensors_close(ot_safetensors *st) {
    if (!st) return;
    if (st->copies)
        for (int i = 0; i < st->n; i++) free(st->copies[i]);
    free(st->copies);
    free(st->names);
    free(st->tensors);
    free(st->by_name);
    cJSON_Delete(st->root);
    ot_mapped_close(&st->map);
    free(st->name);
    free(st);
}

/* Per-entry facts gathered before sorting by offset. */
typedef struct {
    const char *name;
    ot_dtype dt;
    int ndim;
    int64_t dims[OT_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

static int cmp_entry_offsets(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name); /* ties only between empty tensors: keep a fixed order */
}

/* cJSON keeps numbers only as doubles: inexact above 2^53, and it accepts what JSON does
 * not ("02", "1."). Shapes and offsets are u64 in the reference and "2.0" is not one, so
 * they are read from the header text itself. cJSON builds its tree in document order and
 * every number item began at a '-' or digit outside a string, so walking the tree in order
 * while a cursor finds the next such token in the text pairs each item with its token. */
typedef struct {
    const char *s;
    size_t n, pos;
} num_cursor;

/* Advances to the next number token; checks it is JSON's number grammar. 0 when none or bad. */
static int next_number(num_cursor *c, size_t *start, size_t *len) {
    const char *s = c->s;
    size_t i = c->pos;
    while (i < c->n && s[i] != '-' && !(s[i] >= '0' && s[i] <= '9')) {
        if (s[i] == '"') /* skip the string, escapes included */
            for (i++; i < c->n && s[i] != '"'; i++)
                if (s[i] == '\\') i++;
        i++;
    }
    if (i >= c->n) return 0;
    size_t b = i;
    if (s[i] == '-') i++;
    if (i < c->n && s[i] == '0') i++;
    else if (i < c->n && s[i] >= '1' && s[i] <= '9')
        while (i < c->n && s[i] >= '0' && s[i] <= '9') i++;
    else return 0;
    if (i < c->n && s[i] == '.') {
        size_t d = ++i;
        while (i < c->n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == d) return 0;
    }
    if (i < c->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < c->n && (s[i] == '+' || s[i] == '-')) i++;
        size_t d = i;
        while (i < c->n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == d) return 0;
    }
    if (i < c->n && (s[i] == '.' || s[i] == 'e' || s[i] == 'E' || (s[i] >= '0' && s[i] <= '9'))) return 0; /* "02" */
    *start = b;
    *len = i - b;
    c->pos = i;
    return 1;
}

/* Consumes the tokens of every number in `it`'s subtree. 0 on a bad number token. */
static int skip_numbers(num_cursor *c, const cJSON *it) {
    size_t b, l;
    if (cJSON_IsNumber(it)) return next_number(c, &b, &l);
    for (const cJSON *ch = it->child; ch; ch = ch->next)
        if (!skip_numbers(c, ch)) return 0;
    return 1;
}

/* Reads the elements of array `arr` as exact u64 into v[0..max) (*count gets the array
 * length; *bad the index of the first element that is not a plain non-negative integer
 * token, or -1). 0 on a bad number token. */
static int read_uints(num_cursor *c, const cJSON *arr, uint64_t *v, int max, int *count, int *bad) {
    *count = 0;
    *bad = -1;
    for (const cJSON *d = arr->child; d; d = d->next, (*count)++) {
        if (!cJSON_IsNumber(d)) {
            if (*bad < 0) *bad = *count;
            if (!skip_numbers(c, d)) return 0;
            continue;
        }
        size_t b, l;
        if (!next_number(c, &b, &l)) return 0;
        uint64_t x = 0;
        int ok = 1;
        for (size_t i = b; i < b + l && ok; i++) {
            unsigned dig = (unsigned)(c->s[i] - '0');
            if (dig > 9 || x > (UINT64_MAX - dig) / 10) ok = 0; /* '-', '.', 'e', or above u64 */
            else x = x * 10 + dig;
        }
        if (!ok && *bad < 0) *bad = *count;
        if (ok && *count < max) v[*count] = x;
    }
    return 1;
}

/* Fills `e` from tensor entry `item` of file `fn`; `c` is at the entry's first number. */
static ot_status read_entry(const char *fn, const cJSON *item, num_cursor *c, st_entry *e) {
    const char *tn = item->string;
    e->name = tn;
    if (!cJSON_IsObject(item))
        return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': entry is not a JSON object", fn, tn);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    uint64_t dims[OT_MAX_DIMS], off[2] = {0, 0};
    int rank = 0, bad_dim = -1, n_off = 0, bad_off = -1, tokens_ok = 1;
    for (const cJSON *f = item->child; f && tokens_ok; f = f->next) {
        const cJSON **slot = strcmp(f->string, "dtype") == 0          ? &dtype
                             : strcmp(f->string, "shape") == 0        ? &shape
                             : strcmp(f->string, "data_offsets") == 0 ? &offs
                                                                      : NULL;
        if (slot && *slot) return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': field '%s' appears twice", fn, tn, f->string);
        if (slot) *slot = f; /* unknown fields are ignored, as the reference does */
        if (slot == &shape && cJSON_IsArray(f)) tokens_ok = read_uints(c, f, dims, OT_MAX_DIMS, &rank, &bad_dim);
        else if (slot == &offs && cJSON_IsArray(f)) tokens_ok = read_uints(c, f, off, 2, &n_off, &bad_off);
        else tokens_ok = skip_numbers(c, f);
    }
    if (!tokens_ok) return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': entry holds a malformed JSON number", fn, tn);
    if (!dtype || !shape || !offs)
        return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': entry lacks '%s'", fn, tn,
                         !dtype ? "dtype" : !shape ? "shape" : "data_offsets");

    if (!cJSON_IsString(dtype))
        return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': dtype is not a string", fn, tn);
    e->dt = OT_UNDEFINED;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(dtype->valuestring, st_dtypes[i].name) == 0) e->dt = st_dtypes[i].dt;
    if (e->dt == OT_UNDEFINED) {
        for (size_t i = 0; i < sizeof st_known_unsupported / sizeof st_known_unsupported[0]; i++)
            if (strcmp(dtype->valuestring, st_known_unsupported[i]) == 0)
                return ot_errorf(OT_E_UNSUPPORTED,
                                 "'%s': tensor '%s': dtype %s is not supported by onnxtune (supported: F64 F32 F16 "
                                 "BF16 I64 I32 I16 I8 U8 U16 U32 U64 BOOL)",
                                 fn, tn, dtype->valuestring);
        return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': unknown dtype \"%.40s\"", fn, tn, dtype->valuestring);
    }

    if (!cJSON_IsArray(shape)) return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': shape is not an array", fn, tn);
    if (bad_dim >= 0)
        return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': shape[%d] is not a non-negative integer", fn, tn, bad_dim);
    if (rank > OT_MAX_DIMS)
        return ot_errorf(OT_E_UNSUPPORTED, "'%s': tensor '%s': rank %d exceeds the maximum of %d", fn, tn, rank,
                         OT_MAX_DIMS);
    e->ndim = rank;
    uint64_t numel = 1;
    int overflow = 0;
    for (int d = 0; d < rank; d++) {
        if (dims[d] > (uint64_t)INT64_MAX)
            return ot_errorf(OT_E_UNSUPPORTED, "'%s': tensor '%s': shape[%d] = %llu is too large", fn, tn, d,
                             (unsigned long long)dims[d]);
        if (dims[d] && numel > UINT64_MAX / dims[d]) overflow = 1; /* checked as the reference does: */
        else numel *= dims[d];                                     /* a later 0 does not excuse it */
        e->dims[d] = (int64_t)dims[d];
    }

    if (!cJSON_IsArray(offs) || n_off != 2)
        return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': data_offsets is not a [begin, end] pair", fn, tn);
    if (bad_off >= 0)
        return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': data_offsets are not non-negative integers", fn, tn);
    e->begin = off[0];
    e->end = off[1];
    if (e->end < e->begin)
        return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': data_offsets [%llu, %llu] end before they begin", fn, tn,
                         (unsigned long long)e->begin, (unsigned long long)e->end);
    uint64_t esz = ot_dtype_size(e->dt);
    if (overflow || (numel && numel > UINT64_MAX / esz) || numel * esz != e->end - e->begin) {
        char sh[256];
        ot_shape_str(sh, sizeof sh, e->ndim, e->dims);
        if (overflow || numel > UINT64_MAX / esz)
            return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': shape %s overflows the byte count", fn, tn, sh);
        return ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': %s %s needs %llu bytes but data_offsets [%llu, %llu] span %llu",
                         fn, tn, dtype->valuestring, sh, (unsigned long long)(numel * esz), (unsigned long long)e->begin,
                         (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
    }
    return OT_OK;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(**(const char *const *const *)a, **(const char *const *const *)b);
}

/* Sorts pointers to `n` strings; returns the first string that occurs twice, or NULL. */
static const char *first_duplicate(const char **ptrs[], int n) {
    qsort(ptrs, (size_t)n, sizeof *ptrs, cmp_str_ptr);
    for (int i = 1; i < n; i++)
        if (strcmp(*ptrs[i - 1], *ptrs[i]) == 0) return *ptrs[i];
    return NULL;
}

static ot_status check_metadata(const char *fn, const cJSON *meta) {
    if (cJSON_IsNull(meta)) return OT_OK;
    if (!cJSON_IsObject(meta)) return ot_errorf(OT_E_FORMAT, "'%s': __metadata__ is not a JSON object", fn);
    int n = 0;
    for (const cJSON *m = meta->child; m; m = m->next, n++)
        if (!cJSON_IsString(m))
            return ot_errorf(OT_E_FORMAT, "'%s': __metadata__ value for key '%s' is not a string", fn, m->string);
    const char ***keys = malloc((n ? (size_t)n : 1) * sizeof *keys);
    if (!keys) return ot_errorf(OT_E_NOMEM, "'%s': out of memory checking __metadata__", fn);
    int k = 0;
    for (cJSON *m = meta->child; m; m = m->next) keys[k++] = (const char **)&m->string;
    const char *dup = first_duplicate(keys, n);
    ot_status s = dup ? ot_errorf(OT_E_FORMAT, "'%s': __metadata__ key '%s' appears twice", fn, dup) : OT_OK;
    free(keys);
    return s;
}

static ot_status parse_header(ot_safetensors *st, const char *text, size_t hl);

/* Validates the framing and the header's bytes, then hands the header text on. */
static ot_status parse_image(ot_safetensors *st, const unsigned char *b, size_t size) {
    const char *fn = st->name;
    st->image = b;
    st->image_size = size;
    if (size < 8)
        return ot_errorf(OT_E_FORMAT, "'%s' is not a safetensors file: %zu bytes, shorter than the 8-byte header length",
                         fn, size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    if (hl > ST_MAX_HEADER)
        return ot_errorf(OT_E_FORMAT, "'%s': header length %llu exceeds the 100000000-byte limit", fn,
                         (unsigned long long)hl);
    if (hl > size - 8)
        return ot_errorf(OT_E_FORMAT, "'%s': header length %llu runs past the end of the file (%zu bytes): truncated?",
                         fn, (unsigned long long)hl, size);
    const unsigned char *h = b + 8;
    size_t bad = ot_utf8_bad_offset(h, (size_t)hl);
    if (bad != hl) return ot_errorf(OT_E_FORMAT, "'%s': header is not valid UTF-8 (byte %zu)", fn, 8 + bad);
    /* JSON whitespace may precede the object: the reference accepts it (its "must start
     * with '{'" check was never enabled), so files it reads must read here too. */
    size_t first = 0;
    while (first < hl && (h[first] == ' ' || h[first] == '\t' || h[first] == '\n' || h[first] == '\r')) first++;
    if (first == hl || h[first] != '{')
        return ot_errorf(OT_E_FORMAT, "'%s': header is not a JSON object (it must start with '{')", fn);
    for (size_t i = 0; i < hl; i++)
        if (h[i] < 0x20 && h[i] != '\t' && h[i] != '\n' && h[i] != '\r')
            return ot_errorf(OT_E_FORMAT, "'%s': header contains control byte 0x%02x at byte %zu", fn, h[i], 8 + i);

    /* cJSON wants a terminated string; the image may be a map that ends at a page edge. */
    char *text = malloc((size_t)hl + 1);
    if (!text) return ot_errorf(OT_E_NOMEM, "'%s': out of memory reading a %llu-byte header", fn, (unsigned long long)hl);
    memcpy(text, h, (size_t)hl);
    text[hl] = '\0';
    ot_status s = parse_header(st, text, (size_t)hl);
    free(text);
    return s;
}

/* Parses the header text (NUL-terminated, `hl` bytes), validates every entry and the tiling
 * of the data buffer, and fills names, tensors (views) and copies. */
static ot_status parse_header(ot_safetensors *st, const char *text, size_t hl) {
    const char *fn = st->name;
    const unsigned char *h = (const unsigned char *)text;
    const char *end = NULL;
    st->root = cJSON_ParseWithLengthOpts(text, hl, &end, 0);
    size_t stop = end ? (size_t)(end - text) : 0;
    if (!st->root) return ot_errorf(OT_E_FORMAT, "'%s': header is not valid JSON (near byte %zu)", fn, 8 + stop);
    for (size_t i = stop; i < hl; i++)
        if (h[i] != ' ' && h[i] != '\t' && h[i] != '\n' && h[i] != '\r')
            return ot_errorf(OT_E_FORMAT, "'%s': header has trailing bytes after the JSON object (byte %zu)", fn, 8 + i);
    if (!cJSON_IsObject(st->root)) return ot_errorf(OT_E_FORMAT, "'%s': header is not a JSON object", fn);

    int count = 0, seen_meta = 0;
    for (const cJSON *it = st->root->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (seen_meta++) return ot_errorf(OT_E_FORMAT, "'%s': __metadata__ appears twice", fn);
            OT_TRY(check_metadata(fn, it));
            st->meta = cJSON_IsNull(it) ? NULL : it; /* null: no metadata, as the reference reads it */
        } else {
            count++;
        }
    }

    st_entry *ents = calloc(count ? (size_t)count : 1, sizeof *ents);
    st->names = calloc(count ? (size_t)count : 1, sizeof *st->names);
    st->tensors = calloc(count ? (size_t)count : 1, sizeof *st->tensors);
    st->copies = calloc(count ? (size_t)count : 1, sizeof *st->copies);
    st->by_name = calloc(count ? (size_t)count : 1, sizeof *st->by_name);
    if (!ents || !st->names || !st->tensors || !st->copies || !st->by_name) {
        free(ents);
        return ot_errorf(OT_E_NOMEM, "'%s': out of memory for %d tensor entries", fn, count);
    }
    st->n = count;
    ot_status s = OT_OK;
    int k = 0;
    num_cursor cur = {text, hl, 0};
    for (const cJSON *it = st->root->child; it && s == OT_OK; it = it->next) {
        if (strcmp(it->string, "__metadata__") != 0) s = read_entry(fn, it, &cur, &ents[k++]);
        else if (!skip_numbers(&cur, it)) s = ot_errorf(OT_E_FORMAT, "'%s': __metadata__ holds a malformed number", fn);
    }
    if (s != OT_OK) {
        free(ents);
        return s;
    }
    /* Duplicates first: otherwise they would surface as a confusing overlap. by_name is
     * borrowed as scratch here and rebuilt over `names` below. */
    for (int i = 0; i < count; i++) st->by_name[i] = &ents[i].name;
    const char *dup = first_duplicate(st->by_name, count);
    if (dup) {
        s = ot_errorf(OT_E_FORMAT, "'%s': tensor '%s' appears twice in the header", fn, dup);
        free(ents);
        return s;
    }

    /* Tile the data buffer: sorted by offset, each entry starts where the previous ended. */
    qsort(ents, (size_t)count, sizeof *ents, cmp_entry_offsets);
    uint64_t data_size = (uint64_t)(st->image_size - 8 - hl), pos = 0;
    for (int i = 0; i < count && s == OT_OK; i++) {
        const st_entry *e = &ents[i];
        if (e->begin != pos)
            s = ot_errorf(OT_E_FORMAT, "'%s': tensor '%s': data_offsets [%llu, %llu] %s: the previous tensor ends at %llu",
                          fn, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                          e->begin > pos ? "leave a gap" : "overlap another tensor", (unsigned long long)pos);
        else if (e->end > data_size)
            s = ot_errorf(OT_E_FORMAT,
                          "'%s': tensor '%s': data_offsets [%llu, %llu] run past the end of the file (data buffer holds "
                          "%llu bytes): truncated?",
                          fn, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                          (unsigned long long)data_size);
        pos = e->end;
    }
    if (s == OT_OK && pos != data_size)
        s = ot_errorf(OT_E_FORMAT, "'%s': %llu bytes after the last tensor's data: the data buffer must end at the end of "
                                   "the file (tensors cover %llu of %llu bytes)",
                      fn, (unsigned long long)(data_size - pos), (unsigned long long)pos, (unsigned long long)data_size);

    const unsigned char *data = st->image + 8 + hl;
    for (int i = 0; i < count && s == OT_OK; i++) {
        const st_entry *e = &ents[i];
        ot_tensor *t = &st->tensors[i];
        st->names[i] = e->name;
        t->dtype = e->dt;
        t->ndim = e->ndim;
        memcpy(t->dims, e->dims, sizeof t->dims);
        t->owned = 0;
        const unsigned char *p = data + e->begin;
        size_t nbytes = (size_t)(e->end - e->begin), esz = ot_dtype_size(e->dt);
        if (nbytes && (uintptr_t)p % esz != 0) {
            /* Writers that sort by name (or place a header of odd length) can leave a tensor
             * off its alignment; kernels need aligned loads, so copy this one once. */
            st->copies[i] = malloc(nbytes);
            if (!st->copies[i])
                s = ot_errorf(OT_E_NOMEM, "'%s': tensor '%s': out of memory copying %zu misaligned bytes", fn, e->name,
                              nbytes);
            else
                memcpy(st->copies[i], p, nbytes);
            t->data = st->copies[i];
        } else {
            t->data = (void *)p;
        }
    }
    free(ents);
    if (s != OT_OK) return s;

    for (int i = 0; i < count; i++) st->by_name[i] = &st->names[i];
    first_duplicate(st->by_name, count); /* sorts; names are known to be unique */
    return OT_OK;
}

static ot_status new_handle(const char *name, ot_safetensors **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return ot_errorf(OT_E_NOMEM, "out of memory");
    (*out)->name = strdup(name ? name : "<memory>");
    if (!(*out)->name) {
        free(*out);
        *out = NULL;
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    return OT_OK;
}

ot_status ot_safetensors_parse(const void *data, size_t size, const char *name, ot_safetensors **out) {
    *out = NULL;
    ot_safetensors *st;
    OT_TRY(new_handle(name, &st));
    ot_status s = parse_image(st, data, data ? size : 0);
    if (s != OT_OK) {
        ot_safetensors_close(st);
        return s;
    }
    *out = st;
    return OT_OK;
}

ot_status ot_safetensors_open(const char *path, ot_safetensors **out) {
    *out = NULL;
    ot_safetensors *st;
    OT_TRY(new_handle(path, &st));
    ot_status s = ot_mapped_open(&st->map, path);
    if (s == OT_OK) s = parse_image(st, st->map.data, st->map.size);
    if (s != OT_OK) {
        ot_safetensors_close(st);
        return s;
    }
    *out = st;
    return OT_OK;
}

int ot_safetensors_count(const ot_safetensors *st) { return st->n; }

const char *ot_safetensors_name(const ot_safetensors *st, int i) {
    return i >= 0 && i < st->n ? st->names[i] : NULL;
}

const ot_tensor *ot_safetensors_tensor(const ot_safetensors *st, int i) {
    return i >= 0 && i < st->n ? &st->tensors[i] : NULL;
}

const ot_tensor *ot_safetensors_find(const ot_safetensors *st, const char *name) {
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, *st->by_name[mid]);
        if (c == 0) return &st->tensors[st->by_name[mid] - st->names];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *ot_safetensors_meta(const ot_safetensors *st, const char *key) {
    if (!st->meta) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(st->meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
