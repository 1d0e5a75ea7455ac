/* loss.c — kernels of the loss heads: CausalLMLoss, CrossEntropyLoss, MSELoss and their
 * gradient ops (domain "ai.onnxtune", opset 1; signatures and rules in loss.h).
 *
 * Both cross-entropies run on one "row view" of the logits: row r holds the C (= V) class
 * scores at base(r) + j·stride and has one target label (or none). CausalLMLoss: rows are
 * the positions [..., t], stride 1, target labels[..., t+1]; CrossEntropyLoss: rows are
 * (n, i) of [N, C, inner], stride inner, target labels[n, i].
 *
 * Forward: per counted row, lse = m + log Σ exp(x − m) with m the row maximum (stable);
 * loss_r = lse − x[label]; with the accuracy output wired, a row also scans for its argmax
 * (counted when it equals the label). No softmax is materialised. Rows are split into a fixed number
 * of blocks (a function of the shape only), each summing in double; blocks are added in
 * order, so the loss is deterministic and independent of the thread count.
 * Backward: one pass writing dLogits = (exp(x − lse) − onehot)·dLoss/count (the only copy
 * of the logits' size), zero rows where nothing is counted; lse comes from the forward's
 * optional output when wired, else it is recomputed per row.
 * Labels are validated in both passes; the first bad one (lowest position) is reported.
 * 16-bit (bf16/f16) logits and predictions: rows are converted into per-thread f32 buffers
 * (never an f32 copy of the logits) and computed as in f32; loss, lse and accuracy are
 * float32 outputs, the gradients read a float32 dLoss (under fp16 loss scaling: the scale)
 * and lse, and write 16-bit dLogits / dPred rounded once per element. MSE's pred and target
 * then share the 16-bit dtype.
 * Accumulation rule: all outputs are written with `=`. */
#include "loss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "nn_internal.h"
#include "ophelp.h"

#define PAR_WORK (1 << 15) /* elements below which a call stays single-threaded */
#define BLOCKS 64          /* row blocks of the forward sums (fixed: determinism) */
#define NO_TARGET INT64_MIN

typedef struct loss_attr {
    int64_t ignore_index;
    int causal; /* CausalLMLoss(Grad) */
} loss_attr;

static ot_status loss_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    loss_attr *a = attr;
    a->causal = strncmp(n->op_type, "CausalLM", 8) == 0;
    return ot_attr_int(n, "ignore_index", -100, &a->ignore_index);
}

/* ---- row view ---------------------------------------------------------------------- */

typedef struct row_view {
    int64_t rows, C, inner; /* inner: stride between classes (1 for causal) */
    int64_t S;              /* causal: positions per sequence */
    int causal;
    int64_t ignore;
    const void *labels;
    ot_dtype ldt;
} row_view;

static inline int64_t label_at(const row_view *v, int64_t i) {
    return v->ldt == OT_I64 ? ((const int64_t *)v->labels)[i] : (int64_t)((const int32_t *)v->labels)[i];
}
static inline int64_t row_base(const row_view *v, int64_t r) {
    return v->causal ? r * v->C : (r / v->inner) * v->C * v->inner + r % v->inner;
}
/* The row's target, NO_TARGET when it has none or it is ignored; *pos = its label index. */
static inline int64_t row_target(const row_view *v, int64_t r, int64_t *pos) {
    if (v->causal) {
        if (r % v->S == v->S - 1) return NO_TARGET;
        *pos = r + 1;
    } else {
        *pos = r;
    }
    int64_t l = label_at(v, *pos);
    return l == v->ignore ? NO_TARGET : l;
}

