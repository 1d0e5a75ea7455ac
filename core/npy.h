/* npy.h — NumPy .npy files (format versions 1.0-3.0, little-endian, C order) to and from
 * tensors. Reading validates the header fully: magic, version, header length, dict keys,
 * dtype, shape, and that the data length matches; errors name the file. Writing is atomic
 * (temporary name, fsync, rename). */
#ifndef OT_NPY_H
#define OT_NPY_H

#include "tensor.h"

/* Reads `path` into a new owned tensor. */
ot_status ot_npy_read(const char *path, ot_tensor **out);
/* Parses an in-memory .npy image (`name` for messages). */
ot_status ot_npy_parse(const void *buf, size_t size, const char *name, ot_tensor **out);
/* Writes `t` to `path` atomically. */
ot_status ot_npy_write(const char *path, const ot_tensor *t);

/* Writes `size` bytes to `path` atomically: `path.tmp.<pid>`, fsync, rename; the
 * temporary is removed on any failure. */
ot_status ot_write_file_atomic(const char *path, const void *data, size_t size);

#endif
