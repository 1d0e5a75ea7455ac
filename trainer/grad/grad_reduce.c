/* grad_reduce.c — gradient builders of the reduce family: ReduceSum, ReduceMean, ReduceMax.
 *
 * Every opset variant: axes as an attribute (ReduceSum 1..12, ReduceMean/ReduceMax 1..17) or
 * as input 1 (13+ / 18+), whose value must be a constant (an initializer or a Constant node);
 * keepdims both ways; no axes = all axes, unless noop_with_empty_axes = 1 (identity, dX = dY).
 * The reduced axes are resolved once from the forward node, then the incoming gradient is
 * reshaped to the "kept" shape (X's shape with reduced dims set to 1, only needed when
 * keepdims = 0) and broadcast back to X's shape with Expand; shapes are constants from the
 * forward plan (ot_gb_meta).
 *
 * ReduceMax: the gradient goes to the maxima, split evenly among ties — PyTorch's amax/amin
 * convention (torch.max(dim) instead picks one index; we do not):
 *   mask = (X == Y_kept), dX = mask ⊙ dY_kept / Σ_reduced mask.
 * A NaN maximum matches nothing (NaN != NaN) and its slice gets no gradient (count 0 gives
 * 0/0 only where the mask is 0, and the Where below keeps those at 0).
 *
 * Accumulation rule: every input gradient is produced once with `=` (ot_autodiff sums). */
#include <stdio.h>
#include <string.h>

#include "trainer/grad/grad.h"

/* Reads a constant int64/int32 1-D value: an initializer or the output of a Constant node. */
static ot_status const_ints(ot_grad_ctx *c, int v, int64_t *out, int cap, int *n) {
    const ot_graph *g = c->g;
    const ot_tensor *t = g->values[v].init;
    if (!t) {
        for (int ni = 0; ni < g->n_nodes && !t; ni++) {
            const ot_node *p = &g->nodes[ni];
            if (strcmp(p->op_type, "Constant") != 0 || p->n_out < 1 || p->out[0] != v) continue;
            const ot_attr *a = ot_node_attr(p, "value");
            if (a && a->t) t = a->t;
            else if ((a = ot_node_attr(p, "value_ints")) != NULL) {
                if (a->n > cap) break;
                for (int i = 0; i < a->n; i++) out[i] = a->ints[i];
                *n = a->n;
                return OT_OK;
            }
        }
    }
    if (!t || !t->data)
        return ot_errorf(OT_E_UNSUPPORTED, "axes input '%s' is not a constant; the gradient needs its value",
                         g->values[v].name);
    int64_t k = ot_tensor_numel(t);
    if (k > cap) return ot_errorf(OT_E_INVALID, "axes input '%s' has %lld entries", g->values[v].name, (long long)k);
    for (int64_t i = 0; i < k; i++) out[i] = ot_tensor_get_i64(t, i);
    *n = (int)k;
    return OT_OK;
}

/* The reduced dims of the forward node's input 0, keepdims, and whether it is an identity. */
static ot_status reduced_axes(ot_grad_ctx *c, int axes_from_input, int *reduced, int *keepdims, int *identity) {
    const ot_node *n = ot_gb_fwd(c);
    const ot_tensor *xm = ot_gb_meta(c, ot_gb_in(c, 0));
    int64_t kd, noop, axes[OT_MAX_DIMS];
    int na = 0;
    OT_TRY(ot_attr_int(n, "keepdims", 1, &kd));
    OT_TRY(ot_attr_int(n, "noop_with_empty_axes", 0, &noop));
    *keepdims = kd != 0;
    if (axes_from_input) {
        if (ot_gb_in(c, 1) >= 0) OT_TRY(const_ints(c, ot_gb_in(c, 1), axes, OT_MAX_DIMS, &na));
    } else {
        const int64_t *ax;
        int cnt;
        OT_TRY(ot_attr_ints(n, "axes", &ax, &cnt));
        if (cnt > OT_MAX_DIMS) return ot_errorf(OT_E_INVALID, "%d axes given", cnt);
        for (int i = 0; i < cnt; i++) axes[i] = ax[i];
        na = cnt < 0 ? 0 : cnt;
    }
    *identity = na == 0 && noop;
    for (int d = 0; d < xm->ndim; d++) reduced[d] = na == 0 && !noop;
    for (int i = 0; i < na; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + xm->ndim : axes[i];
        if (xm->ndim == 0) continue;
        if (a < 0 || a >= xm->ndim)
            return ot_errorf(OT_E_INVALID, "axis %lld is out of range for rank %d", (long long)axes[i], xm->ndim);
        reduced[a] = 1;
    }
    return OT_OK;
}

