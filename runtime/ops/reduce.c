/* reduce.c — the reduce op family: ReduceSum, ReduceMean, ReduceMax (table and kernels).
 * CumSum is registered by the shape family.
 *
 * Axes: an attribute in ReduceSum 1..12 and ReduceMean/ReduceMax 1..17; an optional second
 * input in ReduceSum 13+ and ReduceMean/ReduceMax 18+, whose value must be known at plan
 * time (value_inputs). No axes (absent, or an empty list) reduces over all dims, unless
 * noop_with_empty_axes = 1, which makes the op an identity. Negative axes count from the
 * end; a repeated axis is an error. keepdims (default 1) keeps reduced dims as 1.
 * dtypes: f32, f64, i32, i64, bf16, f16 (16-bit: the input is converted to an f32 copy, the
 * f32 kernels run, each output is rounded once; the copy costs 2x the input in f32 bytes —
 * fine for the small reductions of training graphs). f32/f64 sums accumulate in double (vectorised over several
 * partial sums), integer sums in 64 bits with wrap-around; ReduceMean divides at the end
 * (integer division truncates toward zero). ReduceMax propagates NaN. Over an empty set
 * (a reduced dim of size 0) ReduceSum and ReduceMean give 0 (as ONNX Runtime does; the
 * mean of nothing is undefined in ONNX) and ReduceMax gives the lowest value of the dtype
 * (-inf for floats), as the ONNX spec says since 1.15.
 *
 * Kernels: dims of size 1 are dropped and neighbouring dims of the same kind (kept or
 * reduced) merge, so a call reduces one of: the last axis ([kept, reduced]: a contiguous
 * row per output), a middle/first axis ([kept, reduced, kept]: whole inner rows are
 * accumulated, vectorised along the kept inner dim), everything, or — for interleaved
 * patterns — a generic strided walk. OpenMP splits outputs (or, for a reduction to one
 * value, the input); the row-level loops are built for AVX-512 / AVX2 / baseline with
 * runtime dispatch (OT_RED_CLONES). Accumulation rule: outputs are written with `=`. */
#include "ophelp.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* clang reports `omp simd` loops it cannot vectorise (e.g. float max reductions under
 * strict FP) as -Wpass-failed; that is a performance note, not an error. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#define PAR_WORK (1 << 15) /* input elements below which a call stays single-threaded */
#define CH 256             /* inner columns accumulated together in the middle-axis kernel */

typedef enum { R_SUM, R_MEAN, R_MAX } reduce_kind;

/* Shared by ReduceSum, ReduceMean, ReduceMax (identical attributes); `kind` comes from
 * the op type. */
typedef struct ot_reduce_attr {
    reduce_kind kind;
    int keepdims;
    int noop_with_empty_axes;
    int axes_from_input; /* axes are input 1 (opset split per op, see the table) */
    int n_axes;          /* from the attribute; -1 when absent */
    int64_t axes[OT_MAX_DIMS];
} ot_reduce_attr;

static ot_status reduce_parse(const ot_node *n, int opset, void *attr) {
    ot_reduce_attr *a = attr;
    memset(a, 0, sizeof *a);
    if (strcmp(n->op_type, "ReduceSum") == 0) {
        a->kind = R_SUM;
        a->axes_from_input = opset >= 13;
    } else if (strcmp(n->op_type, "ReduceMean") == 0) {
        a->kind = R_MEAN;
        a->axes_from_input = opset >= 18;
    } else {
        a->kind = R_MAX;
        a->axes_from_input = opset >= 18;
    }
    int64_t v;
    OT_TRY(ot_attr_int(n, "keepdims", 1, &v));
    a->keepdims = v != 0;
    OT_TRY(ot_attr_int(n, "noop_with_empty_axes", 0, &v));
    a->noop_with_empty_axes = v != 0;
    a->n_axes = -1;
    if (!a->axes_from_input) {
        const int64_t *ax;
        int cnt;
        OT_TRY(ot_attr_ints(n, "axes", &ax, &cnt));
        if (cnt > OT_MAX_DIMS)
            return ot_errorf(OT_E_INVALID, "%s: %d axes given, at most %d (the maximum rank) are possible",
                             ot_node_name(n), cnt, OT_MAX_DIMS);
        a->n_axes = cnt;
        for (int i = 0; i < cnt; i++) a->axes[i] = ax[i];
    } else if (ot_node_attr(n, "axes")) {
        return ot_errorf(OT_E_INVALID, "%s: opset %d takes axes as an input, not an attribute", ot_node_name(n), opset);
    }
    return OT_OK;
}

