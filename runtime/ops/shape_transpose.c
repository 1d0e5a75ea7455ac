/* shape_transpose.c — Transpose.
 *
 * Shapes: x[d_0..d_{r-1}], perm (default: reversed) -> y[d_perm[0]..d_perm[r-1]], any dtype.
 * The kernel reads x through strides permuted into y's order and hands them to the shared
 * strided-copy engine (shape.c), which first drops size-1 dims and merges runs of dims that
 * stay adjacent, so e.g. [B,S,H,D]->[B,H,S,D] (attention's head split) becomes a memcpy of
 * D-element rows and [.., M, N]->[.., N, M] becomes a batch of 32x32-tiled 2-D transposes;
 * every other permutation takes one of those two paths after coalescing, OpenMP over rows or
 * tiles. Accumulation rule: y is written with `=`. */
#include "shape.h"

ot_status ot_shape_transpose_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_transpose_attr *a = attr;
    const int64_t *p;
    int cnt;
    OT_TRY(ot_attr_ints(n, "perm", &p, &cnt));
    if (cnt > OT_MAX_DIMS)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: 'perm' has %d entries; at most %d dims are supported",
                         ot_node_name(n), cnt, OT_MAX_DIMS);
    a->nperm = cnt;
    for (int i = 0; i < cnt; i++) a->perm[i] = p[i];
    return OT_OK;
}

/* The effective permutation for rank r (validated). */
static ot_status get_perm(const ot_op_ctx *c, int r, int *perm) {
    const ot_transpose_attr *a = c->attr;
    if (a->nperm < 0) {
        for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
        return OT_OK;
    }
    if (a->nperm != r)
        return ot_errorf(OT_E_SHAPE, "%s: 'perm' has %d entries but the input has rank %d", ot_op_label(c), a->nperm,
                         r);
    int seen[OT_MAX_DIMS] = {0};
    for (int i = 0; i < r; i++) {
        int64_t p = a->perm[i];
        if (p < 0 || p >= r || seen[p])
            return ot_errorf(OT_E_INVALID, "%s: 'perm' is not a permutation of 0..%d (entry %d is %lld)",
                             ot_op_label(c), r - 1, i, (long long)p);
        seen[p] = 1;
        perm[i] = (int)p;
    }
    return OT_OK;
}

ot_status ot_shape_transpose_infer(ot_op_ctx *c) {
    size_t es;
    OT_TRY(ot_shape_esize(c, 0, &es));
    const ot_tensor *x = c->in[0];
    int perm[OT_MAX_DIMS];
    OT_TRY(get_perm(c, x->ndim, perm));
    int64_t dims[OT_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) dims[i] = x->dims[perm[i]];
    return ot_set_out(c, 0, x->dtype, x->ndim, dims);
}

ot_status ot_shape_transpose_cpu(ot_op_ctx *c) {
    const ot_tensor *x = c->in[0];
    int r = x->ndim, perm[OT_MAX_DIMS];
    OT_TRY(get_perm(c, r, perm));
    int64_t xs[OT_MAX_DIMS], dims[OT_MAX_DIMS], st[OT_MAX_DIMS];
    ot_strides(r, x->dims, xs);
    for (int i = 0; i < r; i++) {
        dims[i] = x->dims[perm[i]];
        st[i] = xs[perm[i]];
    }
    ot_shape_strided_copy(c->out[0]->data, x->data, ot_dtype_size(x->dtype), r, dims, st);
    return OT_OK;
}