/* Validates logits (input li) and labels (input li+1) and fills the view. */
static ot_status view_of(const ot_op_ctx *c, int li, row_view *v) {
    const loss_attr *a = c->attr;
    OT_TRY(ot_check_input(c, li, OT_UNDEFINED));
    OT_TRY(ot_check_input(c, li + 1, OT_UNDEFINED));
    const ot_tensor *x = c->in[li], *l = c->in[li + 1];
    if (x->dtype != OT_F32 && x->dtype != OT_F64 && !ot_dtype_is_lowp(x->dtype))
        return ot_errorf(OT_E_UNSUPPORTED,
                         "%s: logits dtype %s is not supported (expected float32, float64, bfloat16 or float16)",
                         ot_op_label(c), ot_dtype_name(x->dtype));
    if (l->dtype != OT_I64 && l->dtype != OT_I32)
        return ot_errorf(OT_E_SHAPE, "%s: labels must be int64 or int32, got %s", ot_op_label(c),
                         ot_dtype_name(l->dtype));
    char s1[128], s2[128];
    int ok;
    memset(v, 0, sizeof *v);
    v->causal = a->causal;
    v->ignore = a->ignore_index;
    v->labels = l->data;
    v->ldt = l->dtype;
    if (a->causal) {
        /* logits [..., S, V], labels [..., S] */
        ok = x->ndim >= 2 && l->ndim == x->ndim - 1 && ot_shape_equal(l->ndim, l->dims, l->ndim, x->dims);
        if (!ok)
            return ot_errorf(OT_E_SHAPE, "%s: logits %s and labels %s do not match (expected logits [..., S, V] and "
                             "labels [..., S])", ot_op_label(c), ot_shape_str(s1, sizeof s1, x->ndim, x->dims),
                             ot_shape_str(s2, sizeof s2, l->ndim, l->dims));
        v->C = x->dims[x->ndim - 1];
        v->S = x->dims[x->ndim - 2];
        v->rows = ot_tensor_numel(l);
        v->inner = 1;
    } else {
        /* logits [N, C, d...], labels [N, d...] */
        ok = x->ndim >= 2 && l->ndim == x->ndim - 1 && l->dims[0] == x->dims[0];
        for (int d = 2; ok && d < x->ndim; d++) ok = l->dims[d - 1] == x->dims[d];
        if (!ok)
            return ot_errorf(OT_E_SHAPE, "%s: logits %s and labels %s do not match (expected logits [N, C, d...] and "
                             "labels [N, d...])", ot_op_label(c), ot_shape_str(s1, sizeof s1, x->ndim, x->dims),
                             ot_shape_str(s2, sizeof s2, l->ndim, l->dims));
        v->C = x->dims[1];
        v->rows = ot_tensor_numel(l);
        v->inner = ot_shape_numel(x->ndim - 2, x->dims + 2);
    }
    return OT_OK;
}

/* The error for label index `pos` (the lowest bad one). */
static ot_status bad_label(const ot_op_ctx *c, int li, const row_view *v, int64_t pos) {
    const ot_tensor *l = c->in[li + 1];
    char idx[256];
    int k = snprintf(idx, sizeof idx, "[");
    int64_t rem = pos, sub[OT_MAX_DIMS];
    for (int d = l->ndim - 1; d >= 0; d--) {
        sub[d] = l->dims[d] ? rem % l->dims[d] : 0;
        rem = l->dims[d] ? rem / l->dims[d] : 0;
    }
    for (int d = 0; d < l->ndim && k < (int)sizeof idx - 24; d++)
        k += snprintf(idx + k, sizeof idx - (size_t)k, "%s%lld", d ? ", " : "", (long long)sub[d]);
    snprintf(idx + k, sizeof idx - (size_t)k, "]");
    return ot_errorf(OT_E_INVALID, "%s: label %lld at position %s is outside [0, %lld) and is not ignore_index %lld",
                     ot_op_label(c), (long long)label_at(v, pos), idx, (long long)v->C, (long long)v->ignore);
}

/* Counted rows and the lowest bad label position (-1 if none). Sequential: labels are tiny. */
static int64_t count_rows(const row_view *v, int64_t *bad) {
    int64_t cnt = 0;
    *bad = -1;
    for (int64_t r = 0; r < v->rows; r++) {
        int64_t pos, t = row_target(v, r, &pos);
        if (t == NO_TARGET) continue;
        if (t < 0 || t >= v->C) {
            if (*bad < 0 || pos < *bad) *bad = pos;
            continue;
        }
        cnt++;
    }
    return cnt;
}

static inline double exp_f64(double x) { return exp(x); }

/* lse of one row (stride 1 vectorised, strided otherwise); *mout (when not NULL) receives the
 * row maximum it used (NaNs never win it). */
