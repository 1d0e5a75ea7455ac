/* shape_gather.c — Gather.
 *
 * Shapes: data[d_0..d_{r-1}], indices[i_0..i_{q-1}] (int32 or int64), axis a ->
 * y[d_0..d_{a-1}, i_0..i_{q-1}, d_{a+1}..d_{r-1}] (a scalar index drops the axis). Negative
 * indices count from the end; an index outside [-d_a, d_a-1] is an error naming the node,
 * the index value and its position, checked before anything is written. The kernel views
 * data as [outer, d_a, inner] and copies one inner-sized row per (outer, index), in
 * parallel: for an embedding lookup (table [vocab, d], ids [B, S], axis 0) that is one
 * d-element memcpy per token. Any data dtype. Accumulation rule: y is written with `=`. */
#include <string.h>

#include "shape.h"

ot_status ot_shape_gather_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_gather_attr *a = attr;
    return ot_attr_int(n, "axis", 0, &a->axis);
}

ot_status ot_shape_gather_infer(ot_op_ctx *c) {
    const ot_gather_attr *a = c->attr;
    size_t es;
    OT_TRY(ot_shape_esize(c, 0, &es));
    OT_TRY(ot_check_input(c, 1, OT_UNDEFINED));
    const ot_tensor *x = c->in[0], *ix = c->in[1];
    if (ix->dtype != OT_I32 && ix->dtype != OT_I64)
        return ot_errorf(OT_E_SHAPE, "%s: indices must be int32 or int64, got %s", ot_op_label(c),
                         ot_dtype_name(ix->dtype));
    if (x->ndim == 0) return ot_errorf(OT_E_SHAPE, "%s: data must have rank >= 1, got a scalar", ot_op_label(c));
    int axis;
    OT_TRY(ot_norm_axis(c, a->axis, x->ndim, &axis));
    int r = x->ndim - 1 + ix->ndim;
    if (r > OT_MAX_DIMS)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: output rank %d exceeds the maximum of %d", ot_op_label(c), r,
                         OT_MAX_DIMS);
    int64_t dims[OT_MAX_DIMS];
    int m = 0;
    for (int d = 0; d < axis; d++) dims[m++] = x->dims[d];
    for (int d = 0; d < ix->ndim; d++) dims[m++] = ix->dims[d];
    for (int d = axis + 1; d < x->ndim; d++) dims[m++] = x->dims[d];
    return ot_set_out(c, 0, x->dtype, r, dims);
}

/* Copies rows for indices of type IT; ROW is the row size in bytes (a constant for the
 * specialised 4- and 8-byte cases so the memcpy becomes one move). */
#define GATHER_ROWS(IT, ROW)                                                                       \
    do {                                                                                           \
        const IT *restrict id = (const IT *)ix->data;                                              \
        _Pragma("omp parallel for collapse(2) schedule(static) if (par)")                          \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t k = 0; k < ni; k++) {                                                     \
                int64_t v = id[k];                                                                 \
                if (v < 0) v += n;                                                                 \
                memcpy(y + (o * ni + k) * (ROW), src + (o * n + v) * (ROW), (size_t)(ROW));         \
            }                                                                                      \
    } while (0)

ot_status ot_shape_gather_cpu(ot_op_ctx *c) {
    const ot_gather_attr *a = c->attr;
    const ot_tensor *x = c->in[0], *ix = c->in[1];
    int axis;
    OT_TRY(ot_norm_axis(c, a->axis, x->ndim, &axis));
    const int64_t n = x->dims[axis], ni = ot_tensor_numel(ix);
    const int64_t outer = ot_shape_numel(axis, x->dims);
    const int64_t row = ot_shape_numel(x->ndim - axis - 1, x->dims + axis + 1) * (int64_t)ot_dtype_size(x->dtype);
    /* Validate every index first, so a bad one leaves nothing half-done. */
    for (int64_t k = 0; k < ni; k++) {
        int64_t v = ix->dtype == OT_I64 ? ((const int64_t *)ix->data)[k] : ((const int32_t *)ix->data)[k];
        if (v < -n || v >= n) {
            char b[160];
            return ot_errorf(OT_E_INVALID,
                             "%s: index %lld (at flat position %lld of indices %s) is out of range for axis %d of "
                             "size %lld (valid: %lld..%lld)",
                             ot_op_label(c), (long long)v, (long long)k, ot_shape_str(b, sizeof b, ix->ndim, ix->dims),
                             axis, (long long)n, (long long)-n, (long long)n - 1);
        }
    }
    if (outer == 0 || ni == 0 || row == 0) return OT_OK;
    char *restrict y = c->out[0]->data;
    const char *restrict src = x->data;
    const int par = outer * ni * row >= OT_SHAPE_PAR_BYTES && outer * ni > 1;
    if (ix->dtype == OT_I64) {
        if (row == 4) GATHER_ROWS(int64_t, 4);
        else if (row == 8) GATHER_ROWS(int64_t, 8);
        else GATHER_ROWS(int64_t, row);
    } else {
        if (row == 4) GATHER_ROWS(int32_t, 4);
        else if (row == 8) GATHER_ROWS(int32_t, 8);
        else GATHER_ROWS(int32_t, row);
    }
    return OT_OK;
}
