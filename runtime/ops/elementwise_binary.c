/* elementwise_binary.c — broadcasting arithmetic: Add Sub Mul Div Pow.
 *
 * Shapes: y has the numpy broadcast shape of A and B (either may be empty, a scalar or a row
 * vector). Accumulation rule: y is written with `=`. Dtypes: Add/Sub/Mul/Div take float32,
 * float64, int8, uint8, int32, int64 (A and B the same). Pow takes a float32, float64, int32
 * or int64 base with an exponent of any numeric dtype (ONNX allows the mix); y has the base's
 * dtype. Add/Sub/Mul/Div also take bfloat16 and float16 (A and B the same), and Pow a 16-bit
base with an exponent of any numeric dtype (converted to f32): computed by the f32 kernels on
operands converted to f32, each output rounded once to the 16-bit type (ot_ew_apply_lowp).
 *
 * Integer semantics: Add/Sub/Mul wrap (two's complement, computed unsigned: no UB). Div
 * truncates toward zero like C; INT_MIN / -1 wraps to INT_MIN (ONNX Runtime traps there). A
 * zero integer divisor fails the node with OT_E_INVALID before anything is written — what
 * ONNX Runtime does ("Integer division by zero"). Pow with an integer exponent is exact
 * repeated squaring (wrapping on overflow; x^-n is 0 unless |x| == 1, also for x == 0, where
 * ONNX Runtime's result is undefined); an integer base with a float exponent is
 * trunc(pow(double, double)), saturated to the base type (NaN gives 0).
 * Float Pow keeps ONNX Runtime's fast paths for a scalar exponent (2: x*x, 3: x*x*x) and
 * computes 0.5 as sqrt with pow's special cases (pow(-0, .5) = +0, pow(-inf, .5) = +inf). A
 * float32 base with a non-float32 exponent is computed in double, as ONNX Runtime does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "elementwise.h"

/* One op over the arithmetic dtypes: FEXPR for floats, IEXPR(T, U) for the signed integer
 * type T with its unsigned twin U, U8EXPR for uint8 (byte arithmetic wraps through int
 * promotion), then the op's dtype table. */
