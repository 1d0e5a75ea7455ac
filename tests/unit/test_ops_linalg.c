/* test_ops_linalg.c — the linalg op family (MatMul, Gemm, Einsum) through its registry
 * entries: parse, infer and the CPU kernel on hand-built tensors. Expected values come
 * from plain reference loops written here (double accumulation, explicit index maths for
 * broadcasting and transposes, a brute-force einsum over every label assignment), never
 * from a kernel's output. Output buffers carry guard bytes that must survive the kernel.
 * Covers: 1-D promotion, batch broadcasting, the flattened [B,S,K]x[K,N] path, both
 * batched strategies, f64 and wrapping integer types, empty dims, Gemm's trans flags,
 * alpha/beta and every C broadcast shape, opset ranges, Einsum's matmul-like forms,
 * transposed operands, ellipsis broadcasting, diagonals, single-operand permutes and
 * sums, and the error paths (shapes, dtypes, malformed equations). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "op_harness.h"
#include "runtime/ops/linalg_internal.h"

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})
#define F(t) ((float *)(t)->data)
#define D(t) ((double *)(t)->data)
#define I32(t) ((int32_t *)(t)->data)
#define I64(t) ((int64_t *)(t)->data)

/* ---- harness: op_harness.h -------------------------------------------------------------- */

static ot_tensor *rnd_f32(int ndim, const int64_t *dims) { return oh_rand_f32(ndim, dims, 1.0f, 0.0f); }

/* ---- references ---------------------------------------------------------------------- */

/* numpy matmul on f32 with double accumulation; out must have the broadcast shape. */
static void ref_matmul(const ot_tensor *a, const ot_tensor *b, double *out, int64_t *out_numel) {
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
        /* unravel bi, then locate the operand batch offsets */
        int64_t idx[8], rem = bi;
        for (int d = nb - 1; d >= 0; d--) idx[d] = rem % bd[d], rem /= bd[d];
        int64_t aoff = 0, boff = 0;
        for (int d = 0; d < na; d++) {
            int gd = d + (nb - na);
            aoff = aoff * a->dims[d] + (a->dims[d] == 1 ? 0 : idx[gd]);
        }
        for (int d = 0; d < nbb; d++) {
            int gd = d + (nb - nbb);
            boff = boff * b->dims[d] + (b->dims[d] == 1 ? 0 : idx[gd]);
        }
        aoff *= M * K;
        boff *= K * N;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)F(a)[aoff + m * K + k] * (double)F(b)[boff + k * N + n];
                out[(bi * M + m) * N + n] = s;
            }
    }
    *out_numel = total * M * N;
}

/* Brute-force einsum for letter-only equations over f32 inputs (explicit "->" required). */
static void ref_einsum(const char *eq, int n_ops, const ot_tensor *const *ops, double *out, int64_t out_numel) {
    char terms[2][16], outl[16];
    int tl[2] = {0, 0}, ol = 0, t = 0;
    const char *p = eq;
    for (; *p && !(p[0] == '-' && p[1] == '>'); p++) {
        if (*p == ',') t++;
        else terms[t][tl[t]++] = *p;
    }
    for (p += 2; *p; p++) outl[ol++] = *p;
    int64_t size[128];
    int used[128] = {0};
    for (int k = 0; k < n_ops; k++)
        for (int i = 0; i < tl[k]; i++) {
            size[(int)terms[k][i]] = ops[k]->dims[i];
            used[(int)terms[k][i]] = 1;
        }
    char labels[64];
    int nl = 0;
    for (int ch = 0; ch < 128; ch++)
        if (used[ch]) labels[nl++] = (char)ch;
    for (int64_t i = 0; i < out_numel; i++) out[i] = 0;
    int64_t total = 1;
    for (int i = 0; i < nl; i++) total *= size[(int)labels[i]];
    for (int64_t it = 0; it < total; it++) {
        int64_t val[128], rem = it;
        for (int i = nl - 1; i >= 0; i--) val[(int)labels[i]] = rem % size[(int)labels[i]], rem /= size[(int)labels[i]];
        double prod = 1;
        for (int k = 0; k < n_ops; k++) {
            int64_t off = 0;
            for (int i = 0; i < tl[k]; i++) off = off * ops[k]->dims[i] + val[(int)terms[k][i]];
            prod *= (double)F(ops[k])[off];
        }
        int64_t o = 0;
        for (int i = 0; i < ol; i++) o = o * size[(int)outl[i]] + val[(int)outl[i]];
        out[o] += prod;
    }
}

static void check_close_f32(const ot_tensor *y, const double *ref, int64_t n, double tol) {
    int64_t bad = 0;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(F(y)[i] - ref[i]) / fmax(1.0, fabs(ref[i]));
        if (!(e <= tol)) bad++;
        if (e > worst || e != e) worst = e;
    }
    if (bad) fprintf(stderr, "  %lld of %lld elements off, worst rel error %g\n", (long long)bad, (long long)n, worst);
    CHECK(bad == 0);
}

