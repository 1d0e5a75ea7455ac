/* grad_shape.c — gradient builders for the shape op family (default domain, opset ranges
 * mirroring runtime/ops/shape.c). Identity's builder lives in grad_elementwise.c.
 *
 * These ops move elements without arithmetic, so each gradient moves dY back: the views
 * (Reshape, Flatten, Squeeze, Unsqueeze) reshape it to X's shape, Transpose applies the
 * inverse permutation, Concat and Split swap roles, Slice and Gather scatter into zeros of
 * X's shape (internal SliceGrad, GatherGrad: repeated Gather indices accumulate), Expand
 * sums over the broadcast dims (ReduceSumTo), CumSum runs the scan the other way, Trilu
 * masks dY the same way. Every shape is a constant taken from the forward plan
 * (ot_gb_meta); index-like inputs (Slice's starts.., Gather's indices, CumSum's axis,
 * Trilu's k) are reused as they are. Dropout runs in inference mode (y = x, the only mode
 * the forward kernel accepts; training-time dropout is TrainingDropout), so dX = dY.
 * Shape, ConstantOfShape, Constant and Range produce no gradient (no_grad).
 *
 * Accumulation: each input gradient is produced once (`=`); ot_autodiff sums partials. */
#include <stdlib.h>
#include <string.h>

#include "trainer/grad/grad.h"

/* A constant int64 vector holding forward value v's shape. */
static ot_status shape_of(ot_grad_ctx *c, int v, int *out) {
    const ot_tensor *m = ot_gb_meta(c, v);
    return ot_gb_const_i64s(c, m->dims, m->ndim, out);
}

/* Zeros of forward value v's dtype and shape: Expand(0, shape), folded by the planner. */
static ot_status zeros_like(ot_grad_ctx *c, int v, int *out) {
    int in[2];
    OT_TRY(ot_gb_const_scalar(c, ot_gb_meta(c, v)->dtype, 0.0, &in[0]));
    OT_TRY(shape_of(c, v, &in[1]));
    return ot_gb_op1(c, "Expand", "", "zeros", in, 2, out, NULL);
}

/* The value of a constant: an initializer or the output of a Constant node with a tensor
 * `value`; NULL otherwise. */
static const ot_tensor *const_value(const ot_grad_ctx *c, int v) {
    const ot_graph *g = c->g;
    if (g->values[v].init) return g->values[v].is_param ? NULL : g->values[v].init;
    int p = g->values[v].producer;
    if (p < 0 || p >= g->n_nodes || strcmp(g->nodes[p].op_type, "Constant") != 0) return NULL;
    const ot_attr *a = ot_node_attr(&g->nodes[p], "value");
    return a && a->type == OT_ATTR_TENSOR ? a->t : NULL;
}

/* dX = dY with forward input 0's shape. Empty tensors get zeros (a Reshape of an empty dY
 * to a shape holding 0 would copy dims under opset 13's rules). */
