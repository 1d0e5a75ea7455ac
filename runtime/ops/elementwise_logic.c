/* elementwise_logic.c — comparisons (Equal Less Greater LessOrEqual GreaterOrEqual), boolean
 * logic (Not And Or) and selection (Where).
 *
 * Shapes: outputs have the numpy broadcast shape of all inputs (Not: its input's shape).
 * Accumulation rule: outputs are written with `=`. Booleans are bytes; any nonzero byte
 * reads as true and outputs are exactly 0 or 1.
 * Dtypes: comparisons take float32, float64, int8, uint8, int32, int64 (Equal also bool; A
 * and B the same dtype) and produce bool; Not/And/Or are bool only; Where takes a bool
 * condition and X/Y of any one storable dtype (it selects by element size, so float16,
 * bfloat16 and bool work too). Comparisons with NaN are false (Equal(NaN, NaN) = 0). */
#include "elementwise.h"

#define EW_COMPARE(op, EXPR, BOOLFN)                                   \
    OT_EW_SEG2(op##_f32, float, float, uint8_t, EXPR)                  \
    OT_EW_SEG2(op##_f64, double, double, uint8_t, EXPR)                \
    OT_EW_SEG2(op##_i8, int8_t, int8_t, uint8_t, EXPR)                 \
    OT_EW_SEG2(op##_u8, uint8_t, uint8_t, uint8_t, EXPR)               \
    OT_EW_SEG2(op##_i32, int32_t, int32_t, uint8_t, EXPR)              \
    OT_EW_SEG2(op##_i64, int64_t, int64_t, uint8_t, EXPR)              \
    static const ot_ew_fn op##_tab[OT_EW_NDT] = {                      \
        [OT_F32] = op##_f32, [OT_F64] = op##_f64, [OT_I8] = op##_i8,   \
        [OT_U8] = op##_u8,   [OT_I32] = op##_i32, [OT_I64] = op##_i64, \
        [OT_BOOL] = BOOLFN,                                            \
    };

/* Booleans compare as truth values; only Equal admits them. */
OT_EW_SEG2(equal_bool, uint8_t, uint8_t, uint8_t, (a != 0) == (b != 0))

EW_COMPARE(equal, a == b, equal_bool)
EW_COMPARE(less, a < b, NULL)
EW_COMPARE(greater, a > b, NULL)
EW_COMPARE(less_equal, a <= b, NULL)
EW_COMPARE(greater_equal, a >= b, NULL)

OT_EW_SEG1(not_bool, uint8_t, uint8_t, a == 0)
OT_EW_SEG2(and_bool, uint8_t, uint8_t, uint8_t, (a != 0) & (b != 0))
OT_EW_SEG2(or_bool, uint8_t, uint8_t, uint8_t, (a != 0) | (b != 0))
static const ot_ew_fn not_tab[OT_EW_NDT] = {[OT_BOOL] = not_bool};
static const ot_ew_fn and_tab[OT_EW_NDT] = {[OT_BOOL] = and_bool};
static const ot_ew_fn or_tab[OT_EW_NDT] = {[OT_BOOL] = or_bool};

static ot_status run_binary(ot_op_ctx *c, const ot_ew_fn *tab) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    OT_TRY(ot_check_input(c, 1, OT_UNDEFINED));
    OT_TRY(ot_check_same_dtype(c, 0, 1));
    OT_TRY(ot_ew_check_dtype(c, 0, tab));
    ot_ew_apply(c->in, 2, c->out[0], tab[c->in[0]->dtype], NULL, OT_EW_CHEAP);
    return OT_OK;
}

#define EW_LOGIC_OP(op)                                                                                  \
    ot_status ot_ew_##op##_infer(ot_op_ctx *c) { return ot_ew_infer_bcast(c, 0, 2, op##_tab, OT_BOOL); } \
    ot_status ot_ew_##op##_cpu(ot_op_ctx *c) { return run_binary(c, op##_tab); }

EW_LOGIC_OP(equal)
EW_LOGIC_OP(less)
EW_LOGIC_OP(greater)
EW_LOGIC_OP(less_equal)
EW_LOGIC_OP(greater_equal)
EW_LOGIC_OP(and)
EW_LOGIC_OP(or)

ot_status ot_ew_not_infer(ot_op_ctx *c) { return ot_ew_infer_unary(c, not_tab, OT_BOOL); }
ot_status ot_ew_not_cpu(ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_BOOL));
    ot_ew_apply(c->in, 1, c->out[0], not_bool, NULL, OT_EW_CHEAP);
    return OT_OK;
}

/* ---- Where ---- */

/* out[i] = cond[i] ? X[i] : Y[i] for elements of type T (chosen by size). The masked-fill
 * shapes (one of X/Y a scalar or broadcast along the segment) get their own loops. */
#define EW_WHERE(NAME, T)                                                                           \
    static void NAME(void *yv, const void *const *xv, const int64_t *s, int64_t n, const void *p) { \
        (void)p;                                                                                    \
        T *restrict y = yv;                                                                         \
        const uint8_t *restrict pc = xv[0];                                                         \
        const T *restrict pa = xv[1], *restrict pb = xv[2];                                         \
        if (s[0] == 0) { /* one condition for the whole segment: a strided copy */                  \
            const T *restrict src = pc[0] ? pa : pb;                                                \
            const int64_t ss = pc[0] ? s[1] : s[2];                                                 \
            if (ss == 1)                                                                            \
                for (int64_t i = 0; i < n; i++) y[i] = src[i];                                      \
            else                                                                                    \
                for (int64_t i = 0; i < n; i++) y[i] = src[i * ss];                                 \
        } else if (s[1] == 1 && s[2] == 1) {                                                        \
            OT_EW_SIMD for (int64_t i = 0; i < n; i++) y[i] = pc[i] ? pa[i] : pb[i];                \
        } else if (s[1] == 0 && s[2] == 1) {                                                        \
            const T a = pa[0];                                                                      \
            OT_EW_SIMD for (int64_t i = 0; i < n; i++) y[i] = pc[i] ? a : pb[i];                    \
        } else if (s[1] == 1 && s[2] == 0) {                                                        \
            const T b = pb[0];                                                                      \
            OT_EW_SIMD for (int64_t i = 0; i < n; i++) y[i] = pc[i] ? pa[i] : b;                    \
        } else {                                                                                    \
            const int64_t sa = s[1], sb = s[2];                                                     \
            for (int64_t i = 0; i < n; i++) y[i] = pc[i] ? pa[i * sa] : pb[i * sb];                 \
        }                                                                                           \
    }

EW_WHERE(where_1, uint8_t)
EW_WHERE(where_2, uint16_t)
EW_WHERE(where_4, uint32_t)
EW_WHERE(where_8, uint64_t)

static ot_status where_check(const ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_BOOL));
    OT_TRY(ot_check_input(c, 1, OT_UNDEFINED));
    OT_TRY(ot_check_input(c, 2, OT_UNDEFINED));
    OT_TRY(ot_check_same_dtype(c, 1, 2));
    if (ot_dtype_size(c->in[1]->dtype) == 0)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: X and Y of dtype %s are not supported", ot_op_label(c),
                         ot_dtype_name(c->in[1]->dtype));
    return OT_OK;
}