/* ---- MatMul -------------------------------------------------------------------------- */

static void matmul_case(int ar, const int64_t *ad, int br, const int64_t *bd, int yr, const int64_t *yd) {
    ot_tensor *a = rnd_f32(ar, ad), *b = rnd_f32(br, bd), *y;
    const ot_tensor *in[2] = {a, b};
    CHECK_OK(oh_run("MatMul", 13, NULL, 0, 2, in, &y));
    if (y) {
        CHECK(ot_shape_equal(y->ndim, y->dims, yr, yd));
        int64_t n = ot_tensor_numel(y), rn;
        double *ref = malloc((size_t)(n ? n : 1) * sizeof *ref);
        ref_matmul(a, b, ref, &rn);
        CHECK(rn == n);
        check_close_f32(y, ref, n, 1e-5);
        free(ref);
    }
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(y);
}

static void test_matmul_small_exact(void) {
    float av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {7, 8, 9, 10, 11, 12};
    ot_tensor *a = oh_tensor(OT_F32, 2, DIMS(2, 3), av), *b = oh_tensor(OT_F32, 2, DIMS(3, 2), bv), *y;
    const ot_tensor *in[2] = {a, b};
    CHECK_OK(oh_run("MatMul", 13, NULL, 0, 2, in, &y));
    /* [[1*7+2*9+3*11, 1*8+2*10+3*12], [4*7+5*9+6*11, 4*8+5*10+6*12]] */
    float want[4] = {58, 64, 139, 154};
    CHECK(y && y->ndim == 2 && y->dims[0] == 2 && y->dims[1] == 2);
    for (int i = 0; y && i < 4; i++) CHECK(F(y)[i] == want[i]);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(y);
}

static void test_matmul_shapes(void) {
    matmul_case(1, DIMS(4), 2, DIMS(4, 3), 1, DIMS(3));                  /* vector x matrix */
    matmul_case(2, DIMS(5, 4), 1, DIMS(4), 1, DIMS(5));                  /* matrix x vector */
    matmul_case(1, DIMS(7), 1, DIMS(7), 0, DIMS(0));                     /* dot: rank 0 */
    matmul_case(3, DIMS(2, 5, 4), 1, DIMS(4), 2, DIMS(2, 5));            /* batched x vector */
    matmul_case(1, DIMS(4), 3, DIMS(3, 4, 6), 2, DIMS(3, 6));            /* vector x batched */
    matmul_case(4, DIMS(2, 1, 3, 4), 3, DIMS(3, 4, 5), 4, DIMS(2, 3, 3, 5)); /* broadcast batch */
    matmul_case(3, DIMS(1, 3, 4), 4, DIMS(2, 5, 4, 2), 4, DIMS(2, 5, 3, 2)); /* A broadcast over 2 dims */
    matmul_case(3, DIMS(4, 6, 8), 2, DIMS(8, 5), 3, DIMS(4, 6, 5));      /* flattened [B*S,K] GEMM */
    matmul_case(2, DIMS(6, 8), 3, DIMS(3, 8, 5), 3, DIMS(3, 6, 5));      /* A unbatched, B batched */
    matmul_case(3, DIMS(1, 256, 96), 2, DIMS(96, 384), 3, DIMS(1, 256, 384)); /* threaded single GEMM */
}

static void test_matmul_strategies(void) {
    for (int s = 0; s <= 2; s++) {
        ot_gemm_force_strategy(s);
        matmul_case(4, DIMS(1, 12, 32, 16), 4, DIMS(1, 12, 16, 32), 4, DIMS(1, 12, 32, 32));
        matmul_case(4, DIMS(2, 3, 17, 9), 4, DIMS(2, 1, 9, 13), 4, DIMS(2, 3, 17, 13));
        matmul_case(3, DIMS(5, 64, 40), 3, DIMS(5, 40, 72), 3, DIMS(5, 64, 72));
    }
    ot_gemm_force_strategy(0);
}

