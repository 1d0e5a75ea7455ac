/* linalg_gemm.c — Gemm: Y = alpha * op(A) * op(B) + beta * C, opsets 7..21.
 *
 * Shapes: op(A) is [M, K] (A is [K, M] when transA), op(B) is [K, N] (B is [N, K] when
 * transB); C is optional from opset 11 (required before) and unidirectionally broadcast
 * to [M, N] ([], [N], [1, N], [M, 1], [M, N], ...). Y is [M, N].
 * bf16/f16 (linalg_lowp.c): alpha * op(A) op(B) + beta * C formed in f32 (f32
 * accumulation) and rounded once to the output dtype.
 * f32/f64: Y is pre-filled with beta * C (broadcast by index arithmetic) and one BLAS call
 * adds alpha * op(A) op(B) with beta = 1; without C (or with beta = 0) BLAS writes Y with
 * beta = 0, so C is never read. Integer dtypes (i32/u32/i64/u64) use the engine's loops and
 * need integral alpha and beta (wrap-around arithmetic). Accumulation rule: Y is written
 * with `=`. */
#include "linalg_internal.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

ot_status ot_gemm_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_gemm_attr *a = attr;
    int64_t ta, tb;
    OT_TRY(ot_attr_float(n, "alpha", 1.0f, &a->alpha));
    OT_TRY(ot_attr_float(n, "beta", 1.0f, &a->beta));
    OT_TRY(ot_attr_int(n, "transA", 0, &ta));
    OT_TRY(ot_attr_int(n, "transB", 0, &tb));
    if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1))
        return ot_errorf(OT_E_INVALID, "%s: transA and transB must be 0 or 1, got %lld and %lld",
                         ot_node_name(n), (long long)ta, (long long)tb);
    a->trans_a = (int)ta;
    a->trans_b = (int)tb;
    return OT_OK;
}

typedef struct gemm_dims {
    int64_t M, N, K;
    int64_t csm, csn; /* C element strides along m and n (0 = broadcast) */
} gemm_dims;

static ot_status gemm_dims_of(const ot_op_ctx *c, gemm_dims *d) {
    const ot_gemm_attr *at = c->attr;
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    OT_TRY(ot_check_input(c, 1, OT_UNDEFINED));
    OT_TRY(ot_check_same_dtype(c, 0, 1));
    const ot_tensor *A = c->in[0], *B = c->in[1];
    const ot_tensor *C = c->n_in > 2 ? c->in[2] : NULL;
    ot_dtype t = A->dtype;
    if (!ot_gemm_dtype_ok(t) && !ot_dtype_is_lowp(t))
        return ot_errorf(OT_E_UNSUPPORTED, "%s: dtype %s is not supported (expected float32, float64, bfloat16, "
                         "float16, int32, int64, uint32 or uint64)", ot_op_label(c), ot_dtype_name(t));
    char s1[128], s2[128], s3[128];
    if (A->ndim != 2 || B->ndim != 2)
        return ot_errorf(OT_E_SHAPE, "%s: A and B must be 2-D, got %s and %s", ot_op_label(c),
                         ot_shape_str(s1, sizeof s1, A->ndim, A->dims), ot_shape_str(s2, sizeof s2, B->ndim, B->dims));
    d->M = at->trans_a ? A->dims[1] : A->dims[0];
    d->K = at->trans_a ? A->dims[0] : A->dims[1];
    int64_t kb = at->trans_b ? B->dims[1] : B->dims[0];
    d->N = at->trans_b ? B->dims[0] : B->dims[1];
    if (d->K != kb)
        return ot_errorf(OT_E_SHAPE, "%s: inner dimensions differ: op(A) is [%lld, %lld] (A %s, transA=%d), op(B) is "
                         "[%lld, %lld] (B %s, transB=%d)", ot_op_label(c), (long long)d->M, (long long)d->K,
                         ot_shape_str(s1, sizeof s1, A->ndim, A->dims), at->trans_a, (long long)kb, (long long)d->N,
                         ot_shape_str(s2, sizeof s2, B->ndim, B->dims), at->trans_b);
    d->csm = d->csn = 0;
    if (C) {
        OT_TRY(ot_check_same_dtype(c, 0, 2));
        int64_t cm = C->ndim == 2 ? C->dims[0] : 1, cn = C->ndim >= 1 ? C->dims[C->ndim - 1] : 1;
        if (C->ndim > 2 || (cm != 1 && cm != d->M) || (cn != 1 && cn != d->N))
            return ot_errorf(OT_E_SHAPE, "%s: C %s cannot be broadcast to the output [%lld, %lld]", ot_op_label(c),
                             ot_shape_str(s3, sizeof s3, C->ndim, C->dims), (long long)d->M, (long long)d->N);
        d->csn = cn == 1 ? 0 : 1;
        d->csm = cm == 1 ? 0 : cn;
    }
    return OT_OK;
}

ot_status ot_gemm_infer(ot_op_ctx *c) {
    gemm_dims d = {0};
    OT_TRY(gemm_dims_of(c, &d));
    int64_t dims[2] = {d.M, d.N};
    return ot_set_out(c, 0, c->in[0]->dtype, 2, dims);
}

/* Y[m, n] = beta * C[m*csm + n*csn]. */
#define DEFINE_PREFILL(NAME, T)                                                                       \
    static void NAME(T *restrict y, const T *restrict cv, T beta, int64_t M, int64_t N, int64_t csm,  \
                     int64_t csn) {                                                                   \
        _Pragma("omp parallel for schedule(static) if (M * N > (1 << 16))")                           \
        for (int64_t m = 0; m < M; m++) {                                                            \
            const T *restrict cr = cv + m * csm;                                                     \
            T *restrict yr = y + m * N;                                                              \
            if (csn)                                                                                 \
                for (int64_t n = 0; n < N; n++) yr[n] = beta * cr[n];                                \
            else                                                                                     \
                for (int64_t n = 0; n < N; n++) yr[n] = beta * cr[0];                                \
        }                                                                                            \
    }