#define DEFINE_LSE(SFX, T, EXP, MAX, EXP_SIMD)                                                                     \
    static double lse_##SFX(const T *restrict x, int64_t n, int64_t stride, T *mout) {             \
        T m = -INFINITY;                                                                            \
        double s = 0.0;                                                                            \
        if (stride == 1) {                                                                         \
            MAX_SIMD                                                                                \
            for (int64_t j = 0; j < n; j++) m = MAX(m, x[j]);                                       \
            EXP_SIMD                                                                                \
            for (int64_t j = 0; j < n; j++) s += (double)EXP(x[j] - m);                             \
        } else {                                                                                   \
            for (int64_t j = 0; j < n; j++) m = MAX(m, x[j * stride]);                              \
            for (int64_t j = 0; j < n; j++) s += (double)EXP(x[j * stride] - m);                    \
        }                                                                                          \
        if (mout) *mout = m;                                                                       \
        return (double)m + log(s);                                                                 \
    }
/* The max is a compare-select (fmaxf would stay a libm call); a NaN logit still makes the
 * sum, and so the loss, NaN.
 * GCC vectorises the max as an omp simd max-reduction; clang 14 cannot (it would warn that
 * the simd request failed), so it gets no pragma there. EXP_SIMD: only the branch-free
 * float exp vectorises; libm's exp would make an omp simd request fail. */
#if defined(__clang__)
#define MAX_SIMD
#else
#define MAX_SIMD _Pragma("omp simd reduction(max : m)")
#endif
#define SEL_MAX(a, b) ((b) > (a) ? (b) : (a))
DEFINE_LSE(f32, float, ot_nn_expf, SEL_MAX, _Pragma("omp simd reduction(+ : s)"))
DEFINE_LSE(f64, double, exp_f64, SEL_MAX, )

static double row_lse(ot_dtype dt, const void *x, int64_t base, int64_t n, int64_t stride) {
    return dt == OT_F32 ? lse_f32((const float *)x + base, n, stride, NULL)
                        : lse_f64((const double *)x + base, n, stride, NULL);
}
static double elem(ot_dtype dt, const void *x, int64_t i) {
    switch (dt) {
    case OT_F32: return (double)((const float *)x)[i];
    case OT_BF16: return (double)ot_bf16_to_f32(((const uint16_t *)x)[i]);
    case OT_F16: return (double)ot_f16_to_f32(((const uint16_t *)x)[i]);
    default: return ((const double *)x)[i];
    }
}
static void put(ot_dtype dt, void *x, int64_t i, double v) {
    switch (dt) {
    case OT_F32: ((float *)x)[i] = (float)v; break;
    case OT_BF16: ((uint16_t *)x)[i] = ot_f32_to_bf16((float)v); break;
    case OT_F16: ((uint16_t *)x)[i] = ot_f32_to_f16((float)v); break;
    default: ((double *)x)[i] = v; break;
    }
}
/* The dtype of the loss value, lse, dLoss and MSE outputs for logits/predictions of dtype
 * dt: float32 for 16-bit inputs (statistics stay f32), else dt. */
static ot_dtype stat_dtype(ot_dtype dt) { return ot_dtype_is_lowp(dt) ? OT_F32 : dt; }

/* Per-thread f32 row buffers for 16-bit logits (w floats each); NULL on failure. */
static float *row_buffers(int64_t w, int *nthreads) {
#ifdef _OPENMP
    *nthreads = omp_get_max_threads();
#else
    *nthreads = 1;
#endif
    return malloc((size_t)*nthreads * (size_t)(w ? w : 1) * sizeof(float));
}
static float *my_buffer(float *bufs, int64_t w) {
#ifdef _OPENMP
    return bufs + (size_t)omp_get_thread_num() * (size_t)(w ? w : 1);
#else
    (void)w;
    return bufs;
#endif
}
/* Row r of 16-bit logits, converted into buf (contiguous). */
static void load_row(const row_view *v, ot_dtype dt, const void *x, int64_t base, float *buf) {
    const uint16_t *src = (const uint16_t *)x + base;
    if (v->inner == 1) ot_lowp_to_f32_n(buf, src, dt, (size_t)v->C);
    else
        for (int64_t j = 0; j < v->C; j++)
            buf[j] = dt == OT_BF16 ? ot_bf16_to_f32(src[j * v->inner]) : ot_f16_to_f32(src[j * v->inner]);
}

/* ---- CausalLMLoss / CrossEntropyLoss ----------------------------------------------- */