static void test_matmul_dtypes(void) {
    /* f64 */
    double av[6] = {1.5, -2, 3, 0.25, 5, -6}, bv[3] = {2, 4, -1};
    ot_tensor *a = oh_tensor(OT_F64, 2, DIMS(2, 3), av), *b = oh_tensor(OT_F64, 2, DIMS(3, 1), bv), *y;
    const ot_tensor *in[2] = {a, b};
    CHECK_OK(oh_run("MatMul", 13, NULL, 0, 2, in, &y));
    CHECK(y && y->dtype == OT_F64 && D(y)[0] == 1.5 * 2 - 2 * 4 - 3 && D(y)[1] == 0.25 * 2 + 5 * 4 + 6);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(y);

    /* i32 with wrap-around: 65536 * 65536 = 2^32 = 0 (mod 2^32), plus 3 * -7 */
    int32_t ia[2] = {65536, 3}, ib[2] = {65536, -7};
    a = oh_tensor(OT_I32, 2, DIMS(1, 2), ia), b = oh_tensor(OT_I32, 2, DIMS(2, 1), ib);
    const ot_tensor *in2[2] = {a, b};
    CHECK_OK(oh_run("MatMul", 13, NULL, 0, 2, in2, &y));
    CHECK(y && y->dtype == OT_I32 && I32(y)[0] == -21);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(y);

    /* i64 batched (takes the OpenMP batch loop) against a reference loop */
    int64_t B = 6, M = 5, K = 7, N = 4;
    a = oh_tensor(OT_I64, 3, DIMS(B, M, K), NULL), b = oh_tensor(OT_I64, 3, DIMS(B, K, N), NULL);
    for (int64_t i = 0; i < B * M * K; i++) I64(a)[i] = (i * 37) % 19 - 9;
    for (int64_t i = 0; i < B * K * N; i++) I64(b)[i] = ((i * 11) % 13 - 6) * ((int64_t)1 << 33);
    const ot_tensor *in3[2] = {a, b};
    CHECK_OK(oh_run("MatMul", 13, NULL, 0, 2, in3, &y));
    int ok = y != NULL;
    for (int64_t bb = 0; ok && bb < B; bb++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                int64_t s = 0;
                for (int64_t k = 0; k < K; k++) s += I64(a)[(bb * M + m) * K + k] * I64(b)[(bb * K + k) * N + n];
                ok &= I64(y)[(bb * M + m) * N + n] == s;
            }
    CHECK(ok);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(y);
}

static void test_matmul_empty(void) {
    ot_tensor *a = oh_tensor(OT_F32, 2, DIMS(0, 3), NULL), *b = rnd_f32(2, DIMS(3, 4)), *y;
    const ot_tensor *in[2] = {a, b};
    CHECK_OK(oh_run("MatMul", 13, NULL, 0, 2, in, &y));
    CHECK(y && y->dims[0] == 0 && y->dims[1] == 4);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(y);
    /* K = 0: an empty sum, all zeros */
    a = oh_tensor(OT_F32, 3, DIMS(2, 2, 0), NULL), b = oh_tensor(OT_F32, 2, DIMS(0, 3), NULL);
    const ot_tensor *in2[2] = {a, b};
    CHECK_OK(oh_run("MatMul", 13, NULL, 0, 2, in2, &y));
    int zeros = y && ot_tensor_numel(y) == 12;
    for (int i = 0; zeros && i < 12; i++) zeros &= F(y)[i] == 0.0f;
    CHECK(zeros);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(y);
    /* empty batch dim */
    a = oh_tensor(OT_F32, 3, DIMS(0, 2, 3), NULL), b = rnd_f32(3, DIMS(1, 3, 4));
    const ot_tensor *in3[2] = {a, b};
    CHECK_OK(oh_run("MatMul", 13, NULL, 0, 2, in3, &y));
    CHECK(y && y->ndim == 3 && y->dims[0] == 0 && y->dims[2] == 4);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(y);
}

static void test_matmul_errors(void) {
    ot_tensor *a = rnd_f32(2, DIMS(2, 3)), *b = rnd_f32(2, DIMS(4, 2)), *y;
    const ot_tensor *in[2] = {a, b};
    CHECK(oh_run("MatMul", 13, NULL, 0, 2, in, &y) == OT_E_SHAPE && y == NULL);
    CHECK(strstr(ot_last_error(), "MatMul node 't'") && strstr(ot_last_error(), "K = 3"));
    ot_tensor_free(b);
    b = rnd_f32(3, DIMS(3, 3, 2));
    ot_tensor_free(a);
    a = rnd_f32(3, DIMS(2, 2, 3));
    const ot_tensor *in2[2] = {a, b};
    CHECK(oh_run("MatMul", 13, NULL, 0, 2, in2, &y) == OT_E_SHAPE); /* batch 2 vs 3 */
    /* bool has no GEMM (bf16/f16 do since the mixed-precision work: test_lowp_gemm.c) */
    ot_tensor *h = oh_tensor(OT_BOOL, 2, DIMS(2, 3), NULL), *h2 = oh_tensor(OT_BOOL, 2, DIMS(3, 2), NULL);
    const ot_tensor *in3[2] = {h, h2};
    CHECK(oh_run("MatMul", 13, NULL, 0, 2, in3, &y) == OT_E_UNSUPPORTED);
    CHECK(strstr(ot_last_error(), "bool") != NULL);
    ot_tensor *s = oh_tensor(OT_F32, 0, NULL, NULL);
    const ot_tensor *in4[2] = {s, b};
    CHECK(oh_run("MatMul", 13, NULL, 0, 2, in4, &y) == OT_E_SHAPE);
    const ot_tensor *in5[2] = {a, h2};
    CHECK(oh_run("MatMul", 13, NULL, 0, 2, in5, &y) == OT_E_SHAPE); /* mixed dtypes */
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(h), ot_tensor_free(h2), ot_tensor_free(s);
}

