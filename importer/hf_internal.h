/* hf_internal.h — shared pieces of the Hugging Face importer (hf_*.c): the parsed
 * config.json, and a small graph-building vocabulary the per-architecture builders use.
 *
 * Builders emit standard ONNX ops (opset 17) into an ot_graph. Emission is "sticky": every
 * helper returns a value index, or -1 once anything failed (out of memory, or a weight that
 * is missing or mis-shaped). A missing weight does not stop the build: the name is recorded
 * and building goes on, so one error can list every missing tensor. Nodes whose inputs are
 * -1 are skipped. The caller checks ot_hf_builder.st and the problem list at the end.
 *
 * The residual stream is kept 2-D, [batch*sequence, hidden], so every nn.Linear is one
 * Gemm whose input 1 is the HF weight itself (transB=1 for [out, in] nn.Linear, transB=0
 * for GPT-2's [in, out] Conv1D): trainer/lora.c recognises exactly these as linear layers and
 * takes the module path from the initializer name. Tensors are reshaped to 4-D only inside
 * attention, with shapes built from Shape(input_ids) that the planner folds. */
#ifndef OT_HF_INTERNAL_H
#define OT_HF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/graph.h"
#include "onnxtune/safetensors.h"

typedef enum { OT_HF_GPT2, OT_HF_LLAMA, OT_HF_BERT } ot_hf_arch;

typedef enum {
    OT_HF_ACT_GELU_TANH, /* gelu_new, gelu_pytorch_tanh, gelu_fast: tanh approximation */
    OT_HF_ACT_GELU_ERF,  /* gelu: exact, through erf */
    OT_HF_ACT_SILU,      /* silu, swish: x * sigmoid(x) */
    OT_HF_ACT_RELU,
} ot_hf_act;

typedef struct ot_hf_config {
    ot_hf_arch arch;
    char model_type[32];
    char architecture[96]; /* architectures[0], "" when absent */
    int64_t vocab, hidden, layers, heads, kv_heads, inter, max_pos;
    int64_t type_vocab; /* bert */
    double eps;         /* layer_norm_epsilon / rms_norm_eps / layer_norm_eps */
    double rope_theta;  /* llama; 10000 when absent */
    double rope_factor; /* linear rope scaling factor; 1 when rope_scaling is null */
    int tie;            /* tie_word_embeddings: the LM head reuses the token embedding */
    ot_hf_act act;
    int seq_cls;        /* bert: BertForSequenceClassification (pooler + classifier) */
    int64_t num_labels;
} ot_hf_config;

/* Parses config.json text (`path` for messages). Errors name the file and the field:
 * missing or wrongly typed fields, an unknown model_type (listing the supported ones),
 * unsupported activations or rope scaling, sizes that do not divide. */
ot_status ot_hf_config_parse(const char *json, size_t n, const char *path, ot_hf_config *cfg);
/* Reads and parses a config.json file. */
ot_status ot_hf_config_read(const char *path, ot_hf_config *cfg);

/* The weights: one or more safetensors shards, and which tensors the builder used. */
typedef struct ot_hf_weights {
    ot_safetensors **files;
    char **file_names; /* for messages */
    int n_files;
    unsigned char **used; /* used[f][i]: tensor i of file f became an initializer */
} ot_hf_weights;

typedef struct ot_hf_builder {
    ot_graph *g;
    const ot_hf_config *cfg;
    ot_hf_weights *w;
    ot_status st;   /* first hard failure (not a weight problem); OT_OK while building */
    char *problems; /* "name (expected [..], got [..])" list of weight problems, malloc'd */
    size_t len, cap;
    int n_problems;
    int counter;    /* for unique intermediate names */
    int ids;        /* input_ids */
    int bs;         /* [batch, sequence] (int64, 1-D), from Shape(input_ids) */
    int seq;        /* [sequence] */
    int bsd;        /* [batch, sequence, -1]: back from 2-D to 3-D */
} ot_hf_builder;

/* Weight `name` with the given shape as an initializer viewing the mapped file (made once;
 * a tied weight asked twice is the same value). -1 after recording the problem when it is
 * absent, of another shape, or not float32. */