static ot_status xent_infer(ot_op_ctx *c) {
    row_view v;
    OT_TRY(view_of(c, 0, &v));
    const ot_tensor *x = c->in[0], *l = c->in[1];
    OT_TRY(ot_set_out(c, 0, stat_dtype(x->dtype), 0, NULL));
    OT_TRY(ot_set_out(c, 1, stat_dtype(x->dtype), l->ndim, l->dims));
    return ot_set_out(c, 2, OT_F32, 0, NULL);
}

/* Index of the row's maximum; ties -> the lowest index and a NaN counts as the maximum
 * (the first NaN wins), as torch.argmax does. */
/* The argmax of a contiguous f32 row whose lse pass found maximum m (NaNs excluded): a NaN
 * makes the lse NaN, and then the first NaN is the argmax (as in row_argmax); +inf also makes
 * it NaN (inf - inf), and then no NaN is found and the first m (+inf) is. One scan. */
static int64_t argmax_after_lse(const float *restrict x, int64_t n, float m, double lse) {
    if (lse != lse)
        for (int64_t j = 0; j < n; j++)
            if (x[j] != x[j]) return j;
    for (int64_t j = 0; j < n; j++)
        if (x[j] == m) return j;
    return 0;
}

static int64_t row_argmax(ot_dtype dt, const void *x, int64_t base, int64_t n, int64_t stride) {
    int64_t best = 0;
    double m = n > 0 ? elem(dt, x, base) : 0.0;
    for (int64_t j = 1; j < n && m == m; j++) {
        double e = elem(dt, x, base + j * stride);
        if (e > m || e != e) m = e, best = j;
    }
    return best;
}

static ot_status xent_cpu(ot_op_ctx *c) {
    row_view v;
    OT_TRY(view_of(c, 0, &v));
    const ot_tensor *x = c->in[0];
    ot_tensor *lse_out = c->n_out > 1 ? c->out[1] : NULL, *acc_out = c->n_out > 2 ? c->out[2] : NULL;
    ot_dtype dt = x->dtype, sdt = stat_dtype(dt);
    int64_t bad, cnt = count_rows(&v, &bad);
    if (bad >= 0) return bad_label(c, 0, &v, bad);
    int64_t nb = v.rows < BLOCKS ? v.rows : BLOCKS;
    /* 16-bit logits: each row is converted into this thread's f32 buffer and read from there
     * (no f32 copy of the logits); loss and lse stay f32. */
    const int lowp = ot_dtype_is_lowp(dt);
    int nthr = 1;
    float *bufs = lowp ? row_buffers(v.C, &nthr) : NULL;
    if (lowp && !bufs) return ot_errorf(OT_E_NOMEM, "%s: out of memory for f32 row buffers", ot_op_label(c));
    double part[BLOCKS] = {0};
    int64_t hits[BLOCKS] = {0};
    int par = v.rows * v.C > PAR_WORK;
    if (cnt > 0 && v.C > 0) {
#pragma omp parallel for schedule(dynamic, 1) if (par && nb > 1)
        for (int64_t b = 0; b < nb; b++) {
            int64_t r0 = v.rows * b / nb, r1 = v.rows * (b + 1) / nb;
            double s = 0.0;
            int64_t h = 0;
            for (int64_t r = r0; r < r1; r++) {
                int64_t pos, t = row_target(&v, r, &pos);
                if (t == NO_TARGET) {
                    if (lse_out) put(sdt, lse_out->data, r, 0.0);
                    continue;
                }
                int64_t base = row_base(&v, r), stride = v.inner;
                const void *xr = x->data;
                ot_dtype rdt = dt;
                if (lowp) {
                    float *buf = my_buffer(bufs, v.C);
                    load_row(&v, dt, x->data, base, buf);
                    xr = buf, rdt = OT_F32, base = 0, stride = 1;
                }
                double lse;
                int64_t best = -1;
                if (rdt == OT_F32 && stride == 1) { /* the max of the lse pass serves the argmax */
                    float m;
                    const float *row = (const float *)xr + base;
                    lse = lse_f32(row, v.C, 1, &m);
                    if (acc_out) best = argmax_after_lse(row, v.C, m, lse);
                } else {
                    lse = row_lse(rdt, xr, base, v.C, stride);
                    if (acc_out) best = row_argmax(rdt, xr, base, v.C, stride);
                }
                if (lse_out) put(sdt, lse_out->data, r, lse);
                s += lse - elem(rdt, xr, base + t * stride);
                h += best == t;
            }
            part[b] = s;
            hits[b] = h;
        }
    } else if (lse_out) {
        memset(lse_out->data, 0, (size_t)v.rows * ot_dtype_size(sdt));
    }
    free(bufs);
    double sum = 0.0;
    int64_t hit = 0;
    for (int64_t b = 0; b < nb; b++) sum += part[b], hit += hits[b];
    put(sdt, c->out[0]->data, 0, cnt > 0 ? sum / (double)cnt : 0.0);
    if (acc_out) ((float *)acc_out->data)[0] = cnt > 0 ? (float)((double)hit / (double)cnt) : 0.0f;
    return OT_OK;
}