/* ---- Gemm ---------------------------------------------------------------------------- */

/* Y = alpha op(A) op(B) + beta C with C broadcast from cshape. */
static void gemm_case(int ta, int tb, float alpha, float beta, int64_t M, int64_t N, int64_t K, int cr,
                      const int64_t *cd, int opset) {
    ot_tensor *a = ta ? rnd_f32(2, DIMS(K, M)) : rnd_f32(2, DIMS(M, K));
    ot_tensor *b = tb ? rnd_f32(2, DIMS(N, K)) : rnd_f32(2, DIMS(K, N));
    ot_tensor *cc = cr >= 0 ? rnd_f32(cr, cd) : NULL, *y;
    ot_attr at[4] = {oh_attr_int("transA", ta), oh_attr_int("transB", tb), oh_attr_float("alpha", alpha),
                     oh_attr_float("beta", beta)};
    const ot_tensor *in[3] = {a, b, cc};
    CHECK_OK(oh_run("Gemm", opset, at, 4, cc ? 3 : 2, in, &y));
    if (y) {
        CHECK(y->ndim == 2 && y->dims[0] == M && y->dims[1] == N);
        double *ref = malloc((size_t)(M * N + 1) * sizeof *ref);
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)F(a)[ta ? k * M + m : m * K + k] * (double)F(b)[tb ? n * K + k : k * N + n];
                double cv = 0;
                if (cc) {
                    int64_t cm = cr == 2 ? cd[0] : 1, cn = cr >= 1 ? cd[cr - 1] : 1;
                    cv = F(cc)[(cm == 1 ? 0 : m) * cn + (cn == 1 ? 0 : n)];
                }
                ref[m * N + n] = alpha * s + beta * cv;
            }
        check_close_f32(y, ref, M * N, 1e-5);
        free(ref);
    }
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(cc), ot_tensor_free(y);
}

static void test_gemm(void) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) gemm_case(ta, tb, 1.0f, 1.0f, 5, 7, 3, 1, DIMS(7), 13);
    gemm_case(0, 1, 0.5f, 2.0f, 4, 6, 9, 2, DIMS(4, 6), 13);  /* full C */
    gemm_case(1, 0, 1.0f, -1.0f, 4, 6, 9, 2, DIMS(4, 1), 13); /* column C */
    gemm_case(0, 0, 2.0f, 3.0f, 4, 6, 9, 2, DIMS(1, 6), 13);  /* row C */
    gemm_case(0, 0, 1.0f, 0.5f, 4, 6, 9, 0, DIMS(0), 13);     /* scalar C */
    gemm_case(0, 0, 1.0f, 0.5f, 4, 6, 9, 1, DIMS(1), 13);     /* [1] C */
    gemm_case(0, 1, 1.5f, 1.0f, 8, 5, 16, -1, NULL, 13);      /* no C */
    gemm_case(0, 1, 1.0f, 0.0f, 8, 5, 16, 1, DIMS(5), 11);    /* beta = 0: C ignored */
    gemm_case(0, 1, 1.0f, 1.0f, 300, 200, 128, 1, DIMS(200), 13); /* parallel prefill */
    gemm_case(0, 0, 1.0f, 2.0f, 3, 4, 0, 1, DIMS(4), 13);     /* K = 0: beta * C */
    gemm_case(0, 0, 1.0f, 1.0f, 3, 4, 5, 2, DIMS(3, 4), 9);   /* opset 9 with required C */
}

