/* op.h — the op registry: one entry per (domain, op type, opset range).
 *
 * Each entry carries everything onnxtune knows about an op: how to parse its attributes
 * into a typed struct (once, at plan time), how to infer output dtypes and shapes from
 * input dtypes and shapes (and from input *values* where the op needs them, e.g. Reshape's
 * `shape`), and the CPU kernel. CUDA kernels and gradient builders join the same entry.
 *
 * Kernel contract (the files in runtime/ops/):
 *  - `in[i]` is NULL for an omitted optional input; `out[i]` is NULL for an omitted
 *    optional output. Inputs are read-only. Output tensors arrive with dtype and shape set
 *    by `infer` and `data` pointing at planned memory of exactly that size (uninitialised).
 *  - Kernels never allocate tensors that escape; scratch comes from malloc/free or the stack.
 *  - Tensors are contiguous row-major. Errors name the node with ot_op_label(c).
 *
 * Infer contract: `in[i]->data` is non-NULL when that input is a constant at plan time
 * (initializer or folded). `infer` must set out[i]->dtype, ->ndim and ->dims (all concrete).
 * An op that needs an input's value to know its output shape lists it in `value_inputs`
 * and fails with a clear message if the planner could not make it constant. */
#ifndef OT_OP_H
#define OT_OP_H

#include <stddef.h>
#include <stdint.h>

#include "../core/graph.h"

typedef struct ot_op_ctx {
    const ot_graph *graph;
    const ot_node *node;
    const void *attr; /* the typed attribute struct filled by parse (NULL if attr_size == 0) */
    int opset;        /* the model's opset for the op's domain */
    int n_in, n_out;
    const ot_tensor *const *in;
    ot_tensor *const *out;
} ot_op_ctx;

typedef struct ot_op_def {
    const char *domain;  /* "" = default ONNX domain */
    const char *op_type;
    int since, until;    /* opset range the entry implements, inclusive */
    int min_in, max_in;  /* accepted input count (max_in = -1 for variadic) */
    size_t attr_size;    /* bytes of the typed attribute struct, 0 if none */
    ot_status (*parse)(const ot_node *n, int opset, void *attr); /* may be NULL */
    ot_status (*infer)(ot_op_ctx *c);
    ot_status (*cpu)(ot_op_ctx *c);
    uint32_t value_inputs; /* bit i: infer needs the value of input i */
    unsigned flags;        /* OT_OP_* below */
    void (*release)(void *attr); /* optional: frees what parse allocated inside attr (not attr itself) */
} ot_op_def;

/* Output 0 has the same bytes as input 0 (Reshape, Squeeze, Identity, ...): the planner may
 * make it share the input's buffer instead of calling the kernel. */
#define OT_OP_VIEW 1u
/* Never fold at plan time even if all inputs are constant (RNG ops). */
#define OT_OP_NO_FOLD 2u
/* Reads only its inputs' shapes, never their data (Shape): folds as soon as shapes bind. */
#define OT_OP_SHAPE_ONLY 4u

/* Finds the entry for an op at an opset. NULL when unknown; *known_op says whether the op
 * exists at other opsets (so the error can say "unsupported opset" vs "unknown op"). */
const ot_op_def *ot_op_find(const char *domain, const char *op_type, int opset, int *known_op);

/* All registered entries (for listing and for tests). */
int ot_op_count(void);
const ot_op_def *ot_op_at(int i);

/* "node 'name' (Op)" for messages. */
const char *ot_op_label(const ot_op_ctx *c);

/* Each op family file defines its table; registry.c gathers them. */
#define OT_OP_FAMILY(name)                 \
    extern const ot_op_def ot_ops_##name[]; \
    extern const int ot_ops_##name##_count;

OT_OP_FAMILY(elementwise) /* unary and binary math, comparisons, logic, Where, Cast, Clip, Max, Min */
OT_OP_FAMILY(shape)       /* Reshape, Transpose, Concat, Slice, Gather, Expand, Shape, Range, Dropout, CumSum, ... */
OT_OP_FAMILY(linalg)      /* MatMul, Gemm, Einsum */
OT_OP_FAMILY(nn)          /* Softmax, LogSoftmax, LayerNormalization, Gelu */
OT_OP_FAMILY(reduce)      /* ReduceMean, ReduceSum, ReduceMax */
/* Internal ops of domain "ai.onnxtune" that gradient builders and loss heads emit. */
OT_OP_FAMILY(grad_tensor) /* ReduceSumTo, GatherGrad, SliceGrad, ... (broadcast and data-movement gradients) */
OT_OP_FAMILY(grad_nn)     /* SoftmaxGrad, LayerNormGrad, GeluGrad, ... */
OT_OP_FAMILY(loss)        /* CausalLMLoss, CrossEntropyLoss, MSELoss and their gradients */
OT_OP_FAMILY(train)       /* TrainingDropout (LoRA dropout with recomputed masks) */

#endif
