/* linalg_lowp.c — bf16 / f16 GEMMs for MatMul and Gemm (see ot_gemm_lowp_run in
 * linalg_internal.h).
 *
 * Numerics (the mixed-precision contract): 16-bit storage, f32 accumulation, and exactly
 * one rounding (nearest even) of alpha * AB + beta * C, formed in f32, to the output dtype.
 *
 * Paths:
 *  - bf16: oneDNN's matmul primitive (linalg_lowp_dnnl.c; AMX or AVX512-BF16), when oneDNN
 *    has a native kernel for the shape.
 *  - f16 (oneDNN 2.6 has no fast f16 CPU matmul), and bf16 where oneDNN declines: A and B
 *    are converted whole to f32 temporaries (the extent the batch strides reach, so a
 *    broadcast operand is converted once), OpenBLAS sgemm (through the f32 batch engine,
 *    same threading strategy) writes an f32 temporary, which is rounded to 16-bit at the
 *    end. Memory: 4 bytes per element of A, B and Y on top of the 16-bit tensors, freed
 *    before returning.
 * Accumulation rule: Y is written with `=`. */
#include "linalg_internal.h"

#include <cblas.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static uint64_t n_onednn, n_f32;
static int force_f32;
static char last_impl[64];
static pthread_mutex_t impl_lock = PTHREAD_MUTEX_INITIALIZER;

void ot_gemm_lowp_stats_get(ot_gemm_lowp_stats *s) {
    s->onednn_calls = __atomic_load_n(&n_onednn, __ATOMIC_RELAXED);
    s->f32_calls = __atomic_load_n(&n_f32, __ATOMIC_RELAXED);
    pthread_mutex_lock(&impl_lock);
    memcpy(s->impl, last_impl, sizeof s->impl);
    pthread_mutex_unlock(&impl_lock);
}

void ot_gemm_lowp_force_f32(int on) { __atomic_store_n(&force_f32, on, __ATOMIC_RELAXED); }

/* Elements of an operand the batch reaches: the last batch item's offset plus one matrix
 * of `rows` stored rows of leading dimension ld and `cols` used columns. */
static int64_t operand_extent(const ot_gemm_batch *g, const int64_t *bstride, int64_t rows, int64_t cols, int64_t ld) {
    int64_t e = (rows - 1) * ld + cols;
    for (int d = 0; d < g->nb; d++) e += (g->bdims[d] - 1) * bstride[d];
    return e;
}

/* Converts n 16-bit elements to f32 (or back), in parallel blocks when large. */
#define CONV_BLOCK (int64_t)(1 << 16)
static void to_f32(float *dst, const uint16_t *src, ot_dtype t, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 4 * CONV_BLOCK)
    for (int64_t i = 0; i < n; i += CONV_BLOCK)
        ot_lowp_to_f32_n(dst + i, src + i, t, (size_t)(n - i < CONV_BLOCK ? n - i : CONV_BLOCK));
}
static void from_f32(uint16_t *dst, const float *src, ot_dtype t, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 4 * CONV_BLOCK)
    for (int64_t i = 0; i < n; i += CONV_BLOCK)
        ot_f32_to_lowp_n(dst + i, t, src + i, (size_t)(n - i < CONV_BLOCK ? n - i : CONV_BLOCK));
}

/* y[m, n] = C[m*csm + n*csn] as 16-bit bits (prefill for oneDNN's sum post-op). */
static void prefill_c16(uint16_t *y, const uint16_t *cv, int64_t M, int64_t N, int64_t csm, int64_t csn) {
#pragma omp parallel for schedule(static) if (M * N > (1 << 16))
    for (int64_t m = 0; m < M; m++) {
        const uint16_t *cr = cv + m * csm;
        for (int64_t n = 0; n < N; n++) y[m * N + n] = cr[n * csn];
    }
}

/* y[m, n] = beta * C[m*csm + n*csn] in f32. */
static void prefill_cf(float *y, const uint16_t *cv, ot_dtype t, float beta, int64_t M, int64_t N, int64_t csm,
                       int64_t csn) {
#pragma omp parallel for schedule(static) if (M * N > (1 << 16))
    for (int64_t m = 0; m < M; m++) {
        const uint16_t *cr = cv + m * csm;
        for (int64_t n = 0; n < N; n++) {
            uint16_t h = cr[n * csn];
            y[m * N + n] = beta * (t == OT_BF16 ? ot_bf16_to_f32(h) : ot_f16_to_f32(h));
        }
    }
}