static void test_gemm_errors_and_ints(void) {
    ot_tensor *a = rnd_f32(2, DIMS(3, 4)), *b = rnd_f32(2, DIMS(4, 5)), *c = rnd_f32(2, DIMS(2, 5)), *y;
    const ot_tensor *in[3] = {a, b, c};
    CHECK(oh_run("Gemm", 13, NULL, 0, 3, in, &y) == OT_E_SHAPE); /* C [2,5] vs [3,5] */
    CHECK(strstr(ot_last_error(), "cannot be broadcast") != NULL);
    CHECK(oh_run("Gemm", 9, NULL, 0, 2, in, &y) != OT_OK); /* opset 9 requires C */
    ot_attr ta = oh_attr_int("transA", 1);
    CHECK(oh_run("Gemm", 13, &ta, 1, 2, in, &y) == OT_E_SHAPE); /* op(A) [4,3] x [4,5] */
    ot_attr bad = oh_attr_int("transB", 2);
    CHECK(oh_run("Gemm", 13, &bad, 1, 2, in, &y) == OT_E_INVALID);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(c);

    /* int32 Gemm with integral alpha/beta: Y = 2 * A B + 3 * C */
    int32_t av[4] = {1, 2, 3, 4}, bv[4] = {5, 6, 7, 8}, cv[2] = {10, 20};
    a = oh_tensor(OT_I32, 2, DIMS(2, 2), av), b = oh_tensor(OT_I32, 2, DIMS(2, 2), bv), c = oh_tensor(OT_I32, 1, DIMS(2), cv);
    ot_attr at[2] = {oh_attr_float("alpha", 2.0f), oh_attr_float("beta", 3.0f)};
    const ot_tensor *in2[3] = {a, b, c};
    CHECK_OK(oh_run("Gemm", 13, at, 2, 3, in2, &y));
    /* A B = [[19, 22], [43, 50]] */
    CHECK(y && I32(y)[0] == 2 * 19 + 30 && I32(y)[1] == 2 * 22 + 60 && I32(y)[2] == 2 * 43 + 30 &&
          I32(y)[3] == 2 * 50 + 60);
    ot_tensor_free(y);
    ot_attr frac = oh_attr_float("alpha", 0.5f);
    CHECK(oh_run("Gemm", 13, &frac, 1, 3, in2, &y) == OT_E_UNSUPPORTED);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(c);
}

/* ---- Einsum -------------------------------------------------------------------------- */

static void einsum_case(const char *eq, int n_ops, int r0, const int64_t *d0, int r1, const int64_t *d1, int yr,
                        const int64_t *yd) {
    ot_tensor *x0 = rnd_f32(r0, d0), *x1 = n_ops > 1 ? rnd_f32(r1, d1) : NULL, *y;
    const ot_tensor *in[2] = {x0, x1};
    ot_attr at = oh_attr_str("equation", eq);
    ot_status st = oh_run("Einsum", 12, &at, 1, n_ops, in, &y);
    if (st) fprintf(stderr, "  equation %s: %s\n", eq, ot_last_error());
    CHECK(st == OT_OK);
    if (y) {
        CHECK(ot_shape_equal(y->ndim, y->dims, yr, yd));
        int64_t n = ot_tensor_numel(y);
        double *ref = malloc((size_t)(n ? n : 1) * sizeof *ref);
        ref_einsum(eq, n_ops, in, ref, n);
        check_close_f32(y, ref, n, 1e-5);
        free(ref);
    }
    ot_tensor_free(x0), ot_tensor_free(x1), ot_tensor_free(y);
}

