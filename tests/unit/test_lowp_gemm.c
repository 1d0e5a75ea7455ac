/* test_lowp_gemm.c — MatMul and Gemm on bf16 and f16 tensors through the registry (parse,
 * infer, CPU kernel; op_harness.h guard bytes), against a double-precision reference
 * computed from the same 16-bit inputs.
 *
 * Tolerance, per output element (u = 2^-8 for bf16, 2^-11 for f16: the unit roundoff of
 * the output format; S = |alpha| * sum_k |a_k b_k| + |beta * c|):
 *     |y - ref| <= u * |ref| + (1 + u) * (K + 2) * 2^-24 * S  (+ 2^-25 for f16 subnormals)
 * The second term bounds f32 accumulation in any order (K - 1 additions, plus the alpha
 * scaling and the beta * C addition; products of 16-bit values are exact in f32 only for
 * bf16, but f32 rounding of an f16 product adds 2^-24 relative, covered by the +2), the
 * first the one final rounding. A kernel that rounded anything to 16-bit before the end
 * (a bf16 accumulator, a bf16 A*B before adding C) breaks it by ~u * S.
 * Also checks that bf16 really runs on oneDNN (its call counter and implementation name)
 * where the CPU has AVX512-BF16, that f16 takes the f32 path, that the forced f32 path
 * gives the same bounds, that thread counts 1 and 2 both work (cached primitives are per
 * thread count), and the dtype errors (mixed dtypes). Einsum (the attention backward's batched
 * products) is checked the same way against the f32 Einsum on the widened inputs. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/lowp.h"
#include "onnxtune/runtime.h"
#include "op_harness.h"
#include "runtime/ops/linalg_internal.h"

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

static double u_of(ot_dtype t) { return t == OT_BF16 ? 0x1p-8 : 0x1p-11; }
static const char *dt_name(ot_dtype t) { return t == OT_BF16 ? "bf16" : "f16"; }

/* 16-bit tensor of values scale * U(-1, 1) + offset, rounded once to the dtype. */
static ot_tensor *rnd16(ot_dtype t, int ndim, const int64_t *dims, float scale) {
    ot_tensor *x = oh_tensor(t, ndim, dims, NULL);
    uint16_t *p = x->data;
    for (int64_t i = 0; i < ot_tensor_numel(x); i++) {
        float f = scale * oh_frand();
        p[i] = t == OT_BF16 ? ot_f32_to_bf16(f) : ot_f32_to_f16(f);
    }
    return x;
}
static double v16(const ot_tensor *x, int64_t i) {
    uint16_t h = ((const uint16_t *)x->data)[i];
    return x->dtype == OT_BF16 ? ot_bf16_to_f32(h) : ot_f16_to_f32(h);
}

/* Compares y against ref with the bound above; s[i] is S for element i. Reports the worst
 * element. Returns 1 when all are within. */
static int within(const ot_tensor *y, const double *ref, const double *s, int64_t n, int64_t K, const char *what) {
    double u = u_of(y->dtype), worst = 0;
    int64_t wi = -1;
    for (int64_t i = 0; i < n; i++) {
        double got = v16(y, i), tol = u * fabs(ref[i]) + (1 + u) * (double)(K + 2) * 0x1p-24 * s[i] + 0x1p-25;
        double r = isfinite(got) ? fabs(got - ref[i]) / tol : INFINITY;
        if (!(r <= worst)) worst = r, wi = i;
    }
    if (worst > 1.0)
        fprintf(stderr, "%s (%s): element %lld = %.9g, ref %.9g, error/bound %.3g\n", what, dt_name(y->dtype),
                (long long)wi, v16(y, wi), ref[wi], worst);
    return worst <= 1.0;
}

/* ---- MatMul -------------------------------------------------------------------------- */

/* numpy matmul reference (1-D promotion, batch broadcasting) in double; out and s have
 * the broadcast output's element count, returned in *numel, and K in *kk. */