/* reduced[d] for every dim of the input; *identity when the op is a no-op. */
static ot_status reduce_axes(const ot_op_ctx *c, int *reduced, int *identity) {
    const ot_reduce_attr *a = c->attr;
    const ot_tensor *x = c->in[0];
    int64_t axes[OT_MAX_DIMS];
    int n = 0;
    *identity = 0;
    if (a->axes_from_input) {
        if (c->n_in > 1 && c->in[1]) {
            OT_TRY(ot_require_value(c, 1, "axes"));
            OT_TRY(ot_read_ints(c, c->in[1], axes, OT_MAX_DIMS, &n));
        }
    } else if (a->n_axes > 0) {
        n = a->n_axes;
        memcpy(axes, a->axes, (size_t)n * sizeof axes[0]);
    }
    for (int d = 0; d < x->ndim; d++) reduced[d] = n == 0;
    if (n == 0 && a->noop_with_empty_axes) {
        *identity = 1;
        for (int d = 0; d < x->ndim; d++) reduced[d] = 0;
        return OT_OK;
    }
    for (int i = 0; i < n; i++) {
        int ax;
        OT_TRY(ot_norm_axis(c, axes[i], x->ndim, &ax));
        if (x->ndim == 0) continue; /* a scalar: axis 0 / -1 names the scalar itself */
        if (reduced[ax])
            return ot_errorf(OT_E_INVALID, "%s: axis %lld is given twice", ot_op_label(c), (long long)axes[i]);
        reduced[ax] = 1;
    }
    return OT_OK;
}

static ot_status reduce_check(const ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    ot_dtype t = c->in[0]->dtype;
    if (t != OT_F32 && t != OT_F64 && t != OT_I32 && t != OT_I64 && !ot_dtype_is_lowp(t))
        return ot_errorf(OT_E_UNSUPPORTED,
                         "%s: dtype %s is not supported (expected float32, float64, int32, int64, bfloat16 or float16)",
                         ot_op_label(c), ot_dtype_name(t));
    return OT_OK;
}

static ot_status reduce_infer(ot_op_ctx *c) {
    const ot_reduce_attr *a = c->attr;
    OT_TRY(reduce_check(c));
    int reduced[OT_MAX_DIMS], identity;
    OT_TRY(reduce_axes(c, reduced, &identity));
    const ot_tensor *x = c->in[0];
    int64_t dims[OT_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!reduced[d]) dims[nd++] = x->dims[d];
        else if (a->keepdims) dims[nd++] = 1;
    }
    return ot_set_out(c, 0, x->dtype, nd, dims);
}

/* ---- kernels ------------------------------------------------------------------------ */

/* Row-level loops carry OT_RED_CLONES: GCC builds AVX-512 / AVX2 / baseline copies and
 * picks one at load time, whatever -march the build used (GCC on x86-64 Linux only).
 * OpenMP stays in the uncloned drivers. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(OT_NO_CLONES)
#define OT_RED_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), noinline))
#else
#define OT_RED_CLONES __attribute__((noinline))
#endif

/* The generic walk (sum_gen, max_gen) over coalesced groups: kept groups of sizes kd and
 * input strides ks, reduced groups rd / rs. gen_base: the first input element of output o
 * (o row-major over kd). gen_next: moves off to the next element of the reduced set, with
 * idx the odometer over rd (last group fastest, wrapping back to 0). */
