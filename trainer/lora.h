/* lora.h — LoRA as a graph rewrite, and the module paths it matches against.
 *
 * For each MatMul/Gemm whose weight W is an initializer and whose module path matches the
 * targets, the rewrite adds   y += scale · (dropout(x) · Aᵀ) · Bᵀ   next to the node, with
 * A ∈ r×in and B ∈ out×r as new trainable initializers named
 *   "<module>.lora_A.weight", "<module>.lora_B.weight"   (PEFT's layout and names).
 * scale = alpha / r, or alpha / √r with rsLoRA. A starts Kaiming-uniform (bound 1/√in, as
 * PEFT's kaiming_uniform_(a=√5)) or gaussian (std 1/r), B starts at zero, so the rewritten
 * graph computes exactly what the original did until B moves.
 *
 * Module paths: from the weight's initializer name ("transformer.h.0.attn.c_attn.weight" ->
 * "transformer.h.0.attn.c_attn"), or, when the exporter renamed the weight
 * ("onnx::MatMul_123", stored transposed as [in, out]), from the node's scope name
 * ("/transformer/h.0/attn/c_attn/MatMul" -> "transformer.h.0.attn.c_attn"). A plain target
 * name matches the last components of a path ("c_attn", "attn.c_attn"); "all-linear"
 * targets every linear except the output head (the one producing a graph output). */
#ifndef OT_LORA_H
#define OT_LORA_H

#include <stdint.h>

#include "core/graph.h"

/* One linear layer the rewrite can target. */
typedef struct ot_linear {
    int node;          /* the MatMul/Gemm node */
    int weight;        /* value index of W (an initializer) */
    char *module;      /* module path, e.g. "transformer.h.0.attn.c_attn" */
    int64_t in, out;   /* features */
    int w_transposed;  /* 1: W is stored [out, in] (Gemm transB=1, nn.Linear layout); 0: [in, out] */
    int is_head;       /* produces a graph output (the LM/classification head) */
} ot_linear;

/* Finds every MatMul/Gemm with a 2-D initializer weight and names its module. The array is
 * malloc'd; free with ot_linears_free. */
ot_status ot_find_linears(const ot_graph *g, ot_linear **out, int *n);
void ot_linears_free(ot_linear *l, int n);

/* Module path matching as PEFT does: target equals the path, or is a suffix of it on a
 * component boundary ("c_attn" matches "transformer.h.0.attn.c_attn"). */
int ot_module_matches(const char *path, const char *target);

typedef enum { OT_LORA_INIT_KAIMING = 0, OT_LORA_INIT_GAUSSIAN = 1 } ot_lora_init;

typedef struct ot_lora_config {
    int r;
    float alpha;
    float dropout;      /* probability; 0 disables the dropout node */
    int rslora;
    ot_lora_init init;
    const char *const *targets; /* module names/suffixes, or the single "all-linear" */
    int n_targets;
    uint64_t seed;      /* A's initialisation */
} ot_lora_config;

/* One adapter the rewrite added. */
typedef struct ot_lora_adapter {
    char *module;
    int linear_node;     /* the adapted MatMul/Gemm node */
    int weight;          /* W */
    int a, b;            /* value indices of A [r, in] and B [out, r] (trainable initializers) */
    int64_t in, out;
    int w_transposed;
    float scale;
} ot_lora_adapter;

/* Rewrites g in place. Fails listing the module paths it knows when the targets match
 * nothing. *adapters is malloc'd (free with ot_lora_adapters_free). The dropout node, when
 * present, reads the graph input "ot.dropout_seed" (int64 scalar) so each step draws new
 * masks; the trainer feeds it. */
ot_status ot_lora_apply(ot_graph *g, const ot_lora_config *cfg, ot_lora_adapter **adapters, int *n_adapters);
void ot_lora_adapters_free(ot_lora_adapter *a, int n);

#endif