static void ref_matmul(const ot_tensor *a, const ot_tensor *b, double *out, double *s, int64_t *numel, int64_t *kk) {
    int ar = a->ndim, br = b->ndim;
    int64_t M = ar == 1 ? 1 : a->dims[ar - 2], K = a->dims[ar - 1], N = br == 1 ? 1 : b->dims[br - 1];
    int na = ar >= 2 ? ar - 2 : 0, nbb = br >= 2 ? br - 2 : 0, nb = na > nbb ? na : nbb;
    int64_t bd[8], total = 1;
    for (int d = 0; d < nb; d++) {
        int ia = d - (nb - na), ib = d - (nb - nbb);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        bd[d] = da > db ? da : db;
        total *= bd[d];
    }
    for (int64_t bi = 0; bi < total; bi++) {
        int64_t idx[8], rem = bi, aoff = 0, boff = 0;
        for (int d = nb - 1; d >= 0; d--) idx[d] = rem % bd[d], rem /= bd[d];
        for (int d = 0; d < na; d++) aoff = aoff * a->dims[d] + (a->dims[d] == 1 ? 0 : idx[d + nb - na]);
        for (int d = 0; d < nbb; d++) boff = boff * b->dims[d] + (b->dims[d] == 1 ? 0 : idx[d + nb - nbb]);
        aoff *= M * K;
        boff *= K * N;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double acc = 0, sa = 0;
                for (int64_t k = 0; k < K; k++) {
                    double p = v16(a, aoff + m * K + k) * v16(b, boff + k * N + n);
                    acc += p;
                    sa += fabs(p);
                }
                out[(bi * M + m) * N + n] = acc;
                s[(bi * M + m) * N + n] = sa;
            }
    }
    *numel = total * M * N;
    *kk = K;
}

/* Runs MatMul on A (ra, da) x B (rb, db) of dtype t; checks dtype, shape, values. */
static void matmul_case(ot_dtype t, int ra, const int64_t *da, int rb, const int64_t *db, int rw, const int64_t *dw) {
    ot_tensor *a = rnd16(t, ra, da, 1.0f), *b = rnd16(t, rb, db, 1.0f), *y = NULL;
    const ot_tensor *in[2] = {a, b};
    char what[160];
    int pos = snprintf(what, sizeof what, "MatMul ");
    pos += (int)strlen(ot_shape_str(what + pos, sizeof what - (size_t)pos, ra, da));
    pos += snprintf(what + pos, sizeof what - (size_t)pos, " x ");
    ot_shape_str(what + pos, sizeof what - (size_t)pos, rb, db);
    CHECK_OK(oh_run("MatMul", 13, NULL, 0, 2, in, &y));
    if (y) {
        CHECK(y->dtype == t && y->ndim == rw);
        for (int d = 0; d < rw && d < y->ndim; d++) CHECK(y->dims[d] == dw[d]);
        int64_t n = ot_tensor_numel(y), ne = 0, K = 0;
        double *ref = malloc((size_t)(n + 1) * sizeof *ref), *s = malloc((size_t)(n + 1) * sizeof *s);
        if (!ref || !s) exit(2);
        ref_matmul(a, b, ref, s, &ne, &K);
        CHECK(ne == n);
        if (!within(y, ref, s, n, K, what)) CHECK(0);
        free(ref), free(s);
    }
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(y);
}

