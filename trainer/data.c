/* data.c — opening datasets by extension, and batches; see data.h.
 *
 * Owns the dataset object, the row layout of token stores and batch assembly. A token row
 * is, in padding mode, one document (a JSONL record or a 2-D .npy row) truncated or padded
 * to seq_len; with `pack`, or for a stream without documents (.bin, 1-D .npy), row r is
 * tokens [r*seq_len, (r+1)*seq_len) of the concatenation, the last row padded (no token is
 * dropped). When packing documents, the label of each document's first token is -100, so the
 * causal-LM loss never predicts one document from the end of the one before it (as
 * transformers' DataCollatorWithFlattening does); attention still spans the row.
 *
 * batch.tokens for token data counts labels[b][s] != -100 for s >= 1: the positions the
 * shifted causal-LM loss scores (labels[b][0] is never predicted). Batches are a pure
 * function of (dataset, options, cursor, batch size); ot_dataset_batch is not thread-safe
 * (it caches epoch orders). */
#include <stdlib.h>
#include <string.h>

#include "trainer/data_internal.h"

static const char *extension(const char *path) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    return dot && (!slash || dot > slash) ? dot : "";
}

ot_status ot_dataset_open(const char *path, const ot_data_opts *opts, ot_dataset **out) {
    *out = NULL;
    if (!path || !*path) return ot_errorf(OT_E_INVALID, "dataset path is empty");
    ot_data_opts o = {0};
    if (opts) o = *opts;
    if (o.seq_len < 0) return ot_errorf(OT_E_INVALID, "dataset '%s': seq_len %d is negative", path, o.seq_len);
    if (o.pad_id < 0 || o.pad_id > INT32_MAX)
        return ot_errorf(OT_E_INVALID, "dataset '%s': pad_id %lld is outside [0, 2^31)", path, (long long)o.pad_id);
    const char *ext = extension(path);
    int is_jsonl = strcmp(ext, ".jsonl") == 0, is_npy = strcmp(ext, ".npy") == 0, is_bin = strcmp(ext, ".bin") == 0;
    if (!is_jsonl && !is_npy && !is_bin)
        return ot_errorf(OT_E_UNSUPPORTED, "dataset '%s': unknown extension '%s' (expected .jsonl, .npy or .bin)", path,
                         ext);
    if ((is_npy || is_bin) && o.seq_len <= 0)
        return ot_errorf(OT_E_INVALID, "dataset '%s': token data needs seq_len > 0, got %d", path, o.seq_len);

    ot_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->path = strdup(path))) {
        free(ds);
        return ot_errorf(OT_E_NOMEM, "out of memory opening dataset '%s'", path);
    }
    ds->opts = o;
    ot_status s;
    if (is_jsonl) {
        s = ot_data_open_jsonl(ds);
    } else {
        ds->kind = OT_DS_TOKENS;
        s = is_npy ? ot_data_open_npy(ds) : ot_data_open_bin(ds);
    }
    if (s == OT_OK && ds->kind == OT_DS_TOKENS) {
        const ot_token_store *ts = &ds->tok;
        if (o.seq_len <= 0)
            s = ot_errorf(OT_E_INVALID, "dataset '%s' holds token records (input_ids): seq_len must be > 0, got %d",
                          path, o.seq_len);
        else if (!o.pack && ts->n_docs)
            ds->n_rows = ts->n_docs;
        else
            ds->n_rows = (ts->n_tokens + o.seq_len - 1) / o.seq_len;
    } else if (s == OT_OK) {
        ds->n_rows = ds->gen.n_records;
    }
    if (s == OT_OK) s = ot_order_init(&ds->order, ds->n_rows, o.shuffle, o.seed, path);
    if (s != OT_OK) {
        ot_dataset_close(ds);
        return s;
    }
    *out = ds;
    return OT_OK;
}

void ot_dataset_close(ot_dataset *ds) {
    if (!ds) return;
    ot_token_store_free(&ds->tok);
    ot_jsonl_generic_free(&ds->gen);
    ot_order_free(&ds->order);
    free(ds->path);
    free(ds);
}

int64_t ot_dataset_len(const ot_dataset *ds) { return ds->n_rows; }
int ot_dataset_is_tokens(const ot_dataset *ds) { return ds->kind == OT_DS_TOKENS; }

/* ---- token rows ---- */

static int64_t doc_begin(const ot_token_store *ts, int64_t d) {
    return ts->doc_start ? ts->doc_start[d] : d * ts->doc_len;
}

/* The first document starting at or after token a. */
static int64_t first_doc_from(const ot_token_store *ts, int64_t a) {
    if (!ts->doc_start) return (a + ts->doc_len - 1) / ts->doc_len;
    int64_t lo = 0, hi = ts->n_docs; /* doc_start is strictly increasing: documents are non-empty */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ts->doc_start[mid] < a) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Tokens [a, a + n) of the store, widened to int64. */
