/* grad_tensor.c — internal gradient ops of domain "ai.onnxtune" (opset 1) that gradient
 * builders emit for broadcasting, data movement and pointwise activations (trainer/grad/).
 *
 * Owns the table ot_ops_grad_tensor and these ops (f32 and f64; outputs written with `=`,
 * never accumulated into):
 *   ReduceSumTo(x, shape)                         y = x summed down to `shape`, the shape x was
 *        broadcast from (numpy rules: `shape` right-aligned, each dim 1 or equal to x's).
 *   GatherGrad(dy, indices, shape; axis)          y = zeros(shape); y[.., idx[k], ..] += dy[.., k, ..]
 *        (the gradient of Gather's data; repeated indices accumulate; negative ones count
 *        from the end; out-of-range ones are an error naming the node).
 *   SliceGrad(dy, shape, starts, ends, axes?, steps?)  y = zeros(shape) with dy written into
 *        the elements Slice(·, starts, ends, axes, steps) selects (ONNX Slice clamping).
 *   ReluGrad(dy, x)     dy·[x > 0]            SigmoidGrad(dy, y)  dy·y·(1 − y)
 *   TanhGrad(dy, y)     dy·(1 − y²)           AbsGrad(dy, x)      dy·sign(x)  (0 at x = 0)
 * `shape`, `starts`, `ends`, `axes`, `steps` are int64 1-D values that shape inference needs
 * (constant at plan time; builders emit them as initializers).
 *
 * Determinism: every output element is produced by exactly one thread, summing its terms
 * in an order fixed by the shapes alone (ReduceSumTo splits a long reduction into a number
 * of partial sums chosen from the shapes, never from the thread count, and adds the
 * partials in order; GatherGrad sorts the indices by destination row and each row's owner
 * adds its contributions in index order). Results are bit-identical across thread counts.
 * f32 sums accumulate in double.
 *
 * 16-bit (bf16/f16) dy and x: every op accepts them and writes the same 16-bit dtype,
 * computing in f32 and rounding once per output element: ReduceSumTo sums the f32
 * conversions in double like f32, GatherGrad sums each destination row in an f32 buffer,
 * SliceGrad copies bytes, the pointwise gradients run their f32 expression on converted
 * blocks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ophelp.h"
#include "shape.h" /* ot_slice_plan_make, shared with Slice */

/* The `omp simd` loops below are vectorisation requests; clang reports those it cannot honour
 * (under sanitizers, or with a reduction into double) as -Wpass-failed. That is expected,
 * as in elementwise.h, and silenced so -Werror builds with clang too. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#define GT_DOMAIN "ai.onnxtune"
#define GT_PAR_WORK ((int64_t)1 << 15) /* elements below which a kernel stays single-threaded */

static ot_status check_float(const ot_op_ctx *c, int i) {
    OT_TRY(ot_check_input(c, i, OT_UNDEFINED));
    ot_dtype t = c->in[i]->dtype;
    if (t != OT_F32 && t != OT_F64 && !ot_dtype_is_lowp(t))
        return ot_errorf(OT_E_UNSUPPORTED, "%s: input %d has dtype %s; supported: float32, float64, bfloat16, float16",
                         ot_op_label(c), i, ot_dtype_name(t));
    return OT_OK;
}

/* Reads the int64 1-D `shape` input i (a value known at plan time) into dims. */
static ot_status read_shape(const ot_op_ctx *c, int i, int *ndim, int64_t *dims) {
    OT_TRY(ot_require_value(c, i, "shape"));
    if (c->in[i]->ndim != 1)
        return ot_errorf(OT_E_SHAPE, "%s: 'shape' must be 1-D, got rank %d", ot_op_label(c), c->in[i]->ndim);
    OT_TRY(ot_read_ints(c, c->in[i], dims, OT_MAX_DIMS, ndim));
    for (int d = 0; d < *ndim; d++)
        if (dims[d] < 0)
            return ot_errorf(OT_E_SHAPE, "%s: 'shape'[%d] is negative (%lld)", ot_op_label(c), d, (long long)dims[d]);
    return OT_OK;
}

/* ========================================================================================== */
/* ReduceSumTo                                                                               */

#define RST_MAX_SPLIT 64    /* partial sums per output at most */
#define RST_UNIT_WORK 16384 /* elements of x one work unit should cover, roughly */
#define RST_COL_BLOCK 1024  /* columns per work unit when the innermost dim is kept */

