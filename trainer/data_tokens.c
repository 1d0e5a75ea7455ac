/* data_tokens.c — token arrays (.npy) and llm.c token shards (.bin) into a token store.
 *
 * Owns validating these files and the store's storage. .npy arrays are parsed whole by core/npy
 * from a temporary map (memory: the array's size, in its own dtype, not widened); .bin shards are
 * mmapped and used in place (memory: page cache only). A path with glob characters (`*?[`)
 * opens every matching shard, in sorted order, as one concatenated stream. Every token id is
 * checked to lie in [0, 2^31) here, so batches never see a bad id. Files are little-endian,
 * as are the hosts onnxtune runs on. */
#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include "core/npy.h"
#include "trainer/data_internal.h"

#define OT_SHARD_MAGIC 20240520
#define OT_SHARD_VERSION 1
#define OT_SHARD_HEADER_BYTES (256 * 4)

void ot_token_store_free(ot_token_store *ts) {
    free(ts->segs);
    free(ts->doc_start);
    free(ts->labels);
    free(ts->mask);
    free(ts->arena);
    ot_tensor_free(ts->npy);
    for (int i = 0; i < ts->n_maps; i++) ot_mapped_close(&ts->maps[i]);
    free(ts->maps);
    memset(ts, 0, sizeof *ts);
}

/* The first id outside [0, 2^31) in n tokens of dtype dt, or -1. */
static int64_t first_bad_id(const void *data, ot_dtype dt, int64_t n) {
    if (dt == OT_I32) {
        const int32_t *p = data;
        for (int64_t i = 0; i < n; i++)
            if (p[i] < 0) return i;
    } else if (dt == OT_I64) {
        const int64_t *p = data;
        for (int64_t i = 0; i < n; i++)
            if (p[i] < 0 || p[i] > INT32_MAX) return i;
    }
    return -1; /* uint16 ids are always in range */
}

ot_status ot_data_open_npy(ot_dataset *ds) {
    ot_token_store *ts = &ds->tok;
    /* Parsed from a map rather than ot_npy_read's buffer: the peak is one anonymous copy of
     * the array, not two. */
    ot_mapped_file m;
    OT_TRY(ot_mapped_open(&m, ds->path));
    ot_status ps = ot_npy_parse(m.data ? m.data : "", m.size, ds->path, &ts->npy);
    ot_mapped_close(&m);
    if (ps != OT_OK) return ps;
    const ot_tensor *t = ts->npy;
    char shape[128];
    ot_shape_str(shape, sizeof shape, t->ndim, t->dims);
    if (t->dtype != OT_I64 && t->dtype != OT_I32 && t->dtype != OT_U16)
        return ot_errorf(OT_E_UNSUPPORTED, "'%s': token arrays must be int64, int32 or uint16, got %s", ds->path,
                         ot_dtype_name(t->dtype));
    if (t->ndim != 1 && t->ndim != 2)
        return ot_errorf(OT_E_SHAPE, "'%s': expected a token array [n_samples, seq] or [n_tokens], got shape %s",
                         ds->path, shape);
    int64_t n = ot_tensor_numel(t);
    if (n == 0) return ot_errorf(OT_E_INVALID, "'%s' holds no tokens (shape %s)", ds->path, shape);
    int64_t bad = first_bad_id(t->data, t->dtype, n);
    if (bad >= 0) {
        int64_t v = ot_tensor_get_i64(t, bad);
        if (t->ndim == 2)
            return ot_errorf(OT_E_INVALID, "'%s': token [%lld, %lld] is %lld; token ids must lie in [0, 2^31)",
                             ds->path, (long long)(bad / t->dims[1]), (long long)(bad % t->dims[1]), (long long)v);
        return ot_errorf(OT_E_INVALID, "'%s': token [%lld] is %lld; token ids must lie in [0, 2^31)", ds->path,
                         (long long)bad, (long long)v);
    }
    ts->segs = calloc(1, sizeof *ts->segs);
    if (!ts->segs) return ot_errorf(OT_E_NOMEM, "out of memory");
    ts->segs[0] = (ot_tok_seg){t->data, t->dtype, 0, n};
    ts->n_segs = 1;
    ts->n_tokens = n;
    if (t->ndim == 2) { /* rows are samples (documents) */
        ts->n_docs = t->dims[0];
        ts->doc_len = t->dims[1];
    }
    return OT_OK;
}

/* Maps one shard and checks its header against its size. */
static ot_status open_shard(ot_mapped_file *m, const char *path, int64_t *count) {
    OT_TRY(ot_mapped_open(m, path));
    if (m->size < OT_SHARD_HEADER_BYTES)
        return ot_errorf(OT_E_FORMAT, "'%s': %zu bytes, shorter than the %d-byte token shard header", path, m->size,
                         OT_SHARD_HEADER_BYTES);
    int32_t h[3];
    memcpy(h, m->data, sizeof h);
    if (h[0] != OT_SHARD_MAGIC)
        return ot_errorf(OT_E_FORMAT, "'%s': header magic is %d, expected %d (an llm.c token shard)", path, (int)h[0],
                         OT_SHARD_MAGIC);
    if (h[1] != OT_SHARD_VERSION)
        return ot_errorf(OT_E_UNSUPPORTED, "'%s': token shard version %d, expected %d", path, (int)h[1],
                         OT_SHARD_VERSION);
    if (h[2] < 0) return ot_errorf(OT_E_FORMAT, "'%s': header token count %d is negative", path, (int)h[2]);
    uint64_t want = OT_SHARD_HEADER_BYTES + 2 * (uint64_t)h[2];
    if (m->size != want)
        return ot_errorf(OT_E_FORMAT, "'%s': header says %d tokens (%llu bytes) but the file has %zu bytes", path,
                         (int)h[2], (unsigned long long)want, m->size);
    *count = h[2];
    return OT_OK;
}

ot_status ot_data_open_bin(ot_dataset *ds) {
    ot_token_store *ts = &ds->tok;
    glob_t g;
    memset(&g, 0, sizeof g);
    const char *single[1] = {ds->path};
    const char *const *paths = single;
    size_t n_paths = 1;
    if (strpbrk(ds->path, "*?[")) {
        int rc = glob(ds->path, 0, NULL, &g);
        if (rc != 0) {
            globfree(&g);
            return ot_errorf(rc == GLOB_NOMATCH ? OT_E_IO : OT_E_NOMEM, "no token shard matches '%s'", ds->path);
        }
        paths = (const char *const *)g.gl_pathv;
        n_paths = g.gl_pathc;
    }
    ot_status s = OT_OK;
    ts->maps = calloc(n_paths, sizeof *ts->maps);
    ts->segs = calloc(n_paths, sizeof *ts->segs);
    if (!ts->maps || !ts->segs) s = ot_errorf(OT_E_NOMEM, "out of memory");
    for (size_t i = 0; s == OT_OK && i < n_paths; i++) {
        int64_t count = 0;
        s = open_shard(&ts->maps[ts->n_maps], paths[i], &count);
        ts->n_maps++; /* closed by ot_token_store_free even on failure */
        if (s == OT_OK && count > 0) {
            ts->segs[ts->n_segs++] = (ot_tok_seg){(const char *)ts->maps[i].data + OT_SHARD_HEADER_BYTES, OT_U16,
                                                  ts->n_tokens, count};
            ts->n_tokens += count;
        }
    }
    if (s == OT_OK && ts->n_tokens == 0) s = ot_errorf(OT_E_INVALID, "'%s' holds no tokens", ds->path);
    globfree(&g);
    return s;
}
