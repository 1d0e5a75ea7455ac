/* elementwise_minmax.c — Max and Min (variadic, broadcasting) and Clip.
 *
 * Shapes: Max/Min take 1..N inputs of one dtype and produce their numpy broadcast shape;
 * Clip's output has its input's shape, and its optional `min`/`max` inputs (opset 11+
 * form; either may be omitted) must hold exactly one element. Accumulation rule: outputs
 * are written with `=`; Max/Min with more than two inputs compute y = op(in0, in1) and then
 * fold the remaining inputs into y in place (y is the only thing written).
 * Dtypes: float32, float64, int8, uint8, int32, int64. float16/bfloat16 are rejected at plan
 * time for now.
 *
 * NaN: Max/Min propagate NaN from either side, and Clip keeps a NaN input, as ONNX Runtime
 * does. Clip's omitted bounds default to the type's lowest and largest finite values
 * (numeric_limits::lowest()/max(), per the spec: Clip(-inf) with no min is -FLT_MAX); when
 * min > max every element becomes max (y = min(max(x, lo), hi)). */
#include <float.h>
#include <string.h>

#include "elementwise.h"

/* y[i] = EXPR(a = y[i], b = next input's element): folds input 1 of the operand pair
 * {y, in_k} into y (operand 0 is y itself and is not read through xv). */
#define EW_FOLD(NAME, T, EXPR)                                                                      \
    static void NAME(void *yv, const void *const *xv, const int64_t *s, int64_t n, const void *p) { \
        (void)p;                                                                                    \
        T *restrict y = yv;                                                                         \
        const T *restrict pb = xv[1];                                                               \
        if (s[1] == 1) {                                                                            \
            OT_EW_SIMD for (int64_t i = 0; i < n; i++) {                                            \
                const T a = y[i], b = pb[i];                                                        \
                y[i] = (EXPR);                                                                      \
            }                                                                                       \
        } else {                                                                                    \
            const T b = pb[0];                                                                      \
            OT_EW_SIMD for (int64_t i = 0; i < n; i++) {                                            \
                const T a = y[i];                                                                   \
                y[i] = (EXPR);                                                                      \
            }                                                                                       \
        }                                                                                           \
    }

/* NaN-propagating for floats (a != a is a's NaN test; a NaN b falls through to b). */
#define MAX_F ((a > b || a != a) ? a : b)
#define MIN_F ((a < b || a != a) ? a : b)
#define MAX_I (a > b ? a : b)
#define MIN_I (a < b ? a : b)