static ot_status rst_infer(ot_op_ctx *c) {
    OT_TRY(check_float(c, 0));
    int tn;
    int64_t t[OT_MAX_DIMS];
    OT_TRY(read_shape(c, 1, &tn, t));
    const ot_tensor *x = c->in[0];
    char b1[160], b2[160];
    if (tn > x->ndim)
        return ot_errorf(OT_E_SHAPE, "%s: target shape %s has more dims than the input %s", ot_op_label(c),
                         ot_shape_str(b1, sizeof b1, tn, t), ot_shape_str(b2, sizeof b2, x->ndim, x->dims));
    for (int d = 0; d < tn; d++) {
        int64_t xd = x->dims[x->ndim - tn + d];
        if (t[d] != xd && t[d] != 1)
            return ot_errorf(OT_E_SHAPE, "%s: input %s does not broadcast from target shape %s (dim %d: %lld vs %lld)",
                             ot_op_label(c), ot_shape_str(b2, sizeof b2, x->ndim, x->dims),
                             ot_shape_str(b1, sizeof b1, tn, t), d, (long long)t[d], (long long)xd);
    }
    return ot_set_out(c, 0, x->dtype, tn, t);
}

/* The reduction, after dropping size-1 dims of x and merging neighbours of the same kind:
 * `inner` is the innermost group (kept or reduced, contiguous in x), `k*` the other kept
 * groups and `r*` the other reduced groups, outermost first, with x strides in elements.
 * The output is the row-major product of the kept groups (inner last when kept). */
typedef struct {
    int inner_kept;
    int64_t inner;
    int nk, nr;
    int64_t kdim[OT_MAX_DIMS], kxs[OT_MAX_DIMS], rdim[OT_MAX_DIMS], rxs[OT_MAX_DIMS];
    int64_t nko, nro; /* products of kdim and rdim */
} rst_plan;

static void rst_make_plan(const ot_tensor *x, int tn, const int64_t *t, rst_plan *p) {
    int64_t xs[OT_MAX_DIMS], gl[OT_MAX_DIMS], gs[OT_MAX_DIMS];
    int gk[OT_MAX_DIMS], ng = 0;
    ot_strides(x->ndim, x->dims, xs);
    for (int d = 0; d < x->ndim; d++) {
        int64_t xd = x->dims[d], td = d >= x->ndim - tn ? t[d - (x->ndim - tn)] : 1;
        if (xd == 1) continue;
        int kept = td == xd;
        if (ng > 0 && gk[ng - 1] == kept) { /* contiguous: dropped dims between are size 1 */
            gl[ng - 1] *= xd;
            gs[ng - 1] = xs[d];
        } else {
            gk[ng] = kept, gl[ng] = xd, gs[ng] = xs[d];
            ng++;
        }
    }
    memset(p, 0, sizeof *p);
    p->nko = p->nro = 1;
    if (ng == 0) { /* x has one element: a copy */
        p->inner_kept = 1;
        p->inner = 1;
        return;
    }
    p->inner_kept = gk[ng - 1];
    p->inner = gl[ng - 1];
    for (int g = 0; g < ng - 1; g++) {
        if (gk[g]) {
            p->kdim[p->nk] = gl[g], p->kxs[p->nk++] = gs[g];
            p->nko *= gl[g];
        } else {
            p->rdim[p->nr] = gl[g], p->rxs[p->nr++] = gs[g];
            p->nro *= gl[g];
        }
    }
}

/* x offset of flat index i over (dims, strides). */
static inline int64_t flat_off(int64_t i, int n, const int64_t *dims, const int64_t *xs) {
    int64_t off = 0;
    for (int d = n - 1; d >= 0; d--) {
        off += (i % dims[d]) * xs[d];
        i /= dims[d];
    }
    return off;
}

/* Number of partial sums per output (a function of the shapes only, so results do not
 * depend on the thread count): 1 unless there are few output work units and much to sum. */
static int64_t rst_splits(int64_t units, int64_t work_per_unit, int64_t max_split) {
    if (units >= 64 || units * work_per_unit < GT_PAR_WORK) return 1;
    int64_t s = work_per_unit / RST_UNIT_WORK;
    if (s > RST_MAX_SPLIT) s = RST_MAX_SPLIT;
    if (s > max_split) s = max_split;
    return s < 1 ? 1 : s;
}

/* Kept inner dim: y[ko, j] = Σ_r x[koff(ko) + roff(r) + j]. Work unit (ko, column block,
 * split s) sums rows r in split s's range into acc, then stores it (S == 1) or its partial. */