static void test_matmul(ot_dtype t) {
    matmul_case(t, 2, DIMS(1, 1), 2, DIMS(1, 1), 2, DIMS(1, 1));
    matmul_case(t, 2, DIMS(7, 1), 2, DIMS(1, 5), 2, DIMS(7, 5)); /* K = 1 */
    matmul_case(t, 2, DIMS(33, 65), 2, DIMS(65, 17), 2, DIMS(33, 17));
    matmul_case(t, 2, DIMS(3, 300), 2, DIMS(300, 2), 2, DIMS(3, 2));
    matmul_case(t, 2, DIMS(64, 768), 2, DIMS(768, 96), 2, DIMS(64, 96));
    matmul_case(t, 3, DIMS(3, 17, 40), 2, DIMS(40, 24), 3, DIMS(3, 17, 24));       /* [B,S,K] x [K,N] */
    matmul_case(t, 3, DIMS(4, 9, 31), 3, DIMS(4, 31, 13), 3, DIMS(4, 9, 13));      /* batched */
    matmul_case(t, 4, DIMS(2, 3, 5, 16), 4, DIMS(2, 3, 16, 7), 4, DIMS(2, 3, 5, 7)); /* coalesced batch */
    matmul_case(t, 4, DIMS(2, 1, 5, 16), 3, DIMS(3, 16, 7), 4, DIMS(2, 3, 5, 7));  /* both broadcast */
    matmul_case(t, 2, DIMS(5, 16), 4, DIMS(2, 3, 16, 7), 4, DIMS(2, 3, 5, 7));     /* A broadcast */
    matmul_case(t, 4, DIMS(2, 3, 5, 16), 4, DIMS(1, 3, 16, 7), 4, DIMS(2, 3, 5, 7)); /* B broadcast outer */
    matmul_case(t, 3, DIMS(4, 6, 16), 3, DIMS(1, 16, 7), 3, DIMS(4, 6, 7));        /* B batch dim 1 */
    matmul_case(t, 3, DIMS(1, 6, 16), 3, DIMS(4, 16, 7), 3, DIMS(4, 6, 7));        /* A batch dim 1 */
    matmul_case(t, 1, DIMS(16), 2, DIMS(16, 5), 1, DIMS(5));                       /* 1-D A */
    matmul_case(t, 2, DIMS(4, 16), 1, DIMS(16), 1, DIMS(4));                       /* 1-D B */
    matmul_case(t, 3, DIMS(2, 0, 8), 2, DIMS(8, 3), 3, DIMS(2, 0, 3));             /* empty */
}

/* K = 0: the empty sum is +0 everywhere. */
static void test_matmul_k0(ot_dtype t) {
    ot_tensor *a = oh_tensor(t, 2, DIMS(3, 0), NULL), *b = oh_tensor(t, 2, DIMS(0, 4), NULL), *y = NULL;
    const ot_tensor *in[2] = {a, b};
    CHECK_OK(oh_run("MatMul", 13, NULL, 0, 2, in, &y));
    if (y) {
        int zero = 1;
        for (int i = 0; i < 12; i++) zero &= ((uint16_t *)y->data)[i] == 0;
        CHECK(y->dtype == t && zero);
    }
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(y);
}

/* ---- Gemm ---------------------------------------------------------------------------- */

