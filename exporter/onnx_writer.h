/* onnx_writer.h — internal entry of the ONNX writer (exporter/onnx_writer.c).
 *
 * ot_export_onnx (onnxtune/export.h) is this with the protobuf limit. Tests pass a small
 * `inline_limit` to reach the "model over 2 GB" path without writing 2 GB. */
#ifndef OT_EXPORTER_ONNX_WRITER_H
#define OT_EXPORTER_ONNX_WRITER_H

#include <stdint.h>

#include "onnxtune/export.h"

/* Largest ModelProto protobuf will parse: 2 GiB - 1. */
#define OT_ONNX_INLINE_LIMIT ((uint64_t)INT32_MAX)
/* Initializers at least this large move to external data when the model is too big. */
#define OT_ONNX_EXTERNAL_MIN_BYTES 1024

/* ot_export_onnx with the model's packed size bounded by `inline_limit` instead of 2 GB. */
ot_status ot_export_onnx_limit(const char *src, const ot_named_tensor *updates, int n_updates, const char *dst,
                               uint64_t inline_limit);

#endif
