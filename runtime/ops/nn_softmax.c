/* nn_softmax.c — Softmax and LogSoftmax, opsets 1..21.
 *
 * Shapes: Y has X's shape and dtype (f32, f64). Opset 13+ normalises along one axis
 * (default -1): X is viewed as [outer, n, inner] with n = dims[axis]. Opsets 1..12 coerce X
 * to 2-D [prod(dims[:axis]), prod(dims[axis:])] (default axis 1) and normalise each row,
 * i.e. the same view with inner = 1. Numerically stable: the row maximum is subtracted
 * before exp. f32 row sums accumulate in float within blocks of 1024 and in double across
 * blocks (per-column float sums in the strided case); f64 uses libm exp and double sums.
 * Rows (or column chunks) run in parallel with OpenMP; the f32 per-row kernels use the
 * branch-free ot_nn_expf so they vectorise, and are built for AVX-512 / AVX2 / baseline
 * with runtime dispatch (OT_NN_CLONES). A row holding NaN gives NaN; a row of all -inf
 * gives NaN (0/0). Accumulation rule: Y is written with `=`.
 * bf16/f16 X: Y has X's dtype; rows are converted into f32 buffers and run by the f32
 * kernels (run_lowp), one rounding per output element. */
#include "nn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PAR_WORK (1 << 15) /* elements below which a call stays single-threaded */
#define CHUNK 256          /* inner columns processed together in the strided case */

ot_status ot_softmax_parse(const ot_node *n, int opset, void *attr) {
    ot_softmax_attr *a = attr;
    a->coerce_2d = opset < 13;
    a->log = strcmp(n->op_type, "LogSoftmax") == 0;
    return ot_attr_int(n, "axis", opset < 13 ? 1 : -1, &a->axis);
}

ot_status ot_softmax_view(const ot_op_ctx *c, int64_t *outer, int64_t *n, int64_t *inner) {
    const ot_softmax_attr *a = c->attr;
    const ot_tensor *x = c->in[0];
    *outer = *n = *inner = 1;
    if (x->ndim == 0) return OT_OK;
    int axis;
    OT_TRY(ot_norm_axis(c, a->axis, x->ndim, &axis));
    for (int d = 0; d < axis; d++) *outer *= x->dims[d];
    if (a->coerce_2d) {
        for (int d = axis; d < x->ndim; d++) *n *= x->dims[d];
    } else {
        *n = x->dims[axis];
        for (int d = axis + 1; d < x->ndim; d++) *inner *= x->dims[d];
    }
    return OT_OK;
}

ot_status ot_softmax_infer(ot_op_ctx *c) {
    OT_TRY(ot_check_float_lowp_input(c, 0));
    int64_t o, n, i;
    OT_TRY(ot_softmax_view(c, &o, &n, &i));
    return ot_set_out(c, 0, c->in[0]->dtype, c->in[0]->ndim, c->in[0]->dims);
}

/* ---- f32 kernels ---------------------------------------------------------------------- */

/* Minimal loops, each of which GCC vectorises on its own (with -O2 or -O3 and the default
 * -ftrapping-math); they are inlined into the ISA-cloned kernels below. */
#define OT_AI static inline __attribute__((always_inline))

OT_AI float vmax_f32(const float *restrict x, int64_t n) {
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}
OT_AI void vexp_sub_f32(const float *restrict x, float m, float *restrict y, int64_t n) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) y[j] = ot_nn_expf(x[j] - m);
}
OT_AI void vexp_subv_f32(const float *restrict x, const float *restrict m, float *restrict y, int64_t n) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) y[j] = ot_nn_expf(x[j] - m[j]);
}
/* Sum in float within blocks (vector lanes keep partial sums), double across blocks. */
OT_AI double vsum_f32(const float *restrict x, int64_t n) {
    double s = 0.0;
    for (int64_t b = 0; b < n; b += 1024) {
        const int64_t e = n - b < 1024 ? n - b : 1024;
        float bs = 0.0f;
#pragma omp simd reduction(+ : bs)
        for (int64_t j = 0; j < e; j++) bs += x[b + j];
        s += (double)bs;
    }
    return s;
}