static void copy_ids(const ot_token_store *ts, int64_t a, int64_t n, int64_t *dst) {
    int lo = 0, hi = ts->n_segs - 1; /* the last segment starting at or before a */
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (ts->segs[mid].start <= a) lo = mid;
        else hi = mid - 1;
    }
    for (int k = lo; n > 0; k++) {
        const ot_tok_seg *sg = &ts->segs[k];
        int64_t off = a - sg->start, m = sg->n - off < n ? sg->n - off : n;
        if (sg->dt == OT_U16) {
            const uint16_t *p = (const uint16_t *)sg->data + off;
            for (int64_t i = 0; i < m; i++) dst[i] = p[i];
        } else if (sg->dt == OT_I32) {
            const int32_t *p = (const int32_t *)sg->data + off;
            for (int64_t i = 0; i < m; i++) dst[i] = p[i];
        } else {
            memcpy(dst, (const int64_t *)sg->data + off, (size_t)m * sizeof *dst);
        }
        dst += m;
        a += m;
        n -= m;
    }
}

/* Fills one row of seq_len entries; returns the tokens the loss counts in it. */
static int64_t fill_row(const ot_dataset *ds, int64_t row, int64_t *ids, int64_t *lab, int64_t *msk) {
    const ot_token_store *ts = &ds->tok;
    const int64_t S = ds->opts.seq_len;
    int64_t a, len;
    if (!ds->opts.pack && ts->n_docs) {
        a = doc_begin(ts, row);
        len = (row + 1 < ts->n_docs ? doc_begin(ts, row + 1) : ts->n_tokens) - a;
    } else {
        a = row * S;
        len = ts->n_tokens - a;
    }
    if (len > S) len = S;
    copy_ids(ts, a, len, ids);
    if (ts->labels) {
        for (int64_t i = 0; i < len; i++) lab[i] = ts->labels[a + i];
    } else {
        memcpy(lab, ids, (size_t)len * sizeof *lab);
    }
    if (ts->mask) {
        for (int64_t i = 0; i < len; i++) msk[i] = ts->mask[a + i];
    } else {
        for (int64_t i = 0; i < len; i++) msk[i] = 1;
    }
    for (int64_t i = len; i < S; i++) {
        ids[i] = ds->opts.pad_id;
        lab[i] = -100;
        msk[i] = 0;
    }
    if (ds->opts.pack && ts->n_docs)
        for (int64_t d = first_doc_from(ts, a); d < ts->n_docs; d++) {
            int64_t st = doc_begin(ts, d);
            if (st >= a + len) break;
            lab[st - a] = -100;
        }
    int64_t counted = 0;
    for (int64_t i = 1; i < S; i++) counted += lab[i] != -100;
    return counted;
}

static ot_status token_batch(ot_dataset *ds, const int64_t *rows, int b, ot_batch *out) {
    const int64_t S = ds->opts.seq_len, dims[2] = {b, S};
    static const char *names[3] = {"input_ids", "labels", "attention_mask"};
    int64_t *p[3];
    for (int i = 0; i < 3; i++) {
        ot_tensor *t;
        OT_TRY(ot_tensor_new(&t, OT_I64, 2, dims));
        OT_TRY(ot_batch_push(out, names[i], t));
        p[i] = t->data;
    }
    for (int r = 0; r < b; r++) out->tokens += fill_row(ds, rows[r], p[0] + r * S, p[1] + r * S, p[2] + r * S);
    return OT_OK;
}

ot_status ot_dataset_batch(ot_dataset *ds, int64_t cursor, int batch_size, ot_batch *out) {
    ot_batch_free(out);
    if (batch_size <= 0)
        return ot_errorf(OT_E_INVALID, "dataset '%s': batch size must be > 0, got %d", ds->path, batch_size);
    if (cursor < 0 || cursor > INT64_MAX - batch_size)
        return ot_errorf(OT_E_INVALID, "dataset '%s': cursor %lld is out of range", ds->path, (long long)cursor);
    int64_t *rows = malloc((size_t)batch_size * sizeof *rows);
    if (!rows) return ot_errorf(OT_E_NOMEM, "out of memory for a batch of %d", batch_size);
    ot_status s = OT_OK;
    for (int i = 0; s == OT_OK && i < batch_size; i++) s = ot_order_row(&ds->order, cursor + i, &rows[i]);
    if (s == OT_OK)
        s = ds->kind == OT_DS_TOKENS ? token_batch(ds, rows, batch_size, out)
                                     : ot_jsonl_generic_batch(ds, rows, batch_size, out);
    free(rows);
    if (s != OT_OK) ot_batch_free(out);
    return s;
}

/* ---- batches ---- */

ot_status ot_batch_push(ot_batch *b, const char *name, ot_tensor *t) {
    char **nn = realloc(b->names, (size_t)(b->n + 1) * sizeof *nn);
    if (nn) b->names = nn;
    ot_tensor **nt = nn ? realloc(b->tensors, (size_t)(b->n + 1) * sizeof *nt) : NULL;
    if (nt) b->tensors = nt;
    char *copy = nt ? strdup(name) : NULL;
    if (!copy) {
        ot_tensor_free(t);
        return ot_errorf(OT_E_NOMEM, "out of memory adding '%s' to a batch", name);
    }
    b->names[b->n] = copy;
    b->tensors[b->n] = t;
    b->n++;
    return OT_OK;
}

const ot_tensor *ot_batch_get(const ot_batch *b, const char *name) {
    for (int i = 0; i < b->n; i++)
        if (strcmp(b->names[i], name) == 0) return b->tensors[i];
    return NULL;
}

void ot_batch_free(ot_batch *b) {
    if (!b) return;
    for (int i = 0; i < b->n; i++) {
        free(b->names[i]);
        ot_tensor_free(b->tensors[i]);
    }
    free(b->names);
    free(b->tensors);
    memset(b, 0, sizeof *b);
}