/* ---- CausalLMLossGrad / CrossEntropyLossGrad --------------------------------------- */

static ot_status dloss_check(const ot_op_ctx *c, ot_dtype dt) {
    OT_TRY(ot_check_input(c, 0, dt));
    if (ot_tensor_numel(c->in[0]) != 1)
        return ot_errorf(OT_E_SHAPE, "%s: dLoss must hold one element, got %lld", ot_op_label(c),
                         (long long)ot_tensor_numel(c->in[0]));
    return OT_OK;
}

static ot_status xent_grad_infer(ot_op_ctx *c) {
    row_view v;
    OT_TRY(view_of(c, 1, &v));
    const ot_tensor *x = c->in[1];
    const ot_dtype sdt = stat_dtype(x->dtype); /* dLoss and lse: f32 for 16-bit logits */
    OT_TRY(dloss_check(c, sdt));
    if (c->n_in > 3 && c->in[3] && (c->in[3]->dtype != sdt || ot_tensor_numel(c->in[3]) != v.rows))
        return ot_errorf(OT_E_SHAPE, "%s: lse must be %s with one value per label (%lld), got %s with %lld",
                         ot_op_label(c), ot_dtype_name(sdt), (long long)v.rows, ot_dtype_name(c->in[3]->dtype),
                         (long long)ot_tensor_numel(c->in[3]));
    return ot_set_out(c, 0, x->dtype, x->ndim, x->dims);
}

#define DEFINE_XENT_ROW(SFX, T, EXP, EXP_SIMD)                                                                 \
    static void xent_row_##SFX(const T *restrict x, T *restrict g, int64_t n, int64_t stride, T lse,   \
                               T scale) {                                                           \
        if (stride == 1) {                                                                         \
            EXP_SIMD                                                                                \
            for (int64_t j = 0; j < n; j++) g[j] = EXP(x[j] - lse) * scale;                         \
        } else {                                                                                   \
            for (int64_t j = 0; j < n; j++) g[j * stride] = EXP(x[j * stride] - lse) * scale;       \
        }                                                                                          \
    }
DEFINE_XENT_ROW(f32, float, ot_nn_expf, _Pragma("omp simd"))
DEFINE_XENT_ROW(f64, double, exp_f64, )

