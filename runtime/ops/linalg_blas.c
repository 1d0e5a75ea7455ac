/* linalg_blas.c — the batched GEMM engine behind MatMul and Einsum (see linalg_internal.h).
 *
 * Owns: turning a batch of row-major GEMMs with per-batch-dim strides (0 = broadcast) into
 * BLAS calls, and choosing how to spread them over threads. Shapes: C is [batch..., M, N],
 * contiguous. Accumulation rule: C is written with `=` (BLAS beta = 0); the engine never
 * reads C. It never copies or materialises a broadcast operand: batch offsets are index
 * arithmetic. f32/f64 go to OpenBLAS (cblas_sgemm/dgemm); integer types use plain loops
 * with wrap-around arithmetic; bf16/f16 are handed to linalg_lowp.c.
 *
 * Threading: OpenBLAS's OpenMP build sizes its own parallel regions by omp_get_max_threads()
 * and runs single-threaded when called inside an active OpenMP parallel region (its
 * num_cpu_avail() in common_thread.h returns 1 when omp_in_parallel()), so the
 * engine either (a) makes one threaded BLAS call, (b) loops over the batch calling threaded
 * BLAS, or (c) runs an OpenMP loop over the batch whose BLAS calls are single-threaded. */
#include "linalg_internal.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <string.h>

/* Batched strategy. Measured on the 2-core dev machine (OpenBLAS 0.3.21, OpenMP build):
 * spreading the batch over threads with single-threaded BLAS beats threaded BLAS per GEMM
 * for every shape tried when the batch divides evenly over the threads (12 x [256,64]x
 * [64,256]: 0.42 vs 0.74 ms; 12 x [1024,64]x[64,1024]: 7.0 vs 9.8 ms; 4 x 512^3: 3.6 vs
 * 3.8 ms). With an uneven batch the last round leaves threads idle, which only matters
 * when each GEMM is large, so above OT_GEMM_SMALL_MNK (per-GEMM M*N*K) an uneven, short
 * batch goes to threaded BLAS instead. */
#define OT_GEMM_SMALL_MNK (int64_t)(32 * 1024 * 1024)
/* Total flops below which integer loops stay single-threaded. */
#define OT_GEMM_INT_PAR_WORK (int64_t)(1 << 18)

static int forced_strategy;

void ot_gemm_force_strategy(int s) { forced_strategy = s; }

int ot_gemm_dtype_ok(ot_dtype t) {
    return t == OT_F32 || t == OT_F64 || t == OT_I32 || t == OT_U32 || t == OT_I64 || t == OT_U64;
}

/* Integer GEMM: c[m, n] = sum_k a(m, k) * b(k, n) with element strides (sam, sak) and
 * (sbk, sbn). Unsigned arithmetic wraps, which is also the two's complement result for the
 * signed types. Rows run in parallel when the work is large and we are not nested. */
#define DEFINE_INT_GEMM(NAME, T)                                                                        \
    static void NAME(int64_t M, int64_t N, int64_t K, const T *restrict a, int64_t sam, int64_t sak,      \
                     const T *restrict b, int64_t sbk, int64_t sbn, T *restrict c) {                     \
        _Pragma("omp parallel for schedule(static) if (M * N * K > OT_GEMM_INT_PAR_WORK && M > 1)")       \
        for (int64_t m = 0; m < M; m++) {                                                              \
            T *restrict cr = c + m * N;                                                                \
            for (int64_t n = 0; n < N; n++) cr[n] = 0;                                                 \
            for (int64_t k = 0; k < K; k++) {                                                          \
                T av = a[m * sam + k * sak];                                                           \
                const T *restrict br = b + k * sbk;                                                    \
                if (sbn == 1)                                                                          \
                    for (int64_t n = 0; n < N; n++) cr[n] += av * br[n];                               \
                else                                                                                   \
                    for (int64_t n = 0; n < N; n++) cr[n] += av * br[n * sbn];                         \
            }                                                                                          \
        }                                                                                              \
    }
DEFINE_INT_GEMM(gemm_u32, uint32_t)
DEFINE_INT_GEMM(gemm_u64, uint64_t)

/* One GEMM of M rows at the given operand pointers. */
static void gemm_one(const ot_gemm_batch *g, int64_t M, const void *a, const void *b, void *c) {
    const int64_t N = g->N, K = g->K;
    const int64_t sam = g->trans_a ? 1 : g->lda, sak = g->trans_a ? g->lda : 1;
    const int64_t sbk = g->trans_b ? 1 : g->ldb, sbn = g->trans_b ? g->ldb : 1;
    const enum CBLAS_TRANSPOSE ta = g->trans_a ? CblasTrans : CblasNoTrans;
    const enum CBLAS_TRANSPOSE tb = g->trans_b ? CblasTrans : CblasNoTrans;
    switch (g->dtype) {
    case OT_F32:
        cblas_sgemm(CblasRowMajor, ta, tb, (blasint)M, (blasint)N, (blasint)K, 1.0f, a, (blasint)g->lda, b,
                    (blasint)g->ldb, 0.0f, c, (blasint)N);
        break;
    case OT_F64:
        cblas_dgemm(CblasRowMajor, ta, tb, (blasint)M, (blasint)N, (blasint)K, 1.0, a, (blasint)g->lda, b,
                    (blasint)g->ldb, 0.0, c, (blasint)N);
        break;
    case OT_I32:
    case OT_U32: gemm_u32(M, N, K, a, sam, sak, b, sbk, sbn, c); break;
    case OT_I64:
    case OT_U64: gemm_u64(M, N, K, a, sam, sak, b, sbk, sbn, c); break;
    default: break;
    }
}

