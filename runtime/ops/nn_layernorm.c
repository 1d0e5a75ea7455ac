/* nn_layernorm.c — LayerNormalization, opsets 17..21.
 *
 * Shapes: X [d0, ..., d(r-1)] is viewed as [rows, n] with rows = prod(dims[:axis]) and
 * n = prod(dims[axis:]) (axis default -1). Y = (X - mean) * InvStdDev * Scale + B has X's
 * shape and dtype (f32, f64). Scale and the optional B broadcast unidirectionally to X
 * (Mul/Add semantics): the usual [n]-shaped weights are used in place; other shapes are
 * expanded once per call into a [n] (or, when they vary across rows, an X-sized) buffer.
 * Optional outputs Mean and InvStdDev have shape dims[:axis] followed by 1s and dtype
 * stash_type (only 1 = float32 is accepted, as the ONNX type constraint allows).
 * Statistics are two-pass (mean, then mean of squared deviations) accumulated in double,
 * whatever the input dtype; InvStdDev = 1 / sqrt(var + epsilon). Centring subtracts the
 * mean as a T head plus a T residual, so rows with a large common offset keep their
 * deviations (single-pass E[x^2] - E[x]^2 in float would not). Rows run in parallel.
 * bf16/f16: X, Scale, B and Y share the 16-bit dtype, Mean/InvStdDev stay float32 (stash_type
 * 1); rows run through the f32 row kernel on converted buffers, Y rounded once (ln_lowp).
 * Accumulation rule: all outputs are written with `=`. */
#include "nn_internal.h"

#include <math.h>
#include <stdlib.h>

#define PAR_WORK (1 << 15)

ot_status ot_layernorm_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_layernorm_attr *a = attr;
    int64_t stash;
    OT_TRY(ot_attr_int(n, "axis", -1, &a->axis));
    OT_TRY(ot_attr_float(n, "epsilon", 1e-5f, &a->epsilon));
    OT_TRY(ot_attr_int(n, "stash_type", 1, &stash));
    if (stash != OT_F32)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: stash_type %lld (%s) is not supported (expected 1, float32)",
                         ot_node_name(n), (long long)stash, ot_dtype_name((ot_dtype)stash));
    a->stash_type = (int)stash;
    return OT_OK;
}

/* Checks that weight input i broadcasts unidirectionally to X; *per_row is set when it
 * varies along dims before axis. */
static ot_status check_weight(const ot_op_ctx *c, int i, int axis, int *per_row) {
    const ot_tensor *x = c->in[0], *w = c->in[i];
    const char *name = i == 1 ? "Scale" : "B";
    char s1[128], s2[128];
    if (w->dtype != x->dtype)
        return ot_errorf(OT_E_SHAPE, "%s: %s must have X's dtype %s, got %s", ot_op_label(c), name,
                         ot_dtype_name(x->dtype), ot_dtype_name(w->dtype));
    int ok = w->ndim <= x->ndim;
    *per_row = 0;
    for (int d = 0; ok && d < w->ndim; d++) {
        int xd = x->ndim - w->ndim + d;
        int64_t a = w->dims[d];
        if (a != 1 && a != x->dims[xd]) ok = 0;
        if (a != 1 && xd < axis) *per_row = 1;
    }
    if (!ok)
        return ot_errorf(OT_E_SHAPE, "%s: %s %s cannot be broadcast to X %s", ot_op_label(c), name,
                         ot_shape_str(s1, sizeof s1, w->ndim, w->dims), ot_shape_str(s2, sizeof s2, x->ndim, x->dims));
    return OT_OK;
}

static ot_status layernorm_check(const ot_op_ctx *c, int *axis_out, int *scale_rows, int *bias_rows) {
    const ot_layernorm_attr *a = c->attr;
    OT_TRY(ot_check_float_lowp_input(c, 0));
    OT_TRY(ot_check_input(c, 1, OT_UNDEFINED));
    const ot_tensor *x = c->in[0];
    if (x->ndim < 1) return ot_errorf(OT_E_SHAPE, "%s: X must have rank >= 1, got a scalar", ot_op_label(c));
    OT_TRY(ot_norm_axis(c, a->axis, x->ndim, axis_out));
    OT_TRY(check_weight(c, 1, *axis_out, scale_rows));
    *bias_rows = 0;
    if (c->n_in > 2 && c->in[2]) OT_TRY(check_weight(c, 2, *axis_out, bias_rows));
    return OT_OK;
}

