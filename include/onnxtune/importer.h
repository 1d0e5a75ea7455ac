/* onnxtune/importer.h — reading models into the graph IR. */
#ifndef ONNXTUNE_IMPORTER_H
#define ONNXTUNE_IMPORTER_H

#include <stddef.h>

#include "core/graph.h"

/* Reads an .onnx file (IR 7+, default-domain opsets 13..21) into a new graph, nodes in
 * topological order. Initializers borrow the parsed file's memory or mmapped external data
 * (confined to the model's folder). Errors name the file and the tensor, node or field. */
ot_status ot_onnx_load(const char *path, ot_graph **out);

/* Same from memory (`name` appears in messages). External data is refused. The buffer may
 * be freed once this returns. */
ot_status ot_onnx_load_buffer(const void *data, size_t size, const char *name, ot_graph **out);

#endif