#define RST_KEPT(NAME, T, ROW, OUT)                                                                         \
    static void NAME(const T *restrict x, T *restrict y, const rst_plan *p, double *part, int64_t S) {      \
        const int64_t L = p->inner, ncb = (L + RST_COL_BLOCK - 1) / RST_COL_BLOCK, ny = p->nko * L;         \
        const int64_t units = p->nko * ncb * S;                                                             \
        const int par = p->nko * p->nro * L >= GT_PAR_WORK && units > 1;                                    \
        _Pragma("omp parallel for schedule(static) if (par)") for (int64_t u = 0; u < units; u++) {         \
            int64_t s = u % S, cb = (u / S) % ncb, ko = u / (S * ncb);                                      \
            int64_t j0 = cb * RST_COL_BLOCK, n = L - j0 < RST_COL_BLOCK ? L - j0 : RST_COL_BLOCK;           \
            int64_t r0 = p->nro * s / S, r1 = p->nro * (s + 1) / S;                                         \
            int64_t koff = flat_off(ko, p->nk, p->kdim, p->kxs) + j0;                                       \
            double acc[RST_COL_BLOCK];                                                                      \
            float fb[RST_COL_BLOCK]; /* 16-bit rows converted (unused for f32/f64) */                       \
            (void)fb;                                                                                       \
            for (int64_t j = 0; j < n; j++) acc[j] = 0;                                                     \
            for (int64_t r = r0; r < r1; r++) {                                                             \
                const T *restrict raw = x + koff + flat_off(r, p->nr, p->rdim, p->rxs);                     \
                const ROW##_T *restrict src = ROW(fb, raw, n);                                              \
                _Pragma("omp simd") for (int64_t j = 0; j < n; j++) acc[j] += src[j];                       \
            }                                                                                               \
            if (S == 1)                                                                                     \
                for (int64_t j = 0; j < n; j++) y[ko * L + j0 + j] = OUT(acc[j]);                           \
            else                                                                                            \
                memcpy(part + s * ny + ko * L + j0, acc, (size_t)n * sizeof(double));                       \
        }                                                                                                   \
        if (S > 1) {                                                                                        \
            _Pragma("omp parallel for schedule(static) if (ny >= GT_PAR_WORK)") for (int64_t i = 0; i < ny; \
                                                                                     i++) {                 \
                double a = 0;                                                                               \
                for (int64_t s = 0; s < S; s++) a += part[s * ny + i];                                      \
                y[i] = OUT(a);                                                                              \
            }                                                                                               \
        }                                                                                                   \
    }

/* Reduced inner dim: y[k] = Σ over the nro·L elements x[koff(k) + roff(r) + j]; split s
 * covers the flat range [N·s/S, N·(s+1)/S) of that set, walking contiguous runs. */
