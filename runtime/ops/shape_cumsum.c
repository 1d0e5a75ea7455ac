/* shape_cumsum.c — CumSum (axis as an input; exclusive and reverse attributes).
 *
 * Shapes: x[..], axis (int32/int64 scalar) -> y of x's shape, y[.., j, ..] = sum of x over
 * positions 0..j on `axis` (j+1..end with reverse; exclusive drops x[j] itself, so the first
 * output along the scan is 0). Sums run in the input dtype, in scan order, like ONNX Runtime.
 * The kernel views x as [outer, len, inner] and scans row after row, each step a vector add
 * of an `inner` strip; OpenMP splits (outer, strip of inner) pairs. Integer sums wrap
 * (computed unsigned, no undefined overflow). Types: f32, f64, i32, i64, u32, u64; f16/bf16
 * are rejected. The axis value is read at plan time (value_inputs) to validate it.
 * Accumulation rule: y is written with `=`. */
#include <stdint.h>

#include "shape.h"

ot_status ot_shape_cumsum_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_cumsum_attr *a = attr;
    int64_t e, r;
    OT_TRY(ot_attr_int(n, "exclusive", 0, &e));
    OT_TRY(ot_attr_int(n, "reverse", 0, &r));
    a->exclusive = e != 0;
    a->reverse = r != 0;
    return OT_OK;
}

static ot_status cumsum_axis(ot_op_ctx *c, int *axis) {
    const ot_tensor *t = c->in[1];
    if (t->dtype != OT_I32 && t->dtype != OT_I64)
        return ot_errorf(OT_E_SHAPE, "%s: 'axis' must be int32 or int64, got %s", ot_op_label(c),
                         ot_dtype_name(t->dtype));
    if (ot_tensor_numel(t) != 1)
        return ot_errorf(OT_E_SHAPE, "%s: 'axis' must be a scalar, got %lld elements", ot_op_label(c),
                         (long long)ot_tensor_numel(t));
    return ot_norm_axis(c, ot_tensor_get_i64(t, 0), c->in[0]->ndim, axis);
}

ot_status ot_shape_cumsum_infer(ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    OT_TRY(ot_require_value(c, 1, "axis"));
    const ot_tensor *x = c->in[0];
    switch (x->dtype) {
    case OT_F32: case OT_F64: case OT_I32: case OT_I64: case OT_U32: case OT_U64: break;
    default:
        return ot_errorf(OT_E_UNSUPPORTED,
                         "%s: dtype %s is not supported (float32, float64, int32, int64, uint32, uint64)",
                         ot_op_label(c), ot_dtype_name(x->dtype));
    }
    if (x->ndim == 0) return ot_errorf(OT_E_SHAPE, "%s: input must have rank >= 1, got a scalar", ot_op_label(c));
    int axis;
    OT_TRY(cumsum_axis(c, &axis));
    return ot_set_out(c, 0, x->dtype, x->ndim, x->dims);
}

#define CUMSUM_STRIP 512

/* One scan per type. dst[j] = a[j] + b[j] over a strip; restrict lets it vectorise. */
#define CUMSUM_IMPL(NAME, T)                                                                          \
    static void NAME##_add(T *restrict dst, const T *restrict a, const T *restrict b, int64_t n) {    \
        for (int64_t j = 0; j < n; j++) dst[j] = a[j] + b[j];                                         \
    }                                                                                                 \
    static void NAME(T *y, const T *x, int64_t outer, int64_t len, int64_t inner, int excl, int rev) { \
        const int64_t strips = (inner + CUMSUM_STRIP - 1) / CUMSUM_STRIP;                             \
        const int64_t step = rev ? -inner : inner;                                                    \
        const int par = outer * len * inner * (int64_t)sizeof(T) >= OT_SHAPE_PAR_BYTES;               \
        _Pragma("omp parallel for schedule(static) if (par)")                                         \
        for (int64_t t = 0; t < outer * strips; t++) {                                                \
            int64_t o = t / strips, j0 = (t % strips) * CUMSUM_STRIP;                                 \
            int64_t w = inner - j0 < CUMSUM_STRIP ? inner - j0 : CUMSUM_STRIP;                        \
            int64_t first = o * len * inner + (rev ? (len - 1) * inner : 0) + j0;                     \
            T *yp = y + first;                                                                        \
            const T *xp = x + first;                                                                  \
            for (int64_t j = 0; j < w; j++) yp[j] = excl ? (T)0 : xp[j];                              \
            for (int64_t a = 1; a < len; a++) {                                                       \
                NAME##_add(yp + step, yp, excl ? xp : xp + step, w);                                  \
                yp += step;                                                                           \
                xp += step;                                                                           \
            }                                                                                         \
        }                                                                                             \
    }
CUMSUM_IMPL(cumsum_f32, float)
CUMSUM_IMPL(cumsum_f64, double)
CUMSUM_IMPL(cumsum_u32, uint32_t)
CUMSUM_IMPL(cumsum_u64, uint64_t)

ot_status ot_shape_cumsum_cpu(ot_op_ctx *c) {
    const ot_cumsum_attr *a = c->attr;
    const ot_tensor *x = c->in[0];
    int axis;
    OT_TRY(cumsum_axis(c, &axis));
    int64_t outer = ot_shape_numel(axis, x->dims), len = x->dims[axis];
    int64_t inner = ot_shape_numel(x->ndim - axis - 1, x->dims + axis + 1);
    if (outer == 0 || len == 0 || inner == 0) return OT_OK;
    void *y = c->out[0]->data;
    switch (x->dtype) {
    case OT_F32: cumsum_f32(y, x->data, outer, len, inner, a->exclusive, a->reverse); break;
    case OT_F64: cumsum_f64(y, x->data, outer, len, inner, a->exclusive, a->reverse); break;
    case OT_I32: case OT_U32: cumsum_u32(y, x->data, outer, len, inner, a->exclusive, a->reverse); break;
    case OT_I64: case OT_U64: cumsum_u64(y, x->data, outer, len, inner, a->exclusive, a->reverse); break;
    default:
        return ot_errorf(OT_E_UNSUPPORTED, "%s: dtype %s is not supported", ot_op_label(c), ot_dtype_name(x->dtype));
    }
    return OT_OK;
}