/* Broadcasts `v` (shaped like the forward output) back to X's shape: Reshape to the kept
 * shape when keepdims = 0 (skipped when every dim is reduced: a scalar broadcasts as is),
 * then Expand. */
static ot_status to_input_shape(ot_grad_ctx *c, int v, const int *reduced, int keepdims, const char *tag, int *out) {
    const ot_tensor *xm = ot_gb_meta(c, ot_gb_in(c, 0));
    int64_t kept[OT_MAX_DIMS];
    int all = 1;
    for (int d = 0; d < xm->ndim; d++) {
        kept[d] = reduced[d] ? 1 : xm->dims[d];
        all &= reduced[d];
    }
    if (!keepdims && !all) {
        int shp, in[2];
        OT_TRY(ot_gb_const_i64s(c, kept, xm->ndim, &shp));
        in[0] = v, in[1] = shp;
        OT_TRY(ot_gb_op1(c, "Reshape", "", "kept", in, 2, &v, NULL));
    }
    int shp, in[2];
    OT_TRY(ot_gb_const_i64s(c, xm->dims, xm->ndim, &shp));
    in[0] = v, in[1] = shp;
    return ot_gb_op1(c, "Expand", "", tag, in, 2, out, NULL);
}

static int axes_from_input(const ot_grad_ctx *c) {
    const char *op = ot_gb_fwd(c)->op_type;
    return strcmp(op, "ReduceSum") == 0 ? c->opset >= 13 : c->opset >= 18;
}

/* ReduceSum: dX = expand(dY) — each input element contributes once to its output. */
static ot_status grad_reduce_sum(ot_grad_ctx *c) {
    int reduced[OT_MAX_DIMS], keepdims, identity, dx;
    OT_TRY(reduced_axes(c, axes_from_input(c), reduced, &keepdims, &identity));
    if (identity) {
        ot_gb_set_dx(c, 0, ot_gb_dy(c, 0));
        return OT_OK;
    }
    OT_TRY(to_input_shape(c, ot_gb_dy(c, 0), reduced, keepdims, "dX", &dx));
    ot_gb_set_dx(c, 0, dx);
    return OT_OK;
}

/* ReduceMean: dX = expand(dY) / N, N = number of reduced elements per output (the scaling
 * is applied to dY, the smaller tensor). */
static ot_status grad_reduce_mean(ot_grad_ctx *c) {
    int reduced[OT_MAX_DIMS], keepdims, identity, dx;
    OT_TRY(reduced_axes(c, axes_from_input(c), reduced, &keepdims, &identity));
    if (identity) {
        ot_gb_set_dx(c, 0, ot_gb_dy(c, 0));
        return OT_OK;
    }
    const ot_tensor *xm = ot_gb_meta(c, ot_gb_in(c, 0));
    int64_t cnt = 1;
    for (int d = 0; d < xm->ndim; d++)
        if (reduced[d]) cnt *= xm->dims[d];
    int k, scaled, in[2];
    OT_TRY(ot_gb_const_scalar(c, xm->dtype, cnt ? 1.0 / (double)cnt : 0.0, &k));
    in[0] = ot_gb_dy(c, 0), in[1] = k;
    OT_TRY(ot_gb_op1(c, "Mul", "", "dY_mean", in, 2, &scaled, NULL));
    OT_TRY(to_input_shape(c, scaled, reduced, keepdims, "dX", &dx));
    ot_gb_set_dx(c, 0, dx);
    return OT_OK;
}

