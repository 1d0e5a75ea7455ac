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

/* Loads a model from whatever the user named: an .onnx file; a directory (or its
 * config.json) holding a Hugging Face config.json with model.safetensors or a sharded
 * model.safetensors.index.json; or a URL (http(s):// or hf://, fetched into the cache
 * first, see onnxtune/fetch.h). Errors name the path and what is wrong with it. */
ot_status ot_model_load(const char *path_or_url, ot_graph **out);

/* Builds the graph of a Hugging Face model directory (config.json + safetensors) for the
 * architectures onnxtune knows (gpt2, llama, bert): initializers carry the HF parameter names
 * (so LoRA targets read as in PEFT) and view the mmapped safetensors. */
ot_status ot_hf_load(const char *dir, ot_graph **out);

/* Replaces initializers by name from a safetensors file (module-path names; a weight the ONNX
 * exporter renamed, e.g. "onnx::MatMul_12", is matched through its module path and
 * transposed as stored). Missing or extra tensors and shape mismatches are errors listing
 * the names. The file must stay mapped: the graph keeps it open. */
ot_status ot_weights_overlay(ot_graph *g, const char *safetensors_path);

#endif
