/* grad_nn.c — kernels of the nn family's internal gradient ops: SoftmaxGrad, LogSoftmaxGrad,
 * LayerNormGrad, GeluGrad (domain "ai.onnxtune", opset 1; signatures and math in grad_nn.h).
 *
 * All are row- or element-wise over contiguous row-major tensors; f32 and f64. Row sums
 * accumulate in double. Rows (or elements) run in parallel above a work threshold.
 * LayerNormGrad's parameter gradients are sums over rows: each of a fixed number of row
 * blocks (independent of the thread count) accumulates its own partial sums in double and
 * the blocks are added in order, so results are deterministic and do not depend on
 * OMP_NUM_THREADS.
 * bf16/f16: all tensor inputs and outputs share the 16-bit dtype (LayerNormGrad's Mean and
 * InvStdDev stay float32); rows or blocks are converted into f32 buffers and run by the f32
 * kernels, each output rounded once; parameter-gradient sums are the f32 path's double sums.
 * Accumulation rule: every output (activation and parameter gradients alike) is written
 * with `=`; ot_autodiff sums partial gradients with Add nodes. */
#include "grad_nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"
#include "ophelp.h"

#define PAR_WORK (1 << 15) /* elements below which a call stays single-threaded */
#define CHUNK 256          /* inner columns processed together in the strided softmax case */
#define LN_BLOCKS 32       /* row blocks for LayerNormGrad's parameter-gradient sums */

/* ---- SoftmaxGrad / LogSoftmaxGrad -------------------------------------------------- */

/* The attributes are Softmax's (ot_softmax_attr, viewed with ot_softmax_view); coerce_2d
 * is an explicit attribute here, set by the builder from the forward opset. */
static ot_status smg_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_softmax_attr *a = attr;
    int64_t v;
    a->log = strcmp(n->op_type, "LogSoftmaxGrad") == 0;
    OT_TRY(ot_attr_int(n, "axis", -1, &a->axis));
    OT_TRY(ot_attr_int(n, "coerce_2d", 0, &v));
    a->coerce_2d = v != 0;
    return OT_OK;
}

/* Checks that inputs [0, n) are present, float32/float64/bfloat16/float16, of one dtype and (first
 * `same_shape` of them) of one shape. */
static ot_status check_float_inputs(const ot_op_ctx *c, int n, int same_shape) {
    for (int i = 0; i < n; i++) {
        OT_TRY(ot_check_input(c, i, OT_UNDEFINED));
        OT_TRY(ot_check_same_dtype(c, 0, i));
    }
    OT_TRY(ot_check_float_lowp_input(c, 0));
    for (int i = 1; i < same_shape; i++)
        if (!ot_shape_equal(c->in[0]->ndim, c->in[0]->dims, c->in[i]->ndim, c->in[i]->dims)) {
            char s1[128], s2[128];
            return ot_errorf(OT_E_SHAPE, "%s: input %d has shape %s, expected input 0's shape %s", ot_op_label(c), i,
                             ot_shape_str(s1, sizeof s1, c->in[i]->ndim, c->in[i]->dims),
                             ot_shape_str(s2, sizeof s2, c->in[0]->ndim, c->in[0]->dims));
        }
    return OT_OK;
}

static ot_status smg_infer(ot_op_ctx *c) {
    OT_TRY(check_float_inputs(c, 2, 2));
    int64_t o, n, i;
    OT_TRY(ot_softmax_view(c, &o, &n, &i));
    return ot_set_out(c, 0, c->in[0]->dtype, c->in[0]->ndim, c->in[0]->dims);
}

static inline double exp_f64(double v) { return exp(v); }

/* One [n, inner] block, columns [0, w) (w = inner = 1 for the contiguous case):
 *   softmax:     s = Σ dy·y,  dx = y·(dy − s)
 *   log-softmax: s = Σ dy,    dx = dy − exp(y)·s */
