/* nn_internal.h — shared by the nn family files (nn*.c) and the internal ops built on the
 * same maths: grad_nn.c (SoftmaxGrad and friends reuse ot_softmax_attr and the softmax
 * view, and the exp / normal CDF helpers) and loss.c (ot_nn_expf in its row kernels).
 * Holds typed attribute structs (the table in nn.c needs their sizes), entry points, the
 * ISA-dispatch macro for per-row kernels, and branch-free float exp / normal CDF helpers
 * written so that loops calling them vectorise. Internal to runtime/ops. */
#ifndef OT_NN_INTERNAL_H
#define OT_NN_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "ophelp.h"

/* clang reports `omp simd` loops it cannot vectorise (e.g. float max reductions under
 * strict FP) as -Wpass-failed; that is a performance note, not an error. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

/* ---- attribute structs ------------------------------------------------------------ */

/* Softmax and LogSoftmax carry the same attributes; `log` is set from the op type. */
typedef struct ot_softmax_attr {
    int64_t axis;
    int coerce_2d; /* opset < 13: flatten to [prod(dims[:axis]), prod(dims[axis:])] */
    int log;       /* LogSoftmax */
} ot_softmax_attr;

typedef struct ot_layernorm_attr {
    int64_t axis;
    float epsilon;
    int stash_type; /* ONNX dtype of Mean/InvStdDev and of the statistics (1 = float32) */
} ot_layernorm_attr;

typedef struct ot_gelu_attr {
    int tanh_approx; /* approximate = "tanh" */
} ot_gelu_attr;

/* ---- entry points ----------------------------------------------------------------- */

ot_status ot_softmax_parse(const ot_node *n, int opset, void *attr);
ot_status ot_softmax_infer(ot_op_ctx *c);
ot_status ot_softmax_cpu(ot_op_ctx *c);
/* The normalisation view of input 0 under c->attr (an ot_softmax_attr): [outer, n, inner]
 * with n = dims[axis], or with inner = 1 and n = prod(dims[axis:]) when coerce_2d. All 1
 * for a scalar. Fails naming the node when axis is out of range. Also SoftmaxGrad's. */
ot_status ot_softmax_view(const ot_op_ctx *c, int64_t *outer, int64_t *n, int64_t *inner);

ot_status ot_layernorm_parse(const ot_node *n, int opset, void *attr);
ot_status ot_layernorm_infer(ot_op_ctx *c);
ot_status ot_layernorm_cpu(ot_op_ctx *c);

ot_status ot_gelu_parse(const ot_node *n, int opset, void *attr);
ot_status ot_gelu_infer(ot_op_ctx *c);
ot_status ot_gelu_cpu(ot_op_ctx *c);

/* ---- ISA dispatch -------------------------------------------------------------------- */

/* Per-row kernels carry OT_NN_CLONES: GCC builds AVX-512 (x86-64-v4), AVX2 (x86-64-v3)
 * and baseline copies and picks one at load time (ifunc), so the vector loops use the
 * machine's full width whatever -march the build used. OpenMP stays in the uncloned
 * callers. Elsewhere (other compilers or targets, or -DOT_NO_CLONES) it is a plain
 * noinline. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(OT_NO_CLONES)
#define OT_NN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), noinline))
#else
#define OT_NN_CLONES __attribute__((noinline))
#endif

/* ---- vectorisable expf and normal CDF ---------------------------------------------------- */