#define RST_REDUCED(NAME, T, ROW, OUT)                                                                      \
    static void NAME(const T *restrict x, T *restrict y, const rst_plan *p, double *part, int64_t S) {      \
        const int64_t L = p->inner, N = p->nro * L, ny = p->nko, units = ny * S;                            \
        const int par = ny * N >= GT_PAR_WORK && units > 1;                                                 \
        _Pragma("omp parallel for schedule(static) if (par)") for (int64_t u = 0; u < units; u++) {         \
            int64_t s = u % S, k = u / S, pos = N * s / S, end = N * (s + 1) / S;                           \
            int64_t koff = flat_off(k, p->nk, p->kdim, p->kxs);                                             \
            double acc = 0;                                                                                 \
            float fb[RST_COL_BLOCK]; /* 16-bit runs converted in pieces (unused for f32/f64) */             \
            (void)fb;                                                                                       \
            while (pos < end) {                                                                             \
                int64_t r = pos / L, j = pos % L, n = L - j < end - pos ? L - j : end - pos;                \
                if (ROW##_PIECE && n > RST_COL_BLOCK) n = RST_COL_BLOCK;                                    \
                const T *restrict raw = x + koff + flat_off(r, p->nr, p->rdim, p->rxs) + j;                 \
                const ROW##_T *restrict src = ROW(fb, raw, n);                                              \
                _Pragma("omp simd reduction(+ : acc)") for (int64_t i = 0; i < n; i++) acc += src[i];       \
                pos += n;                                                                                   \
            }                                                                                               \
            if (S == 1) y[k] = OUT(acc);                                                                    \
            else part[s * ny + k] = acc;                                                                    \
        }                                                                                                   \
        if (S > 1)                                                                                          \
            for (int64_t k = 0; k < ny; k++) {                                                              \
                double a = 0;                                                                               \
                for (int64_t s = 0; s < S; s++) a += part[s * ny + k];                                      \
                y[k] = OUT(a);                                                                              \
            }                                                                                               \
    }

/* ROW(buf, src, n): the row as the sum reads it (ROW_T elements); ROW_PIECE: runs longer
 * than buf are cut (16-bit only). OUT(v): the double sum as stored. 16-bit sums run over
 * the f32 conversions of the elements, in double like f32, and round once (via f32, which
 * is what the f32 kernel followed by a conversion gives). */
#define ROW_ID(buf, src, n) (src)
#define ROW_ID_T float
#define ROW_ID_PIECE 0
#define ROW_ID64_T double
#define ROW_ID64_PIECE 0
#define ROW_ID64(buf, src, n) (src)
#define ROW_BF16(buf, src, n) (ot_bf16_to_f32_n((buf), (src), (size_t)(n)), (const float *)(buf))
#define ROW_BF16_T float
#define ROW_BF16_PIECE 1
#define ROW_F16(buf, src, n) (ot_f16_to_f32_n((buf), (src), (size_t)(n)), (const float *)(buf))
#define ROW_F16_T float
#define ROW_F16_PIECE 1
#define OUT_F32(v) ((float)(v))
#define OUT_F64(v) ((double)(v))
#define OUT_BF16(v) ot_f32_to_bf16((float)(v))
#define OUT_F16(v) ot_f32_to_f16((float)(v))
RST_KEPT(rst_kept_f32, float, ROW_ID, OUT_F32)
RST_KEPT(rst_kept_f64, double, ROW_ID64, OUT_F64)
RST_KEPT(rst_kept_bf16, uint16_t, ROW_BF16, OUT_BF16)
RST_KEPT(rst_kept_f16, uint16_t, ROW_F16, OUT_F16)
RST_REDUCED(rst_reduced_f32, float, ROW_ID, OUT_F32)
RST_REDUCED(rst_reduced_f64, double, ROW_ID64, OUT_F64)
RST_REDUCED(rst_reduced_bf16, uint16_t, ROW_BF16, OUT_BF16)
RST_REDUCED(rst_reduced_f16, uint16_t, ROW_F16, OUT_F16)

static ot_status rst_cpu(ot_op_ctx *c) {
    const ot_tensor *x = c->in[0];
    ot_tensor *y = c->out[0];
    int64_t ny = ot_tensor_numel(y);
    if (ny == 0) return OT_OK;
    if (ot_tensor_numel(x) == 0) { /* a sum over nothing */
        memset(y->data, 0, (size_t)ny * ot_dtype_size(y->dtype));
        return OT_OK;
    }
    rst_plan p;
    rst_make_plan(x, y->ndim, y->dims, &p);
    int64_t S;
    if (p.inner_kept) {
        int64_t units = p.nko * ((p.inner + RST_COL_BLOCK - 1) / RST_COL_BLOCK);
        S = rst_splits(units, p.nro * (p.inner < RST_COL_BLOCK ? p.inner : RST_COL_BLOCK), p.nro);
    } else {
        S = rst_splits(p.nko, p.nro * p.inner, p.nro * p.inner);
    }
    double *part = NULL;
    if (S > 1 && !(part = malloc((size_t)(S * ny) * sizeof *part)))
        return ot_errorf(OT_E_NOMEM, "%s: out of memory for %lld partial sums", ot_op_label(c), (long long)(S * ny));
    if (x->dtype == OT_F32) {
        if (p.inner_kept) rst_kept_f32(x->data, y->data, &p, part, S);
        else rst_reduced_f32(x->data, y->data, &p, part, S);
    } else if (x->dtype == OT_BF16) {
        if (p.inner_kept) rst_kept_bf16(x->data, y->data, &p, part, S);
        else rst_reduced_bf16(x->data, y->data, &p, part, S);
    } else if (x->dtype == OT_F16) {
        if (p.inner_kept) rst_kept_f16(x->data, y->data, &p, part, S);
        else rst_reduced_f16(x->data, y->data, &p, part, S);
    } else {
        if (p.inner_kept) rst_kept_f64(x->data, y->data, &p, part, S);
        else rst_reduced_f64(x->data, y->data, &p, part, S);
    }
    free(part);
    return OT_OK;
}

/* ========================================================================================== */
/* GatherGrad                                                                                */

typedef struct { int64_t axis; } gg_attr;

static ot_status gg_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    return ot_attr_int(n, "axis", 0, &((gg_attr *)attr)->axis);
}