static void test_einsum_forms(void) {
    einsum_case("ij,jk->ik", 2, 2, DIMS(4, 5), 2, DIMS(5, 3), 2, DIMS(4, 3));
    einsum_case("bij,bjk->bik", 2, 3, DIMS(3, 4, 5), 3, DIMS(3, 5, 6), 3, DIMS(3, 4, 6));
    einsum_case("bhqd,bhkd->bhqk", 2, 4, DIMS(2, 3, 5, 4), 4, DIMS(2, 3, 6, 4), 4, DIMS(2, 3, 5, 6));
    einsum_case("bhqk,bhkd->bhqd", 2, 4, DIMS(2, 3, 5, 6), 4, DIMS(2, 3, 6, 4), 4, DIMS(2, 3, 5, 4));
    einsum_case("bid,jd->bij", 2, 3, DIMS(2, 5, 4), 2, DIMS(3, 4), 3, DIMS(2, 5, 3));
    einsum_case("ji,jk->ik", 2, 2, DIMS(5, 4), 2, DIMS(5, 3), 2, DIMS(4, 3));      /* transposed A */
    einsum_case("ij,kj->ki", 2, 2, DIMS(4, 5), 2, DIMS(3, 5), 2, DIMS(3, 4));      /* output transposed */
    einsum_case("bqhd,bkhd->bhqk", 2, 4, DIMS(2, 5, 3, 4), 4, DIMS(2, 6, 3, 4), 4, DIMS(2, 3, 5, 6)); /* copies */
    einsum_case("i,i->", 2, 1, DIMS(7), 1, DIMS(7), 0, DIMS(0));                   /* dot */
    einsum_case("i,j->ij", 2, 1, DIMS(3), 1, DIMS(4), 2, DIMS(3, 4));              /* outer */
    einsum_case("ij,ij->ij", 2, 2, DIMS(3, 4), 2, DIMS(3, 4), 2, DIMS(3, 4));      /* Hadamard as batch */
    einsum_case("ijk,jl->il", 2, 3, DIMS(3, 4, 5), 2, DIMS(4, 2), 2, DIMS(3, 2));  /* k summed out of A */
    einsum_case("ij,jkl->ik", 2, 2, DIMS(3, 4), 3, DIMS(4, 2, 5), 2, DIMS(3, 2));  /* l summed out of B */
    einsum_case("abc,cd->abd", 2, 3, DIMS(2, 3, 4), 2, DIMS(4, 5), 3, DIMS(2, 3, 5));
    einsum_case("abcd,cde->abe", 2, 4, DIMS(2, 3, 4, 5), 3, DIMS(4, 5, 2), 3, DIMS(2, 3, 2));
    einsum_case("ij->ji", 1, 2, DIMS(3, 4), 0, NULL, 2, DIMS(4, 3));
    einsum_case("ijk->kij", 1, 3, DIMS(2, 3, 4), 0, NULL, 3, DIMS(4, 2, 3));
    einsum_case("ij->i", 1, 2, DIMS(3, 4), 0, NULL, 1, DIMS(3));
    einsum_case("ijk->j", 1, 3, DIMS(3, 4, 5), 0, NULL, 1, DIMS(4));
    einsum_case("ij->", 1, 2, DIMS(300, 400), 0, NULL, 0, DIMS(0));
    einsum_case("ii->i", 1, 2, DIMS(4, 4), 0, NULL, 1, DIMS(4));                   /* diagonal */
    einsum_case("ii->", 1, 2, DIMS(5, 5), 0, NULL, 0, DIMS(0));                    /* trace */
    einsum_case("bij,bjk->bik", 2, 3, DIMS(12, 40, 32), 3, DIMS(12, 32, 48), 3, DIMS(12, 40, 48)); /* parallel */
    einsum_case("iaj,jk->aik", 2, 3, DIMS(3, 4, 5), 2, DIMS(5, 6), 3, DIMS(4, 3, 6)); /* A copied: M order */
    einsum_case("ijb,jk->bik", 2, 3, DIMS(3, 5, 4), 2, DIMS(5, 6), 3, DIMS(4, 3, 6)); /* A copied: no unit stride */
    einsum_case("ikj,jkl->il", 2, 3, DIMS(3, 4, 5), 3, DIMS(5, 4, 2), 2, DIMS(3, 2)); /* B copied: K order */
    einsum_case("ijk,ikl->jl", 2, 3, DIMS(3, 4, 5), 3, DIMS(3, 5, 2), 2, DIMS(4, 2)); /* two K labels */
    einsum_case("bi,bj->bij", 2, 2, DIMS(6, 3), 2, DIMS(6, 4), 3, DIMS(6, 3, 4));    /* batched outer */
}