#define EW_MINMAX(op, FEXPR, IEXPR)                                                   \
    OT_EW_SEG2(op##_f32, float, float, float, FEXPR)                                  \
    OT_EW_SEG2(op##_f64, double, double, double, FEXPR)                               \
    OT_EW_SEG2(op##_i8, int8_t, int8_t, int8_t, IEXPR)                                \
    OT_EW_SEG2(op##_u8, uint8_t, uint8_t, uint8_t, IEXPR)                             \
    OT_EW_SEG2(op##_i32, int32_t, int32_t, int32_t, IEXPR)                            \
    OT_EW_SEG2(op##_i64, int64_t, int64_t, int64_t, IEXPR)                            \
    EW_FOLD(op##_fold_f32, float, FEXPR)                                              \
    EW_FOLD(op##_fold_f64, double, FEXPR)                                             \
    EW_FOLD(op##_fold_i8, int8_t, IEXPR)                                              \
    EW_FOLD(op##_fold_u8, uint8_t, IEXPR)                                             \
    EW_FOLD(op##_fold_i32, int32_t, IEXPR)                                            \
    EW_FOLD(op##_fold_i64, int64_t, IEXPR)                                            \
    static const ot_ew_fn op##_tab[OT_EW_NDT] = {                                     \
        [OT_F32] = op##_f32, [OT_F64] = op##_f64, [OT_I8] = op##_i8,                  \
        [OT_U8] = op##_u8,   [OT_I32] = op##_i32, [OT_I64] = op##_i64,                \
    };                                                                                \
    static const ot_ew_fn op##_fold_tab[OT_EW_NDT] = {                                \
        [OT_F32] = op##_fold_f32, [OT_F64] = op##_fold_f64, [OT_I8] = op##_fold_i8,   \
        [OT_U8] = op##_fold_u8,   [OT_I32] = op##_fold_i32, [OT_I64] = op##_fold_i64, \
    };

EW_MINMAX(max, MAX_F, MAX_I)
EW_MINMAX(min, MIN_F, MIN_I)

static ot_status run_variadic(ot_op_ctx *c, const ot_ew_fn *tab, const ot_ew_fn *fold) {
    for (int k = 0; k < c->n_in; k++) {
        OT_TRY(ot_check_input(c, k, OT_UNDEFINED));
        OT_TRY(ot_check_same_dtype(c, 0, k));
    }
    OT_TRY(ot_ew_check_dtype(c, 0, tab));
    ot_tensor *y = c->out[0];
    ot_dtype dt = c->in[0]->dtype;
    if (c->n_in == 1) { /* infer gave y input 0's shape */
        if (ot_tensor_nbytes(y)) memcpy(y->data, c->in[0]->data, ot_tensor_nbytes(y));
        return OT_OK;
    }
    ot_ew_apply(c->in, 2, y, tab[dt], NULL, OT_EW_CHEAP);
    for (int k = 2; k < c->n_in; k++) {
        const ot_tensor *xs[2] = {y, c->in[k]};
        ot_ew_apply(xs, 2, y, fold[dt], NULL, OT_EW_CHEAP);
    }
    return OT_OK;
}

ot_status ot_ew_max_infer(ot_op_ctx *c) { return ot_ew_infer_bcast(c, 0, c->n_in, max_tab, OT_UNDEFINED); }
ot_status ot_ew_max_cpu(ot_op_ctx *c) { return run_variadic(c, max_tab, max_fold_tab); }
ot_status ot_ew_min_infer(ot_op_ctx *c) { return ot_ew_infer_bcast(c, 0, c->n_in, min_tab, OT_UNDEFINED); }
ot_status ot_ew_min_cpu(ot_op_ctx *c) { return run_variadic(c, min_tab, min_fold_tab); }

/* ---- Clip ---- */

/* p points at {lo, hi} of type T. */
#define EW_CLIP(NAME, T)                                                                            \
    static void NAME(void *yv, const void *const *xv, const int64_t *s, int64_t n, const void *p) { \
        const T lo = ((const T *)p)[0], hi = ((const T *)p)[1];                                     \
        T *restrict y = yv;                                                                         \
        const T *restrict x = xv[0];                                                                \
        const int64_t sx = s[0];                                                                    \
        if (sx == 1) {                                                                              \
            OT_EW_SIMD for (int64_t i = 0; i < n; i++) {                                            \
                T v = x[i];                                                                         \
                v = v < lo ? lo : v;                                                                \
                y[i] = v > hi ? hi : v;                                                             \
            }                                                                                       \
        } else {                                                                                    \
            for (int64_t i = 0; i < n; i++) {                                                       \
                T v = x[i * sx];                                                                    \
                v = v < lo ? lo : v;                                                                \
                y[i] = v > hi ? hi : v;                                                             \
            }                                                                                       \
        }                                                                                           \
    }

EW_CLIP(clip_f32, float)
EW_CLIP(clip_f64, double)
EW_CLIP(clip_i8, int8_t)
EW_CLIP(clip_u8, uint8_t)
EW_CLIP(clip_i32, int32_t)
EW_CLIP(clip_i64, int64_t)
static const ot_ew_fn clip_tab[OT_EW_NDT] = {
    [OT_F32] = clip_f32, [OT_F64] = clip_f64, [OT_I8] = clip_i8,
    [OT_U8] = clip_u8,   [OT_I32] = clip_i32, [OT_I64] = clip_i64,
};

static const ot_tensor *clip_bound(const ot_op_ctx *c, int i) { return i < c->n_in ? c->in[i] : NULL; }

/* Input dtype and the optional bounds: same dtype as the input, one element each. */
static ot_status clip_check(const ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    OT_TRY(ot_ew_check_dtype(c, 0, clip_tab));
    static const char *names[3] = {"input", "min", "max"};
    for (int i = 1; i <= 2; i++) {
        const ot_tensor *b = clip_bound(c, i);
        if (!b) continue;
        OT_TRY(ot_check_same_dtype(c, 0, i));
        if (ot_tensor_numel(b) != 1) {
            char sh[128];
            return ot_errorf(OT_E_SHAPE, "%s: '%s' must be a scalar (one element), got shape %s", ot_op_label(c),
                             names[i], ot_shape_str(sh, sizeof sh, b->ndim, b->dims));
        }
    }
    return OT_OK;
}

ot_status ot_ew_clip_infer(ot_op_ctx *c) {
    OT_TRY(clip_check(c));
    return ot_set_out(c, 0, c->in[0]->dtype, c->in[0]->ndim, c->in[0]->dims);
}

ot_status ot_ew_clip_cpu(ot_op_ctx *c) {
    OT_TRY(clip_check(c)); /* cheap; re-validates the bounds it is about to read */
    const ot_tensor *x = c->in[0];
    union {
        float f32[2];
        double f64[2];
        int8_t i8[2];
        uint8_t u8[2];
        int32_t i32[2];
        int64_t i64[2];
    } b;
    switch (x->dtype) {
    case OT_F32: b.f32[0] = -FLT_MAX, b.f32[1] = FLT_MAX; break;
    case OT_F64: b.f64[0] = -DBL_MAX, b.f64[1] = DBL_MAX; break;
    case OT_I8: b.i8[0] = INT8_MIN, b.i8[1] = INT8_MAX; break;
    case OT_U8: b.u8[0] = 0, b.u8[1] = UINT8_MAX; break;
    case OT_I32: b.i32[0] = INT32_MIN, b.i32[1] = INT32_MAX; break;
    default: b.i64[0] = INT64_MIN, b.i64[1] = INT64_MAX; break;
    }
    size_t es = ot_dtype_size(x->dtype);
    for (int i = 1; i <= 2; i++) {
        const ot_tensor *t = clip_bound(c, i);
        if (t) memcpy((unsigned char *)&b + (size_t)(i - 1) * es, t->data, es);
    }
    ot_ew_apply(c->in, 1, c->out[0], clip_tab[x->dtype], &b, OT_EW_CHEAP);
    return OT_OK;
}