static ot_status gg_infer(ot_op_ctx *c) {
    const gg_attr *a = c->attr;
    OT_TRY(check_float(c, 0));
    OT_TRY(ot_check_input(c, 1, OT_UNDEFINED));
    const ot_tensor *dy = c->in[0], *ix = c->in[1];
    if (ix->dtype != OT_I32 && ix->dtype != OT_I64)
        return ot_errorf(OT_E_SHAPE, "%s: indices must be int32 or int64, got %s", ot_op_label(c),
                         ot_dtype_name(ix->dtype));
    int r;
    int64_t s[OT_MAX_DIMS];
    OT_TRY(read_shape(c, 2, &r, s));
    if (r == 0) return ot_errorf(OT_E_SHAPE, "%s: data shape must have rank >= 1", ot_op_label(c));
    int axis;
    OT_TRY(ot_norm_axis(c, a->axis, r, &axis));
    /* dy must be Gather's output shape: s[:axis] + indices.shape + s[axis+1:] */
    int64_t e[2 * OT_MAX_DIMS];
    int m = 0;
    for (int d = 0; d < axis; d++) e[m++] = s[d];
    for (int d = 0; d < ix->ndim; d++) e[m++] = ix->dims[d];
    for (int d = axis + 1; d < r; d++) e[m++] = s[d];
    if (!ot_shape_equal(m, e, dy->ndim, dy->dims)) {
        char b1[200], b2[200];
        return ot_errorf(OT_E_SHAPE, "%s: dy has shape %s, expected %s (Gather's output for this data and indices)",
                         ot_op_label(c), ot_shape_str(b1, sizeof b1, dy->ndim, dy->dims),
                         ot_shape_str(b2, sizeof b2, m > OT_MAX_DIMS ? OT_MAX_DIMS : m, e));
    }
    return ot_set_out(c, 0, dy->dtype, r, s);
}

/* y row (o, v) = Σ_{k: idx[k] == v, in increasing k} dy row (o, k); rows nobody gathered are
 * zero. order[start[v] .. start[v+1]) lists the k of row v in increasing order. */
#define GG_ROWS(NAME, T)                                                                                       \
    static void NAME(const T *restrict dy, T *restrict y, const int64_t *start, const int64_t *order,          \
                     int64_t outer, int64_t n, int64_t ni, int64_t inner) {                                    \
        const int par = outer * (n + ni) * inner >= GT_PAR_WORK && outer * n > 1;                              \
        _Pragma("omp parallel for schedule(static) if (par)") for (int64_t u = 0; u < outer * n; u++) {        \
            int64_t o = u / n, v = u % n;                                                                      \
            T *restrict dst = y + u * inner;                                                                   \
            int64_t b = start[v], e = start[v + 1];                                                            \
            if (b == e) {                                                                                      \
                memset(dst, 0, (size_t)inner * sizeof(T));                                                     \
                continue;                                                                                      \
            }                                                                                                  \
            memcpy(dst, dy + (o * ni + order[b]) * inner, (size_t)inner * sizeof(T));                          \
            for (int64_t q = b + 1; q < e; q++) {                                                              \
                const T *restrict src = dy + (o * ni + order[q]) * inner;                                      \
                _Pragma("omp simd") for (int64_t j = 0; j < inner; j++) dst[j] += src[j];                      \
            }                                                                                                  \
        }                                                                                                      \
    }
GG_ROWS(gg_rows_f32, float)
GG_ROWS(gg_rows_f64, double)

/* 16-bit dy: each output row sums its contributions in an f32 row buffer, in the same order
 * as gg_rows_f32, and rounds once. */