/* One contiguous row. LogSoftmax uses y as scratch for the exps before overwriting it. */
OT_NN_CLONES static void row_f32(const float *restrict x, float *restrict y, int64_t n, int is_log) {
    const float m = vmax_f32(x, n);
    vexp_sub_f32(x, m, y, n);
    const double s = vsum_f32(y, n);
    if (is_log) {
        const float ls = (float)log(s);
#pragma omp simd
        for (int64_t j = 0; j < n; j++) y[j] = (x[j] - m) - ls;
    } else {
        const float inv = (float)(1.0 / s);
#pragma omp simd
        for (int64_t j = 0; j < n; j++) y[j] *= inv;
    }
}

/* Columns [0, w) of one [n, inner] block (the axis is not the last one). */
OT_NN_CLONES static void cols_f32(const float *restrict x, float *restrict y, int64_t n, int64_t inner, int64_t w,
                                  int is_log) {
    float m[CHUNK], s[CHUNK];
    for (int64_t j = 0; j < w; j++) m[j] = -INFINITY, s[j] = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        const float *restrict xr = x + i * inner;
#pragma omp simd
        for (int64_t j = 0; j < w; j++) m[j] = xr[j] > m[j] ? xr[j] : m[j];
    }
    for (int64_t i = 0; i < n; i++) {
        float *restrict yr = y + i * inner;
        vexp_subv_f32(x + i * inner, m, yr, w);
#pragma omp simd
        for (int64_t j = 0; j < w; j++) s[j] += yr[j];
    }
    if (is_log) {
        for (int64_t j = 0; j < w; j++) s[j] = (float)log((double)s[j]);
        for (int64_t i = 0; i < n; i++) {
            const float *restrict xr = x + i * inner;
            float *restrict yr = y + i * inner;
#pragma omp simd
            for (int64_t j = 0; j < w; j++) yr[j] = (xr[j] - m[j]) - s[j];
        }
    } else {
        for (int64_t j = 0; j < w; j++) s[j] = (float)(1.0 / (double)s[j]);
        for (int64_t i = 0; i < n; i++) {
            float *restrict yr = y + i * inner;
#pragma omp simd
            for (int64_t j = 0; j < w; j++) yr[j] *= s[j];
        }
    }
}

/* ---- f64 kernels (reference quality, libm exp) -------------------------------------------- */

static void row_f64(const double *restrict x, double *restrict y, int64_t n, int is_log) {
    double m = -INFINITY, s = 0.0;
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    for (int64_t j = 0; j < n; j++) s += (y[j] = exp(x[j] - m));
    if (is_log) {
        const double ls = log(s);
        for (int64_t j = 0; j < n; j++) y[j] = (x[j] - m) - ls;
    } else {
        for (int64_t j = 0; j < n; j++) y[j] /= s;
    }
}

static void cols_f64(const double *restrict x, double *restrict y, int64_t n, int64_t inner, int64_t w, int is_log) {
    for (int64_t j = 0; j < w; j++) {
        double m = -INFINITY, s = 0.0;
        for (int64_t i = 0; i < n; i++) m = x[i * inner + j] > m ? x[i * inner + j] : m;
        for (int64_t i = 0; i < n; i++) s += (y[i * inner + j] = exp(x[i * inner + j] - m));
        const double ls = log(s);
        for (int64_t i = 0; i < n; i++)
            y[i * inner + j] = is_log ? (x[i * inner + j] - m) - ls : y[i * inner + j] / s;
    }
}

/* ---- drivers -------------------------------------------------------------------------------- */