#define DEFINE_SMG(SFX, T, EXP, EXP_SIMD)                                                                          \
    static void smg_row_##SFX(const T *restrict dy, const T *restrict y, T *restrict dx, int64_t n, int lg) { \
        double s = 0.0;                                                                                 \
        if (lg) {                                                                                       \
            _Pragma("omp simd reduction(+ : s)")                                                         \
            for (int64_t j = 0; j < n; j++) s += (double)dy[j];                                         \
            const T st = (T)s;                                                                          \
            EXP_SIMD                                                                                    \
            for (int64_t j = 0; j < n; j++) dx[j] = dy[j] - EXP(y[j]) * st;                             \
        } else {                                                                                        \
            _Pragma("omp simd reduction(+ : s)")                                                         \
            for (int64_t j = 0; j < n; j++) s += (double)dy[j] * (double)y[j];                          \
            const T st = (T)s;                                                                          \
            _Pragma("omp simd")                                                                          \
            for (int64_t j = 0; j < n; j++) dx[j] = y[j] * (dy[j] - st);                                \
        }                                                                                               \
    }                                                                                                   \
    static void smg_cols_##SFX(const T *restrict dy, const T *restrict y, T *restrict dx, int64_t n,     \
                               int64_t inner, int64_t w, int lg) {                                      \
        double s[CHUNK];                                                                                \
        T st[CHUNK];                                                                                    \
        for (int64_t j = 0; j < w; j++) s[j] = 0.0;                                                     \
        for (int64_t i = 0; i < n; i++) {                                                               \
            const T *restrict a = dy + i * inner, *restrict b = y + i * inner;                          \
            if (lg)                                                                                     \
                for (int64_t j = 0; j < w; j++) s[j] += (double)a[j];                                   \
            else                                                                                        \
                for (int64_t j = 0; j < w; j++) s[j] += (double)a[j] * (double)b[j];                    \
        }                                                                                               \
        for (int64_t j = 0; j < w; j++) st[j] = (T)s[j];                                                \
        for (int64_t i = 0; i < n; i++) {                                                               \
            const T *restrict a = dy + i * inner, *restrict b = y + i * inner;                          \
            T *restrict o = dx + i * inner;                                                             \
            if (lg) {                                                                                   \
                EXP_SIMD                                                                                \
                for (int64_t j = 0; j < w; j++) o[j] = a[j] - EXP(b[j]) * st[j];                        \
            } else {                                                                                    \
                _Pragma("omp simd")                                                                      \
                for (int64_t j = 0; j < w; j++) o[j] = b[j] * (a[j] - st[j]);                           \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
    static void smg_run_##SFX(const T *dy, const T *y, T *dx, int64_t outer, int64_t n, int64_t inner,   \
                              int lg) {                                                                 \
        int par = outer * n * inner > PAR_WORK;                                                         \
        if (inner == 1) {                                                                               \
            _Pragma("omp parallel for schedule(static) if (par && outer > 1)")                           \
            for (int64_t o = 0; o < outer; o++) smg_row_##SFX(dy + o * n, y + o * n, dx + o * n, n, lg); \
            return;                                                                                     \
        }                                                                                               \
        int64_t nchunk = (inner + CHUNK - 1) / CHUNK, tasks = outer * nchunk;                            \
        _Pragma("omp parallel for schedule(static) if (par && tasks > 1)")                               \
        for (int64_t t = 0; t < tasks; t++) {                                                           \
            int64_t o = t / nchunk, j0 = (t % nchunk) * CHUNK;                                           \
            int64_t w = inner - j0 < CHUNK ? inner - j0 : CHUNK, off = o * n * inner + j0;               \
            smg_cols_##SFX(dy + off, y + off, dx + off, n, inner, w, lg);                               \
        }                                                                                               \
    }
/* EXP_SIMD: the pragma for loops that call EXP — only the branch-free float exp
 * vectorises; libm's exp would make the simd request fail (clang warns). */
DEFINE_SMG(f32, float, ot_nn_expf, _Pragma("omp simd"))
DEFINE_SMG(f64, double, exp_f64, )

/* 16-bit dy and y: rows (or [n, CHUNK] column blocks) converted into per-thread f32
 * buffers, the f32 kernels, dx rounded once. */
static ot_status smg_lowp(const ot_op_ctx *c, ot_dtype t, const uint16_t *dy, const uint16_t *y, uint16_t *dx,
                          int64_t outer, int64_t n, int64_t inner, int lg) {
    const int par = outer * n * inner > PAR_WORK;
    const int64_t bw = inner == 1 ? 1 : CHUNK, nchunk = (inner + bw - 1) / bw, tasks = outer * nchunk;
    int fail = 0;
#pragma omp parallel if (par && tasks > 1)
    {
        float *gb = malloc((size_t)(3 * n * bw) * sizeof *gb), *yb = gb ? gb + n * bw : NULL;
        float *ob = gb ? gb + 2 * n * bw : NULL;
        if (!gb) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(static)
        for (int64_t k = 0; k < tasks; k++) {
            if (!gb) continue;
            const int64_t o = k / nchunk, j0 = (k % nchunk) * bw, w = inner - j0 < bw ? inner - j0 : bw;
            const int64_t off = o * n * inner + j0;
            if (w == inner) { /* the [n, w] block is contiguous (always for the last axis): one call each */
                ot_lowp_to_f32_n(gb, dy + off, t, (size_t)(n * w));
                ot_lowp_to_f32_n(yb, y + off, t, (size_t)(n * w));
            } else {
                for (int64_t i = 0; i < n; i++) {
                    ot_lowp_to_f32_n(gb + i * w, dy + off + i * inner, t, (size_t)w);
                    ot_lowp_to_f32_n(yb + i * w, y + off + i * inner, t, (size_t)w);
                }
            }
            if (inner == 1) smg_row_f32(gb, yb, ob, n, lg);
            else smg_cols_f32(gb, yb, ob, n, w, w, lg);
            if (w == inner) ot_f32_to_lowp_n(dx + off, t, ob, (size_t)(n * w));
            else
                for (int64_t i = 0; i < n; i++) ot_f32_to_lowp_n(dx + off + i * inner, t, ob + i * w, (size_t)w);
        }
        free(gb);
    }
    if (fail) return ot_errorf(OT_E_NOMEM, "%s: out of memory for f32 row buffers", ot_op_label(c));
    return OT_OK;
}

static ot_status smg_cpu(ot_op_ctx *c) {
    OT_TRY(check_float_inputs(c, 2, 2));
    const ot_softmax_attr *a = c->attr;
    int64_t outer, n, inner;
    OT_TRY(ot_softmax_view(c, &outer, &n, &inner));
    if (outer == 0 || n == 0 || inner == 0) return OT_OK;
    if (ot_dtype_is_lowp(c->in[0]->dtype))
        return smg_lowp(c, c->in[0]->dtype, c->in[0]->data, c->in[1]->data, c->out[0]->data, outer, n, inner, a->log);
    if (c->in[0]->dtype == OT_F32)
        smg_run_f32(c->in[0]->data, c->in[1]->data, c->out[0]->data, outer, n, inner, a->log);
    else
        smg_run_f64(c->in[0]->data, c->in[1]->data, c->out[0]->data, outer, n, inner, a->log);
    return OT_OK;
}

/* ---- LayerNormGrad ------------------------------------------------------------------ */

typedef struct lng_attr {
    int64_t axis;
    float epsilon;
} lng_attr;

static ot_status lng_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    lng_attr *a = attr;
    OT_TRY(ot_attr_int(n, "axis", -1, &a->axis));
    return ot_attr_float(n, "epsilon", 1e-5f, &a->epsilon);
}

/* axis, rows and n of the [rows, n] view; checks dtypes and shapes. */
static ot_status lng_check(const ot_op_ctx *c, int *axis, int64_t *rows, int64_t *n) {
    const lng_attr *a = c->attr;
    OT_TRY(check_float_inputs(c, 3, 2)); /* dY, X, Scale: one dtype; dY and X one shape */
    const ot_tensor *x = c->in[1], *s = c->in[2];
    if (x->ndim < 1) return ot_errorf(OT_E_SHAPE, "%s: X must have rank >= 1, got a scalar", ot_op_label(c));
    OT_TRY(ot_norm_axis(c, a->axis, x->ndim, axis));
    *rows = ot_shape_numel(*axis, x->dims);
    *n = ot_shape_numel(x->ndim - *axis, x->dims + *axis);
    /* Scale must broadcast unidirectionally to the normalised dims X.dims[axis:]. */
    int ok = 1;
    for (int d = 0; d < s->ndim && ok; d++) {
        int xd = x->ndim - s->ndim + d;
        if (s->dims[d] == 1) continue;
        ok = xd >= *axis && s->dims[d] == x->dims[xd];
    }
    if (!ok || s->ndim > x->ndim) {
        char s1[128], s2[128];
        return ot_errorf(OT_E_SHAPE, "%s: Scale %s must broadcast to X's normalised dims (X is %s, axis %d)",
                         ot_op_label(c), ot_shape_str(s1, sizeof s1, s->ndim, s->dims),
                         ot_shape_str(s2, sizeof s2, x->ndim, x->dims), *axis);
    }
    for (int i = 3; i < 5; i++) {
        if (i >= c->n_in || !c->in[i]) continue;
        const ot_tensor *st = c->in[i];
        if (st->dtype != OT_F32 && st->dtype != OT_F64)
            return ot_errorf(OT_E_SHAPE, "%s: %s must be float32 or float64, got %s", ot_op_label(c),
                             i == 3 ? "Mean" : "InvStdDev", ot_dtype_name(st->dtype));
        if (ot_tensor_numel(st) != *rows)
            return ot_errorf(OT_E_SHAPE, "%s: %s has %lld elements, expected one per row (%lld)", ot_op_label(c),
                             i == 3 ? "Mean" : "InvStdDev", (long long)ot_tensor_numel(st), (long long)*rows);
    }
    return OT_OK;
}

static ot_status lng_infer(ot_op_ctx *c) {
    int axis;
    int64_t rows, n;
    OT_TRY(lng_check(c, &axis, &rows, &n));
    const ot_tensor *x = c->in[1];
    OT_TRY(ot_set_out(c, 0, x->dtype, x->ndim, x->dims));
    OT_TRY(ot_set_out(c, 1, x->dtype, x->ndim - axis, x->dims + axis));
    return ot_set_out(c, 2, x->dtype, x->ndim - axis, x->dims + axis);
}

/* Scale expanded to [n] (the normalised dims); returns s->data when it already has n
 * elements in that order. */
static const void *lng_scale(const ot_tensor *x, int axis, const ot_tensor *s, void **owned) {
    *owned = NULL;
    int nd = x->ndim - axis;
    int64_t n = ot_shape_numel(nd, x->dims + axis);
    if (ot_tensor_numel(s) == n) return s->data;
    ot_tensor v = *s;
    while (v.ndim > nd) { /* leading dims are 1 (checked): drop them */
        memmove(v.dims, v.dims + 1, (size_t)(v.ndim - 1) * sizeof v.dims[0]);
        v.ndim--;
    }
    size_t es = ot_dtype_size(s->dtype);
    char *buf = malloc((size_t)(n ? n : 1) * es);
    if (!buf) return NULL;
    ot_bcast b;
    const ot_tensor *ops[1] = {&v};
    ot_bcast_init(&b, 1, ops, nd, x->dims + axis);
    for (int64_t o = 0; o < b.outer; o++) {
        int64_t base;
        ot_bcast_row(&b, o, &base);
        for (int64_t j = 0; j < b.inner; j++)
            memcpy(buf + (o * b.inner + j) * (int64_t)es, (const char *)s->data + (base + j * b.inner_stride[0]) * (int64_t)es,
                   es);
    }
    *owned = buf;
    return buf;
}

static double stat_at(const ot_tensor *t, int64_t r) {
    return t->dtype == OT_F32 ? (double)((const float *)t->data)[r] : ((const double *)t->data)[r];
}

/* Rows [r0, r1): dX (if dx), and partial dScale/dBias sums into ps/pb (if non-NULL, [n]
 * doubles each, accumulated with +=). mean/rstd come from the saved statistics when given,
 * else they are recomputed in double. */
#define DEFINE_LNG(SFX, T)                                                                              \
    static void lng_rows_##SFX(const T *restrict dy, const T *restrict x, const T *restrict sc,          \
                               const ot_tensor *mt, const ot_tensor *it, T *restrict dx, double *restrict ps, \
                               double *restrict pb, int64_t r0, int64_t r1, int64_t n, double eps) {     \
        for (int64_t r = r0; r < r1; r++) {                                                             \
            const T *restrict xr = x + r * n, *restrict gr = dy + r * n;                                \
            double mean, rstd;                                                                          \
            if (mt && it) {                                                                             \
                mean = stat_at(mt, r);                                                                  \
                rstd = stat_at(it, r);                                                                  \
            } else {                                                                                    \
                double s = 0.0, q = 0.0;                                                                \
                _Pragma("omp simd reduction(+ : s)")                                                     \
                for (int64_t j = 0; j < n; j++) s += (double)xr[j];                                     \
                mean = s / (double)n;                                                                   \
                _Pragma("omp simd reduction(+ : q)")                                                     \
                for (int64_t j = 0; j < n; j++) q += ((double)xr[j] - mean) * ((double)xr[j] - mean);   \
                rstd = 1.0 / sqrt(q / (double)n + eps);                                                 \
            }                                                                                           \
            const T m = (T)mean, iv = (T)rstd;                                                          \
            if (dx) {                                                                                   \
                double s1 = 0.0, s2 = 0.0;                                                              \
                _Pragma("omp simd reduction(+ : s1, s2)")                                                \
                for (int64_t j = 0; j < n; j++) {                                                       \
                    T g = gr[j] * sc[j], xh = (xr[j] - m) * iv;                                         \
                    s1 += (double)g;                                                                    \
                    s2 += (double)(g * xh);                                                             \
                }                                                                                       \
                const T a1 = (T)(s1 / (double)n), a2 = (T)(s2 / (double)n);                             \
                T *restrict o = dx + r * n;                                                             \
                _Pragma("omp simd")                                                                      \
                for (int64_t j = 0; j < n; j++) {                                                       \
                    T xh = (xr[j] - m) * iv;                                                            \
                    o[j] = iv * (gr[j] * sc[j] - a1 - xh * a2);                                         \
                }                                                                                       \
            }                                                                                           \
            if (ps) {                                                                                   \
                _Pragma("omp simd")                                                                      \
                for (int64_t j = 0; j < n; j++) ps[j] += (double)(gr[j] * ((xr[j] - m) * iv));          \
            }                                                                                           \
            if (pb) {                                                                                   \
                _Pragma("omp simd")                                                                      \
                for (int64_t j = 0; j < n; j++) pb[j] += (double)gr[j];                                 \
            }                                                                                           \
        }                                                                                               \
    }