static void gemm_case(ot_dtype t, int ta, int tb, float alpha, float beta, int64_t M, int64_t N, int64_t K, int cr,
                      const int64_t *cd) {
    ot_tensor *a = ta ? rnd16(t, 2, DIMS(K, M), 1.0f) : rnd16(t, 2, DIMS(M, K), 1.0f);
    ot_tensor *b = tb ? rnd16(t, 2, DIMS(N, K), 1.0f) : rnd16(t, 2, DIMS(K, N), 1.0f);
    ot_tensor *cc = cr >= 0 ? rnd16(t, cr, cd, 2.0f) : NULL, *y = NULL;
    ot_attr at[4] = {oh_attr_int("transA", ta), oh_attr_int("transB", tb), oh_attr_float("alpha", alpha),
                     oh_attr_float("beta", beta)};
    const ot_tensor *in[3] = {a, b, cc};
    char what[128];
    snprintf(what, sizeof what, "Gemm M=%lld N=%lld K=%lld tA=%d tB=%d alpha=%g beta=%g C rank %d", (long long)M,
             (long long)N, (long long)K, ta, tb, (double)alpha, (double)beta, cr);
    CHECK_OK(oh_run("Gemm", 13, at, 4, cc ? 3 : 2, in, &y));
    if (y) {
        CHECK(y->dtype == t && y->ndim == 2 && y->dims[0] == M && y->dims[1] == N);
        double *ref = malloc((size_t)(M * N) * sizeof *ref), *s = malloc((size_t)(M * N) * sizeof *s);
        if (!ref || !s) exit(2);
        int64_t cm = cr == 2 ? cd[0] : 1, cn = cr >= 1 ? cd[cr - 1] : 1;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double acc = 0, sa = 0;
                for (int64_t k = 0; k < K; k++) {
                    double p = v16(a, ta ? k * M + m : m * K + k) * v16(b, tb ? n * K + k : k * N + n);
                    acc += p;
                    sa += fabs(p);
                }
                double cv = cc ? v16(cc, (cm == 1 ? 0 : m) * cn + (cn == 1 ? 0 : n)) : 0;
                ref[m * N + n] = (double)alpha * acc + (double)beta * cv;
                s[m * N + n] = fabs((double)alpha) * sa + fabs((double)beta * cv);
            }
        if (!within(y, ref, s, M * N, K, what)) CHECK(0);
        free(ref), free(s);
    }
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(cc), ot_tensor_free(y);
}

static void test_gemm(ot_dtype t) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            gemm_case(t, ta, tb, 1.0f, 1.0f, 13, 9, 21, -1, NULL);
            gemm_case(t, ta, tb, 0.5f, 2.0f, 13, 9, 21, 2, DIMS(13, 9));
            gemm_case(t, ta, tb, -1.25f, 0.75f, 40, 33, 70, 1, DIMS(33));
            gemm_case(t, ta, tb, 1.0f, 1.0f, 64, 48, 256, 2, DIMS(1, 48)); /* bias row */
            gemm_case(t, ta, tb, 1.0f, -1.0f, 17, 5, 1, 2, DIMS(17, 1));   /* K = 1, column C */
            gemm_case(t, ta, tb, 2.0f, 0.5f, 6, 7, 11, 0, NULL);            /* scalar C */
        }
    gemm_case(t, 0, 1, 1.0f, 0.0f, 8, 8, 8, 2, DIMS(8, 8));   /* beta 0: C unused */
    gemm_case(t, 0, 0, 0.0f, 1.5f, 8, 6, 8, 2, DIMS(8, 6));   /* alpha 0: round(beta C) */
    gemm_case(t, 1, 0, 1.0f, 1.0f, 1, 1, 1, 1, DIMS(1));
    gemm_case(t, 0, 1, 1.0f, 1.0f, 128, 192, 768, 1, DIMS(192)); /* linear layer */
}

/* ---- which implementation runs ------------------------------------------------------- */

