/* onnxtune/export.h — deployable outputs: the original ONNX graph with updated weights,
 * merged safetensors, and PEFT adapters. Every writer is atomic (temporary name, fsync,
 * rename; a directory output is assembled under a temporary name and renamed last). */
#ifndef ONNXTUNE_EXPORT_H
#define ONNXTUNE_EXPORT_H

#include "core/graph.h"
#include "core/tensor.h"
#include "onnxtune/safetensors.h"

/* W' = W + scale · (B·A), in W's layout (w_transposed: W is [out, in], else [in, out]) and
 * dtype (f32, f16, bf16, f64; computed in f32/f64 and rounded to nearest even once).
 * A is [r, in], B is [out, r], both f32. *merged is a new owned tensor. */
ot_status ot_lora_merge(const ot_tensor *w, int w_transposed, const ot_tensor *a, const ot_tensor *b, float scale,
                        ot_tensor **merged);

/* Rewrites the ONNX model at `src` into `dst` with the initializers named in `updates`
 * replaced (same dtype and shape as the original, or converted to the original dtype).
 * Everything else is carried over byte for byte (nodes, attributes, metadata, opsets,
 * other initializers). Initializers that were external stay external, written to
 * "<dst basename>.data" beside dst; an output over 2 GB moves every large initializer
 * to external data. Fails naming an update that matches no initializer or whose shape
 * differs. */
ot_status ot_export_onnx(const char *src, const ot_named_tensor *updates, int n_updates, const char *dst);

/* Writes the graph itself as a new ONNX model at `dst`, for models with no source .onnx (built
 * from a Hugging Face config): IR 8 (or what the opsets need), the graph's opsets, inputs and
 * outputs with their declared dtypes and shapes (symbolic dims as dim_param), nodes and
 * attributes, value names as they are, and every initializer as raw_data in its dtype, those
 * named in `updates` replaced (same shape; float dtypes are converted to the initializer's).
 * A model over 2 GB moves every initializer of 1 KB or more to "<dst>.data" (64-byte aligned
 * offsets). Graphs with onnxtune-internal nodes (domain "ai.onnxtune": loss heads, training
 * dropout) are refused naming the node: an export is the forward model only. */
ot_status ot_export_graph_onnx(const ot_graph *g, const ot_named_tensor *updates, int n_updates, const char *dst);

typedef struct ot_peft_adapter {
    const char *module;    /* module path, e.g. "transformer.h.0.attn.c_attn" */
    const ot_tensor *a;    /* [r, in] f32 */
    const ot_tensor *b;    /* [out, r] f32 */
} ot_peft_adapter;

typedef struct ot_peft_config {
    int r;
    float alpha;
    float dropout;
    int rslora;
    const char *const *target_modules;
    int n_targets;
    const char *base_model; /* base_model_name_or_path */
    const char *task_type;  /* "CAUSAL_LM", "SEQ_CLS", or NULL */
} ot_peft_config;

/* Writes a PEFT adapter directory: adapter_model.safetensors with
 * "base_model.model.<module>.lora_A.weight" [r, in] and "...lora_B.weight" [out, r], and
 * adapter_config.json (peft_type LORA, r, lora_alpha, lora_dropout, target_modules, bias
 * "none", use_rslora, base_model_name_or_path, task_type, fan_in_fan_out false). */
ot_status ot_export_peft(const char *dir, const ot_peft_adapter *adapters, int n, const ot_peft_config *cfg);

/* Reads a PEFT adapter directory back: adapters (module paths with the
 * "base_model.model." prefix removed; tensors converted to f32, owned) and its config.
 * Free with ot_peft_free. */
typedef struct ot_peft {
    ot_peft_adapter *adapters; /* a and b are owned by the ot_peft */
    int n;
    int r;
    float alpha;
    int rslora;
} ot_peft;
ot_status ot_peft_read(const char *dir, ot_peft **out);
void ot_peft_free(ot_peft *p);

#endif