DEFINE_LNG(f32, float)
DEFINE_LNG(f64, double)

static ot_status lng_cpu(ot_op_ctx *c) {
    const lng_attr *a = c->attr;
    int axis;
    int64_t rows, n;
    OT_TRY(lng_check(c, &axis, &rows, &n));
    const ot_tensor *dy = c->in[0], *x = c->in[1];
    const ot_dtype lowp = ot_dtype_is_lowp(x->dtype) ? x->dtype : OT_UNDEFINED;
    int is32 = x->dtype == OT_F32 || lowp;
    /* Saved statistics are float32: exact enough for f32 (and 16-bit) X, not for f64
     * (gradient checks), where they are recomputed in double. */
    const ot_tensor *mt = c->n_in > 3 ? c->in[3] : NULL, *it = c->n_in > 4 ? c->in[4] : NULL;
    if (!is32 && ((mt && mt->dtype == OT_F32) || (it && it->dtype == OT_F32))) mt = it = NULL;
    ot_tensor *dxt = c->out[0], *dst = c->n_out > 1 ? c->out[1] : NULL, *dbt = c->n_out > 2 ? c->out[2] : NULL;
    size_t es = ot_dtype_size(x->dtype);
    if (n == 0 || rows == 0) {
        if (dst) memset(dst->data, 0, (size_t)n * es);
        if (dbt) memset(dbt->data, 0, (size_t)n * es);
        return OT_OK;
    }
    void *sown;
    const void *sc = lng_scale(x, axis, c->in[2], &sown);
    int64_t nblk = rows < LN_BLOCKS ? rows : LN_BLOCKS;
    int want_p = dst || dbt;
    double *part = want_p ? calloc((size_t)(nblk * 2 * n), sizeof *part) : NULL;
    /* 16-bit: Scale as f32 ([n]), and per-block f32 buffers for one row of dY, X and dX. */
    float *scf = lowp ? malloc((size_t)n * sizeof *scf) : NULL;
    float *rowbuf = lowp ? malloc((size_t)(nblk * 3 * n) * sizeof *rowbuf) : NULL;
    if (!sc || (want_p && !part) || (lowp && (!scf || !rowbuf))) {
        free(sown);
        free(part);
        free(scf);
        free(rowbuf);
        return ot_errorf(OT_E_NOMEM, "%s: out of memory for %lld x %lld partial sums", ot_op_label(c),
                         (long long)nblk, (long long)n);
    }
    if (lowp) ot_lowp_to_f32_n(scf, sc, lowp, (size_t)n);
    int par = rows * n > PAR_WORK;
    void *dx = dxt ? dxt->data : NULL;
    double eps = (double)a->epsilon;
    /* Blocks are fixed by the shape only, so the sums below do not depend on the thread count. */
#pragma omp parallel for schedule(dynamic, 1) if (par && nblk > 1)
    for (int64_t b = 0; b < nblk; b++) {
        int64_t r0 = rows * b / nblk, r1 = rows * (b + 1) / nblk;
        double *ps = dst ? part + b * 2 * n : NULL, *pb = dbt ? part + b * 2 * n + n : NULL;
        if (lowp) { /* row by row through the f32 kernel: same sums, in the same order */
            float *gb = rowbuf + b * 3 * n, *xb = gb + n, *ob = gb + 2 * n;
            for (int64_t r = r0; r < r1; r++) {
                ot_tensor mv, iv;
                if (mt && it) {
                    mv = *mt, iv = *it;
                    mv.data = (char *)mt->data + (size_t)r * ot_dtype_size(mt->dtype);
                    iv.data = (char *)it->data + (size_t)r * ot_dtype_size(it->dtype);
                }
                ot_lowp_to_f32_n(gb, (const uint16_t *)dy->data + r * n, lowp, (size_t)n);
                ot_lowp_to_f32_n(xb, (const uint16_t *)x->data + r * n, lowp, (size_t)n);
                lng_rows_f32(gb, xb, scf, mt && it ? &mv : NULL, mt && it ? &iv : NULL, dx ? ob : NULL, ps, pb, 0, 1, n,
                             eps);
                if (dx) ot_f32_to_lowp_n((uint16_t *)dx + r * n, lowp, ob, (size_t)n);
            }
        } else if (is32)
            lng_rows_f32(dy->data, x->data, sc, mt, it, dx, ps, pb, r0, r1, n, eps);
        else
            lng_rows_f64(dy->data, x->data, sc, mt, it, dx, ps, pb, r0, r1, n, eps);
    }
    for (int k = 0; k < 2 && want_p; k++) {
        ot_tensor *o = k == 0 ? dst : dbt;
        if (!o) continue;
#pragma omp parallel for schedule(static) if (par)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t b = 0; b < nblk; b++) s += part[b * 2 * n + k * n + j];
            if (lowp) ot_f32_to_lowp_n((uint16_t *)o->data + j, lowp, &(float){(float)s}, 1);
            else if (is32) ((float *)o->data)[j] = (float)s;
            else ((double *)o->data)[j] = s;
        }
    }
    free(part);
    free(sown);
    free(scf);
    free(rowbuf);
    return OT_OK;
}