static inline int64_t gen_base(int64_t o, int nk, const int64_t *kd, const int64_t *ks) {
    int64_t base = 0, rem = o;
    for (int d = nk - 1; d >= 0; d--) {
        base += (rem % kd[d]) * ks[d];
        rem /= kd[d];
    }
    return base;
}
static inline void gen_next(int64_t *idx, int64_t *off, int nr, const int64_t *rd, const int64_t *rs) {
    for (int d = nr - 1; d >= 0; d--) {
        if (++idx[d] < rd[d]) {
            *off += rs[d];
            return;
        }
        *off -= (rd[d] - 1) * rs[d];
        idx[d] = 0;
    }
}

/* Sum and mean. ACC: accumulator type (double for floats, wrapping uint64 for ints);
 * MEANDIV(acc, cnt) -> T. Rows: one contiguous run reduced to one ACC. Columns: acc[j] +=
 * x[j], one row of a middle-axis block at a time. */
#define DEFINE_SUM(SFX, T, ACC, MEANDIV)                                                                  \
    static inline T sum_fin_##SFX(ACC acc, int64_t cnt, int mean) { return mean ? MEANDIV(acc, cnt) : (T)acc; } \
    OT_RED_CLONES static ACC sum_row_##SFX(const T *restrict x, int64_t n) {                             \
        ACC acc = 0;                                                                                     \
        _Pragma("omp simd reduction(+ : acc)")                                                            \
        for (int64_t j = 0; j < n; j++) acc += (ACC)x[j];                                                \
        return acc;                                                                                      \
    }                                                                                                    \
    OT_RED_CLONES static void sum_cols_##SFX(ACC *restrict acc, const T *restrict x, int64_t mid,          \
                                             int64_t inner, int64_t w) {                                 \
        for (int64_t m = 0; m < mid; m++) {                                                              \
            const T *restrict xr = x + m * inner;                                                        \
            _Pragma("omp simd")                                                                           \
            for (int64_t j = 0; j < w; j++) acc[j] += (ACC)xr[j];                                        \
        }                                                                                                \
    }                                                                                                    \
    static void sum_last_##SFX(const T *x, T *y, int64_t outer, int64_t n, int64_t cnt, int mean) {       \
        if (outer == 1) { /* one output: split the row over threads */                                  \
            int64_t nch = n > PAR_WORK ? (n + PAR_WORK - 1) / PAR_WORK : 1;                              \
            ACC acc = 0;                                                                                 \
            _Pragma("omp parallel for reduction(+ : acc) schedule(static) if (nch > 1)")                  \
            for (int64_t k = 0; k < nch; k++) {                                                          \
                int64_t j0 = k * PAR_WORK, len = n - j0 < PAR_WORK ? n - j0 : PAR_WORK;                  \
                acc += sum_row_##SFX(x + j0, len);                                                       \
            }                                                                                            \
            y[0] = sum_fin_##SFX(acc, cnt, mean);                                                        \
            return;                                                                                      \
        }                                                                                                \
        _Pragma("omp parallel for schedule(static) if (outer * n > PAR_WORK)")                            \
        for (int64_t o = 0; o < outer; o++) y[o] = sum_fin_##SFX(sum_row_##SFX(x + o * n, n), cnt, mean);  \
    }                                                                                                    \
    static void sum_mid_##SFX(const T *x, T *y, int64_t outer, int64_t mid, int64_t inner, int64_t cnt,   \
                              int mean) {                                                                \
        int64_t nch = (inner + CH - 1) / CH, tasks = outer * nch;                                        \
        _Pragma("omp parallel for schedule(static) if (outer * mid * inner > PAR_WORK && tasks > 1)")     \
        for (int64_t t = 0; t < tasks; t++) {                                                            \
            int64_t o = t / nch, j0 = (t % nch) * CH, w = inner - j0 < CH ? inner - j0 : CH;              \
            ACC acc[CH];                                                                                 \
            for (int64_t j = 0; j < w; j++) acc[j] = 0;                                                  \
            sum_cols_##SFX(acc, x + o * mid * inner + j0, mid, inner, w);                                \
            T *restrict yr = y + o * inner + j0;                                                         \
            for (int64_t j = 0; j < w; j++) yr[j] = sum_fin_##SFX(acc[j], cnt, mean);                    \
        }                                                                                                \
    }                                                                                                    \
    static void sum_gen_##SFX(const T *restrict x, T *restrict y, int nk, const int64_t *kd, const int64_t *ks, \
                              int nr, const int64_t *rd, const int64_t *rs, int64_t cnt, int mean) {     \
        int64_t nout = 1;                                                                                \
        for (int d = 0; d < nk; d++) nout *= kd[d];                                                      \
        _Pragma("omp parallel for schedule(static) if (nout * cnt > PAR_WORK && nout > 1)")               \
        for (int64_t o = 0; o < nout; o++) {                                                             \
            const int64_t base = gen_base(o, nk, kd, ks);                                                \
            int64_t idx[OT_MAX_DIMS] = {0}, off = 0;                                                     \
            ACC acc = 0;                                                                                 \
            for (int64_t r = 0; r < cnt; r++) {                                                          \
                acc += (ACC)x[base + off];                                                               \
                gen_next(idx, &off, nr, rd, rs);                                                         \
            }                                                                                            \
            y[o] = sum_fin_##SFX(acc, cnt, mean);                                                        \
        }                                                                                                \
    }