static void test_impl(void) {
    ot_gemm_lowp_stats s0, s1;
    ot_gemm_lowp_stats_get(&s0);
    matmul_case(OT_BF16, 2, DIMS(32, 64), 2, DIMS(64, 48), 2, DIMS(32, 48));
    gemm_case(OT_BF16, 1, 1, 0.5f, 2.0f, 13, 9, 21, 2, DIMS(13, 9));
    matmul_case(OT_BF16, 4, DIMS(2, 1, 5, 16), 3, DIMS(3, 16, 7), 4, DIMS(2, 3, 5, 7));
    ot_gemm_lowp_stats_get(&s1);
    fprintf(stderr, "bf16: %llu oneDNN calls, %llu f32 calls, implementation '%s' (CPU bf16: %d)\n",
            (unsigned long long)(s1.onednn_calls - s0.onednn_calls), (unsigned long long)(s1.f32_calls - s0.f32_calls),
            s1.impl, ot_cpu_has_bf16());
    CHECK(s1.onednn_calls + s1.f32_calls - s0.onednn_calls - s0.f32_calls == 3);
    if (ot_cpu_has_bf16()) {
        /* every bf16 shape above has a native oneDNN kernel on a bf16 CPU */
        CHECK(s1.onednn_calls - s0.onednn_calls == 3);
        CHECK(s1.impl[0] != '\0' && strncmp(s1.impl, "ref", 3) != 0);
    }
    /* f16 always takes the f32 path */
    ot_gemm_lowp_stats_get(&s0);
    matmul_case(OT_F16, 2, DIMS(32, 64), 2, DIMS(64, 48), 2, DIMS(32, 48));
    ot_gemm_lowp_stats_get(&s1);
    CHECK(s1.f32_calls - s0.f32_calls == 1 && s1.onednn_calls == s0.onednn_calls);
    /* forced f32 path for bf16: same bounds */
    ot_gemm_lowp_force_f32(1);
    ot_gemm_lowp_stats_get(&s0);
    test_matmul(OT_BF16);
    test_gemm(OT_BF16);
    ot_gemm_lowp_stats_get(&s1);
    CHECK(s1.onednn_calls == s0.onednn_calls && s1.f32_calls > s0.f32_calls);
    ot_gemm_lowp_force_f32(0);
}

/* Primitives are cached per thread count: 1 and 2 threads give correct results. */
static void test_threads(void) {
    int saved = omp_get_max_threads();
    for (int th = 1; th <= 2; th++) {
        ot_set_threads(th);
        matmul_case(OT_BF16, 3, DIMS(4, 50, 96), 2, DIMS(96, 80), 3, DIMS(4, 50, 80));
        gemm_case(OT_BF16, 0, 1, 1.0f, 1.0f, 100, 64, 128, 1, DIMS(64));
    }
    ot_set_threads(saved);
}

/* ---- Einsum ---------------------------------------------------------------------------- */

static ot_tensor *widened_abs(const ot_tensor *x, int absval) {
    ot_tensor *f = oh_tensor(OT_F32, x->ndim, x->dims, NULL);
    for (int64_t i = 0; i < ot_tensor_numel(x); i++) ((float *)f->data)[i] = (float)(absval ? fabs(v16(x, i)) : v16(x, i));
    return f;
}

/* Einsum on 16-bit operands against the f32 Einsum of the widened operands (ref) with the
 * bound above; S from the f32 Einsum of their absolute values; K = the summed extent. */
static void einsum16(ot_dtype t, const char *eq, int n_ops, int r0, const int64_t *d0, int r1, const int64_t *d1,
                     int64_t K) {
    ot_tensor *x[2] = {rnd16(t, r0, d0, 1.0f), n_ops > 1 ? rnd16(t, r1, d1, 1.0f) : NULL};
    ot_tensor *w[2] = {widened_abs(x[0], 0), x[1] ? widened_abs(x[1], 0) : NULL};
    ot_tensor *m[2] = {widened_abs(x[0], 1), x[1] ? widened_abs(x[1], 1) : NULL};
    ot_attr at = oh_attr_str("equation", eq);
    ot_tensor *y = NULL, *yr = NULL, *ys = NULL;
    const ot_tensor *in[2] = {x[0], x[1]}, *inw[2] = {w[0], w[1]}, *inm[2] = {m[0], m[1]};
    CHECK_OK(oh_run("Einsum", 12, &at, 1, n_ops, in, &y));
    CHECK_OK(oh_run("Einsum", 12, &at, 1, n_ops, inw, &yr));
    CHECK_OK(oh_run("Einsum", 12, &at, 1, n_ops, inm, &ys));
    if (y && yr && ys) {
        CHECK(y->dtype == t && ot_shape_equal(y->ndim, y->dims, yr->ndim, yr->dims));
        int64_t n = ot_tensor_numel(yr);
        double *ref = malloc((size_t)(n ? n : 1) * sizeof *ref), *sv = malloc((size_t)(n ? n : 1) * sizeof *sv);
        for (int64_t i = 0; i < n; i++) ref[i] = ((float *)yr->data)[i], sv[i] = 2 * ((float *)ys->data)[i];
        CHECK(within(y, ref, sv, n, K, eq));
        free(ref), free(sv);
    }
    for (int i = 0; i < 2; i++) ot_tensor_free(x[i]), ot_tensor_free(w[i]), ot_tensor_free(m[i]);
    ot_tensor_free(y), ot_tensor_free(yr), ot_tensor_free(ys);
}

