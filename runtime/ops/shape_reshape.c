/* shape_reshape.c — the view ops: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout.
 *
 * Each output 0 holds exactly input 0's bytes under a new shape (same dtype, same element
 * count), so the entries carry OT_OP_VIEW and the planner may alias the buffers (Dropout
 * not yet: see its table entry); the cpu kernels still copy (and do nothing when the buffers
 * are aliased). Shapes:
 *   Reshape   x[any], shape[k] int  -> [k dims]  (0 copies x's dim unless allowzero, one -1)
 *   Flatten   x[d0..dr-1], axis     -> [prod(d0..d_axis-1), prod(d_axis..)]
 *   (Squeeze and Unsqueeze also have 11-12 entries taking `axes` as an attribute)
 *   Squeeze   x, axes?[k]           -> x without the listed size-1 dims (all of them when axes is
 *                                      absent or empty, as ONNX Runtime does)
 *   Unsqueeze x, axes[k]            -> rank r+k with 1s at axes (normalised on the output rank)
 *   Identity  x                     -> x
 *   Dropout   x, ratio?, training_mode? -> x, mask? (bool, all true): inference mode only
 * Values infer needs (Reshape shape, Squeeze/Unsqueeze axes, Dropout training_mode) must be
 * constant at plan time. Accumulation rule: outputs are written with `=`. */
#include <string.h>

#include "shape.h"

/* Copies input 0 into output 0 (no-op when the planner aliased them). */
static ot_status copy_view(ot_op_ctx *c) {
    ot_shape_memcpy(c->out[0]->data, c->in[0]->data, ot_tensor_nbytes(c->in[0]));
    return OT_OK;
}

/* Checks the input has a storable dtype and sets output 0 to it with the given shape. */
static ot_status set_view_out(ot_op_ctx *c, int ndim, const int64_t *dims) {
    size_t es;
    OT_TRY(ot_shape_esize(c, 0, &es));
    return ot_set_out(c, 0, c->in[0]->dtype, ndim, dims);
}

/* ---- Reshape ---- */

ot_status ot_shape_reshape_parse(const ot_node *n, int opset, void *attr) {
    ot_reshape_attr *a = attr;
    int64_t v = 0;
    if (opset >= 14) OT_TRY(ot_attr_int(n, "allowzero", 0, &v));
    a->allowzero = v != 0;
    return OT_OK;
}

ot_status ot_shape_reshape_infer(ot_op_ctx *c) {
    const ot_reshape_attr *a = c->attr;
    OT_TRY(ot_require_value(c, 1, "shape"));
    const ot_tensor *x = c->in[0];
    int64_t s[OT_MAX_DIMS], dims[OT_MAX_DIMS];
    int n;
    OT_TRY(ot_read_ints(c, c->in[1], s, OT_MAX_DIMS, &n));
    if (c->in[1]->ndim != 1)
        return ot_errorf(OT_E_SHAPE, "%s: 'shape' must be 1-D, got rank %d", ot_op_label(c), c->in[1]->ndim);
    int neg = -1, has_zero = 0;
    int64_t known = 1;
    for (int i = 0; i < n; i++) {
        if (s[i] == -1) {
            if (neg >= 0)
                return ot_errorf(OT_E_SHAPE, "%s: 'shape' has -1 at both positions %d and %d; at most one is allowed",
                                 ot_op_label(c), neg, i);
            neg = i;
            continue;
        }
        if (s[i] < -1)
            return ot_errorf(OT_E_SHAPE, "%s: 'shape'[%d] is %lld; expected a size >= 0 or -1", ot_op_label(c), i,
                             (long long)s[i]);
        if (s[i] == 0 && !a->allowzero) {
            if (i >= x->ndim)
                return ot_errorf(OT_E_SHAPE, "%s: 'shape'[%d] is 0 (copy the input dim) but the input has rank %d",
                                 ot_op_label(c), i, x->ndim);
            dims[i] = x->dims[i];
        } else {
            dims[i] = s[i];
            if (s[i] == 0) has_zero = 1;
        }
        known *= dims[i];
    }
    if (a->allowzero && has_zero && neg >= 0)
        return ot_errorf(OT_E_SHAPE, "%s: with allowzero=1, 'shape' may not hold both 0 and -1", ot_op_label(c));
    int64_t numel = ot_tensor_numel(x);
    char b1[160], b2[160];
    if (neg >= 0) {
        if (known == 0 || numel % known != 0)
            return ot_errorf(OT_E_SHAPE, "%s: cannot reshape input %s (%lld elements) to %s: -1 cannot be inferred",
                             ot_op_label(c), ot_shape_str(b1, sizeof b1, x->ndim, x->dims), (long long)numel,
                             ot_shape_str(b2, sizeof b2, n, s));
        dims[neg] = numel / known;
        known *= dims[neg];
    }
    if (known != numel)
        return ot_errorf(OT_E_SHAPE, "%s: cannot reshape input %s (%lld elements) to %s (%lld elements)",
                         ot_op_label(c), ot_shape_str(b1, sizeof b1, x->ndim, x->dims), (long long)numel,
                         ot_shape_str(b2, sizeof b2, n, dims), (long long)known);
    return set_view_out(c, n, dims);
}

ot_status ot_shape_reshape_cpu(ot_op_ctx *c) { return copy_view(c); }

/* ---- Flatten ---- */

ot_status ot_shape_flatten_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_flatten_attr *a = attr;
    return ot_attr_int(n, "axis", 1, &a->axis);
}