static void gg_rows_lowp(const uint16_t *restrict dy, uint16_t *restrict y, ot_dtype t, const int64_t *start,
                         const int64_t *order, int64_t outer, int64_t n, int64_t ni, int64_t inner, float *bufs) {
    const int par = outer * (n + ni) * inner >= GT_PAR_WORK && outer * n > 1;
#pragma omp parallel if (par)
    {
#ifdef _OPENMP
        float *acc = bufs + (size_t)omp_get_thread_num() * (size_t)inner * 2;
#else
        float *acc = bufs;
#endif
        float *tmp = acc + inner;
#pragma omp for schedule(static)
        for (int64_t u = 0; u < outer * n; u++) {
            int64_t o = u / n, v = u % n;
            uint16_t *restrict dst = y + u * inner;
            int64_t b = start[v], e = start[v + 1];
            if (b == e) {
                memset(dst, 0, (size_t)inner * sizeof *dst);
                continue;
            }
            if (b + 1 == e) { /* one contribution: a copy, exact */
                memcpy(dst, dy + (o * ni + order[b]) * inner, (size_t)inner * sizeof *dst);
                continue;
            }
            ot_lowp_to_f32_n(acc, dy + (o * ni + order[b]) * inner, t, (size_t)inner);
            for (int64_t q = b + 1; q < e; q++) {
                ot_lowp_to_f32_n(tmp, dy + (o * ni + order[q]) * inner, t, (size_t)inner);
#pragma omp simd
                for (int64_t j = 0; j < inner; j++) acc[j] += tmp[j];
            }
            ot_f32_to_lowp_n(dst, t, acc, (size_t)inner);
        }
    }
}

static ot_status gg_cpu(ot_op_ctx *c) {
    const gg_attr *a = c->attr;
    const ot_tensor *dy = c->in[0], *ix = c->in[1];
    ot_tensor *y = c->out[0];
    int axis;
    OT_TRY(ot_norm_axis(c, a->axis, y->ndim, &axis));
    const int64_t n = y->dims[axis], ni = ot_tensor_numel(ix), outer = ot_shape_numel(axis, y->dims);
    const int64_t inner = ot_shape_numel(y->ndim - axis - 1, y->dims + axis + 1);
    if (ot_tensor_numel(y) == 0) return OT_OK;
    int64_t *start = calloc((size_t)n + 2, sizeof *start), *order = malloc((size_t)(ni ? ni : 1) * sizeof *order);
    int64_t *idx = malloc((size_t)(ni ? ni : 1) * sizeof *idx);
    if (!start || !order || !idx) {
        free(start), free(order), free(idx);
        return ot_errorf(OT_E_NOMEM, "%s: out of memory", ot_op_label(c));
    }
    /* Validate and normalise every index, then a stable counting sort by destination row. */
    for (int64_t k = 0; k < ni; k++) {
        int64_t v = ix->dtype == OT_I64 ? ((const int64_t *)ix->data)[k] : ((const int32_t *)ix->data)[k];
        if (v < -n || v >= n) {
            free(start), free(order), free(idx);
            return ot_errorf(OT_E_INVALID, "%s: index %lld at flat position %lld is out of range for axis %d of size %lld",
                             ot_op_label(c), (long long)v, (long long)k, axis, (long long)n);
        }
        idx[k] = v < 0 ? v + n : v;
        start[idx[k] + 2]++;
    }
    for (int64_t v = 0; v < n; v++) start[v + 2] += start[v + 1];
    for (int64_t k = 0; k < ni; k++) order[start[idx[k] + 1]++] = k; /* start[v+1] runs from row v's begin */
    if (dy->dtype == OT_F32) {
        gg_rows_f32(dy->data, y->data, start, order, outer, n, ni, inner);
    } else if (ot_dtype_is_lowp(dy->dtype)) {
#ifdef _OPENMP
        size_t nt = (size_t)omp_get_max_threads();
#else
        size_t nt = 1;
#endif
        float *bufs = malloc(nt * (size_t)inner * 2 * sizeof *bufs);
        if (!bufs) {
            free(start), free(order), free(idx);
            return ot_errorf(OT_E_NOMEM, "%s: out of memory for f32 row buffers", ot_op_label(c));
        }
        gg_rows_lowp(dy->data, y->data, dy->dtype, start, order, outer, n, ni, inner, bufs);
        free(bufs);
    } else {
        gg_rows_f64(dy->data, y->data, start, order, outer, n, ni, inner);
    }
    free(start), free(order), free(idx);
    return OT_OK;
}

/* ========================================================================================== */
/* SliceGrad                                                                                 */

