/* shape_expand.c — Expand.
 *
 * Shapes: x[..], shape[k] int64 -> y = numpy broadcast of x's shape and `shape` (both ways:
 * a 1 in `shape` keeps x's dim, so y may be larger than `shape` but never smaller than x).
 * The kernel is the shared strided copy (shape.c) with stride 0 on broadcast dims: a
 * repeated row becomes a fill, a repeated block a row memcpy. `shape` is a value infer needs
 * (constant at plan time). Any dtype. Accumulation rule: y is written with `=`. */
#include "shape.h"

ot_status ot_shape_expand_infer(ot_op_ctx *c) {
    size_t es;
    OT_TRY(ot_shape_esize(c, 0, &es));
    OT_TRY(ot_require_value(c, 1, "shape"));
    const ot_tensor *x = c->in[0];
    int64_t s[OT_MAX_DIMS], dims[OT_MAX_DIMS];
    int n;
    OT_TRY(ot_read_ints(c, c->in[1], s, OT_MAX_DIMS, &n));
    int r = x->ndim > n ? x->ndim : n;
    for (int d = 0; d < r; d++) {
        int xd = d - (r - x->ndim), sd = d - (r - n);
        int64_t a = xd >= 0 ? x->dims[xd] : 1, b = sd >= 0 ? s[sd] : 1;
        if (b < 0)
            return ot_errorf(OT_E_SHAPE, "%s: 'shape'[%d] is negative (%lld)", ot_op_label(c), sd, (long long)b);
        if (a == b || b == 1) dims[d] = a;
        else if (a == 1) dims[d] = b;
        else {
            char b1[160], b2[160];
            return ot_errorf(OT_E_SHAPE, "%s: input shape %s cannot be expanded to %s (dim %d: %lld vs %lld)",
                             ot_op_label(c), ot_shape_str(b1, sizeof b1, x->ndim, x->dims),
                             ot_shape_str(b2, sizeof b2, n, s), d, (long long)a, (long long)b);
        }
    }
    return ot_set_out(c, 0, x->dtype, r, dims);
}

ot_status ot_shape_expand_cpu(ot_op_ctx *c) {
    const ot_tensor *x = c->in[0];
    ot_tensor *y = c->out[0];
    int r = y->ndim, off = y->ndim - x->ndim;
    int64_t xs[OT_MAX_DIMS], st[OT_MAX_DIMS];
    ot_strides(x->ndim, x->dims, xs);
    for (int d = 0; d < r; d++) {
        int xd = d - off;
        st[d] = xd < 0 || x->dims[xd] == 1 ? 0 : xs[xd];
    }
    ot_shape_strided_copy(y->data, x->data, ot_dtype_size(x->dtype), r, y->dims, st);
    return OT_OK;
}