void ot_gemm_batch_offsets(int nb, const int64_t *dims, const int64_t *as, const int64_t *bs, int64_t bi,
                           int64_t *ao, int64_t *bo) {
    int64_t oa = 0, ob = 0;
    for (int d = nb - 1; d >= 0; d--) {
        int64_t i = bi % dims[d];
        bi /= dims[d];
        oa += i * as[d];
        ob += i * bs[d];
    }
    *ao = oa;
    *bo = ob;
}

int64_t ot_gemm_batch_coalesce(const ot_gemm_batch *g0, ot_gemm_batch *out) {
    ot_gemm_batch g = *g0;
    /* Drop size 1, merge a dim into the previous one when both operands' strides are
     * contiguous across the pair. */
    int nb = 0;
    int64_t nbatch = 1;
    for (int d = 0; d < g0->nb; d++) {
        int64_t n = g0->bdims[d];
        nbatch *= n;
        if (n == 1) continue;
        if (nb > 0 && g.a_bstride[nb - 1] == g0->a_bstride[d] * n && g.b_bstride[nb - 1] == g0->b_bstride[d] * n) {
            g.bdims[nb - 1] *= n;
            g.a_bstride[nb - 1] = g0->a_bstride[d];
            g.b_bstride[nb - 1] = g0->b_bstride[d];
        } else {
            g.bdims[nb] = n;
            g.a_bstride[nb] = g0->a_bstride[d];
            g.b_bstride[nb] = g0->b_bstride[d];
            nb++;
        }
    }
    g.nb = nb;
    *out = g;
    return nbatch;
}

ot_status ot_gemm_batch_run(const ot_gemm_batch *g0) {
    if (ot_dtype_is_lowp(g0->dtype)) return ot_gemm_lowp_run(g0, NULL);
    if (!ot_gemm_dtype_ok(g0->dtype))
        return ot_errorf(OT_E_INTERNAL, "GEMM engine called with unsupported dtype %s", ot_dtype_name(g0->dtype));
    ot_gemm_batch g;
    const int64_t nbatch = ot_gemm_batch_coalesce(g0, &g);
    const int nb = g.nb;
    const int64_t M = g.M, N = g.N, K = g.K;
    if (nbatch == 0 || M == 0 || N == 0) return OT_OK;
    const size_t esz = ot_dtype_size(g.dtype);
    if (K == 0) { /* empty sum: zeros (not left to BLAS, whose beta path varies) */
        memset(g.c, 0, (size_t)(nbatch * M * N) * esz);
        return OT_OK;
    }
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX || g.lda > INT_MAX || g.ldb > INT_MAX)
        return ot_errorf(OT_E_UNSUPPORTED, "GEMM of %lld x %lld x %lld exceeds the BLAS 32-bit index range",
                         (long long)M, (long long)N, (long long)K);
    const char *a = g.a, *b = g.b;
    char *c = g.c;
    const int64_t cstride = M * N;

    /* One GEMM: no batch, or A's batches stacked row-wise over an unbatched B. */
    if (nb == 0) {
        gemm_one(&g, M, a, b, c);
        return OT_OK;
    }
    if (nb == 1 && g.b_bstride[0] == 0 && !g.trans_a && g.a_bstride[0] == M * g.lda &&
        g.bdims[0] * M <= INT_MAX) {
        gemm_one(&g, g.bdims[0] * M, a, b, c);
        return OT_OK;
    }

    int strategy = forced_strategy;
    if (strategy == 0) {
        int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
        int is_int = g.dtype != OT_F32 && g.dtype != OT_F64;
        int even = nbatch % threads == 0 || nbatch >= 8 * (int64_t)threads;
        if (threads > 1 && nbatch >= threads && (is_int || even || M * N * K <= OT_GEMM_SMALL_MNK))
            strategy = 1;
        else
            strategy = 2;
    }
    if (strategy == 1) {
        /* Small GEMMs: spread the batch over threads; BLAS inside runs single-threaded.
         * Dynamic scheduling: a thread that loses its core (other processes, a busy
         * machine) does not hold back the rest of the batch; each item is a whole GEMM, so
         * the scheduling cost is negligible. */
        int par = nbatch > 1 && nbatch * M * N * K > OT_GEMM_INT_PAR_WORK;
#pragma omp parallel for schedule(dynamic) if (par)
        for (int64_t bi = 0; bi < nbatch; bi++) {
            int64_t ao, bo;
            ot_gemm_batch_offsets(nb, g.bdims, g.a_bstride, g.b_bstride, bi, &ao, &bo);
            gemm_one(&g, M, a + ao * (int64_t)esz, b + bo * (int64_t)esz, c + bi * cstride * (int64_t)esz);
        }
    } else {
        for (int64_t bi = 0; bi < nbatch; bi++) {
            int64_t ao, bo;
            ot_gemm_batch_offsets(nb, g.bdims, g.a_bstride, g.b_bstride, bi, &ao, &bo);
            gemm_one(&g, M, a + ao * (int64_t)esz, b + bo * (int64_t)esz, c + bi * cstride * (int64_t)esz);
        }
    }
    return OT_OK;
}