static ot_status sg_infer(ot_op_ctx *c) {
    OT_TRY(check_float(c, 0));
    int r;
    int64_t s[OT_MAX_DIMS];
    OT_TRY(read_shape(c, 1, &r, s));
    OT_TRY(ot_require_value(c, 2, "starts"));
    OT_TRY(ot_require_value(c, 3, "ends"));
    if (c->n_in > 4 && c->in[4]) OT_TRY(ot_require_value(c, 4, "axes"));
    if (c->n_in > 5 && c->in[5]) OT_TRY(ot_require_value(c, 5, "steps"));
    ot_slice_plan p; /* the elements Slice selects, with shape_slice.c's clamping */
    OT_TRY(ot_slice_plan_make(c, 2, r, s, &p));
    const ot_tensor *dy = c->in[0];
    if (!ot_shape_equal(r, p.count, dy->ndim, dy->dims)) {
        char b1[160], b2[160];
        return ot_errorf(OT_E_SHAPE, "%s: dy has shape %s but the slice selects %s", ot_op_label(c),
                         ot_shape_str(b1, sizeof b1, dy->ndim, dy->dims), ot_shape_str(b2, sizeof b2, r, p.count));
    }
    return ot_set_out(c, 0, dy->dtype, r, s);
}

static ot_status sg_cpu(ot_op_ctx *c) {
    const ot_tensor *dy = c->in[0];
    ot_tensor *y = c->out[0];
    const size_t es = ot_dtype_size(y->dtype);
    const int64_t ny = ot_tensor_numel(y);
    if (ny == 0) return OT_OK;
    ot_slice_plan p;
    OT_TRY(ot_slice_plan_make(c, 2, y->ndim, y->dims, &p));
    /* zeros, then dy's rows scattered into the selected elements (distinct positions) */
    char *restrict yd = y->data;
    const char *restrict src = dy->data;
    const int64_t zc = 65536; /* elements zeroed per chunk */
#pragma omp parallel for schedule(static) if (ny >= 4 * GT_PAR_WORK)
    for (int64_t b = 0; b < ny; b += zc)
        memset(yd + b * (int64_t)es, 0, (size_t)((ny - b < zc ? ny - b : zc) * (int64_t)es));
    if (ot_tensor_numel(dy) == 0) return OT_OK;
    int r = y->ndim;
    int64_t ys[OT_MAX_DIMS], st[OT_MAX_DIMS], base = 0;
    ot_strides(r, y->dims, ys);
    for (int d = 0; d < r; d++) {
        base += p.start[d] * ys[d];
        st[d] = p.step[d] * ys[d];
    }
    const int64_t inner = r ? p.count[r - 1] : 1, ist = r ? st[r - 1] : 1;
    const int64_t rows = ot_tensor_numel(dy) / inner;
    const int par = rows > 1 && rows * inner >= GT_PAR_WORK;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t row = 0; row < rows; row++) {
        int64_t off = base, t = row;
        for (int d = r - 2; d >= 0; d--) {
            off += (t % p.count[d]) * st[d];
            t /= p.count[d];
        }
        const char *s = src + row * inner * (int64_t)es;
        char *o = yd + off * (int64_t)es;
        if (ist == 1) {
            memcpy(o, s, (size_t)(inner * (int64_t)es));
        } else if (es == 8) {
            for (int64_t j = 0; j < inner; j++) memcpy(o + j * ist * 8, s + j * 8, 8);
        } else if (es == 2) {
            for (int64_t j = 0; j < inner; j++) memcpy(o + j * ist * 2, s + j * 2, 2);
        } else {
            for (int64_t j = 0; j < inner; j++) memcpy(o + j * ist * 4, s + j * 4, 4);
        }
    }
    return OT_OK;
}

/* ========================================================================================== */
/* Pointwise activation gradients: out = f(dy, v) elementwise, both of one shape and dtype.  */

static ot_status pw_infer(ot_op_ctx *c) {
    OT_TRY(check_float(c, 0));
    OT_TRY(check_float(c, 1));
    OT_TRY(ot_check_same_dtype(c, 0, 1));
    const ot_tensor *g = c->in[0], *v = c->in[1];
    if (!ot_shape_equal(g->ndim, g->dims, v->ndim, v->dims)) {
        char b1[160], b2[160];
        return ot_errorf(OT_E_SHAPE, "%s: dy %s and input 1 %s must have the same shape", ot_op_label(c),
                         ot_shape_str(b1, sizeof b1, g->ndim, g->dims), ot_shape_str(b2, sizeof b2, v->ndim, v->dims));
    }
    return ot_set_out(c, 0, g->dtype, g->ndim, g->dims);
}

