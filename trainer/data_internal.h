/* data_internal.h — what the dataset files (data.c, data_order.c, data_tokens.c,
 * data_jsonl.c, data_jsonl_generic.c) share; nothing outside trainer/data*.c includes it.
 *
 * Every token format is opened into one representation, the token store: a global token
 * sequence split over segments (one per mapped .bin shard, one for an .npy array, one for
 * the JSONL token arena), optionally cut into documents, with optional per-token labels and
 * attention mask. data.c turns rows of the store into batches; the format files only fill
 * it. Generic JSONL (arbitrary graph inputs) is not a token store: its records stay in the
 * mapped file and are parsed when a batch needs them (data_jsonl.c). */
#ifndef OT_DATA_INTERNAL_H
#define OT_DATA_INTERNAL_H

#include <stdint.h>

#include "importer/mapped_file.h"
#include "trainer/data.h"

/* A run of tokens of the global sequence: tokens [start, start + n) live at data, of dtype
 * dt (OT_U16, OT_I32 or OT_I64). Every value was checked to lie in [0, 2^31) at open. */
typedef struct ot_tok_seg {
    const void *data;
    ot_dtype dt;
    int64_t start, n;
} ot_tok_seg;

typedef struct ot_token_store {
    ot_tok_seg *segs; /* sorted by start, contiguous, covering [0, n_tokens) */
    int n_segs;
    int64_t n_tokens;
    /* Documents. n_docs == 0: one unbroken stream (.bin, 1-D .npy). Otherwise document d
     * is [doc_start[d], doc_start[d+1]) when doc_start is set (JSONL), else
     * [d * doc_len, (d+1) * doc_len) (2-D .npy). */
    int64_t n_docs;
    int64_t *doc_start; /* n_docs + 1 entries, owned */
    int64_t doc_len;
    /* Per-token labels (-100 = ignored) and attention mask, indexed like the tokens; NULL
     * means "labels are the ids" and "mask is 1". Owned. */
    int32_t *labels;
    uint8_t *mask;
    /* Owned storage behind the segments. */
    int32_t *arena;            /* JSONL ids */
    ot_tensor *npy;            /* an .npy array */
    ot_mapped_file *maps;      /* .bin shards */
    int n_maps;
} ot_token_store;

void ot_token_store_free(ot_token_store *ts);

/* Generic JSONL: records are lines of the mapped file, parsed on demand. Each key's dtype
 * is fixed at open (int64 when every number of that key in the file is written as an
 * integer, else float32) so that a key has the same dtype in every batch. */
typedef struct ot_jsonl_generic {
    ot_mapped_file map;
    int64_t n_records;
    int64_t *rec_off;  /* byte offset of each record's line in the map */
    int64_t *rec_line; /* its 1-based line number, for messages */
    int n_keys;
    char **keys;       /* in the first record's order */
    uint8_t *key_float;
} ot_jsonl_generic;

void ot_jsonl_generic_free(ot_jsonl_generic *g);

/* Epoch orders. The permutation of epoch e is Fisher–Yates (i from n-1 down to 1, swap
 * p[i] with p[j], j uniform in [0, i]) driven by splitmix64 (Steele, Lea & Flood 2014; the
 * reference constants) whose state starts at mix(mix(seed) ^ e), mix being one splitmix64
 * step from that state; j is drawn by rejection: r = next() until r >= (2^64 - m) mod m,
 * then j = r mod m, m = i + 1. Only 64-bit integer arithmetic: identical on every machine.
 * Two epochs are cached, so a batch that crosses an epoch boundary costs at most one
 * permutation more. Indices are stored as uint32: shuffled datasets hold < 2^32 rows. */
typedef struct ot_order {
    int shuffle;
    uint64_t seed;
    int64_t n;
    int64_t epoch[2];
    uint32_t *perm[2];
    int victim; /* slot replaced next */
} ot_order;

ot_status ot_order_init(ot_order *o, int64_t n, int shuffle, uint64_t seed, const char *path);
/* The dataset row of sample `i` of the run (i >= 0). */
ot_status ot_order_row(ot_order *o, int64_t i, int64_t *row);
void ot_order_free(ot_order *o);
/* Writes the permutation of (seed, epoch) over [0, n) into perm. */
void ot_order_permutation(uint64_t seed, int64_t epoch, uint32_t *perm, int64_t n);

enum { OT_DS_TOKENS = 1, OT_DS_GENERIC = 2 };

struct ot_dataset {
    char *path;
    ot_data_opts opts;
    int kind;
    int64_t n_rows; /* samples per epoch */
    ot_token_store tok;
    ot_jsonl_generic gen;
    ot_order order;
};

/* Format openers: fill ds->kind and ds->tok or ds->gen from ds->path (ds->opts set). */
ot_status ot_data_open_npy(ot_dataset *ds);
ot_status ot_data_open_bin(ot_dataset *ds);
ot_status ot_data_open_jsonl(ot_dataset *ds);

/* JSONL lines (data_jsonl.c). next_line gives the next non-blank line without its "\n" or
 * "\r\n" (0 at the end); parse_object parses one line into a JSON object, errors naming
 * path and line; kind names a JSON value's type for messages ("a string"). */
typedef struct ot_line_iter {
    const char *p, *end;
    int64_t line; /* 1-based number of the line last returned */
} ot_line_iter;
struct cJSON;
int ot_jsonl_next_line(ot_line_iter *it, const char **s, size_t *n);
ot_status ot_jsonl_parse_object(const char *path, int64_t line, const char *s, size_t n, struct cJSON **out);
const char *ot_jsonl_kind(const struct cJSON *v);

/* Generic JSONL (data_jsonl_generic.c). open_generic takes over from the first record
 * (`first`, whose text is s[0..n)), with ds->gen.map already set; generic_batch fills `out`
 * (already empty) with rows[0..b) of the dataset. */
ot_status ot_jsonl_open_generic(ot_dataset *ds, ot_line_iter *it, const struct cJSON *first, const char *s, size_t n);
ot_status ot_jsonl_generic_batch(ot_dataset *ds, const int64_t *rows, int b, ot_batch *out);

/* Appends an owned tensor under a copy of `name` to the batch; frees t on failure. */
ot_status ot_batch_push(ot_batch *b, const char *name, ot_tensor *t);

#endif
