/* linalg_internal.h — shared by the linalg family files (linalg*.c): the batched GEMM
 * engine (linalg_blas.c), the strided permute-and-sum helper Einsum uses, the typed
 * attribute structs the table in linalg.c needs for their sizes, and the entry points.
 * Internal to runtime/ops; nothing outside the linalg family includes it. */
#ifndef OT_LINALG_INTERNAL_H
#define OT_LINALG_INTERNAL_H

#include "ophelp.h"

#include "core/lowp.h"

/* ---- batched GEMM engine (linalg_blas.c) ------------------------------------------ */

/* C[b] = op(A[b]) * op(B[b]) for every batch index b, row-major.
 *
 *  - op(A[b]) is M x K: element (m, k) is a[a_off(b) + m*lda + k] (trans_a = 0) or
 *    a[a_off(b) + k*lda + m] (trans_a = 1); likewise op(B[b]) is K x N with ldb.
 *  - The batch index space is bdims[0..nb) (row-major); a_off(b) = sum_d i_d * a_bstride[d]
 *    and the same for B. A stride of 0 broadcasts the operand over that batch dim, so
 *    MatMul's batch broadcasting needs no copies.
 *  - C is contiguous [bdims..., M, N] (ldc = N) and written with `=`.
 *  - dtype: OT_F32 (cblas_sgemm), OT_F64 (cblas_dgemm), OT_I32/OT_U32 and OT_I64/OT_U64
 *    (plain loops, wrap-around arithmetic: two's complement makes the signed and unsigned
 *    results bit-identical), OT_BF16/OT_F16 (linalg_lowp.c: f32 accumulation, one rounding).
 *  - lda must be >= the stored row length (K for trans_a = 0, M for 1), as BLAS requires.
 *
 * Strategy (measured on the 2-core dev machine, see the linalg report): a batch that
 * flattens into one GEMM (B not batched and A's batches stacked row-wise, e.g.
 * [B,S,K] x [K,N]) runs as one BLAS call on all threads; many small GEMMs run as an
 * OpenMP loop over the batch with single-threaded BLAS calls (OpenBLAS's OpenMP build
 * runs single-threaded inside an active parallel region); large batched GEMMs run one
 * after another, each on all threads. */
typedef struct ot_gemm_batch {
    ot_dtype dtype;
    int64_t M, N, K;
    int trans_a, trans_b;
    int64_t lda, ldb;
    int nb;
    int64_t bdims[OT_MAX_DIMS];
    int64_t a_bstride[OT_MAX_DIMS];
    int64_t b_bstride[OT_MAX_DIMS];
    const void *a, *b;
    void *c;
} ot_gemm_batch;

/* Runs the batch. Never fails for the full-precision dtypes listed above (the caller
 * checked the dtype); bf16/f16 can fail with OT_E_NOMEM (f32 temporaries, see
 * ot_gemm_lowp_run); returns OT_E_INTERNAL for anything else. */
ot_status ot_gemm_batch_run(const ot_gemm_batch *g);

/* Coalesces g's batch dims (drops size-1 dims, merges dims contiguous in both operands)
 * into *out (same GEMM, fewer dims) and returns the number of batch items. */
int64_t ot_gemm_batch_coalesce(const ot_gemm_batch *g, ot_gemm_batch *out);

/* Element offsets in A and B of batch item `bi` (row-major over dims[0..nb)). */
void ot_gemm_batch_offsets(int nb, const int64_t *dims, const int64_t *as, const int64_t *bs, int64_t bi,
                           int64_t *ao, int64_t *bo);

/* Forces the batched strategy for benchmarks: 0 = automatic, 1 = OpenMP loop over the
 * batch with single-threaded BLAS, 2 = sequential loop with threaded BLAS. Not thread-safe;
 * tests and benches only. */
void ot_gemm_force_strategy(int s);

/* 1 for the full-precision dtypes the engine handles (f32, f64, integers); Einsum takes
 * exactly these. MatMul and Gemm also take ot_dtype_is_lowp() dtypes. */
int ot_gemm_dtype_ok(ot_dtype t);

/* ---- 16-bit GEMMs (linalg_lowp.c) --------------------------------------------------- */

/* Epilogue of a 16-bit GEMM: Y = alpha * op(A) op(B) + beta * C, C (same dtype as A, B)
 * read at c[m*csm + n*csn] (0 = broadcast); c NULL or beta 0 means no C term. */
