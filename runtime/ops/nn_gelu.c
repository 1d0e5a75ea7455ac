/* nn_gelu.c — Gelu, opsets 20..21.
 *
 * Shapes: Y has X's shape and dtype (f32, f64); elementwise.
 *   approximate = "none": Y = 0.5 * x * (1 + erf(x / sqrt 2)) = x * Phi(x), computed as
 *     x * 0.5 * erfc(-x / sqrt 2) so the negative tail keeps full relative precision
 *     instead of cancelling in 1 + erf: f32 uses the vectorisable ot_nn_normcdf (< 6e-7
 *     relative), f64 uses libm erf/erfc.
 *   approximate = "tanh": Y = 0.5 * x * (1 + tanh(u)), u = sqrt(2/pi) * (x + 0.044715 x^3),
 *     computed as x / (1 + exp(-2u)) (the same function, no cancellation) with the
 *     vectorisable ot_nn_expf for f32.
 * bf16/f16 X: chunks converted to f32, the f32 kernels, one rounding per element.
 * Runs in parallel over elements. Accumulation rule: Y is written with `=`. */
#include "nn_internal.h"

#include <math.h>

#define PAR_WORK (1 << 14)

ot_status ot_gelu_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_gelu_attr *a = attr;
    const char *s;
    OT_TRY(ot_attr_string(n, "approximate", "none", &s));
    if (strcmp(s, "none") == 0)
        a->tanh_approx = 0;
    else if (strcmp(s, "tanh") == 0)
        a->tanh_approx = 1;
    else
        return ot_errorf(OT_E_INVALID, "%s: approximate must be \"none\" or \"tanh\", got \"%s\"", ot_node_name(n),
                         s);
    return OT_OK;
}

ot_status ot_gelu_infer(ot_op_ctx *c) {
    OT_TRY(ot_check_float_lowp_input(c, 0));
    return ot_set_out(c, 0, c->in[0]->dtype, c->in[0]->ndim, c->in[0]->dims);
}

#define SQRT1_2 0.70710678118654752440
#define SQRT_2_PI 0.79788456080286535588

/* f32 kernels on one chunk, built per ISA (OT_NN_CLONES); the drivers split the tensor
 * into chunks for OpenMP. */
#define GELU_CHUNK 4096

OT_NN_CLONES static void gelu_erf_chunk(const float *restrict x, float *restrict y, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * ot_nn_normcdf(x[i]);
}

OT_NN_CLONES static void gelu_tanh_chunk(const float *restrict x, float *restrict y, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float u = (float)SQRT_2_PI * (v + 0.044715f * v * v * v);
        y[i] = v / (1.0f + ot_nn_expf(-2.0f * u));
    }
}

static void gelu_f32(const float *x, float *y, int64_t n, int tanh_approx) {
    int64_t chunks = (n + GELU_CHUNK - 1) / GELU_CHUNK;
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t k = 0; k < chunks; k++) {
        int64_t i0 = k * GELU_CHUNK, len = n - i0 < GELU_CHUNK ? n - i0 : GELU_CHUNK;
        if (tanh_approx)
            gelu_tanh_chunk(x + i0, y + i0, len);
        else
            gelu_erf_chunk(x + i0, y + i0, len);
    }
}

/* 16-bit X: each chunk converted to f32, run by the f32 chunk kernel, rounded once. */
static void gelu_lowp(const uint16_t *x, uint16_t *y, ot_dtype t, int64_t n, int tanh_approx) {
    int64_t chunks = (n + GELU_CHUNK - 1) / GELU_CHUNK;
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t k = 0; k < chunks; k++) {
        float xb[GELU_CHUNK], yb[GELU_CHUNK];
        int64_t i0 = k * GELU_CHUNK, len = n - i0 < GELU_CHUNK ? n - i0 : GELU_CHUNK;
        ot_lowp_to_f32_n(xb, x + i0, t, (size_t)len);
        if (tanh_approx)
            gelu_tanh_chunk(xb, yb, len);
        else
            gelu_erf_chunk(xb, yb, len);
        ot_f32_to_lowp_n(y + i0, t, yb, (size_t)len);
    }
}

static void gelu_erf_f64(const double *restrict x, double *restrict y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = v >= 0.0 ? 0.5 * v * (1.0 + erf(v * SQRT1_2)) : 0.5 * v * erfc(-v * SQRT1_2);
    }
}

static void gelu_tanh_f64(const double *restrict x, double *restrict y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        double u = SQRT_2_PI * (v + 0.044715 * v * v * v);
        y[i] = v / (1.0 + exp(-2.0 * u));
    }
}

ot_status ot_gelu_cpu(ot_op_ctx *c) {
    OT_TRY(ot_check_float_lowp_input(c, 0));
    const ot_gelu_attr *a = c->attr;
    int64_t n = ot_tensor_numel(c->in[0]);
    const void *x = c->in[0]->data;
    void *y = c->out[0]->data;
    if (ot_dtype_is_lowp(c->in[0]->dtype)) {
        gelu_lowp(x, y, c->in[0]->dtype, n, a->tanh_approx);
    } else if (c->in[0]->dtype == OT_F32) {
        gelu_f32(x, y, n, a->tanh_approx);
    } else {
        if (a->tanh_approx)
            gelu_tanh_f64(x, y, n);
        else
            gelu_erf_f64(x, y, n);
    }
    return OT_OK;
}