/* ReduceMax: dX = mask ⊙ dY_kept / count, mask = (X == Y_kept), count = Σ_reduced mask
 * (ties share the gradient evenly, as torch.amax). Y_kept/dY_kept are broadcast by the
 * elementwise ops from the kept shape, so only the mask has X's full size. */
static ot_status grad_reduce_max(ot_grad_ctx *c) {
    int reduced[OT_MAX_DIMS], keepdims, identity;
    OT_TRY(reduced_axes(c, axes_from_input(c), reduced, &keepdims, &identity));
    if (identity) {
        ot_gb_set_dx(c, 0, ot_gb_dy(c, 0));
        return OT_OK;
    }
    const ot_tensor *xm = ot_gb_meta(c, ot_gb_in(c, 0));
    int x = ot_gb_in(c, 0), y = ot_gb_out(c, 0), dy = ot_gb_dy(c, 0);
    int64_t kept[OT_MAX_DIMS];
    for (int d = 0; d < xm->ndim; d++) kept[d] = reduced[d] ? 1 : xm->dims[d];
    int in[3];
    if (!keepdims) { /* Y and dY to the kept shape (rank of X) so they broadcast against X */
        int shp;
        OT_TRY(ot_gb_const_i64s(c, kept, xm->ndim, &shp));
        in[0] = y, in[1] = shp;
        OT_TRY(ot_gb_op1(c, "Reshape", "", "Y_kept", in, 2, &y, NULL));
        in[0] = dy;
        OT_TRY(ot_gb_op1(c, "Reshape", "", "dY_kept", in, 2, &dy, NULL));
    }
    int eq, mask, cnt, share, zero, dx, node;
    in[0] = x, in[1] = y;
    OT_TRY(ot_gb_op1(c, "Equal", "", "is_max", in, 2, &eq, NULL));
    OT_TRY(ot_gb_op1(c, "Cast", "", "mask", &eq, 1, &mask, &node));
    OT_TRY(ot_gb_attr_int(c, node, "to", xm->dtype));
    /* count = Σ_reduced mask, kept as X's rank (ReduceSumTo the kept shape) */
    int kshape;
    OT_TRY(ot_gb_const_i64s(c, kept, xm->ndim, &kshape));
    in[0] = mask, in[1] = kshape;
    OT_TRY(ot_gb_op1(c, "ReduceSumTo", OT_DOMAIN, "ties", in, 2, &cnt, NULL));
    in[0] = dy, in[1] = cnt;
    OT_TRY(ot_gb_op1(c, "Div", "", "share", in, 2, &share, NULL));
    /* mask ⊙ share, with the slices whose maximum is NaN (count 0, share ±inf/NaN) kept at 0 */
    OT_TRY(ot_gb_const_scalar(c, xm->dtype, 0.0, &zero));
    in[0] = eq, in[1] = share, in[2] = zero;
    OT_TRY(ot_gb_op1(c, "Where", "", "dX", in, 3, &dx, NULL));
    /* Where broadcasts share against the full-size mask, so dX has X's shape. */
    ot_gb_set_dx(c, 0, dx);
    return OT_OK;
}

const ot_grad_def ot_grads_reduce[] = {
    {"", "ReduceSum", 1, 21, grad_reduce_sum, 0},
    {"", "ReduceMean", 1, 21, grad_reduce_mean, 0},
    {"", "ReduceMax", 1, 21, grad_reduce_max, 0},
};
const int ot_grads_reduce_count = (int)(sizeof ot_grads_reduce / sizeof ot_grads_reduce[0]);