static ot_status xent_grad_cpu(ot_op_ctx *c) {
    row_view v;
    OT_TRY(view_of(c, 1, &v));
    const ot_tensor *x = c->in[1], *lse_in = c->n_in > 3 ? c->in[3] : NULL;
    ot_tensor *dx = c->out[0];
    ot_dtype dt = x->dtype;
    int64_t bad, cnt = count_rows(&v, &bad);
    if (bad >= 0) return bad_label(c, 1, &v, bad);
    if (cnt == 0) { /* nothing counted: the loss is the constant 0 */
        memset(dx->data, 0, ot_tensor_nbytes(dx));
        return OT_OK;
    }
    const ot_dtype sdt = stat_dtype(dt);
    double scale = elem(sdt, c->in[0]->data, 0) / (double)cnt;
    int par = v.rows * v.C > PAR_WORK;
    /* 16-bit logits: the row and its gradient in this thread's f32 buffers (2 C floats),
     * computed as the f32 kernel does, dLogits rounded once per element. */
    const int lowp = ot_dtype_is_lowp(dt);
    int nthr = 1;
    float *bufs = lowp ? row_buffers(2 * v.C, &nthr) : NULL;
    if (lowp && !bufs) return ot_errorf(OT_E_NOMEM, "%s: out of memory for f32 row buffers", ot_op_label(c));
#pragma omp parallel for schedule(static) if (par && v.rows > 1)
    for (int64_t r = 0; r < v.rows; r++) {
        int64_t pos, t = row_target(&v, r, &pos), base = row_base(&v, r);
        if (t == NO_TARGET) {
            if (v.inner == 1) memset((char *)dx->data + base * (int64_t)ot_dtype_size(dt), 0, (size_t)v.C * ot_dtype_size(dt));
            else
                for (int64_t j = 0; j < v.C; j++) put(dt, dx->data, base + j * v.inner, 0.0);
            continue;
        }
        if (lowp) {
            float *xb = my_buffer(bufs, 2 * v.C), *gb = xb + v.C;
            load_row(&v, dt, x->data, base, xb);
            double lse = lse_in ? elem(sdt, lse_in->data, r) : lse_f32(xb, v.C, 1, NULL);
            xent_row_f32(xb, gb, v.C, 1, (float)lse, (float)scale);
            gb[t] = (float)((double)gb[t] - scale);
            uint16_t *dst = (uint16_t *)dx->data + base;
            if (v.inner == 1) ot_f32_to_lowp_n(dst, dt, gb, (size_t)v.C);
            else
                for (int64_t j = 0; j < v.C; j++) put(dt, dst, j * v.inner, gb[j]);
            continue;
        }
        double lse = lse_in ? elem(dt, lse_in->data, r) : row_lse(dt, x->data, base, v.C, v.inner);
        if (dt == OT_F32)
            xent_row_f32((const float *)x->data + base, (float *)dx->data + base, v.C, v.inner, (float)lse,
                         (float)scale);
        else
            xent_row_f64((const double *)x->data + base, (double *)dx->data + base, v.C, v.inner, lse, scale);
        int64_t ti = base + t * v.inner;
        put(dt, dx->data, ti, elem(dt, dx->data, ti) - scale);
    }
    free(bufs);
    return OT_OK;
}

/* ---- MSELoss / MSELossGrad ---------------------------------------------------------- */

/* pred (input pi) and target (pi+1): float32/float64, one shape. */
static ot_status mse_check(const ot_op_ctx *c, int pi) {
    OT_TRY(ot_check_input(c, pi, OT_UNDEFINED));
    OT_TRY(ot_check_input(c, pi + 1, OT_UNDEFINED));
    const ot_tensor *p = c->in[pi], *t = c->in[pi + 1];
    for (int k = 0; k < 2; k++) {
        ot_dtype d = (k ? t : p)->dtype;
        if (d != OT_F32 && d != OT_F64 && !ot_dtype_is_lowp(d))
            return ot_errorf(OT_E_UNSUPPORTED,
                             "%s: %s dtype %s is not supported (expected float32, float64, bfloat16 or float16)",
                             ot_op_label(c), k ? "target" : "pred", ot_dtype_name(d));
    }
    if ((ot_dtype_is_lowp(p->dtype) || ot_dtype_is_lowp(t->dtype)) && p->dtype != t->dtype)
        return ot_errorf(OT_E_SHAPE, "%s: 16-bit pred and target must share one dtype, got %s and %s", ot_op_label(c),
                         ot_dtype_name(p->dtype), ot_dtype_name(t->dtype));
    if (!ot_shape_equal(p->ndim, p->dims, t->ndim, t->dims)) {
        char s1[128], s2[128];
        return ot_errorf(OT_E_SHAPE, "%s: target %s must have pred's shape %s", ot_op_label(c),
                         ot_shape_str(s1, sizeof s1, t->ndim, t->dims), ot_shape_str(s2, sizeof s2, p->ndim, p->dims));
    }
    return OT_OK;
}

static ot_status mse_infer(ot_op_ctx *c) {
    OT_TRY(mse_check(c, 0));
    return ot_set_out(c, 0, stat_dtype(c->in[0]->dtype), 0, NULL);
}

