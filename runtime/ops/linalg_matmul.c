/* linalg_matmul.c — MatMul (numpy matmul semantics), opsets 1..21.
 *
 * Shapes: A [..., M, K] x B [..., K, N] -> Y [broadcast(...), M, N]. A 1-D A is promoted to
 * [1, K] and a 1-D B to [K, 1]; the promoted dim is removed from Y. Batch dims broadcast
 * numpy-style by stride arithmetic in the GEMM engine (linalg_blas.c), never by copies;
 * [B, S, K] x [K, N] runs as a single [B*S, K] x [K, N] GEMM.
 * dtypes: f32 (cblas_sgemm), f64 (cblas_dgemm), i32/u32/i64/u64 (loops, wrap-around),
 * bf16/f16 (linalg_lowp.c: f32 accumulation, one rounding to the output, which has the
 * inputs' dtype). Accumulation rule: Y is written with `=`. */
#include "linalg_internal.h"

typedef struct matmul_shape {
    int64_t M, N, K;
    int nb;
    int64_t bdims[OT_MAX_DIMS];
    int64_t astride[OT_MAX_DIMS], bstride[OT_MAX_DIMS];
    int ndim;
    int64_t dims[OT_MAX_DIMS];
} matmul_shape;

static ot_status matmul_dtype(const ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    OT_TRY(ot_check_input(c, 1, OT_UNDEFINED));
    OT_TRY(ot_check_same_dtype(c, 0, 1));
    ot_dtype t = c->in[0]->dtype;
    if (!ot_gemm_dtype_ok(t) && !ot_dtype_is_lowp(t))
        return ot_errorf(OT_E_UNSUPPORTED, "%s: dtype %s is not supported (expected float32, float64, bfloat16, "
                         "float16, int32, int64, uint32 or uint64)", ot_op_label(c), ot_dtype_name(t));
    return OT_OK;
}

static ot_status matmul_shape_of(const ot_op_ctx *c, matmul_shape *s) {
    const ot_tensor *a = c->in[0], *b = c->in[1];
    char s1[128], s2[128];
    if (a->ndim < 1 || b->ndim < 1)
        return ot_errorf(OT_E_SHAPE, "%s: inputs must have rank >= 1, got %s and %s", ot_op_label(c),
                         ot_shape_str(s1, sizeof s1, a->ndim, a->dims), ot_shape_str(s2, sizeof s2, b->ndim, b->dims));
    int a_vec = a->ndim == 1, b_vec = b->ndim == 1;
    s->M = a_vec ? 1 : a->dims[a->ndim - 2];
    s->K = a->dims[a->ndim - 1];
    int64_t kb = b_vec ? b->dims[0] : b->dims[b->ndim - 2];
    s->N = b_vec ? 1 : b->dims[b->ndim - 1];
    if (s->K != kb)
        return ot_errorf(OT_E_SHAPE, "%s: inner dimensions differ: A is %s (K = %lld), B is %s (K = %lld)",
                         ot_op_label(c), ot_shape_str(s1, sizeof s1, a->ndim, a->dims), (long long)s->K,
                         ot_shape_str(s2, sizeof s2, b->ndim, b->dims), (long long)kb);
    /* Batch dims: A's dims before the last two, B's likewise, right-aligned. */
    int na = a_vec ? 0 : a->ndim - 2, nbb = b_vec ? 0 : b->ndim - 2;
    int nb = na > nbb ? na : nbb;
    int64_t ast = s->M * s->K, bst = s->K * s->N; /* element strides of one batch step */
    /* Strides walk from the innermost batch dim outwards. */
    for (int d = nb - 1; d >= 0; d--) {
        int ia = d - (nb - na), ib = d - (nb - nbb);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return ot_errorf(OT_E_SHAPE, "%s: batch dimensions cannot be broadcast: A is %s, B is %s", ot_op_label(c),
                             ot_shape_str(s1, sizeof s1, a->ndim, a->dims),
                             ot_shape_str(s2, sizeof s2, b->ndim, b->dims));
        s->bdims[d] = da > db ? da : db;
        if (da == 0 || db == 0) s->bdims[d] = 0;
        s->astride[d] = da == 1 ? 0 : ast;
        s->bstride[d] = db == 1 ? 0 : bst;
        ast *= da;
        bst *= db;
    }
    s->nb = nb;
    if (nb + (a_vec ? 0 : 1) + (b_vec ? 0 : 1) > OT_MAX_DIMS)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: output rank exceeds %d", ot_op_label(c), OT_MAX_DIMS);
    s->ndim = 0;
    for (int d = 0; d < nb; d++) s->dims[s->ndim++] = s->bdims[d];
    if (!a_vec) s->dims[s->ndim++] = s->M;
    if (!b_vec) s->dims[s->ndim++] = s->N;
    return OT_OK;
}

ot_status ot_matmul_infer(ot_op_ctx *c) {
    OT_TRY(matmul_dtype(c));
    matmul_shape s = {0};
    OT_TRY(matmul_shape_of(c, &s));
    return ot_set_out(c, 0, c->in[0]->dtype, s.ndim, s.dims);
}

ot_status ot_matmul_cpu(ot_op_ctx *c) {
    OT_TRY(matmul_dtype(c));
    matmul_shape s = {0};
    OT_TRY(matmul_shape_of(c, &s));
    ot_gemm_batch g = {0};
    g.dtype = c->in[0]->dtype;
    g.M = s.M;
    g.N = s.N;
    g.K = s.K;
    g.lda = s.K > 0 ? s.K : 1;
    g.ldb = s.N > 0 ? s.N : 1;
    g.nb = s.nb;
    for (int d = 0; d < s.nb; d++) {
        g.bdims[d] = s.bdims[d];
        g.a_bstride[d] = s.astride[d];
        g.b_bstride[d] = s.bstride[d];
    }
    g.a = c->in[0]->data;
    g.b = c->in[1]->data;
    g.c = c->out[0]->data;
    ot_status st = ot_gemm_batch_run(&g);
    if (st != OT_OK) return ot_error_wrap(st, "%s: ", ot_op_label(c));
    return OT_OK;
}