typedef struct ot_gemm_epi {
    float alpha, beta;
    const void *c;
    int64_t csm, csn;
} ot_gemm_epi;

/* Runs a bf16 or f16 batch (g->dtype) with f32 accumulation and one rounding of
 * alpha * AB + beta * C (computed in f32) to the 16-bit output. epi NULL means alpha 1 and
 * no C; a C term needs an unbatched GEMM (g->nb == 0 after coalescing). bf16 runs on a
 * cached oneDNN matmul primitive where oneDNN has a native (non-reference) kernel for the
 * shape; f16, and bf16 elsewhere, convert A and B to f32 temporaries and run OpenBLAS
 * sgemm into an f32 temporary that is rounded at the end. OT_E_NOMEM when a temporary
 * cannot be allocated. */
ot_status ot_gemm_lowp_run(const ot_gemm_batch *g, const ot_gemm_epi *epi);

/* The oneDNN half (linalg_lowp_dnnl.c): runs the coalesced bf16 batch g (nbatch >= 1
 * items, M, N, K >= 1; with a C term Y already holds C broadcast to [M, N]) and sets
 * *ran = 1 and impl to the oneDNN implementation name, or sets *ran = 0 and writes nothing
 * when oneDNN has no native kernel for it. */
ot_status ot_dnnl_bf16_gemm(const ot_gemm_batch *g, int64_t nbatch, const ot_gemm_epi *epi, int *ran, char impl[64]);

/* Which implementation ran, for tests and benchmarks (counters are process-wide). */
typedef struct ot_gemm_lowp_stats {
    uint64_t onednn_calls; /* ot_gemm_lowp_run calls served by oneDNN */
    uint64_t f32_calls;    /* calls served by the f32 conversion + sgemm path */
    char impl[64];         /* oneDNN implementation of the last oneDNN call ("" before any) */
} ot_gemm_lowp_stats;
void ot_gemm_lowp_stats_get(ot_gemm_lowp_stats *s);

/* 1: bf16 takes the f32 path even where oneDNN could run it (tests, benchmarks); 0 restores. */
void ot_gemm_lowp_force_f32(int on);

/* ---- strided permute + sum (linalg_einsum.c) ---------------------------------------- */

/* dst (contiguous, shape odims[0..no)) = sum over rdims[0..nr) of src, where output index
 * (o_0..) and reduced index (r_0..) address src at sum o_d*ostride[d] + sum r_d*rstride[d].
 * f32 sums accumulate in double. nr = 0 is a pure permuting copy. */
void ot_strided_sum(ot_dtype dt, void *dst, const void *src, int no, const int64_t *odims, const int64_t *ostride,
                    int nr, const int64_t *rdims, const int64_t *rstride);

/* ---- attribute structs ------------------------------------------------------------ */

typedef struct ot_gemm_attr {
    float alpha, beta;
    int trans_a, trans_b;
} ot_gemm_attr;

#define OT_EINSUM_MAX_TERM 64 /* labels per term, ellipsis counted once */
#define OT_EINSUM_ELLIPSIS 0  /* label code for "..." inside a term; letters are 1..52 */
typedef struct ot_einsum_attr {
    int n_terms;                        /* inputs named on the left-hand side (1 or 2) */
    int len[2];                         /* labels per input term */
    unsigned char term[2][OT_EINSUM_MAX_TERM];
    int out_len;                        /* labels of the output term (explicit or implicit) */
    unsigned char out[OT_EINSUM_MAX_TERM];
    int out_has_ellipsis;
    char equation[256];                 /* for error messages (truncated if longer) */
} ot_einsum_attr;

/* ---- entry points (one file each) --------------------------------------------------- */

ot_status ot_matmul_infer(ot_op_ctx *c);
ot_status ot_matmul_cpu(ot_op_ctx *c);

ot_status ot_gemm_parse(const ot_node *n, int opset, void *attr);
ot_status ot_gemm_infer(ot_op_ctx *c);
ot_status ot_gemm_cpu(ot_op_ctx *c);

ot_status ot_einsum_parse(const ot_node *n, int opset, void *attr);
ot_status ot_einsum_infer(ot_op_ctx *c);
ot_status ot_einsum_cpu(ot_op_ctx *c);

#endif