/* The f32 path: convert, sgemm, round. g is coalesced with nbatch >= 1, M, N, K >= 1. */
static ot_status run_f32(const ot_gemm_batch *g, int64_t nbatch, const ot_gemm_epi *epi) {
    const int64_t M = g->M, N = g->N, K = g->K;
    int64_t ea = operand_extent(g, g->a_bstride, g->trans_a ? K : M, g->trans_a ? M : K, g->lda);
    int64_t eb = operand_extent(g, g->b_bstride, g->trans_b ? N : K, g->trans_b ? K : N, g->ldb);
    int64_t ey = nbatch * M * N;
    float *fa = malloc((size_t)ea * sizeof(float)), *fb = malloc((size_t)eb * sizeof(float));
    float *fy = malloc((size_t)ey * sizeof(float));
    ot_status st = OT_OK;
    if (!fa || !fb || !fy) {
        st = ot_errorf(OT_E_NOMEM, "cannot allocate %lld bytes of f32 temporaries for a %s GEMM",
                       (long long)(4 * (ea + eb + ey)), ot_dtype_name(g->dtype));
        goto out;
    }
    to_f32(fa, g->a, g->dtype, ea);
    to_f32(fb, g->b, g->dtype, eb);
    int use_c = epi && epi->c && epi->beta != 0.0f;
    if (use_c || (epi && epi->alpha != 1.0f)) {
        /* Gemm (unbatched): Y = alpha op(A) op(B) + beta C in one sgemm over the prefill */
        if (g->nb != 0) {
            st = ot_errorf(OT_E_INTERNAL, "16-bit GEMM: epilogue on a batched GEMM");
            goto out;
        }
        if (M > INT_MAX || N > INT_MAX || K > INT_MAX || g->lda > INT_MAX || g->ldb > INT_MAX) {
            st = ot_errorf(OT_E_UNSUPPORTED, "GEMM of %lld x %lld x %lld exceeds the BLAS 32-bit index range",
                           (long long)M, (long long)N, (long long)K);
            goto out;
        }
        if (use_c) prefill_cf(fy, epi->c, g->dtype, epi->beta, M, N, epi->csm, epi->csn);
        cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans, g->trans_b ? CblasTrans : CblasNoTrans,
                    (blasint)M, (blasint)N, (blasint)K, epi->alpha, fa, (blasint)g->lda, fb, (blasint)g->ldb,
                    use_c ? 1.0f : 0.0f, fy, (blasint)N);
    } else {
        ot_gemm_batch f = *g;
        f.dtype = OT_F32;
        f.a = fa;
        f.b = fb;
        f.c = fy;
        st = ot_gemm_batch_run(&f);
        if (st != OT_OK) goto out;
    }
    from_f32(g->c, fy, g->dtype, ey);
    __atomic_add_fetch(&n_f32, 1, __ATOMIC_RELAXED);
out:
    free(fa);
    free(fb);
    free(fy);
    return st;
}

ot_status ot_gemm_lowp_run(const ot_gemm_batch *g0, const ot_gemm_epi *epi) {
    if (!ot_dtype_is_lowp(g0->dtype))
        return ot_errorf(OT_E_INTERNAL, "16-bit GEMM called with dtype %s", ot_dtype_name(g0->dtype));
    ot_gemm_batch g;
    const int64_t nbatch = ot_gemm_batch_coalesce(g0, &g);
    const int64_t M = g.M, N = g.N, K = g.K;
    if (nbatch == 0 || M == 0 || N == 0) return OT_OK;
    int use_c = epi && epi->c && epi->beta != 0.0f;
    if (epi && g.nb != 0 && (use_c || epi->alpha != 1.0f))
        return ot_errorf(OT_E_INTERNAL, "16-bit GEMM: epilogue on a batched GEMM");
    float alpha = epi ? epi->alpha : 1.0f;
    if (K == 0 || alpha == 0.0f) { /* Y = round(beta * C), or zeros */
        int64_t n = nbatch * M * N;
        if (!use_c) {
            memset(g.c, 0, (size_t)n * 2); /* +0 in both formats */
            return OT_OK;
        }
        float *fy = malloc((size_t)n * sizeof(float));
        if (!fy) return ot_errorf(OT_E_NOMEM, "cannot allocate a %lld-element f32 temporary", (long long)n);
        prefill_cf(fy, epi->c, g.dtype, epi->beta, M, N, epi->csm, epi->csn);
        from_f32(g.c, fy, g.dtype, n);
        free(fy);
        return OT_OK;
    }
    if (g.dtype == OT_BF16 && !__atomic_load_n(&force_f32, __ATOMIC_RELAXED)) {
        if (use_c) prefill_c16(g.c, epi->c, M, N, epi->csm, epi->csn);
        int ran = 0;
        char impl[64] = "";
        OT_TRY(ot_dnnl_bf16_gemm(&g, nbatch, epi, &ran, impl));
        if (ran) {
            __atomic_add_fetch(&n_onednn, 1, __ATOMIC_RELAXED);
            pthread_mutex_lock(&impl_lock);
            memcpy(last_impl, impl, sizeof last_impl);
            pthread_mutex_unlock(&impl_lock);
            return OT_OK;
        }
    }
    return run_f32(&g, nbatch, epi);
}