#define FDIV32(acc, cnt) (float)((acc) / (double)(cnt))
#define FDIV64(acc, cnt) ((acc) / (double)(cnt))
#define IDIV32(acc, cnt) (int32_t)((int64_t)(acc) / (cnt))
#define IDIV64(acc, cnt) (int64_t)((int64_t)(acc) / (cnt))
DEFINE_SUM(f32, float, double, FDIV32)
DEFINE_SUM(f64, double, double, FDIV64)
DEFINE_SUM(i32, int32_t, uint64_t, IDIV32)
DEFINE_SUM(i64, int64_t, uint64_t, IDIV64)

/* Max. NaN is tracked by a separate flag so the max itself stays a plain vectorisable
 * reduction; NANV is the dtype's NaN (0 and never used for integers). OpenMP's identity for
 * a max reduction is the type's lowest *finite* value in some runtimes (clang's: -FLT_MAX),
 * so a row of -inf would come back as FINITE_LOWEST; the rare case is rechecked. */
#define DEFINE_MAX(SFX, T, LOWEST, FINITE_LOWEST, NANV)                                                   \
    OT_RED_CLONES static T max_row_##SFX(const T *restrict x, int64_t n) {                               \
        T m = LOWEST;                                                                                    \
        int nan = 0;                                                                                     \
        _Pragma("omp simd reduction(max : m) reduction(| : nan)")                                         \
        for (int64_t j = 0; j < n; j++) {                                                                \
            m = x[j] > m ? x[j] : m;                                                                     \
            nan |= x[j] != x[j];                                                                         \
        }                                                                                                \
        if (m == FINITE_LOWEST && LOWEST != FINITE_LOWEST) {                                             \
            int64_t j = 0;                                                                               \
            while (j < n && x[j] != m) j++;                                                              \
            if (j == n) m = LOWEST; /* no element is FINITE_LOWEST: all were LOWEST (-inf) */           \
        }                                                                                                \
        return nan ? NANV : m;                                                                           \
    }                                                                                                    \
    OT_RED_CLONES static void max_cols_##SFX(T *restrict acc, unsigned char *restrict nan, const T *restrict x, \
                                             int64_t mid, int64_t inner, int64_t w) {                    \
        for (int64_t m = 0; m < mid; m++) {                                                              \
            const T *restrict xr = x + m * inner;                                                        \
            _Pragma("omp simd")                                                                           \
            for (int64_t j = 0; j < w; j++) {                                                            \
                acc[j] = xr[j] > acc[j] ? xr[j] : acc[j];                                                \
                nan[j] |= xr[j] != xr[j];                                                                \
            }                                                                                            \
        }                                                                                                \
    }                                                                                                    \
    static inline T max2_##SFX(T a, T b) { return a != a || b != b ? NANV : a > b ? a : b; }             \
    static void max_last_##SFX(const T *x, T *y, int64_t outer, int64_t n) {                             \
        if (outer == 1) {                                                                                \
            int64_t nch = n > PAR_WORK ? (n + PAR_WORK - 1) / PAR_WORK : 1;                              \
            T part[64];                                                                                  \
            if (nch > 64) nch = 64;                                                                      \
            int64_t step = (n + nch - 1) / nch;                                                          \
            _Pragma("omp parallel for schedule(static) if (nch > 1)")                                     \
            for (int64_t k = 0; k < nch; k++) {                                                          \
                int64_t j0 = k * step, len = n - j0 < step ? n - j0 : step;                              \
                part[k] = len > 0 ? max_row_##SFX(x + j0, len) : LOWEST;                                 \
            }                                                                                            \
            T m = part[0];                                                                               \
            for (int64_t k = 1; k < nch; k++) m = max2_##SFX(m, part[k]);                                \
            y[0] = m;                                                                                    \
            return;                                                                                      \
        }                                                                                                \
        _Pragma("omp parallel for schedule(static) if (outer * n > PAR_WORK)")                            \
        for (int64_t o = 0; o < outer; o++) y[o] = max_row_##SFX(x + o * n, n);                           \
    }                                                                                                    \
    static void max_mid_##SFX(const T *x, T *y, int64_t outer, int64_t mid, int64_t inner) {             \
        int64_t nch = (inner + CH - 1) / CH, tasks = outer * nch;                                        \
        _Pragma("omp parallel for schedule(static) if (outer * mid * inner > PAR_WORK && tasks > 1)")     \
        for (int64_t t = 0; t < tasks; t++) {                                                            \
            int64_t o = t / nch, j0 = (t % nch) * CH, w = inner - j0 < CH ? inner - j0 : CH;              \
            T acc[CH];                                                                                   \
            unsigned char nan[CH];                                                                       \
            for (int64_t j = 0; j < w; j++) acc[j] = LOWEST, nan[j] = 0;                                 \
            max_cols_##SFX(acc, nan, x + o * mid * inner + j0, mid, inner, w);                           \
            T *restrict yr = y + o * inner + j0;                                                         \
            for (int64_t j = 0; j < w; j++) yr[j] = nan[j] ? NANV : acc[j];                              \
        }                                                                                                \
    }                                                                                                    \
    static void max_gen_##SFX(const T *restrict x, T *restrict y, int nk, const int64_t *kd, const int64_t *ks, \
                              int nr, const int64_t *rd, const int64_t *rs, int64_t cnt) {               \
        int64_t nout = 1;                                                                                \
        for (int d = 0; d < nk; d++) nout *= kd[d];                                                      \
        _Pragma("omp parallel for schedule(static) if (nout * cnt > PAR_WORK && nout > 1)")               \
        for (int64_t o = 0; o < nout; o++) {                                                             \
            const int64_t base = gen_base(o, nk, kd, ks);                                                \
            int64_t idx[OT_MAX_DIMS] = {0}, off = 0;                                                     \
            T m = LOWEST;                                                                                \
            int nan = 0;                                                                                 \
            for (int64_t r = 0; r < cnt; r++) {                                                          \
                T v = x[base + off];                                                                     \
                m = v > m ? v : m;                                                                       \
                nan |= v != v;                                                                           \
                gen_next(idx, &off, nr, rd, rs);                                                         \
            }                                                                                            \
            y[o] = nan ? NANV : m;                                                                       \
        }                                                                                                \
    }