/* ---- GeluGrad ----------------------------------------------------------------------- */

typedef struct geg_attr {
    int tanh_approx;
} geg_attr;

static ot_status geg_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    geg_attr *a = attr;
    const char *s;
    OT_TRY(ot_attr_string(n, "approximate", "none", &s));
    if (strcmp(s, "none") != 0 && strcmp(s, "tanh") != 0)
        return ot_errorf(OT_E_INVALID, "GeluGrad node '%s': approximate must be \"none\" or \"tanh\", got \"%s\"",
                         n->name ? n->name : "", s);
    a->tanh_approx = strcmp(s, "tanh") == 0;
    return OT_OK;
}

static ot_status geg_infer(ot_op_ctx *c) {
    OT_TRY(check_float_inputs(c, 2, 2));
    return ot_set_out(c, 0, c->in[0]->dtype, c->in[0]->ndim, c->in[0]->dims);
}

#define SQRT_2_PI 0.79788456080286535588  /* sqrt(2/pi) */
#define INV_SQRT_2PI 0.39894228040143267794 /* 1/sqrt(2 pi) */
#define GELU_C 0.044715

/* Exact Gelu: d/dx [x Φ(x)] = Φ(x) + x φ(x).
 * Tanh form, with u = √(2/π)(x + c x³) and s = σ(2u) (so ½(1 + tanh u) = s and
 * 1 − tanh²u = 4 s (1 − s)): d/dx = s + 2 x s (1 − s) √(2/π)(1 + 3c x²). s (1 − s) is
 * even in u and equals e/(1 + e)² with e = exp(−2|u|) ≤ 1: no cancellation in 1 − s for
 * large x and no inf·0 for very negative x. */