#define DEFINE_RUN(SFX, T)                                                                            \
    static void run_##SFX(const T *x, T *y, int64_t outer, int64_t n, int64_t inner, int is_log) {    \
        int par = outer * n * inner > PAR_WORK;                                                      \
        if (inner == 1) {                                                                            \
            _Pragma("omp parallel for schedule(static) if (par && outer > 1)")                        \
            for (int64_t o = 0; o < outer; o++) row_##SFX(x + o * n, y + o * n, n, is_log);          \
            return;                                                                                  \
        }                                                                                            \
        int64_t nchunk = (inner + CHUNK - 1) / CHUNK, tasks = outer * nchunk;                         \
        _Pragma("omp parallel for schedule(static) if (par && tasks > 1)")                            \
        for (int64_t t = 0; t < tasks; t++) {                                                        \
            int64_t o = t / nchunk, j0 = (t % nchunk) * CHUNK;                                        \
            int64_t w = inner - j0 < CHUNK ? inner - j0 : CHUNK;                                     \
            int64_t off = o * n * inner + j0;                                                        \
            cols_##SFX(x + off, y + off, n, inner, w, is_log);                                       \
        }                                                                                            \
    }
DEFINE_RUN(f32, float)
DEFINE_RUN(f64, double)

/* 16-bit X (bf16/f16): each row (or [n, CHUNK] column block) is converted into a per-thread
 * f32 buffer, normalised by the f32 kernel above (max, exp and sums in f32/double), and
 * rounded once into Y: bit-identical to the f32 op on the converted input, then rounded. */
static ot_status run_lowp(const ot_op_ctx *c, const uint16_t *x, uint16_t *y, ot_dtype t, int64_t outer, int64_t n,
                          int64_t inner, int is_log) {
    const int par = outer * n * inner > PAR_WORK;
    const int64_t bw = inner == 1 ? 1 : CHUNK, nchunk = (inner + bw - 1) / bw, tasks = outer * nchunk;
    int fail = 0;
#pragma omp parallel if (par && tasks > 1)
    {
        float *xb = malloc((size_t)(2 * n * bw) * sizeof *xb), *yb = xb ? xb + n * bw : NULL;
        if (!xb) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(static)
        for (int64_t k = 0; k < tasks; k++) {
            if (!xb) continue;
            const int64_t o = k / nchunk, j0 = (k % nchunk) * bw, w = inner - j0 < bw ? inner - j0 : bw;
            const int64_t off = o * n * inner + j0;
            if (inner == 1) {
                ot_lowp_to_f32_n(xb, x + off, t, (size_t)n);
                row_f32(xb, yb, n, is_log);
                ot_f32_to_lowp_n(y + off, t, yb, (size_t)n);
            } else {
                for (int64_t i = 0; i < n; i++) ot_lowp_to_f32_n(xb + i * w, x + off + i * inner, t, (size_t)w);
                cols_f32(xb, yb, n, w, w, is_log);
                for (int64_t i = 0; i < n; i++) ot_f32_to_lowp_n(y + off + i * inner, t, yb + i * w, (size_t)w);
            }
        }
        free(xb);
    }
    if (fail) return ot_errorf(OT_E_NOMEM, "%s: out of memory for f32 row buffers", ot_op_label(c));
    return OT_OK;
}

ot_status ot_softmax_cpu(ot_op_ctx *c) {
    OT_TRY(ot_check_float_lowp_input(c, 0));
    const ot_softmax_attr *a = c->attr;
    int64_t outer, n, inner;
    OT_TRY(ot_softmax_view(c, &outer, &n, &inner));
    if (outer == 0 || n == 0 || inner == 0) return OT_OK;
    if (ot_dtype_is_lowp(c->in[0]->dtype))
        return run_lowp(c, c->in[0]->data, c->out[0]->data, c->in[0]->dtype, outer, n, inner, a->log);
    if (c->in[0]->dtype == OT_F32)
        run_f32(c->in[0]->data, c->out[0]->data, outer, n, inner, a->log);
    else
        run_f64(c->in[0]->data, c->out[0]->data, outer, n, inner, a->log);
    return OT_OK;
}