DEFINE_MAX(f32, float, -INFINITY, -FLT_MAX, NAN)
DEFINE_MAX(f64, double, -INFINITY, -DBL_MAX, (double)NAN)
DEFINE_MAX(i32, int32_t, INT32_MIN, INT32_MIN, 0)
DEFINE_MAX(i64, int64_t, INT64_MIN, INT64_MIN, 0)

/* The coalesced iteration: groups of merged dims, alternating kept / reduced. */
typedef struct reduce_plan {
    int ng;
    int64_t size[OT_MAX_DIMS];
    int red[OT_MAX_DIMS];
    int64_t stride[OT_MAX_DIMS]; /* input element stride of each group */
} reduce_plan;

static void make_plan(const ot_tensor *x, const int *reduced, reduce_plan *p) {
    p->ng = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (x->dims[d] == 1) continue;
        if (p->ng > 0 && p->red[p->ng - 1] == reduced[d]) {
            p->size[p->ng - 1] *= x->dims[d];
        } else {
            p->size[p->ng] = x->dims[d];
            p->red[p->ng] = reduced[d];
            p->ng++;
        }
    }
    int64_t s = 1;
    for (int g = p->ng - 1; g >= 0; g--) {
        p->stride[g] = s;
        s *= p->size[g];
    }
}