static void geg_f32(const float *restrict dy, const float *restrict x, float *restrict dx, int64_t n, int th) {
    if (th) {
#pragma omp parallel for simd schedule(static) if (n > PAR_WORK)
        for (int64_t i = 0; i < n; i++) {
            float v = x[i], u = (float)SQRT_2_PI * (v + (float)GELU_C * v * v * v);
            float s = 1.0f / (1.0f + ot_nn_expf(-2.0f * u));
            float ea = ot_nn_expf(-2.0f * fabsf(u)), ra = 1.0f / (1.0f + ea), s1s = ea * ra * ra; /* s (1 − s) */
            float d = s + 2.0f * v * s1s * (float)SQRT_2_PI * (1.0f + 3.0f * (float)GELU_C * v * v);
            dx[i] = dy[i] * d;
        }
    } else {
#pragma omp parallel for simd schedule(static) if (n > PAR_WORK)
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            float d = ot_nn_normcdf(v) + v * (float)INV_SQRT_2PI * ot_nn_expf(-0.5f * v * v);
            dx[i] = dy[i] * d;
        }
    }
}

static void geg_f64(const double *restrict dy, const double *restrict x, double *restrict dx, int64_t n, int th) {
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t i = 0; i < n; i++) {
        double v = x[i], d;
        if (th) {
            double u = SQRT_2_PI * (v + GELU_C * v * v * v), s = 1.0 / (1.0 + exp(-2.0 * u));
            double ea = exp(-2.0 * fabs(u)), ra = 1.0 / (1.0 + ea);
            d = s + 2.0 * v * (ea * ra * ra) * SQRT_2_PI * (1.0 + 3.0 * GELU_C * v * v);
        } else {
            d = 0.5 * erfc(-v * 0.70710678118654752440) + v * INV_SQRT_2PI * exp(-0.5 * v * v);
        }
        dx[i] = dy[i] * d;
    }
}