static ot_status mse_cpu(ot_op_ctx *c) {
    OT_TRY(mse_check(c, 0));
    const ot_tensor *p = c->in[0], *t = c->in[1];
    int64_t n = ot_tensor_numel(p), nb = n < BLOCKS ? n : BLOCKS;
    double part[BLOCKS] = {0};
    const void *pd = p->data, *td = t->data;
    ot_dtype pt = p->dtype, tt = t->dtype;
#pragma omp parallel for schedule(static) if (n > PAR_WORK && nb > 1)
    for (int64_t b = 0; b < nb; b++) {
        int64_t i0 = n * b / nb, i1 = n * (b + 1) / nb;
        double s = 0.0;
        if (pt == OT_F32 && tt == OT_F32) {
            const float *restrict a = pd, *restrict e = td;
#pragma omp simd reduction(+ : s)
            for (int64_t i = i0; i < i1; i++) {
                double d = (double)a[i] - (double)e[i];
                s += d * d;
            }
        } else {
            for (int64_t i = i0; i < i1; i++) {
                double d = elem(pt, pd, i) - elem(tt, td, i);
                s += d * d;
            }
        }
        part[b] = s;
    }
    double sum = 0.0;
    for (int64_t b = 0; b < nb; b++) sum += part[b];
    put(stat_dtype(pt), c->out[0]->data, 0, n ? sum / (double)n : 0.0);
    return OT_OK;
}

static ot_status mse_grad_infer(ot_op_ctx *c) {
    OT_TRY(mse_check(c, 1));
    OT_TRY(dloss_check(c, stat_dtype(c->in[1]->dtype)));
    return ot_set_out(c, 0, c->in[1]->dtype, c->in[1]->ndim, c->in[1]->dims);
}

static ot_status mse_grad_cpu(ot_op_ctx *c) {
    OT_TRY(mse_check(c, 1));
    const ot_tensor *p = c->in[1], *t = c->in[2];
    int64_t n = ot_tensor_numel(p);
    if (n == 0) return OT_OK;
    ot_dtype pt = p->dtype, tt = t->dtype;
    double k = 2.0 * elem(stat_dtype(pt), c->in[0]->data, 0) / (double)n;
    void *g = c->out[0]->data;
    if (ot_dtype_is_lowp(pt)) { /* the f32 expression on converted blocks, rounded once */
        const uint16_t *a16 = p->data, *e16 = t->data;
        uint16_t *o16 = g;
        const float kf = (float)k;
        const int64_t nch = (n + 1023) / 1024;
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
        for (int64_t b = 0; b < nch; b++) {
            float ab[1024], eb[1024];
            const int64_t i0 = b * 1024, m = n - i0 < 1024 ? n - i0 : 1024;
            ot_lowp_to_f32_n(ab, a16 + i0, pt, (size_t)m);
            ot_lowp_to_f32_n(eb, e16 + i0, pt, (size_t)m);
#pragma omp simd
            for (int64_t i = 0; i < m; i++) ab[i] = kf * (ab[i] - eb[i]);
            ot_f32_to_lowp_n(o16 + i0, pt, ab, (size_t)m);
        }
    } else if (pt == OT_F32 && tt == OT_F32) {
        const float *restrict a = p->data, *restrict e = t->data;
        float *restrict o = g, kf = (float)k;
#pragma omp parallel for simd schedule(static) if (n > PAR_WORK)
        for (int64_t i = 0; i < n; i++) o[i] = kf * (a[i] - e[i]);
    } else {
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
        for (int64_t i = 0; i < n; i++) put(pt, g, i, k * (elem(pt, p->data, i) - elem(tt, t->data, i)));
    }
    return OT_OK;
}

#define LOSS_ENTRY(OP, NI0, NI1, INFER, CPU)                                                               \
    {.domain = OT_LOSS_DOMAIN, .op_type = OP, .since = 1, .until = 1, .min_in = NI0, .max_in = NI1,         \
     .attr_size = sizeof(loss_attr), .parse = loss_parse, .infer = INFER, .cpu = CPU}

const ot_op_def ot_ops_loss[] = {
    LOSS_ENTRY("CausalLMLoss", 2, 2, xent_infer, xent_cpu),
    LOSS_ENTRY("CausalLMLossGrad", 3, 4, xent_grad_infer, xent_grad_cpu),
    LOSS_ENTRY("CrossEntropyLoss", 2, 2, xent_infer, xent_cpu),
    LOSS_ENTRY("CrossEntropyLossGrad", 3, 4, xent_grad_infer, xent_grad_cpu),
    LOSS_ENTRY("MSELoss", 2, 2, mse_infer, mse_cpu),
    LOSS_ENTRY("MSELossGrad", 3, 3, mse_grad_infer, mse_grad_cpu),
};
const int ot_ops_loss_count = (int)(sizeof ot_ops_loss / sizeof ot_ops_loss[0]);
