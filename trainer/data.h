/* data.h — training datasets and batches.
 *
 * Formats, chosen by extension:
 *   .jsonl  one JSON object per line. Language-model form: {"input_ids": [ints]} (labels are
 *           the input ids; the loss shifts them) with optional "labels" (same length, -100 =
 *           ignored) and "attention_mask". Generic form: keys are the model's graph input
 *           names mapping to (nested) arrays, plus "labels" (scalar or array). Blank lines
 *           are skipped; a malformed line is an error naming file and line.
 *   .npy    an int array [n_samples, seq] (or 1-D, chunked into seq_len samples) of tokens.
 *   .bin    token shards: a 256 x int32 header (magic 20240520, version 1, token count at
 *           [2]) followed by uint16 tokens, chunked into samples of seq_len (+1 not needed:
 *           labels are the ids, shifted by the loss).
 * Token samples are truncated or padded to `seq_len` (padding: pad_id in input_ids, -100 in
 * labels, 0 in attention_mask), or with `pack` concatenated and cut into seq_len rows; when
 * packing, each document's first token gets label -100 so no document is trained to follow
 * the previous one (attention still spans the row). The JSONL form is decided by the first
 * record; a generic key's dtype (int64 if every number is written as an integer, else
 * float32) is fixed over the whole file.
 *
 * Order: sample i of the run is order[i % n] of epoch i / n, where each epoch's order is a
 * permutation drawn from (seed, epoch) when shuffling, identity otherwise. A run's position
 * is one integer (the cursor), which checkpoints save; batches are a pure function of it. */
#ifndef OT_DATA_H
#define OT_DATA_H

#include <stdint.h>

#include "core/tensor.h"

typedef struct ot_data_opts {
    int seq_len;      /* token datasets: row length (required > 0 for them) */
    int pack;         /* concatenate samples and cut rows instead of padding each */
    int shuffle;
    uint64_t seed;
    int64_t pad_id;   /* default 0 */
} ot_data_opts;

typedef struct ot_dataset ot_dataset;

ot_status ot_dataset_open(const char *path, const ot_data_opts *opts, ot_dataset **out);
void ot_dataset_close(ot_dataset *ds);
int64_t ot_dataset_len(const ot_dataset *ds);      /* samples per epoch */
int ot_dataset_is_tokens(const ot_dataset *ds);    /* LM token data (input_ids/labels/attention_mask) */

/* A batch: parallel arrays of names and owned tensors, first dimension = batch size.
 * Token datasets give input_ids [B, S] int64, labels [B, S] int64, attention_mask [B, S]
 * int64. Generic JSONL gives one tensor per key (int64 when every number is an integer,
 * else float32; shapes must agree across a batch) and labels. */
typedef struct ot_batch {
    int n;
    char **names;
    ot_tensor **tensors;
    int64_t tokens; /* tokens the shifted causal-LM loss counts (labels[b][s] != -100 for s >= 1),
                       or samples for generic data */
} ot_batch;

/* Samples [cursor, cursor + batch_size) of the run into `out` (freed first if it holds a
 * batch). */
ot_status ot_dataset_batch(ot_dataset *ds, int64_t cursor, int batch_size, ot_batch *out);
/* The tensor called name in the batch, or NULL. */
const ot_tensor *ot_batch_get(const ot_batch *b, const char *name);
void ot_batch_free(ot_batch *b);

#endif