#define EW_ARITH(op, FEXPR, IEXPR, U8EXPR)                                    \
    OT_EW_SEG2(op##_f32, float, float, float, FEXPR)                          \
    OT_EW_SEG2(op##_f64, double, double, double, FEXPR)                       \
    OT_EW_SEG2(op##_i8, int8_t, int8_t, int8_t, IEXPR(int8_t, uint8_t))       \
    OT_EW_SEG2(op##_u8, uint8_t, uint8_t, uint8_t, U8EXPR)                    \
    OT_EW_SEG2(op##_i32, int32_t, int32_t, int32_t, IEXPR(int32_t, uint32_t)) \
    OT_EW_SEG2(op##_i64, int64_t, int64_t, int64_t, IEXPR(int64_t, uint64_t)) \
    static const ot_ew_fn op##_tab[OT_EW_NDT] = {                             \
        [OT_F32] = op##_f32, [OT_F64] = op##_f64, [OT_I8] = op##_i8,          \
        [OT_U8] = op##_u8,   [OT_I32] = op##_i32, [OT_I64] = op##_i64,        \
        OT_EW_LOWP(op##_f32),                                                 \
    };

#define ADD_I(T, U) ((T)(U)((U)a + (U)b))
#define SUB_I(T, U) ((T)(U)((U)a - (U)b))
#define MUL_I(T, U) ((T)(U)((U)a * (U)b))
#define DIV_I(T, U) (b == -1 ? (T)(U)(0u - (U)a) : (T)(a / b)) /* the divisor is never 0 here */

EW_ARITH(add, a + b, ADD_I, (uint8_t)(a + b))
EW_ARITH(sub, a - b, SUB_I, (uint8_t)(a - b))
EW_ARITH(mul, a * b, MUL_I, (uint8_t)(a * b))
EW_ARITH(div, a / b, DIV_I, (uint8_t)(a / b))

static ot_status check_binary(const ot_op_ctx *c, const ot_ew_fn *tab) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    OT_TRY(ot_check_input(c, 1, OT_UNDEFINED));
    OT_TRY(ot_check_same_dtype(c, 0, 1));
    return ot_ew_check_dtype(c, 0, tab);
}

static ot_status run_binary(ot_op_ctx *c, const ot_ew_fn *tab, int cost) {
    OT_TRY(check_binary(c, tab));
    ot_ew_run(c->in, 2, c->out[0], tab[c->in[0]->dtype], NULL, cost);
    return OT_OK;
}

#define EW_BINARY_OP(op, cost)                                                                                \
    ot_status ot_ew_##op##_infer(ot_op_ctx *c) { return ot_ew_infer_bcast(c, 0, 2, op##_tab, OT_UNDEFINED); } \
    ot_status ot_ew_##op##_cpu(ot_op_ctx *c) { return run_binary(c, op##_tab, cost); }

EW_BINARY_OP(add, OT_EW_CHEAP)
EW_BINARY_OP(sub, OT_EW_CHEAP)
EW_BINARY_OP(mul, OT_EW_CHEAP)

ot_status ot_ew_div_infer(ot_op_ctx *c) { return ot_ew_infer_bcast(c, 0, 2, div_tab, OT_UNDEFINED); }

/* Integer Div: the whole divisor is checked before anything is written. */
ot_status ot_ew_div_cpu(ot_op_ctx *c) {
    OT_TRY(check_binary(c, div_tab));
    const ot_tensor *d = c->in[1];
    if (!ot_dtype_is_float(d->dtype)) {
        int64_t n = ot_tensor_numel(d), bad = -1;
        size_t es = ot_dtype_size(d->dtype);
        const unsigned char *p = d->data;
        for (int64_t i = 0; i < n && bad < 0; i++) {
            int nz = 0;
            for (size_t k = 0; k < es; k++) nz |= p[(size_t)i * es + k];
            if (!nz) bad = i;
        }
        if (bad >= 0)
            return ot_errorf(OT_E_INVALID, "%s: integer division by zero (divisor element %lld is 0)",
                             ot_op_label(c), (long long)bad);
    }
    ot_ew_run(c->in, 2, c->out[0], div_tab[d->dtype], NULL, OT_EW_DIV);
    return OT_OK;
}

/* ---- mixed precision: Add/Sub/Mul/Div of domain ai.onnxtune ----
 * Made only by the autocast pass (runtime/autocast.h), never read from a model: one operand
 * 16-bit, the other float32 — typically a constant the 16-bit type cannot hold (1/sqrt(d),
 * GELU's 0.044715). Computed in f32 with the f32 operand as it is and rounded once to the
 * 16-bit type: what PyTorch does for a bf16 tensor times a Python float. */

ot_status ot_ew_mixed_infer(ot_op_ctx *c) {
    ot_dtype lowp;
    OT_TRY(ot_ew_mixed_dtype(c, 0, 1, &lowp));
    int ndim;
    int64_t dims[OT_MAX_DIMS];
    OT_TRY(ot_broadcast_shape(c, 2, c->in, &ndim, dims));
    return ot_set_out(c, 0, lowp, ndim, dims);
}

ot_status ot_ew_mixed_cpu(ot_op_ctx *c) {
    ot_dtype lowp;
    OT_TRY(ot_ew_mixed_dtype(c, 0, 1, &lowp));
    const char *op = c->node->op_type;
    ot_ew_fn fn = !strcmp(op, "Add") ? add_tab[OT_F32] : !strcmp(op, "Sub") ? sub_tab[OT_F32]
                : !strcmp(op, "Mul") ? mul_tab[OT_F32] : div_tab[OT_F32];
    ot_ew_apply_lowp(c->in, 2, c->out[0], fn, NULL, !strcmp(op, "Div") ? OT_EW_DIV : OT_EW_CHEAP);
    return OT_OK;
}

/* ---- Pow ---- */

/* x^e for integers by repeated squaring, wrapping mod 2^64 (so also mod 2^32 for int32). */
static inline int64_t ipow(int64_t x, int64_t e) {
    if (e < 0) return x == 1 ? 1 : x == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, b = (uint64_t)x;
    while (e) {
        if (e & 1) r *= b;
        b *= b;
        e >>= 1;
    }
    return (int64_t)r;
}

/* trunc(d) clamped to [lo, hi]; NaN gives 0. */
static inline int64_t f2i_sat(double d, int64_t lo, int64_t hi) {
    if (d != d) return 0;
    if (d <= (double)lo) return lo;
    if (d >= (double)hi) return hi;
    return (int64_t)d;
}

OT_EW_SEG2(pow_i32_i, int32_t, int64_t, int32_t, (int32_t)(uint32_t)(uint64_t)ipow(a, b))
OT_EW_SEG2(pow_i64_i, int64_t, int64_t, int64_t, ipow(a, b))
OT_EW_SEG2(pow_i32_d, int32_t, double, int32_t, (int32_t)f2i_sat(pow(a, b), INT32_MIN, INT32_MAX))
OT_EW_SEG2(pow_i64_d, int64_t, double, int64_t, f2i_sat(pow((double)a, b), INT64_MIN, INT64_MAX))

/* Float-base Pow with exponent type TE (see the header for the scalar fast paths). */
#define EW_POW_F(NAME, T, TE, POW, SQRT)                                                            \
    static void NAME(void *yv, const void *const *xv, const int64_t *s, int64_t n, const void *p) { \
        (void)p;                                                                                    \
        T *restrict y = yv;                                                                         \
        const T *restrict x = xv[0];                                                                \
        const TE *restrict e = xv[1];                                                               \
        if (s[0] == 1 && s[1] == 0) {                                                               \
            const TE b = e[0];                                                                      \
            if (b == 2) {                                                                           \
                OT_EW_SIMD for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];                      \
            } else if (b == 3) {                                                                    \
                OT_EW_SIMD for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i] * x[i];               \
            } else if (b == 0.5) {                                                                  \
                OT_EW_SIMD for (int64_t i = 0; i < n; i++) {                                        \
                    const T a = x[i];                                                               \
                    y[i] = a == -(T)INFINITY ? (T)INFINITY : SQRT(a) + (T)0;                        \
                }                                                                                   \
            } else {                                                                                \
                for (int64_t i = 0; i < n; i++) y[i] = (T)POW(x[i], b);                             \
            }                                                                                       \
            return;                                                                                 \
        }                                                                                           \
        const int64_t sa = s[0], sb = s[1];                                                         \
        for (int64_t i = 0; i < n; i++) y[i] = (T)POW(x[i * sa], e[i * sb]);                        \
    }

EW_POW_F(pow_f32, float, float, powf, sqrtf)
EW_POW_F(pow_f32_d, float, double, pow, sqrtf)
EW_POW_F(pow_f64, double, double, pow, sqrt)

/* Base dtypes Pow accepts (the table only serves dtype checks and their messages). */
static const ot_ew_fn pow_tab[OT_EW_NDT] = {
    [OT_F32] = pow_f32, [OT_F64] = pow_f64, [OT_I32] = pow_i32_i, [OT_I64] = pow_i64_i, OT_EW_LOWP(pow_f32),
};

static ot_status pow_check_exponent(const ot_op_ctx *c) {
    ot_dtype t = c->in[1]->dtype;
    if (t == OT_BOOL || ot_dtype_size(t) == 0)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: exponent must be numeric, got %s", ot_op_label(c), ot_dtype_name(t));
    return OT_OK;
}

ot_status ot_ew_pow_infer(ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    OT_TRY(ot_check_input(c, 1, OT_UNDEFINED));
    OT_TRY(ot_ew_check_dtype(c, 0, pow_tab));
    OT_TRY(pow_check_exponent(c));
    int ndim;
    int64_t dims[OT_MAX_DIMS];
    OT_TRY(ot_broadcast_shape(c, 2, c->in, &ndim, dims));
    return ot_set_out(c, 0, c->in[0]->dtype, ndim, dims);
}

ot_status ot_ew_pow_cpu(ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    OT_TRY(ot_check_input(c, 1, OT_UNDEFINED));
    OT_TRY(ot_ew_check_dtype(c, 0, pow_tab));
    OT_TRY(pow_check_exponent(c));
    const ot_tensor *x = c->in[0], *e = c->in[1];
    int e_float = ot_dtype_is_float(e->dtype);
    ot_ew_fn fn;
    ot_dtype want; /* the exponent dtype fn reads */
    switch (x->dtype) {
    case OT_BF16: /* 16-bit base: pow_f32 on converted blocks, the exponent as f32 */
    case OT_F16: fn = pow_f32, want = OT_F32; break;
    case OT_F32:
        fn = e->dtype == OT_F32 ? pow_f32 : pow_f32_d;
        want = e->dtype == OT_F32 ? OT_F32 : OT_F64;
        break;
    case OT_F64: fn = pow_f64, want = OT_F64; break;
    case OT_I32: fn = e_float ? pow_i32_d : pow_i32_i, want = e_float ? OT_F64 : OT_I64; break;
    default: fn = e_float ? pow_i64_d : pow_i64_i, want = e_float ? OT_F64 : OT_I64; break;
    }
    ot_tensor ec = *e; /* the exponent as fn reads it, converted when its dtype differs */
    void *tmp = NULL;
    if (e->dtype != want) {
        size_t n = (size_t)ot_tensor_numel(e);
        tmp = malloc(n ? n * ot_dtype_size(want) : 1);
        if (!tmp) return ot_errorf(OT_E_NOMEM, "%s: out of memory converting the exponent", ot_op_label(c));
        ot_convert(tmp, want, e->data, e->dtype, n);
        ec.dtype = want;
        ec.data = tmp;
        ec.owned = 0;
    }
    const ot_tensor *xs[2] = {x, &ec};
    ot_ew_run(xs, 2, c->out[0], fn, NULL, OT_EW_TRANS);
    free(tmp);
    return OT_OK;
}
