/* elementwise_unary.c — unary math: Sqrt Reciprocal Neg Abs Exp Log Tanh Erf Sigmoid Relu.
 *
 * Shapes: y has x's shape and dtype (x may be empty). Accumulation rule: y is written with
 * `=`. Dtypes: float32 and float64 for all; Neg and Relu also int8/int32/int64, Abs also
 * uint8. Integer Neg/Abs wrap (Neg(INT_MIN) = INT_MIN, as ONNX Runtime gives). bfloat16 and
 * float16 run the f32 kernels on converted blocks, one rounding per output (ot_ew_apply_lowp).
 *
 * Numerics: Tanh (f32) is a rational approximation within 4e-7 relative (tanh_f); Erf is libm's erff (what ONNX Runtime's reference matches to ~1 ulp); Sigmoid is
 * computed from exp(-|x|) so it neither overflows nor loses the small tail for large |x|;
 * Relu keeps NaN and -0 (x < 0 ? 0 : x), like ONNX Runtime. */
#include <math.h>

#include "elementwise.h"

/* Float ops: one f32 and one f64 segment. */
#define EW_UNARY_F(op, EXPR_F, EXPR_D)           \
    OT_EW_SEG1(op##_f32, float, float, EXPR_F)   \
    OT_EW_SEG1(op##_f64, double, double, EXPR_D) \
    static const ot_ew_fn op##_tab[OT_EW_NDT] = {[OT_F32] = op##_f32, [OT_F64] = op##_f64, OT_EW_LOWP(op##_f32)};

/* tanh for f32 as a [13/6] rational function of x (Eigen's fast tanh coefficients), clamped
 * where tanh rounds to ±1 and exact (x) for tiny |x|: max relative error 4e-7 over every
 * float in [-20, 20] (checked against double tanh), NaN in NaN out, and, unlike libm's
 * tanhf, branch-free so the loop vectorises (GELU's tanh form spends most of its time here). */
static inline float tanh_f(float x) {
    const float clamp = 7.90531110763549805f;
    float c = x > clamp ? clamp : x < -clamp ? -clamp : x;
    float x2 = c * c;
    float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
    p = x2 * p + -8.60467152213735e-11f;
    p = x2 * p + 5.12229709037114e-08f;
    p = x2 * p + 1.48572235717979e-05f;
    p = x2 * p + 6.37261928875436e-04f;
    p = x2 * p + 4.89352455891786e-03f;
    float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
    q = x2 * q + 2.26843463243900e-03f;
    q = x2 * q + 4.89352518554385e-03f;
    float r = c * p / q;
    return fabsf(x) < 0.0004f ? x : r;
}

static inline float sigmoid_f(float a) {
    float e = expf(-fabsf(a)), r = 1.0f / (1.0f + e);
    return a >= 0 ? r : e * r;
}
static inline double sigmoid_d(double a) {
    double e = exp(-fabs(a)), r = 1.0 / (1.0 + e);
    return a >= 0 ? r : e * r;
}

EW_UNARY_F(sqrt, sqrtf(a), sqrt(a))
EW_UNARY_F(reciprocal, 1.0f / a, 1.0 / a)
EW_UNARY_F(exp, expf(a), exp(a))
EW_UNARY_F(log, logf(a), log(a))
EW_UNARY_F(tanh, tanh_f(a), tanh(a))
EW_UNARY_F(erf, erff(a), erf(a))
EW_UNARY_F(sigmoid, sigmoid_f(a), sigmoid_d(a))

/* Wrapping integer negation: computed in the unsigned type so INT_MIN does not overflow. */
#define EW_INEG(T, U) ((T)(U)(0u - (U)a))

OT_EW_SEG1(neg_f32, float, float, -a)
OT_EW_SEG1(neg_f64, double, double, -a)
OT_EW_SEG1(neg_i8, int8_t, int8_t, EW_INEG(int8_t, uint8_t))
OT_EW_SEG1(neg_i32, int32_t, int32_t, EW_INEG(int32_t, uint32_t))
OT_EW_SEG1(neg_i64, int64_t, int64_t, EW_INEG(int64_t, uint64_t))
static const ot_ew_fn neg_tab[OT_EW_NDT] = {
    [OT_F32] = neg_f32, [OT_F64] = neg_f64, [OT_I8] = neg_i8, [OT_I32] = neg_i32, [OT_I64] = neg_i64,
    OT_EW_LOWP(neg_f32),
};

OT_EW_SEG1(abs_f32, float, float, fabsf(a))
OT_EW_SEG1(abs_f64, double, double, fabs(a))
OT_EW_SEG1(abs_i8, int8_t, int8_t, a < 0 ? EW_INEG(int8_t, uint8_t) : a)
OT_EW_SEG1(abs_u8, uint8_t, uint8_t, a)
OT_EW_SEG1(abs_i32, int32_t, int32_t, a < 0 ? EW_INEG(int32_t, uint32_t) : a)
OT_EW_SEG1(abs_i64, int64_t, int64_t, a < 0 ? EW_INEG(int64_t, uint64_t) : a)
static const ot_ew_fn abs_tab[OT_EW_NDT] = {
    [OT_F32] = abs_f32, [OT_F64] = abs_f64, [OT_I8] = abs_i8,
    [OT_U8] = abs_u8,   [OT_I32] = abs_i32, [OT_I64] = abs_i64, OT_EW_LOWP(abs_f32),
};

OT_EW_SEG1(relu_f32, float, float, a < 0 ? 0.0f : a)
OT_EW_SEG1(relu_f64, double, double, a < 0 ? 0.0 : a)
OT_EW_SEG1(relu_i8, int8_t, int8_t, a < 0 ? 0 : a)
OT_EW_SEG1(relu_i32, int32_t, int32_t, a < 0 ? 0 : a)
OT_EW_SEG1(relu_i64, int64_t, int64_t, a < 0 ? 0 : a)
static const ot_ew_fn relu_tab[OT_EW_NDT] = {
    [OT_F32] = relu_f32, [OT_F64] = relu_f64, [OT_I8] = relu_i8, [OT_I32] = relu_i32, [OT_I64] = relu_i64,
    OT_EW_LOWP(relu_f32),
};

static ot_status run_unary(ot_op_ctx *c, const ot_ew_fn *tab, int cost) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    OT_TRY(ot_ew_check_dtype(c, 0, tab));
    ot_ew_run(c->in, 1, c->out[0], tab[c->in[0]->dtype], NULL, cost);
    return OT_OK;
}

#define EW_UNARY_OP(op, cost)                                                                           \
    ot_status ot_ew_##op##_infer(ot_op_ctx *c) { return ot_ew_infer_unary(c, op##_tab, OT_UNDEFINED); } \
    ot_status ot_ew_##op##_cpu(ot_op_ctx *c) { return run_unary(c, op##_tab, cost); }

EW_UNARY_OP(sqrt, OT_EW_DIV)
EW_UNARY_OP(reciprocal, OT_EW_DIV)
EW_UNARY_OP(neg, OT_EW_CHEAP)
EW_UNARY_OP(abs, OT_EW_CHEAP)
EW_UNARY_OP(exp, OT_EW_TRANS)
EW_UNARY_OP(log, OT_EW_TRANS)
EW_UNARY_OP(tanh, OT_EW_TRANS)
EW_UNARY_OP(erf, OT_EW_TRANS)
EW_UNARY_OP(sigmoid, OT_EW_TRANS)
EW_UNARY_OP(relu, OT_EW_CHEAP)