/* d = dy element, a = the other input's element. */
#define PW_CHUNK 1024 /* 16-bit elements converted per block */
#define PW_OP(NAME, EXPR)                                                                                   \
    static ot_status NAME(ot_op_ctx *c) {                                                                   \
        const int64_t n = ot_tensor_numel(c->out[0]);                                                       \
        const ot_dtype t = c->out[0]->dtype;                                                                \
        if (ot_dtype_is_lowp(t)) { /* f32 math on converted blocks, one rounding per element */            \
            const uint16_t *g16 = c->in[0]->data, *v16 = c->in[1]->data;                                    \
            uint16_t *o16 = c->out[0]->data;                                                                \
            const int64_t nch = (n + PW_CHUNK - 1) / PW_CHUNK;                                              \
            _Pragma("omp parallel for schedule(static) if (n >= GT_PAR_WORK)") for (int64_t k = 0; k < nch; \
                                                                                     k++) {                 \
                float gb[PW_CHUNK], vb[PW_CHUNK], ob[PW_CHUNK];                                             \
                const int64_t i0 = k * PW_CHUNK, m = n - i0 < PW_CHUNK ? n - i0 : PW_CHUNK;                 \
                ot_lowp_to_f32_n(gb, g16 + i0, t, (size_t)m);                                               \
                ot_lowp_to_f32_n(vb, v16 + i0, t, (size_t)m);                                               \
                _Pragma("omp simd") for (int64_t i = 0; i < m; i++) {                                       \
                    const float d = gb[i], a = vb[i];                                                       \
                    ob[i] = (EXPR);                                                                         \
                }                                                                                           \
                ot_f32_to_lowp_n(o16 + i0, t, ob, (size_t)m);                                               \
            }                                                                                               \
        } else if (t == OT_F32) {                                                                           \
            const float *restrict g = c->in[0]->data, *restrict v = c->in[1]->data;                         \
            float *restrict o = c->out[0]->data;                                                            \
            _Pragma("omp parallel for simd schedule(static) if (n >= GT_PAR_WORK)") for (int64_t i = 0;     \
                                                                                         i < n; i++) {      \
                const float d = g[i], a = v[i];                                                             \
                o[i] = (EXPR);                                                                              \
            }                                                                                               \
        } else {                                                                                            \
            const double *restrict g = c->in[0]->data, *restrict v = c->in[1]->data;                        \
            double *restrict o = c->out[0]->data;                                                           \
            _Pragma("omp parallel for simd schedule(static) if (n >= GT_PAR_WORK)") for (int64_t i = 0;     \
                                                                                         i < n; i++) {      \
                const double d = g[i], a = v[i];                                                            \
                o[i] = (EXPR);                                                                              \
            }                                                                                               \
        }                                                                                                   \
        return OT_OK;                                                                                       \
    }
PW_OP(relu_grad_cpu, a > 0 ? d : 0)
PW_OP(sigmoid_grad_cpu, d * a * (1 - a))
PW_OP(tanh_grad_cpu, d * (1 - a * a))
PW_OP(abs_grad_cpu, a > 0 ? d : (a < 0 ? -d : 0))

/* ========================================================================================== */

#define BIT(i) (1u << (i))
#define GT_OP(NAME, NMIN, NMAX, INFER, CPU, VALUE_INPUTS)                                                 \
    {.domain = GT_DOMAIN, .op_type = NAME, .since = 1, .until = 1, .min_in = NMIN, .max_in = NMAX,        \
     .infer = INFER, .cpu = CPU, .value_inputs = VALUE_INPUTS}

const ot_op_def ot_ops_grad_tensor[] = {
    GT_OP("ReduceSumTo", 2, 2, rst_infer, rst_cpu, BIT(1)),
    {.domain = GT_DOMAIN, .op_type = "GatherGrad", .since = 1, .until = 1, .min_in = 3, .max_in = 3,
     .attr_size = sizeof(gg_attr), .parse = gg_parse, .infer = gg_infer, .cpu = gg_cpu, .value_inputs = BIT(2)},
    GT_OP("SliceGrad", 4, 6, sg_infer, sg_cpu, BIT(1) | BIT(2) | BIT(3) | BIT(4) | BIT(5)),
    GT_OP("ReluGrad", 2, 2, pw_infer, relu_grad_cpu, 0),
    GT_OP("SigmoidGrad", 2, 2, pw_infer, sigmoid_grad_cpu, 0),
    GT_OP("TanhGrad", 2, 2, pw_infer, tanh_grad_cpu, 0),
    GT_OP("AbsGrad", 2, 2, pw_infer, abs_grad_cpu, 0),
};
const int ot_ops_grad_tensor_count = (int)(sizeof ot_ops_grad_tensor / sizeof ot_ops_grad_tensor[0]);