static void test_einsum_implicit_and_ellipsis(void) {
    /* implicit output: "ij,jk" -> "ik"; "ba" -> "ab" (sorted) */
    ot_tensor *a = rnd_f32(2, DIMS(3, 4)), *b = rnd_f32(2, DIMS(4, 5)), *y, *y2;
    const ot_tensor *in[2] = {a, b};
    ot_attr e1 = oh_attr_str("equation", "ij,jk"), e2 = oh_attr_str("equation", "ij,jk->ik");
    CHECK_OK(oh_run("Einsum", 12, &e1, 1, 2, in, &y));
    CHECK_OK(oh_run("Einsum", 12, &e2, 1, 2, in, &y2));
    CHECK(y && y2 && ot_shape_equal(y->ndim, y->dims, 2, DIMS(3, 5)) && memcmp(y->data, y2->data, 15 * 4) == 0);
    ot_tensor_free(y), ot_tensor_free(y2);
    ot_attr e3 = oh_attr_str("equation", "ba");
    CHECK_OK(oh_run("Einsum", 12, &e3, 1, 1, in, &y));
    CHECK(y && y->dims[0] == 4 && y->dims[1] == 3 && F(y)[1 * 3 + 2] == F(a)[2 * 4 + 1]);
    ot_tensor_free(y);
    ot_attr e4 = oh_attr_str("equation", " i j , j k -> i k "); /* spaces are ignored */
    CHECK_OK(oh_run("Einsum", 12, &e4, 1, 2, in, &y));
    ot_tensor_free(y), ot_tensor_free(a), ot_tensor_free(b);

    /* "...ij,...jk->...ik" with ellipsis broadcasting [2,1] x [3] -> [2,3] */
    a = rnd_f32(4, DIMS(2, 1, 4, 5));
    b = rnd_f32(3, DIMS(3, 5, 6));
    const ot_tensor *in2[2] = {a, b};
    ot_attr e5 = oh_attr_str("equation", "...ij,...jk->...ik");
    CHECK_OK(oh_run("Einsum", 12, &e5, 1, 2, in2, &y));
    CHECK(y && ot_shape_equal(y->ndim, y->dims, 4, DIMS(2, 3, 4, 6)));
    if (y) {
        double ref[2 * 3 * 4 * 6];
        int64_t rn;
        ref_matmul(a, b, ref, &rn);
        check_close_f32(y, ref, rn, 1e-5);
    }
    ot_tensor_free(y);
    /* implicit with ellipsis: "...ij,...jk" -> "...ik" */
    ot_attr e6 = oh_attr_str("equation", "...ij,...jk");
    CHECK_OK(oh_run("Einsum", 12, &e6, 1, 2, in2, &y));
    CHECK(y && ot_shape_equal(y->ndim, y->dims, 4, DIMS(2, 3, 4, 6)));
    ot_tensor_free(y), ot_tensor_free(a), ot_tensor_free(b);

    /* ellipsis in one operand only: "...d,de->...e" over [2,3,4] x [4,5] */
    a = rnd_f32(3, DIMS(2, 3, 4));
    b = rnd_f32(2, DIMS(4, 5));
    const ot_tensor *in3[2] = {a, b};
    ot_attr e7 = oh_attr_str("equation", "...d,de->...e");
    CHECK_OK(oh_run("Einsum", 12, &e7, 1, 2, in3, &y));
    if (y) {
        CHECK(ot_shape_equal(y->ndim, y->dims, 3, DIMS(2, 3, 5)));
        double ref[30];
        int64_t rn;
        ref_matmul(a, b, ref, &rn);
        check_close_f32(y, ref, rn, 1e-5);
    }
    ot_tensor_free(y), ot_tensor_free(a), ot_tensor_free(b);

    /* int64 einsum and an empty contraction */
    int64_t iv[6] = {1, 2, 3, 4, 5, 6};
    a = oh_tensor(OT_I64, 2, DIMS(2, 3), iv);
    const ot_tensor *in4[1] = {a};
    ot_attr e8 = oh_attr_str("equation", "ij->j");
    CHECK_OK(oh_run("Einsum", 12, &e8, 1, 1, in4, &y));
    CHECK(y && I64(y)[0] == 5 && I64(y)[1] == 7 && I64(y)[2] == 9);
    ot_tensor_free(y), ot_tensor_free(a);
    a = oh_tensor(OT_F32, 2, DIMS(3, 0), NULL);
    b = oh_tensor(OT_F32, 2, DIMS(0, 2), NULL);
    const ot_tensor *in5[2] = {a, b};
    CHECK_OK(oh_run("Einsum", 12, &e2, 1, 2, in5, &y));
    int zeros = y && ot_tensor_numel(y) == 6;
    for (int i = 0; zeros && i < 6; i++) zeros &= F(y)[i] == 0.0f;
    CHECK(zeros);
    ot_tensor_free(y), ot_tensor_free(a), ot_tensor_free(b);
}

static void test_f64_paths(void) {
    double av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {1, 0, -1, 2, 0.5, 3}, cv[2] = {100, 200};
    ot_tensor *a = oh_tensor(OT_F64, 2, DIMS(2, 3), av), *b = oh_tensor(OT_F64, 2, DIMS(2, 3), bv), *c = oh_tensor(OT_F64, 2, DIMS(2, 1), cv);
    ot_tensor *y;
    ot_attr at[3] = {oh_attr_int("transB", 1), oh_attr_float("alpha", 2.0f), oh_attr_float("beta", 0.5f)};
    const ot_tensor *in[3] = {a, b, c};
    CHECK_OK(oh_run("Gemm", 13, at, 3, 3, in, &y));
    /* A B^T = [[1-3, 2+1+9], [4-6, 8+2.5+18]] = [[-2, 12], [-2, 28.5]] */
    CHECK(y && D(y)[0] == 2 * -2.0 + 50 && D(y)[1] == 2 * 12.0 + 50 && D(y)[2] == 2 * -2.0 + 100 &&
          D(y)[3] == 2 * 28.5 + 100);
    ot_tensor_free(y);
    ot_attr e = oh_attr_str("equation", "ij,kj->ik");
    CHECK_OK(oh_run("Einsum", 12, &e, 1, 2, in, &y));
    CHECK(y && y->dtype == OT_F64 && D(y)[0] == -2.0 && D(y)[1] == 12.0 && D(y)[2] == -2.0 && D(y)[3] == 28.5);
    ot_tensor_free(y);
    ot_attr e2 = oh_attr_str("equation", "ij->ji");
    CHECK_OK(oh_run("Einsum", 12, &e2, 1, 1, in, &y));
    CHECK(y && D(y)[0] == 1 && D(y)[1] == 4 && D(y)[2] == 2 && D(y)[5] == 6);
    ot_tensor_free(y);
    int32_t iv[6] = {1, -2, 3, -4, 5, -6};
    ot_tensor *ia = oh_tensor(OT_I32, 2, DIMS(3, 2), iv);
    const ot_tensor *in2[1] = {ia};
    ot_attr e3 = oh_attr_str("equation", "ij->i");
    CHECK_OK(oh_run("Einsum", 12, &e3, 1, 1, in2, &y));
    CHECK(y && I32(y)[0] == -1 && I32(y)[1] == -1 && I32(y)[2] == -1);
    ot_tensor_free(y), ot_tensor_free(ia), ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(c);
}