#define GEG_CHUNK 4096 /* 16-bit elements converted per block (< PAR_WORK: geg_f32 stays serial) */

/* 16-bit dy and x: blocks converted to f32, geg_f32, dx rounded once. */
static void geg_lowp(const uint16_t *dy, const uint16_t *x, uint16_t *dx, ot_dtype t, int64_t n, int th) {
    const int64_t nch = (n + GEG_CHUNK - 1) / GEG_CHUNK;
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t k = 0; k < nch; k++) {
        float gb[GEG_CHUNK], xb[GEG_CHUNK], ob[GEG_CHUNK];
        const int64_t i0 = k * GEG_CHUNK, m = n - i0 < GEG_CHUNK ? n - i0 : GEG_CHUNK;
        ot_lowp_to_f32_n(gb, dy + i0, t, (size_t)m);
        ot_lowp_to_f32_n(xb, x + i0, t, (size_t)m);
        geg_f32(gb, xb, ob, m, th);
        ot_f32_to_lowp_n(dx + i0, t, ob, (size_t)m);
    }
}

static ot_status geg_cpu(ot_op_ctx *c) {
    OT_TRY(check_float_inputs(c, 2, 2));
    const geg_attr *a = c->attr;
    int64_t n = ot_tensor_numel(c->in[0]);
    if (ot_dtype_is_lowp(c->in[0]->dtype))
        geg_lowp(c->in[0]->data, c->in[1]->data, c->out[0]->data, c->in[0]->dtype, n, a->tanh_approx);
    else if (c->in[0]->dtype == OT_F32)
        geg_f32(c->in[0]->data, c->in[1]->data, c->out[0]->data, n, a->tanh_approx);
    else
        geg_f64(c->in[0]->data, c->in[1]->data, c->out[0]->data, n, a->tanh_approx);
    return OT_OK;
}