static inline uint32_t ot_nn_fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float ot_nn_bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* exp(x) for float, within 1 ulp over the normal range (Cephes-style minimax polynomial
 * after reducing by n*ln2), written so loops calling it vectorise under GCC's default
 * -ftrapping-math: every select is on integer bit patterns (float compares would keep the
 * loop scalar), and saturation falls out of the clamps rather than a final override
 * (which GCC would turn into a branch around the polynomial): x is clamped to
 * [-127 ln2, 128 ln2], where the 2^n scale becomes +0 and +inf. So exp(x) = 0 for
 * x < -87.34 (results that would be subnormal flush to 0), +inf for x > 88.37 (a little
 * below FLT_MAX's log, 88.72), and NaN stays NaN. Rounding uses the 1.5*2^23 trick, so
 * plain SSE2 suffices. */
static inline float ot_nn_expf2(float hi, float lo);
static inline float ot_nn_expf(float x) { return ot_nn_expf2(x, 0.0f); }

/* exp(hi + lo) where lo is small (|lo| < ~8) next to hi and hi is exact: the reduction
 * subtracts n ln2 from hi (Cody-Waite, exact) before adding lo, so a large argument split
 * this way loses nothing to rounding hi + lo. Saturation and NaN as for ot_nn_expf,
 * decided on hi + lo; when it saturates, r may be large but stays finite (hi is clamped
 * to +-200 for the reduction) and the 2^n scale of 0 or inf decides the result. */
static inline float ot_nn_expf2(float hi, float lo) {
    float x = hi + lo;
    uint32_t u = ot_nn_fbits(x);
    /* n comes from x clamped to [-127 ln2, 128 ln2] (integer compares: signed order is
     * float order for positives, unsigned order reversed magnitude order for negatives;
     * this also catches +-inf and NaN). */
    int32_t s = (int32_t)u;
    s = s > 0x42B17218 ? 0x42B17218 : s;        /* 88.7228394 = 128 ln2 -> 2^n = +inf */
    uint32_t cb = (uint32_t)s;
    cb = cb > 0xC2B00F34u ? 0xC2B00F34u : cb;   /* -88.0296936 = -127 ln2 -> 2^n = +0 */
    float xc = ot_nn_bitsf(cb);
    /* hi for the reduction, clamped to [-200, 200] so r stays finite when x saturates */
    int32_t hs = (int32_t)ot_nn_fbits(hi);
    hs = hs > 0x43480000 ? 0x43480000 : hs;
    uint32_t hb = (uint32_t)hs;
    hb = hb > 0xC3480000u ? 0xC3480000u : hb;
    float hc = ot_nn_bitsf(hb);
    const float shifter = 12582912.0f; /* 1.5 * 2^23: t - shifter = round(x log2 e) */
    float t = xc * 1.44269504088896341f + shifter;
    float n = t - shifter;
    int32_t ni = (int32_t)(ot_nn_fbits(t) - 0x4B400000u);
    float r = (hc - n * 0.693359375f) + lo;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    y = y * ot_nn_bitsf((uint32_t)(ni + 127) << 23);
    /* exp is never negative: clear the sign (a saturated p * 0 can be -0). NaN in -> NaN
     * out, without a select: bit 31 of 0x7f800000 - |bits| is set exactly when
     * |bits| > 0x7f800000 (a NaN). */
    uint32_t isnan_ = (0x7f800000u - (u & 0x7fffffffu)) >> 31;
    return ot_nn_bitsf((ot_nn_fbits(y) & 0x7fffffffu) | ((0u - isnan_) & 0x7fc00000u));
}

/* Phi(x) = 0.5 * erfc(-x / sqrt 2), the standard normal CDF, for float. erfc(z), z >= 0,
 * is t * exp(-z^2 - 1.26551223 + t * P(t)) with t = 1 / (1 + z/2) (Numerical Recipes'
 * Chebyshev fit, fractional error < 1.2e-7 for every z), so the negative tail keeps its
 * relative precision where 1 + erf(x / sqrt 2) would cancel. z^2 = x^2 / 2 is split
 * exactly: x = xh + xl with xh holding 12 significant bits, so -xh^2 / 2 is exact and
 * ot_nn_expf2(-xh^2/2, P - xh xl - xl^2/2) avoids rounding a large exponent (which would
 * cost ~1e-5 relative at x = -10). The sign is applied with arithmetic (Phi = a + b h,
 * a in {0, 1}, b = -+1) to stay vectorisable. Relative error of x * Phi(x) measured below
 * 6e-7 wherever the result is a normal float. |x| is clamped to 20, so Phi(+-inf) is 1 / 0
 * and Phi(NaN) is finite (x * Phi(x) is still NaN). */
static inline float ot_nn_normcdf(float x) {
    uint32_t u = ot_nn_fbits(x), ab = u & 0x7fffffffu;
    ab = ab > 0x41A00000u ? 0x41A00000u : ab;      /* |x| <= 20 (Phi is 0 or 1 in float beyond; inf, NaN) */
    float ax = ot_nn_bitsf(ab);
    float xh = ot_nn_bitsf(ab & 0xfffff000u), xl = ax - xh; /* both exact */
    float z = ax * 0.70710678118654752f;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float big = -0.5f * (xh * xh);                 /* exact */
    float small = p - (xh * xl + 0.5f * (xl * xl)); /* x^2/2 = xh^2/2 + xh xl + xl^2/2 */
    float h = 0.5f * t * ot_nn_expf2(big, small); /* 0.5 erfc(|x| / sqrt 2) */
    float neg = (float)(u >> 31);                  /* 1 for x < 0 (and -0) */
    return (1.0f - neg) + (2.0f * neg - 1.0f) * h;
}

#endif