static void test_einsum_errors(void) {
    ot_tensor *a = rnd_f32(2, DIMS(3, 4)), *b = rnd_f32(2, DIMS(5, 6)), *y;
    const ot_tensor *in[3] = {a, b, a};
    ot_attr e = oh_attr_str("equation", "ij,jk->ik");
    CHECK(oh_run("Einsum", 12, &e, 1, 2, in, &y) == OT_E_SHAPE); /* j: 4 vs 5 */
    CHECK(strstr(ot_last_error(), "ij,jk->ik") && strstr(ot_last_error(), "'j'"));
    ot_attr bad = oh_attr_str("equation", "i1,jk->ik");
    CHECK(oh_run("Einsum", 12, &bad, 1, 2, in, &y) == OT_E_INVALID);
    CHECK(strstr(ot_last_error(), "i1,jk->ik") != NULL);
    ot_attr three = oh_attr_str("equation", "ij,jk,kl->il");
    CHECK(oh_run("Einsum", 12, &three, 1, 3, in, &y) == OT_E_UNSUPPORTED);
    ot_attr count = oh_attr_str("equation", "ij->ij");
    CHECK(oh_run("Einsum", 12, &count, 1, 2, in, &y) == OT_E_INVALID); /* 1 term, 2 inputs */
    ot_attr unknown = oh_attr_str("equation", "ij,jk->iz");
    CHECK(oh_run("Einsum", 12, &unknown, 1, 2, in, &y) == OT_E_INVALID);
    ot_attr rank = oh_attr_str("equation", "ijk,kl->il");
    CHECK(oh_run("Einsum", 12, &rank, 1, 2, in, &y) == OT_E_SHAPE); /* 3 labels for a rank-2 input */
    ot_attr dots = oh_attr_str("equation", "..ij,jk->ik");
    CHECK(oh_run("Einsum", 12, &dots, 1, 2, in, &y) == OT_E_INVALID);
    CHECK(oh_run("Einsum", 11, &e, 1, 2, in, &y) == OT_E_UNSUPPORTED); /* before opset 12 */
    ot_attr twice = oh_attr_str("equation", "ij,jk->ii");
    CHECK(oh_run("Einsum", 12, &twice, 1, 2, in, &y) == OT_E_INVALID);
    ot_attr ell2 = oh_attr_str("equation", "......,jk->");
    CHECK(oh_run("Einsum", 12, &ell2, 1, 2, in, &y) == OT_E_INVALID);
    ot_tensor *e1 = rnd_f32(3, DIMS(2, 3, 4)), *e2 = rnd_f32(3, DIMS(3, 4, 5));
    const ot_tensor *in2[2] = {e1, e2};
    ot_attr ell = oh_attr_str("equation", "...ij,...jk->...ik");
    CHECK(oh_run("Einsum", 12, &ell, 1, 2, in2, &y) == OT_E_SHAPE); /* ellipsis 2 vs 3 */
    CHECK(strstr(ot_last_error(), "ellipsis") != NULL);
    ot_tensor *sq = rnd_f32(2, DIMS(3, 4));
    const ot_tensor *in3[1] = {sq};
    ot_attr diag = oh_attr_str("equation", "ii->i");
    CHECK(oh_run("Einsum", 12, &diag, 1, 1, in3, &y) == OT_E_SHAPE); /* diagonal of a non-square */
    ot_tensor_free(e1), ot_tensor_free(e2), ot_tensor_free(sq);
    ot_tensor_free(a), ot_tensor_free(b);
}

int main(void) {
    oh_seed(12345u);
    OT_RUN(test_matmul_small_exact);
    OT_RUN(test_matmul_shapes);
    OT_RUN(test_matmul_strategies);
    OT_RUN(test_matmul_dtypes);
    OT_RUN(test_matmul_empty);
    OT_RUN(test_matmul_errors);
    OT_RUN(test_gemm);
    OT_RUN(test_gemm_errors_and_ints);
    OT_RUN(test_einsum_forms);
    OT_RUN(test_einsum_implicit_and_ellipsis);
    OT_RUN(test_f64_paths);
    OT_RUN(test_einsum_errors);
    return OT_TEST_EXIT();
}