const ot_op_def ot_ops_grad_nn[] = {
    {.domain = OT_GRAD_NN_DOMAIN, .op_type = "SoftmaxGrad", .since = 1, .until = 1, .min_in = 2, .max_in = 2,
     .attr_size = sizeof(ot_softmax_attr), .parse = smg_parse, .infer = smg_infer, .cpu = smg_cpu},
    {.domain = OT_GRAD_NN_DOMAIN, .op_type = "LogSoftmaxGrad", .since = 1, .until = 1, .min_in = 2, .max_in = 2,
     .attr_size = sizeof(ot_softmax_attr), .parse = smg_parse, .infer = smg_infer, .cpu = smg_cpu},
    {.domain = OT_GRAD_NN_DOMAIN, .op_type = "LayerNormGrad", .since = 1, .until = 1, .min_in = 3, .max_in = 5,
     .attr_size = sizeof(lng_attr), .parse = lng_parse, .infer = lng_infer, .cpu = lng_cpu},
    {.domain = OT_GRAD_NN_DOMAIN, .op_type = "GeluGrad", .since = 1, .until = 1, .min_in = 2, .max_in = 2,
     .attr_size = sizeof(geg_attr), .parse = geg_parse, .infer = geg_infer, .cpu = geg_cpu},
};
const int ot_ops_grad_nn_count = (int)(sizeof ot_ops_grad_nn / sizeof ot_ops_grad_nn[0]);