static void test_einsum(ot_dtype t) {
    /* the attention backward's forms: batched, transposed operand, permuted output */
    einsum16(t, "bhqk,bhkd->bhqd", 2, 4, DIMS(2, 3, 5, 7), 4, DIMS(2, 3, 7, 4), 7);
    einsum16(t, "bhqd,bhkd->bhqk", 2, 4, DIMS(2, 3, 5, 4), 4, DIMS(2, 3, 6, 4), 4);
    einsum16(t, "bqhd,bkhd->bhqk", 2, 4, DIMS(2, 5, 3, 4), 4, DIMS(2, 6, 3, 4), 4);
    einsum16(t, "ij,jk->ki", 2, 2, DIMS(9, 33), 2, DIMS(33, 5), 33);
    /* one operand: a permute and a strided sum */
    einsum16(t, "ijk->kj", 1, 3, DIMS(17, 4, 6), 0, NULL, 17);
    einsum16(t, "ij->ji", 1, 2, DIMS(5, 7), 0, NULL, 1);
}

/* ---- errors and infer ---------------------------------------------------------------- */

static void test_errors(void) {
    ot_tensor *a = rnd16(OT_BF16, 2, DIMS(2, 3), 1.0f), *h = rnd16(OT_F16, 2, DIMS(3, 2), 1.0f), *y = NULL;
    const ot_tensor *in[2] = {a, h};
    CHECK(oh_run("MatMul", 13, NULL, 0, 2, in, &y) == OT_E_SHAPE && y == NULL); /* bf16 x f16 */
    ot_tensor *b = rnd16(OT_BF16, 2, DIMS(3, 2), 1.0f), *cf = oh_rand_f32(1, DIMS(2), 1.0f, 0.0f);
    const ot_tensor *in3[3] = {a, b, cf};
    CHECK(oh_run("Gemm", 13, NULL, 0, 3, in3, &y) == OT_E_SHAPE && y == NULL); /* f32 C */
    ot_attr eq = oh_attr_str("equation", "ij,jk->ik");
    const ot_tensor *in2[2] = {a, h};
    CHECK(oh_run("Einsum", 12, &eq, 1, 2, in2, &y) != OT_OK && y == NULL); /* Einsum: bf16 x f16 */
    ot_tensor *bo = oh_tensor(OT_BOOL, 2, DIMS(3, 2), NULL), *bo2 = oh_tensor(OT_BOOL, 2, DIMS(2, 3), NULL);
    const ot_tensor *in4[2] = {bo2, bo};
    CHECK(oh_run("MatMul", 13, NULL, 0, 2, in4, &y) == OT_E_UNSUPPORTED);
    ot_tensor_free(a), ot_tensor_free(h), ot_tensor_free(b), ot_tensor_free(cf), ot_tensor_free(bo),
        ot_tensor_free(bo2);
}

int main(void) {
    oh_seed(4242u);
    OT_RUN(test_errors);
    for (int i = 0; i < 2; i++) {
        ot_dtype t = i ? OT_F16 : OT_BF16;
        fprintf(stderr, "== %s\n", dt_name(t));
        test_matmul(t);
        test_matmul_k0(t);
        test_gemm(t);
        test_einsum(t);
    }
    OT_RUN(test_impl);
    OT_RUN(test_threads);
    return OT_TEST_EXIT();
}