int ot_hf_weight(ot_hf_builder *b, const char *name, int ndim, int64_t d0, int64_t d1);
/* Same, with printf-style name. */
int ot_hf_weightf(ot_hf_builder *b, int ndim, int64_t d0, int64_t d1, const char *fmt, ...) OT_PRINTF(5, 6);
/* Does the weights hold `name`? (for optional tensors and name-prefix detection) */
int ot_hf_has(const ot_hf_builder *b, const char *name);

/* Constant initializers (owned data). */
int ot_hf_const_i64(ot_hf_builder *b, int n, const int64_t *v);
int ot_hf_const_f32(ot_hf_builder *b, int ndim, const int64_t *dims, const float *v);
int ot_hf_scalar(ot_hf_builder *b, float v);

/* A node with one output (named "<op>_<counter>", or `out_name` when not NULL). */
int ot_hf_op(ot_hf_builder *b, const char *op, const int *in, int n_in);
int ot_hf_op_named(ot_hf_builder *b, const char *op, const int *in, int n_in, const char *out_name);
int ot_hf_op1(ot_hf_builder *b, const char *op, int a);
int ot_hf_op2(ot_hf_builder *b, const char *op, int a, int c);
/* Attributes on the node that produced value v (the last node made). */
void ot_hf_attr_int(ot_hf_builder *b, int v, const char *name, int64_t x);
void ot_hf_attr_ints(ot_hf_builder *b, int v, const char *name, int n, const int64_t *x);
void ot_hf_attr_float(ot_hf_builder *b, int v, const char *name, float x);
void ot_hf_attr_tensor(ot_hf_builder *b, int v, const char *name, ot_tensor *t);

/* Graph input of dtype int64 shaped [batch, sequence]. */
int ot_hf_input_ids(ot_hf_builder *b, const char *name);
/* Marks v as a graph output called `name` (renames the value). */
/* The LM head on h [batch·seq, d]: the tied embedding (Gemm transB=1 on it) or "lm_head",
 * reshaped to [batch, seq, vocab] and declared the "logits" output. */
void ot_hf_lm_head(ot_hf_builder *b, int h, int embedding, int64_t d);
/* Declares value v a graph output called `name`, float32 with shape [batch, sequence, last]
 * (per_token) or [batch, last], so exports pass onnx.checker. */
void ot_hf_output(ot_hf_builder *b, int v, const char *name, int per_token, int64_t last);

/* Composite layers. x is [N, in]; returns [N, out]. Weight "<prefix>.weight", bias
 * "<prefix>.bias" when `bias`. transposed: weight stored [out, in] (nn.Linear). */
int ot_hf_linear(ot_hf_builder *b, int x, const char *prefix, int64_t in, int64_t out, int bias, int transposed);
/* LayerNormalization over the last axis with "<prefix>.weight"/"<prefix>.bias". */
int ot_hf_layernorm(ot_hf_builder *b, int x, const char *prefix, int64_t d, double eps);
int ot_hf_act_apply(ot_hf_builder *b, int x, ot_hf_act act);
/* Embedding lookup of token ids (Gather on axis 0), flattened to [N, d]. */
int ot_hf_embed(ot_hf_builder *b, int table, int ids, int64_t d);
/* [N, heads*hd] -> [batch, heads, sequence, hd] */
int ot_hf_split_heads(ot_hf_builder *b, int x, int64_t heads, int64_t hd);
/* [batch, heads, sequence, hd] -> [N, heads*hd] */
int ot_hf_merge_heads(ot_hf_builder *b, int x, int64_t d);
/* softmax(q·kᵀ·scale + mask)·v for q [B,H,S,hd], k, v [B,H,S,hd]; mask broadcastable to
 * [B,H,S,S] or -1. */
int ot_hf_attention(ot_hf_builder *b, int q, int k, int v, int mask, float scale);
/* Additive causal mask [S, S]: finfo(float).min above the diagonal, 0 elsewhere. */
int ot_hf_causal_mask(ot_hf_builder *b);
/* Positions 0..S-1 (int64, [S]). */
int ot_hf_positions(ot_hf_builder *b);

/* The builders: build the whole graph (inputs, outputs, nodes) from cfg and weights. */
void ot_hf_build_gpt2(ot_hf_builder *b);
void ot_hf_build_llama(ot_hf_builder *b);
void ot_hf_build_bert(ot_hf_builder *b);

#endif