ot_status ot_layernorm_infer(ot_op_ctx *c) {
    int axis, sr, br;
    OT_TRY(layernorm_check(c, &axis, &sr, &br));
    const ot_tensor *x = c->in[0];
    OT_TRY(ot_set_out(c, 0, x->dtype, x->ndim, x->dims));
    int64_t sd[OT_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) sd[d] = d < axis ? x->dims[d] : 1;
    const ot_layernorm_attr *a = c->attr;
    OT_TRY(ot_set_out(c, 1, (ot_dtype)a->stash_type, x->ndim, sd));
    OT_TRY(ot_set_out(c, 2, (ot_dtype)a->stash_type, x->ndim, sd));
    return OT_OK;
}

/* Expands weight w to the trailing `nd` dims of X (the normalised dims, or all of them
 * when per-row) into a contiguous buffer. Returns w->data when it already is that. */
static const void *expand_weight(const ot_tensor *x, const ot_tensor *w, int nd, void **owned) {
    *owned = NULL;
    int64_t total = ot_shape_numel(nd, x->dims + x->ndim - nd);
    if (ot_tensor_numel(w) == total) return w->data; /* same elements in the same order */
    /* View of w with rank <= nd (its extra leading dims are 1 when not per-row). */
    ot_tensor v = *w;
    while (v.ndim > nd) {
        memmove(v.dims, v.dims + 1, (size_t)(v.ndim - 1) * sizeof v.dims[0]);
        v.ndim--;
    }
    size_t esz = ot_dtype_size(w->dtype);
    char *buf = malloc((size_t)(total ? total : 1) * esz);
    if (!buf) return NULL;
    ot_bcast b;
    const ot_tensor *ops[1] = {&v};
    ot_bcast_init(&b, 1, ops, nd, x->dims + x->ndim - nd);
    for (int64_t o = 0; o < b.outer; o++) {
        int64_t base;
        ot_bcast_row(&b, o, &base);
        for (int64_t j = 0; j < b.inner; j++)
            memcpy(buf + (o * b.inner + j) * (int64_t)esz, (const char *)w->data + (base + j * b.inner_stride[0]) * (int64_t)esz,
                   esz);
    }
    *owned = buf;
    return buf;
}

/* One row: statistics, then Y. sstride/bstride: element offset between rows of the
 * (expanded) weights, 0 or n. Built per ISA (OT_NN_CLONES); ln_* runs rows in parallel. */
#define DEFINE_LAYERNORM(SFX, T)                                                                      \
    OT_NN_CLONES static void ln_row_##SFX(const T *restrict xr, T *restrict yr, const T *restrict s,  \
                                          const T *restrict b, int64_t n, double eps, float *mean_out, \
                                          float *inv_out) {                                           \
        double sum = 0.0;                                                                            \
        _Pragma("omp simd reduction(+ : sum)")                                                        \
        for (int64_t j = 0; j < n; j++) sum += (double)xr[j];                                        \
        double mean = sum / (double)n, sq = 0.0;                                                     \
        _Pragma("omp simd reduction(+ : sq)")                                                         \
        for (int64_t j = 0; j < n; j++) {                                                            \
            double dv = (double)xr[j] - mean;                                                        \
            sq += dv * dv;                                                                           \
        }                                                                                            \
        double inv = 1.0 / sqrt(sq / (double)n + eps);                                               \
        if (mean_out) *mean_out = (float)mean;                                                       \
        if (inv_out) *inv_out = (float)inv;                                                          \
        /* mean = m_hi + m_lo: x - m_hi is exact when x is near the mean (Sterbenz), so a        \
         * large offset does not cancel away the deviations in T precision. */                      \
        const T m_hi = (T)mean, m_lo = (T)(mean - (double)m_hi), iv = (T)inv;                      \
        if (b) {                                                                                     \
            _Pragma("omp simd")                                                                       \
            for (int64_t j = 0; j < n; j++) yr[j] = ((xr[j] - m_hi) - m_lo) * iv * s[j] + b[j];      \
        } else {                                                                                     \
            _Pragma("omp simd")                                                                       \
            for (int64_t j = 0; j < n; j++) yr[j] = ((xr[j] - m_hi) - m_lo) * iv * s[j];             \
        }                                                                                            \
    }                                                                                                \
    static void ln_##SFX(const T *x, T *y, const T *sc, int64_t sstride, const T *bi, int64_t bstride, \
                         float *mean_out, float *inv_out, int64_t rows, int64_t n, double eps) {      \
        _Pragma("omp parallel for schedule(static) if (rows * n > PAR_WORK && rows > 1)")             \
        for (int64_t r = 0; r < rows; r++)                                                           \
            ln_row_##SFX(x + r * n, y + r * n, sc + r * sstride, bi ? bi + r * bstride : NULL, n, eps, \
                         mean_out ? mean_out + r : NULL, inv_out ? inv_out + r : NULL);               \
    }
DEFINE_LAYERNORM(f32, float)
DEFINE_LAYERNORM(f64, double)