ot_status ot_shape_flatten_infer(ot_op_ctx *c) {
    const ot_flatten_attr *a = c->attr;
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    const ot_tensor *x = c->in[0];
    int r = x->ndim;
    if (a->axis < -r || a->axis > r)
        return ot_errorf(OT_E_INVALID, "%s: axis %lld out of range [%d, %d] for rank %d", ot_op_label(c),
                         (long long)a->axis, -r, r, r);
    int axis = (int)(a->axis < 0 ? a->axis + r : a->axis);
    int64_t dims[2] = {ot_shape_numel(axis, x->dims), ot_shape_numel(r - axis, x->dims + axis)};
    return set_view_out(c, 2, dims);
}

ot_status ot_shape_flatten_cpu(ot_op_ctx *c) { return copy_view(c); }

/* ---- Squeeze / Unsqueeze ---- */

/* Whether the node lists axes (input 1, opset 13+). */
static int has_axes(const ot_op_ctx *c) { return c->n_in > 1 && c->in[1]; }

/* Reads the axes (input i, which must be constant) normalised for `rank` into mark[]; fails
 * on duplicates. */
static ot_status read_axes(ot_op_ctx *c, int i, int rank, int *mark, int *count) {
    int64_t ax[OT_MAX_DIMS];
    int n;
    OT_TRY(ot_require_value(c, i, "axes"));
    OT_TRY(ot_read_ints(c, c->in[i], ax, OT_MAX_DIMS, &n));
    memset(mark, 0, sizeof(int) * OT_MAX_DIMS);
    for (int k = 0; k < n; k++) {
        int a;
        OT_TRY(ot_norm_axis(c, ax[k], rank, &a));
        if (mark[a])
            return ot_errorf(OT_E_INVALID, "%s: axis %lld is listed twice in 'axes'", ot_op_label(c),
                             (long long)ax[k]);
        mark[a] = 1;
    }
    *count = n;
    return OT_OK;
}

ot_status ot_shape_squeeze_infer(ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    const ot_tensor *x = c->in[0];
    int mark[OT_MAX_DIMS], n;
    n = 0;
    if (has_axes(c)) OT_TRY(read_axes(c, 1, x->ndim, mark, &n));
    if (n > 0) {
        for (int d = 0; d < x->ndim; d++)
            if (mark[d] && x->dims[d] != 1)
                return ot_errorf(OT_E_SHAPE, "%s: cannot squeeze axis %d of size %lld (expected size 1)",
                                 ot_op_label(c), d, (long long)x->dims[d]);
    } else {
        for (int d = 0; d < x->ndim; d++) mark[d] = x->dims[d] == 1;
    }
    int64_t dims[OT_MAX_DIMS];
    int m = 0;
    for (int d = 0; d < x->ndim; d++)
        if (!mark[d]) dims[m++] = x->dims[d];
    return set_view_out(c, m, dims);
}

ot_status ot_shape_squeeze_cpu(ot_op_ctx *c) { return copy_view(c); }

ot_status ot_shape_unsqueeze_infer(ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    OT_TRY(ot_require_value(c, 1, "axes"));
    int64_t n_axes = ot_tensor_numel(c->in[1]);
    const ot_tensor *x = c->in[0];
    int r = x->ndim + (int)n_axes;
    if (r > OT_MAX_DIMS)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: output rank %d exceeds the maximum of %d", ot_op_label(c), r,
                         OT_MAX_DIMS);
    int mark[OT_MAX_DIMS], n;
    OT_TRY(read_axes(c, 1, r, mark, &n));
    int64_t dims[OT_MAX_DIMS];
    for (int d = 0, k = 0; d < r; d++) dims[d] = mark[d] ? 1 : x->dims[k++];
    return set_view_out(c, r, dims);
}

ot_status ot_shape_unsqueeze_cpu(ot_op_ctx *c) { return copy_view(c); }

/* ---- Identity ---- */

ot_status ot_shape_identity_infer(ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    return set_view_out(c, c->in[0]->ndim, c->in[0]->dims);
}

ot_status ot_shape_identity_cpu(ot_op_ctx *c) { return copy_view(c); }

/* ---- Dropout (inference mode) ---- */

ot_status ot_shape_dropout_infer(ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    const ot_tensor *x = c->in[0];
    if (c->n_in > 2 && c->in[2]) {
        OT_TRY(ot_require_value(c, 2, "training_mode"));
        const ot_tensor *tm = c->in[2];
        if (ot_tensor_numel(tm) != 1)
            return ot_errorf(OT_E_SHAPE, "%s: 'training_mode' must be a scalar, got %lld elements", ot_op_label(c),
                             (long long)ot_tensor_numel(tm));
        if (ot_tensor_get_i64(tm, 0) != 0)
            return ot_errorf(OT_E_UNSUPPORTED,
                             "%s: training_mode=true is not supported yet (Dropout runs in inference mode: "
                             "output = input)",
                             ot_op_label(c));
    }
    OT_TRY(set_view_out(c, x->ndim, x->dims));
    return ot_set_out(c, 1, OT_BOOL, x->ndim, x->dims);
}

ot_status ot_shape_dropout_cpu(ot_op_ctx *c) {
    OT_TRY(copy_view(c));
    if (c->n_out > 1 && c->out[1]) {
        const unsigned char one = 1;
        ot_shape_fill(c->out[1]->data, &one, 1, ot_tensor_numel(c->out[1]));
    }
    return OT_OK;
}