DEFINE_PREFILL(prefill_f32, float)
DEFINE_PREFILL(prefill_f64, double)

/* Integer epilogue: Y = alpha * Y + beta * C, wrap-around. */
#define DEFINE_INT_EPI(NAME, T)                                                                       \
    static void NAME(T *restrict y, const T *restrict cv, T alpha, T beta, int64_t M, int64_t N,      \
                     int64_t csm, int64_t csn) {                                                      \
        for (int64_t m = 0; m < M; m++)                                                              \
            for (int64_t n = 0; n < N; n++)                                                          \
                y[m * N + n] = alpha * y[m * N + n] + (cv ? beta * cv[m * csm + n * csn] : 0);       \
    }
DEFINE_INT_EPI(epi_u32, uint32_t)
DEFINE_INT_EPI(epi_u64, uint64_t)

/* Y = op(A)·op(B) as a batch of one for the GEMM engine (16-bit and integer Gemm). */
static ot_gemm_batch one_gemm(const ot_gemm_attr *at, const ot_tensor *A, const ot_tensor *B, ot_tensor *Y, int64_t M,
                              int64_t N, int64_t K) {
    ot_gemm_batch g = {0};
    g.dtype = A->dtype;
    g.M = M, g.N = N, g.K = K;
    g.trans_a = at->trans_a;
    g.trans_b = at->trans_b;
    g.lda = A->dims[1] > 0 ? A->dims[1] : 1;
    g.ldb = B->dims[1] > 0 ? B->dims[1] : 1;
    g.a = A->data;
    g.b = B->data;
    g.c = Y->data;
    return g;
}

ot_status ot_gemm_cpu(ot_op_ctx *c) {
    const ot_gemm_attr *at = c->attr;
    gemm_dims d = {0};
    OT_TRY(gemm_dims_of(c, &d));
    const ot_tensor *A = c->in[0], *B = c->in[1];
    const ot_tensor *C = c->n_in > 2 ? c->in[2] : NULL;
    ot_tensor *Y = c->out[0];
    const int64_t M = d.M, N = d.N, K = d.K;
    if (M == 0 || N == 0) return OT_OK;
    ot_dtype t = A->dtype;
    size_t esz = ot_dtype_size(t);

    if (ot_dtype_is_lowp(t)) {
        ot_gemm_batch g = one_gemm(at, A, B, Y, M, N, K);
        ot_gemm_epi epi = {.alpha = at->alpha, .beta = at->beta, .c = C ? C->data : NULL, .csm = d.csm, .csn = d.csn};
        ot_status st = ot_gemm_lowp_run(&g, &epi);
        if (st != OT_OK) return ot_error_wrap(st, "%s: ", ot_op_label(c));
        return OT_OK;
    }

    if (t == OT_F32 || t == OT_F64) {
        int use_c = C && at->beta != 0.0f;
        if (use_c) {
            if (t == OT_F32)
                prefill_f32(Y->data, C->data, at->beta, M, N, d.csm, d.csn);
            else
                prefill_f64(Y->data, C->data, (double)at->beta, M, N, d.csm, d.csn);
        }
        if (K == 0 || at->alpha == 0.0f) {
            if (!use_c) memset(Y->data, 0, (size_t)(M * N) * esz);
            return OT_OK;
        }
        if (M > INT_MAX || N > INT_MAX || K > INT_MAX)
            return ot_errorf(OT_E_UNSUPPORTED, "%s: GEMM of %lld x %lld x %lld exceeds the BLAS 32-bit index range",
                             ot_op_label(c), (long long)M, (long long)N, (long long)K);
        const enum CBLAS_TRANSPOSE ta = at->trans_a ? CblasTrans : CblasNoTrans;
        const enum CBLAS_TRANSPOSE tb = at->trans_b ? CblasTrans : CblasNoTrans;
        blasint lda = (blasint)A->dims[1], ldb = (blasint)B->dims[1];
        if (t == OT_F32)
            cblas_sgemm(CblasRowMajor, ta, tb, (blasint)M, (blasint)N, (blasint)K, at->alpha, A->data, lda, B->data,
                        ldb, use_c ? 1.0f : 0.0f, Y->data, (blasint)N);
        else
            cblas_dgemm(CblasRowMajor, ta, tb, (blasint)M, (blasint)N, (blasint)K, (double)at->alpha, A->data, lda,
                        B->data, ldb, use_c ? 1.0 : 0.0, Y->data, (blasint)N);
        return OT_OK;
    }

    /* Integer types: integral alpha and beta only. */
    if (at->alpha != floorf(at->alpha) || at->beta != floorf(at->beta))
        return ot_errorf(OT_E_UNSUPPORTED, "%s: integer Gemm needs integral alpha and beta, got alpha=%g beta=%g",
                         ot_op_label(c), (double)at->alpha, (double)at->beta);
    ot_gemm_batch g = one_gemm(at, A, B, Y, M, N, K);
    OT_TRY(ot_gemm_batch_run(&g));
    int64_t ai = (int64_t)at->alpha, bi = (int64_t)at->beta;
    if (t == OT_I32 || t == OT_U32)
        epi_u32(Y->data, C ? C->data : NULL, (uint32_t)ai, (uint32_t)bi, M, N, d.csm, d.csn);
    else
        epi_u64(Y->data, C ? C->data : NULL, (uint64_t)ai, (uint64_t)bi, M, N, d.csm, d.csn);
    return OT_OK;
}
