/* grad.h — gradient builders: one per differentiable op, registered by (domain, op, opset).
 *
 * A builder emits graph nodes (never kernels) computing the gradients of a forward node's
 * inputs from the gradients of its outputs. The vocabulary, as in ONNX Runtime's training
 * core:
 *   ot_gb_in(c, i)        forward input i (value index, -1 if omitted)
 *   ot_gb_out(c, i)       forward output i
 *   ot_gb_dy(c, i)        incoming gradient of output i (-1 when no gradient flows there)
 *   ot_gb_need(c, i)      whether input i's gradient is required (emit only those)
 *   ot_gb_set_dx(c, i, v) the gradient produced for input i
 *   ot_gb_tmp(c, tag)     a new uniquely named intermediate value
 *   ot_gb_node(c, op, domain, in, n_in, out, n_out) emits a node; returns its index
 *   ot_gb_attr_*(c, node, ...) attaches attributes to an emitted node
 *   ot_gb_const_*(c, ...) a new scalar/1-D initializer
 * Each builder states its math in a comment (dA = dY · Bᵀ). Differentiation happens for
 * one set of input shapes (a training plan is per shape anyway), so builders know every
 * forward value's dtype and concrete shape (ot_gb_meta) and may emit constant shapes.
 * Internal gradient ops (SoftmaxGrad, LayerNormGrad, ReduceSumTo, ...) live in domain
 * OT_DOMAIN ("ai.onnxtune") with kernels in runtime/ops/grad_*.c.
 *
 * Accumulation: builders produce each input gradient once (`=`); ot_autodiff sums the
 * partial gradients of a value used by several nodes. */
#ifndef OT_GRAD_H
#define OT_GRAD_H

#include "core/graph.h"

#define OT_DOMAIN "ai.onnxtune"

typedef struct ot_grad_ctx {
    ot_graph *g;
    int node;              /* forward node index (g->nodes may move as nodes are added) */
    const int *dy;         /* per forward output: gradient value or -1 */
    int *dx;               /* per forward input: set by the builder, -1 = none */
    const unsigned char *need; /* per forward input */
    int opset;
    int counter;           /* for unique intermediate names */
    const ot_tensor *meta; /* per forward value: dtype and shape (data NULL) */
    int n_meta;
} ot_grad_ctx;

typedef ot_status (*ot_grad_fn)(ot_grad_ctx *c);

typedef struct ot_grad_def {
    const char *domain;
    const char *op_type;
    int since, until;
    ot_grad_fn build;      /* NULL with no_grad set: the op has no gradient (Shape, Equal, ...) */
    unsigned no_grad : 1;  /* outputs are not differentiable: gradients stop here silently */
} ot_grad_def;

/* Finds the builder; NULL when none is registered. */
const ot_grad_def *ot_grad_find(const char *domain, const char *op_type, int opset);

/* ---- builder vocabulary (grad_util.c) ---- */
static inline const ot_node *ot_gb_fwd(const ot_grad_ctx *c) { return &c->g->nodes[c->node]; }
static inline int ot_gb_in(const ot_grad_ctx *c, int i) {
    return i < ot_gb_fwd(c)->n_in ? ot_gb_fwd(c)->in[i] : -1;
}
static inline int ot_gb_out(const ot_grad_ctx *c, int i) {
    return i < ot_gb_fwd(c)->n_out ? ot_gb_fwd(c)->out[i] : -1;
}
static inline int ot_gb_dy(const ot_grad_ctx *c, int i) { return i < ot_gb_fwd(c)->n_out ? c->dy[i] : -1; }
static inline int ot_gb_need(const ot_grad_ctx *c, int i) { return i < ot_gb_fwd(c)->n_in && c->need[i]; }
static inline void ot_gb_set_dx(ot_grad_ctx *c, int i, int v) { c->dx[i] = v; }

/* A fresh value named "<forward node label>/grad/<tag>[_N]". Aborts never; -1 on OOM with
 * the error set (builders propagate with OT_GB_TRY). */
ot_status ot_gb_tmp(ot_grad_ctx *c, const char *tag, int *v);
/* Emits a node; the new node's index in *idx (may be NULL). Inputs may contain -1. */
ot_status ot_gb_node(ot_grad_ctx *c, const char *op, const char *domain, const int *in, int n_in, const int *out,
                     int n_out, int *idx);
/* Convenience: one-output node with a fresh output value; *out receives it. */
ot_status ot_gb_op1(ot_grad_ctx *c, const char *op, const char *domain, const char *tag, const int *in, int n_in,
                    int *out, int *idx);
ot_status ot_gb_attr_int(ot_grad_ctx *c, int node, const char *name, int64_t v);
ot_status ot_gb_attr_float(ot_grad_ctx *c, int node, const char *name, float v);
ot_status ot_gb_attr_ints(ot_grad_ctx *c, int node, const char *name, const int64_t *v, int n);
ot_status ot_gb_attr_string(ot_grad_ctx *c, int node, const char *name, const char *v);
/* Copies every attribute of the forward node onto emitted node `node` (e.g. Gelu's
 * approximate, LayerNormalization's axis/epsilon). */
ot_status ot_gb_copy_attrs(ot_grad_ctx *c, int node);
/* New initializers: a scalar of `dt` holding x, and an int64 1-D vector. */
ot_status ot_gb_const_scalar(ot_grad_ctx *c, ot_dtype dt, double x, int *v);
ot_status ot_gb_const_i64s(ot_grad_ctx *c, const int64_t *x, int n, int *v);
/* dtype and concrete shape of a forward value (from the forward plan ot_autodiff was
 * given); NULL for values the builders created. */
static inline const ot_tensor *ot_gb_meta(const ot_grad_ctx *c, int v) {
    return v >= 0 && v < c->n_meta ? &c->meta[v] : NULL;
}

/* Builder tables, one per family (trainer/grad/grad_<family>.c). */
#define OT_GRAD_FAMILY(name)                      \
    extern const ot_grad_def ot_grads_##name[];    \
    extern const int ot_grads_##name##_count;
OT_GRAD_FAMILY(elementwise)
OT_GRAD_FAMILY(shape)
OT_GRAD_FAMILY(linalg)
OT_GRAD_FAMILY(nn)
OT_GRAD_FAMILY(reduce)
OT_GRAD_FAMILY(loss)
OT_GRAD_FAMILY(train)

#endif