/* 16-bit X, Scale, B: per row, X (and per-row weights) converted into per-thread f32
 * buffers, ln_row_f32 (statistics in double, Mean/InvStdDev stored as f32), Y rounded once.
 * Broadcast ([n]) weights are converted once. sc/bi are the expanded 16-bit weights. */
static ot_status ln_lowp(const ot_op_ctx *c, ot_dtype t, const uint16_t *x, uint16_t *y, const uint16_t *sc,
                         int64_t sstride, const uint16_t *bi, int64_t bstride, float *mean_out, float *inv_out,
                         int64_t rows, int64_t n, double eps) {
    float *shared = malloc((size_t)(2 * n) * sizeof *shared); /* [n] Scale, [n] B when not per-row */
    if (!shared) return ot_errorf(OT_E_NOMEM, "%s: out of memory for f32 weights", ot_op_label(c));
    if (!sstride) ot_lowp_to_f32_n(shared, sc, t, (size_t)n);
    if (bi && !bstride) ot_lowp_to_f32_n(shared + n, bi, t, (size_t)n);
    int fail = 0;
#pragma omp parallel if (rows * n > PAR_WORK && rows > 1)
    {
        float *buf = malloc((size_t)(4 * n) * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!buf) continue;
            float *xb = buf, *yb = buf + n, *sb = sstride ? buf + 2 * n : shared;
            float *bb = bi ? (bstride ? buf + 3 * n : shared + n) : NULL;
            ot_lowp_to_f32_n(xb, x + r * n, t, (size_t)n);
            if (sstride) ot_lowp_to_f32_n(sb, sc + r * sstride, t, (size_t)n);
            if (bi && bstride) ot_lowp_to_f32_n(bb, bi + r * bstride, t, (size_t)n);
            ln_row_f32(xb, yb, sb, bb, n, eps, mean_out ? mean_out + r : NULL, inv_out ? inv_out + r : NULL);
            ot_f32_to_lowp_n(y + r * n, t, yb, (size_t)n);
        }
        free(buf);
    }
    free(shared);
    if (fail) return ot_errorf(OT_E_NOMEM, "%s: out of memory for f32 row buffers", ot_op_label(c));
    return OT_OK;
}

ot_status ot_layernorm_cpu(ot_op_ctx *c) {
    const ot_layernorm_attr *a = c->attr;
    int axis, scale_rows, bias_rows;
    OT_TRY(layernorm_check(c, &axis, &scale_rows, &bias_rows));
    const ot_tensor *x = c->in[0];
    const ot_tensor *bt = c->n_in > 2 ? c->in[2] : NULL;
    int64_t rows = ot_shape_numel(axis, x->dims), n = ot_shape_numel(x->ndim - axis, x->dims + axis);
    float *mean_out = c->n_out > 1 && c->out[1] ? c->out[1]->data : NULL;
    float *inv_out = c->n_out > 2 && c->out[2] ? c->out[2]->data : NULL;
    if (rows == 0) return OT_OK;
    if (n == 0) { /* empty rows: statistics of nothing are NaN (0/0), Y is empty */
        for (int64_t r = 0; r < rows; r++) {
            if (mean_out) mean_out[r] = NAN;
            if (inv_out) inv_out[r] = NAN;
        }
        return OT_OK;
    }
    /* Weights as [n] (stride 0 across rows) or X-sized (stride n). */
    void *sown = NULL, *bown = NULL;
    int nd_s = scale_rows ? x->ndim : x->ndim - axis, nd_b = bias_rows ? x->ndim : x->ndim - axis;
    const void *sc = expand_weight(x, c->in[1], nd_s, &sown);
    const void *bi = bt ? expand_weight(x, bt, nd_b, &bown) : NULL;
    if (!sc || (bt && !bi)) {
        free(sown);
        free(bown);
        return ot_errorf(OT_E_NOMEM, "%s: out of memory expanding Scale/B", ot_op_label(c));
    }
    int64_t ss = scale_rows ? n : 0, bs = bias_rows ? n : 0;
    ot_status st = OT_OK;
    if (ot_dtype_is_lowp(x->dtype))
        st = ln_lowp(c, x->dtype, x->data, c->out[0]->data, sc, ss, bi, bs, mean_out, inv_out, rows, n,
                     (double)a->epsilon);
    else if (x->dtype == OT_F32)
        ln_f32(x->data, c->out[0]->data, sc, ss, bi, bs, mean_out, inv_out, rows, n, (double)a->epsilon);
    else
        ln_f64(x->data, c->out[0]->data, sc, ss, bi, bs, mean_out, inv_out, rows, n, (double)a->epsilon);
    free(sown);
    free(bown);
    return st;
}