#define DISPATCH(SFX, T)                                                                                  \
    static void run_##SFX(reduce_kind kind, const reduce_plan *p, const T *x, T *y, int64_t cnt) {        \
        int mean = kind == R_MEAN;                                                                       \
        int ng = p->ng;                                                                                  \
        /* [K, R] or [R]: last axis. [K, R, K] or [R, K]: middle axis. */                                \
        if (ng == 1 && p->red[0]) {                                                                      \
            if (kind == R_MAX) max_last_##SFX(x, y, 1, p->size[0]);                                      \
            else sum_last_##SFX(x, y, 1, p->size[0], cnt, mean);                                         \
        } else if (ng == 2 && p->red[1]) {                                                               \
            if (kind == R_MAX) max_last_##SFX(x, y, p->size[0], p->size[1]);                             \
            else sum_last_##SFX(x, y, p->size[0], p->size[1], cnt, mean);                                \
        } else if ((ng == 2 && p->red[0]) || (ng == 3 && p->red[1])) {                                   \
            int64_t outer = ng == 3 ? p->size[0] : 1, mid = p->size[ng - 2], inner = p->size[ng - 1];     \
            if (kind == R_MAX) max_mid_##SFX(x, y, outer, mid, inner);                                   \
            else sum_mid_##SFX(x, y, outer, mid, inner, cnt, mean);                                      \
        } else {                                                                                         \
            int64_t kd[OT_MAX_DIMS], ks[OT_MAX_DIMS], rd[OT_MAX_DIMS], rs[OT_MAX_DIMS];                   \
            int nk = 0, nr = 0;                                                                          \
            for (int g = 0; g < ng; g++) {                                                               \
                if (p->red[g]) rd[nr] = p->size[g], rs[nr++] = p->stride[g];                             \
                else kd[nk] = p->size[g], ks[nk++] = p->stride[g];                                       \
            }                                                                                            \
            if (kind == R_MAX) max_gen_##SFX(x, y, nk, kd, ks, nr, rd, rs, cnt);                         \
            else sum_gen_##SFX(x, y, nk, kd, ks, nr, rd, rs, cnt, mean);                                 \
        }                                                                                                \
    }
DISPATCH(f32, float)
DISPATCH(f64, double)
DISPATCH(i32, int32_t)
DISPATCH(i64, int64_t)

