/* onnxtune/safetensors.h — the safetensors format: reading (mmapped, zero-copy, validated as
 * strictly as the reference implementation) and writing (aligned, deterministic, atomic).
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"k": "v", ...}, "name": {"dtype": "F32", "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * then the data buffer; offsets are relative to the buffer's start. */
#ifndef ONNXTUNE_SAFETENSORS_H
#define ONNXTUNE_SAFETENSORS_H

#include <stddef.h>

#include "core/tensor.h"

typedef struct ot_safetensors ot_safetensors;

/* Opens and validates `path`: header length bound (100 MB), valid UTF-8 JSON object, known
 * dtype strings, shapes, offsets inside the file, byte size = shape x dtype size, entries
 * contiguous and non-overlapping covering the buffer exactly (no trailing bytes), string
 * metadata only. Errors name the file and the tensor. */
ot_status ot_safetensors_open(const char *path, ot_safetensors **out);
/* Same over memory (not copied: it must outlive the handle); `name` for messages. */
ot_status ot_safetensors_parse(const void *data, size_t size, const char *name, ot_safetensors **out);
void ot_safetensors_close(ot_safetensors *st);

int ot_safetensors_count(const ot_safetensors *st);
/* Tensor i in file order (names sorted as stored): name and a tensor viewing the mapped
 * bytes (owned = 0; valid until close). Misaligned data is copied once at open. */
const char *ot_safetensors_name(const ot_safetensors *st, int i);
const ot_tensor *ot_safetensors_tensor(const ot_safetensors *st, int i);
/* By name; NULL if absent. */
const ot_tensor *ot_safetensors_find(const ot_safetensors *st, const char *name);
/* __metadata__ value for key; NULL if absent. */
const char *ot_safetensors_meta(const ot_safetensors *st, const char *key);

typedef struct ot_named_tensor {
    const char *name;
    const ot_tensor *t;
} ot_named_tensor;

/* Writes tensors (sorted by name, data aligned to 8 bytes via header padding, as the
 * reference writer does) and optional string metadata (pairs key, value; n_meta pairs) to
 * `path` atomically (temporary name, fsync, rename). Deterministic: same input, same bytes. */
ot_status ot_safetensors_write(const char *path, const ot_named_tensor *tensors, int n, const char *const *meta,
                               int n_meta);

/* safetensors dtype string ("F32", "BF16", ...) for a dtype, NULL if it has none. */
const char *ot_safetensors_dtype_name(ot_dtype dt);

#endif