static ot_status grad_view(ot_grad_ctx *c) {
    int x = ot_gb_in(c, 0), d, in[2];
    const ot_tensor *mx = ot_gb_meta(c, x), *my = ot_gb_meta(c, ot_gb_out(c, 0));
    if (ot_tensor_numel(mx) == 0) {
        OT_TRY(zeros_like(c, x, &d));
    } else if (ot_shape_equal(mx->ndim, mx->dims, my->ndim, my->dims)) {
        d = ot_gb_dy(c, 0);
    } else {
        in[0] = ot_gb_dy(c, 0);
        OT_TRY(shape_of(c, x, &in[1]));
        OT_TRY(ot_gb_op1(c, "Reshape", "", "dX", in, 2, &d, NULL));
    }
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Y = Transpose(X, p): dX = Transpose(dY, p⁻¹), p⁻¹[p[i]] = i (no perm: reversal, its own
 * inverse). */
static ot_status grad_transpose(ot_grad_ctx *c) {
    int dy = ot_gb_dy(c, 0), d, idx;
    const ot_attr *a = ot_node_attr(ot_gb_fwd(c), "perm");
    int r = ot_gb_meta(c, ot_gb_in(c, 0))->ndim;
    int64_t inv[OT_MAX_DIMS];
    if (a) {
        if (a->n != r) return ot_errorf(OT_E_INVALID, "perm has %d entries for rank %d", a->n, r);
        for (int i = 0; i < r; i++) {
            int64_t p = a->ints[i] < 0 ? a->ints[i] + r : a->ints[i];
            if (p < 0 || p >= r)
                return ot_errorf(OT_E_INVALID, "perm[%d] = %lld is out of range", i, (long long)a->ints[i]);
            inv[p] = i;
        }
    }
    OT_TRY(ot_gb_op1(c, "Transpose", "", "dX", &dy, 1, &d, &idx));
    if (a) OT_TRY(ot_gb_attr_ints(c, idx, "perm", inv, r));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

static ot_status fwd_axis(const ot_grad_ctx *c, int rank, int64_t dflt, int *axis) {
    int64_t a;
    *axis = 0;
    OT_TRY(ot_attr_int(ot_gb_fwd(c), "axis", dflt, &a));
    if (a < -rank || a >= rank)
        return ot_errorf(OT_E_INVALID, "axis %lld is out of range for rank %d", (long long)a, rank);
    *axis = (int)(a < 0 ? a + rank : a);
    return OT_OK;
}

/* Y = Concat(X_0..X_{n-1}; axis): (dX_0, .., dX_{n-1}) = Split(dY, sizes along axis; axis),
 * with the outputs of inputs that need no gradient omitted. */
static ot_status grad_concat(ot_grad_ctx *c) {
    const int n = ot_gb_fwd(c)->n_in;
    int y = ot_gb_out(c, 0), axis, sizes_v, idx;
    OT_TRY(fwd_axis(c, ot_gb_meta(c, y)->ndim, 0, &axis));
    int64_t *sizes = malloc((size_t)n * sizeof *sizes);
    int *outs = malloc((size_t)n * sizeof *outs);
    ot_status st = sizes && outs ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
    for (int i = 0; i < n && st == OT_OK; i++) {
        sizes[i] = ot_gb_meta(c, ot_gb_in(c, i))->dims[axis];
        outs[i] = -1;
        if (ot_gb_need(c, i)) st = ot_gb_tmp(c, "dX", &outs[i]);
    }
    if (st == OT_OK) st = ot_gb_const_i64s(c, sizes, n, &sizes_v);
    if (st == OT_OK) {
        int in[2] = {ot_gb_dy(c, 0), sizes_v};
        st = ot_gb_node(c, "Split", "", in, 2, outs, n, &idx);
    }
    if (st == OT_OK) st = ot_gb_attr_int(c, idx, "axis", axis);
    for (int i = 0; i < n && st == OT_OK; i++)
        if (outs[i] >= 0) ot_gb_set_dx(c, i, outs[i]);
    free(sizes);
    free(outs);
    return st;
}

/* (Y_0..Y_{n-1}) = Split(X; axis): dX = Concat(dY_0 or 0, .., dY_{n-1} or 0; axis). */
static ot_status grad_split(ot_grad_ctx *c) {
    const int n = ot_gb_fwd(c)->n_out;
    int x = ot_gb_in(c, 0), axis, d, idx;
    if (n == 1) {
        ot_gb_set_dx(c, 0, ot_gb_dy(c, 0));
        return OT_OK;
    }
    OT_TRY(fwd_axis(c, ot_gb_meta(c, x)->ndim, 0, &axis));
    int *in = malloc((size_t)n * sizeof *in);
    if (!in) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_status st = OT_OK;
    for (int j = 0; j < n && st == OT_OK; j++) {
        in[j] = ot_gb_dy(c, j);
        if (in[j] < 0) st = zeros_like(c, ot_gb_out(c, j), &in[j]);
    }
    if (st == OT_OK) st = ot_gb_op1(c, "Concat", "", "dX", in, n, &d, &idx);
    if (st == OT_OK) st = ot_gb_attr_int(c, idx, "axis", axis);
    if (st == OT_OK) ot_gb_set_dx(c, 0, d);
    free(in);
    return st;
}

/* Y = Slice(X, starts, ends, axes?, steps?): dX = SliceGrad(dY, shape(X), starts, ends,
 * axes, steps) — zeros with dY written where Slice read. */
static ot_status grad_slice(ot_grad_ctx *c) {
    int in[6], d;
    in[0] = ot_gb_dy(c, 0);
    OT_TRY(shape_of(c, ot_gb_in(c, 0), &in[1]));
    int n = 2;
    for (int k = 1; k < ot_gb_fwd(c)->n_in && k <= 4; k++) in[n++] = ot_gb_in(c, k);
    while (n > 4 && in[n - 1] < 0) n--;
    OT_TRY(ot_gb_op1(c, "SliceGrad", OT_DOMAIN, "dX", in, n, &d, NULL));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Y = Gather(X, I; axis): dX = GatherGrad(dY, I, shape(X); axis) — rows of dY added into
 * zeros at their indices (repeated indices accumulate). No gradient to the indices. */
static ot_status grad_gather(ot_grad_ctx *c) {
    int in[3], d, idx, axis;
    in[0] = ot_gb_dy(c, 0);
    in[1] = ot_gb_in(c, 1);
    OT_TRY(shape_of(c, ot_gb_in(c, 0), &in[2]));
    OT_TRY(fwd_axis(c, ot_gb_meta(c, ot_gb_in(c, 0))->ndim, 0, &axis));
    OT_TRY(ot_gb_op1(c, "GatherGrad", OT_DOMAIN, "dX", in, 3, &d, &idx));
    OT_TRY(ot_gb_attr_int(c, idx, "axis", axis));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Y = Expand(X, shape): dX = ReduceSumTo(dY, shape(X)) (a Reshape when only 1-dims were
 * added, nothing when the shape did not change). */
static ot_status grad_expand(ot_grad_ctx *c) {
    int x = ot_gb_in(c, 0), dy = ot_gb_dy(c, 0), in[2], d;
    const ot_tensor *mx = ot_gb_meta(c, x), *my = ot_gb_meta(c, ot_gb_out(c, 0));
    if (ot_shape_equal(mx->ndim, mx->dims, my->ndim, my->dims)) {
        ot_gb_set_dx(c, 0, dy);
        return OT_OK;
    }
    in[0] = dy;
    OT_TRY(shape_of(c, x, &in[1]));
    int same = ot_tensor_numel(mx) == ot_tensor_numel(my) && ot_tensor_numel(mx) > 0;
    OT_TRY(ot_gb_op1(c, same ? "Reshape" : "ReduceSumTo", same ? "" : OT_DOMAIN, "dX", in, 2, &d, NULL));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Y = CumSum(X, axis; exclusive, reverse): y_i = Σ_{j ≤ i} x_j (j < i exclusive; the other
 * direction with reverse), so dx_j = Σ_{i ≥ j} dy_i: the same scan reversed. */
static ot_status grad_cumsum(ot_grad_ctx *c) {
    int in[2] = {ot_gb_dy(c, 0), ot_gb_in(c, 1)}, d, idx;
    int64_t ex, rev;
    OT_TRY(ot_attr_int(ot_gb_fwd(c), "exclusive", 0, &ex));
    OT_TRY(ot_attr_int(ot_gb_fwd(c), "reverse", 0, &rev));
    OT_TRY(ot_gb_op1(c, "CumSum", "", "dX", in, 2, &d, &idx));
    OT_TRY(ot_gb_attr_int(c, idx, "exclusive", ex != 0));
    OT_TRY(ot_gb_attr_int(c, idx, "reverse", rev == 0));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Y = Trilu(X, k; upper): Y = M ⊙ X for a fixed 0/1 mask, so dX = Trilu(dY, k; upper). */
static ot_status grad_trilu(ot_grad_ctx *c) {
    int in[2] = {ot_gb_dy(c, 0), ot_gb_in(c, 1)}, d, idx;
    OT_TRY(ot_gb_op1(c, "Trilu", "", "dX", in, in[1] >= 0 ? 2 : 1, &d, &idx));
    OT_TRY(ot_gb_copy_attrs(c, idx));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Y = Dropout(X, ratio, training_mode) in inference mode: Y = X, so dX = dY (the mask
 * output, all ones, carries no gradient). */
static ot_status grad_dropout(ot_grad_ctx *c) {
    int tm = ot_gb_in(c, 2);
    const ot_tensor *t = tm >= 0 ? const_value(c, tm) : NULL;
    if (tm >= 0 && (!t || ot_tensor_numel(t) != 1 || ot_tensor_get_i64(t, 0) != 0))
        return ot_errorf(OT_E_UNSUPPORTED, "Dropout with training_mode is not differentiable here (only inference "
                         "mode is supported; training-time dropout is TrainingDropout)");
    ot_gb_set_dx(c, 0, ot_gb_dy(c, 0));
    return OT_OK;
}

#define SH(op, lo, fn) {"", op, lo, 21, fn, 0}
#define SH_NONE(op) {"", op, 13, 21, NULL, 1}

const ot_grad_def ot_grads_shape[] = {
    SH("Reshape", 13, grad_view),
    SH("Flatten", 13, grad_view),
    SH("Squeeze", 13, grad_view),
    SH("Unsqueeze", 13, grad_view),
    SH("Transpose", 13, grad_transpose),
    SH("Concat", 13, grad_concat),
    SH("Split", 13, grad_split),
    SH("Slice", 13, grad_slice),
    SH("Gather", 13, grad_gather),
    SH("Expand", 13, grad_expand),
    SH("CumSum", 13, grad_cumsum),
    SH("Dropout", 13, grad_dropout),
    SH("Trilu", 14, grad_trilu),
    SH_NONE("Shape"),
    SH_NONE("ConstantOfShape"),
    SH_NONE("Constant"),
    SH_NONE("Range"),
};
const int ot_grads_shape_count = (int)(sizeof ot_grads_shape / sizeof ot_grads_shape[0]);
