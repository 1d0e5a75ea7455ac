/* onnx_graph_writer.h — internal entry of the graph-IR ONNX writer (onnx_graph_writer.c).
 *
 * ot_export_graph_onnx (onnxtune/export.h) is this with protobuf's 2 GB limit. Tests pass a
 * small `inline_limit` to reach the external-data path without writing 2 GB. */
#ifndef OT_EXPORTER_ONNX_GRAPH_WRITER_H
#define OT_EXPORTER_ONNX_GRAPH_WRITER_H

#include <stdint.h>

#include "onnxtune/export.h"

ot_status ot_export_graph_onnx_limit(const ot_graph *g, const ot_named_tensor *updates, int n_updates, const char *dst,
                                     uint64_t inline_limit);

#endif