static void fill_empty(ot_dtype t, reduce_kind kind, void *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) switch (t) {
        case OT_F32: ((float *)y)[i] = kind == R_MAX ? -INFINITY : 0.0f; break;
        case OT_F64: ((double *)y)[i] = kind == R_MAX ? -INFINITY : 0.0; break;
        case OT_I32: ((int32_t *)y)[i] = kind == R_MAX ? INT32_MIN : 0; break;
        case OT_I64: ((int64_t *)y)[i] = kind == R_MAX ? INT64_MIN : 0; break;
        case OT_BF16: ((uint16_t *)y)[i] = kind == R_MAX ? 0xFF80u : 0; break; /* -inf, +0 */
        case OT_F16: ((uint16_t *)y)[i] = kind == R_MAX ? 0xFC00u : 0; break;
        default: break;
        }
}

static ot_status reduce_cpu(ot_op_ctx *c) {
    const ot_reduce_attr *a = c->attr;
    OT_TRY(reduce_check(c));
    int reduced[OT_MAX_DIMS], identity;
    OT_TRY(reduce_axes(c, reduced, &identity));
    const ot_tensor *x = c->in[0];
    ot_tensor *y = c->out[0];
    int64_t nout = ot_tensor_numel(y), nin = ot_tensor_numel(x);
    if (nout == 0) return OT_OK;
    int64_t cnt = 1;
    for (int d = 0; d < x->ndim; d++)
        if (reduced[d]) cnt *= x->dims[d];
    if (nin == 0 || cnt == 0) { /* every output reduces an empty set */
        fill_empty(x->dtype, a->kind, y->data, nout);
        return OT_OK;
    }
    reduce_plan p;
    make_plan(x, reduced, &p);
    int any_red = 0;
    for (int g = 0; g < p.ng; g++) any_red |= p.red[g];
    if (identity || !any_red) { /* nothing to combine: each output is one input element */
        memcpy(y->data, x->data, (size_t)nin * ot_dtype_size(x->dtype));
        return OT_OK;
    }
    if (ot_dtype_is_lowp(x->dtype)) { /* f32 copies in, the f32 kernels, one rounding out */
        float *xf = malloc((size_t)nin * sizeof *xf), *yf = malloc((size_t)nout * sizeof *yf);
        if (!xf || !yf) {
            free(xf), free(yf);
            return ot_errorf(OT_E_NOMEM, "%s: out of memory for the f32 copy of %lld elements", ot_op_label(c),
                             (long long)nin);
        }
        ot_lowp_to_f32_n(xf, x->data, x->dtype, (size_t)nin);
        run_f32(a->kind, &p, xf, yf, cnt);
        ot_f32_to_lowp_n(y->data, y->dtype, yf, (size_t)nout);
        free(xf), free(yf);
        return OT_OK;
    }
    switch (x->dtype) {
    case OT_F32: run_f32(a->kind, &p, x->data, y->data, cnt); break;
    case OT_F64: run_f64(a->kind, &p, x->data, y->data, cnt); break;
    case OT_I32: run_i32(a->kind, &p, x->data, y->data, cnt); break;
    case OT_I64: run_i64(a->kind, &p, x->data, y->data, cnt); break;
    default: break;
    }
    return OT_OK;
}

#define ENTRY(OP, LO, HI, MAXIN, VALUES)                                                              \
    {.domain = "", .op_type = OP, .since = LO, .until = HI, .min_in = 1, .max_in = MAXIN,            \
     .attr_size = sizeof(ot_reduce_attr), .parse = reduce_parse, .infer = reduce_infer,              \
     .cpu = reduce_cpu, .value_inputs = VALUES}

const ot_op_def ot_ops_reduce[] = {
    ENTRY("ReduceSum", 1, 12, 1, 0u),   /* axes attribute */
    ENTRY("ReduceSum", 13, 21, 2, 2u),  /* axes input */
    ENTRY("ReduceMean", 1, 17, 1, 0u),
    ENTRY("ReduceMean", 18, 21, 2, 2u),
    ENTRY("ReduceMax", 1, 17, 1, 0u),
    ENTRY("ReduceMax", 18, 21, 2, 2u),
};
const int ot_ops_reduce_count = (int)(sizeof ot_ops_reduce / sizeof ot_ops_reduce[0]);