ot_status ot_ew_where_infer(ot_op_ctx *c) {
    OT_TRY(where_check(c));
    int ndim;
    int64_t dims[OT_MAX_DIMS];
    OT_TRY(ot_broadcast_shape(c, 3, c->in, &ndim, dims));
    return ot_set_out(c, 0, c->in[1]->dtype, ndim, dims);
}

ot_status ot_ew_where_cpu(ot_op_ctx *c) {
    OT_TRY(where_check(c));
    ot_ew_fn fn;
    switch (ot_dtype_size(c->in[1]->dtype)) {
    case 1: fn = where_1; break;
    case 2: fn = where_2; break;
    case 4: fn = where_4; break;
    default: fn = where_8; break;
    }
    ot_ew_apply(c->in, 3, c->out[0], fn, NULL, OT_EW_CHEAP);
    return OT_OK;
}

/* Mixed precision (domain ai.onnxtune, made only by the autocast pass): X and Y one 16-bit and
 * one float32 (an attention mask's -3.4e38 the 16-bit type cannot hold), Y 16-bit: the
 * selected f32 value rounded once, as the Cast-wrapped Where would give, without the Casts. */
ot_status ot_ew_where_mixed_infer(ot_op_ctx *c) {
    ot_dtype lowp;
    OT_TRY(ot_check_input(c, 0, OT_BOOL));
    OT_TRY(ot_ew_mixed_dtype(c, 1, 2, &lowp));
    int ndim;
    int64_t dims[OT_MAX_DIMS];
    OT_TRY(ot_broadcast_shape(c, 3, c->in, &ndim, dims));
    return ot_set_out(c, 0, lowp, ndim, dims);
}

ot_status ot_ew_where_mixed_cpu(ot_op_ctx *c) {
    ot_dtype lowp;
    OT_TRY(ot_check_input(c, 0, OT_BOOL));
    OT_TRY(ot_ew_mixed_dtype(c, 1, 2, &lowp));
    ot_ew_apply_lowp(c->in, 3, c->out[0], where_4, NULL, OT_EW_CHEAP); /* f32 selects, one rounding */
    return OT_OK;
}
