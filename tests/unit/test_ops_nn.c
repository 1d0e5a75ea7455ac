/* test_ops_nn.c — the nn op family (Softmax, LogSoftmax, LayerNormalization, Gelu) through
 * its registry entries: parse, infer and the CPU kernel on hand-built tensors. Expected
 * values are computed here in double with libm (exp, log, erfc, tanh) by plain loops over
 * explicit indices, never copied from a kernel's output. Output buffers carry guard bytes.
 * Covers: softmax along the last and a middle axis, the opset < 13 coerce-to-2-D
 * semantics, stability with large logits, -inf masking, NaN rows, rows long enough for the
 * parallel and vectorised paths, f64; LayerNormalization over one and several trailing
 * dims with and without bias, broadcast and per-row Scale, the Mean/InvStdDev outputs and
 * their shapes, large offsets (cancellation), stash_type rejection; Gelu's exact and tanh
 * forms including the negative tail; opset ranges and dtype errors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "op_harness.h"

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})
#define F(t) ((float *)(t)->data)
#define D(t) ((double *)(t)->data)

/* ---- harness: op_harness.h -------------------------------------------------------------- */

/* max over i of |got - want| / max(1e-30, |want|) must be <= rtol, or the absolute error
 * <= atol. Reports the worst element. */
static void check_close(const ot_tensor *y, const double *ref, int64_t n, double rtol, double atol) {
    if (y->dtype == OT_F64) rtol = rtol < 1e-12 ? rtol : 1e-12, atol = atol < 1e-14 ? atol : 1e-14;
    int64_t bad = 0, worst_i = -1;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = y->dtype == OT_F32 ? (double)F(y)[i] : D(y)[i];
        double ae = fabs(g - ref[i]), re = ae / fmax(1e-30, fabs(ref[i]));
        int ok = (ae <= atol || re <= rtol) || (isnan(g) && isnan(ref[i])) || (g == ref[i]);
        if (!ok) {
            bad++;
            if (!(re <= worst)) worst = re, worst_i = i;
        }
    }
    if (bad)
        fprintf(stderr, "  %lld of %lld off; worst rel %g at %lld (got %.9g, want %.9g)\n", (long long)bad,
                (long long)n, worst, (long long)worst_i,
                y->dtype == OT_F32 ? (double)F(y)[worst_i] : D(y)[worst_i], ref[worst_i]);
    CHECK(bad == 0);
}

/* ---- Softmax --------------------------------------------------------------------------- */

/* Reference over the view [outer, n, inner]. */
static void ref_softmax(const ot_tensor *x, int64_t outer, int64_t n, int64_t inner, int is_log, double *out) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            double m = -INFINITY, s = 0;
            for (int64_t i = 0; i < n; i++) {
                double v = x->dtype == OT_F32 ? F(x)[(o * n + i) * inner + j] : D(x)[(o * n + i) * inner + j];
                m = v > m ? v : m;
            }
            for (int64_t i = 0; i < n; i++) {
                double v = x->dtype == OT_F32 ? F(x)[(o * n + i) * inner + j] : D(x)[(o * n + i) * inner + j];
                s += exp(v - m);
            }
            for (int64_t i = 0; i < n; i++) {
                double v = x->dtype == OT_F32 ? F(x)[(o * n + i) * inner + j] : D(x)[(o * n + i) * inner + j];
                out[(o * n + i) * inner + j] = is_log ? v - m - log(s) : exp(v - m) / s;
            }
        }
}

static void softmax_case(const char *op, int opset, int64_t axis, int use_axis, ot_tensor *x, int64_t outer,
                         int64_t n, int64_t inner) {
    ot_attr at = oh_attr_int("axis", axis);
    const ot_tensor *in[1] = {x};
    ot_tensor *y;
    CHECK_OK(oh_run(op, opset, &at, use_axis, 1, in, &y));
    if (y) {
        CHECK(ot_shape_equal(y->ndim, y->dims, x->ndim, x->dims) && y->dtype == x->dtype);
        int64_t total = outer * n * inner;
        double *ref = malloc((size_t)(total + 1) * sizeof *ref);
        ref_softmax(x, outer, n, inner, strcmp(op, "LogSoftmax") == 0, ref);
        check_close(y, ref, total, 2e-6, 1e-7);
        free(ref);
    }
    ot_tensor_free(y);
}

static void test_softmax_axes(void) {
    for (int lg = 0; lg < 2; lg++) {
        const char *op = lg ? "LogSoftmax" : "Softmax";
        ot_tensor *x = oh_rand_f32(3, DIMS(2, 3, 5), 3.0f, 0.0f);
        softmax_case(op, 13, -1, 1, x, 6, 5, 1);  /* last axis */
        softmax_case(op, 13, 0, 0, x, 6, 5, 1);   /* default axis is -1 at opset 13 */
        softmax_case(op, 13, 1, 1, x, 2, 3, 5);   /* middle axis, strided */
        softmax_case(op, 13, -3, 1, x, 1, 2, 15); /* first axis */
        softmax_case(op, 11, 1, 1, x, 2, 15, 1);  /* coerce to [2, 15] */
        softmax_case(op, 11, 0, 0, x, 2, 15, 1);  /* opset 11 default axis 1 */
        softmax_case(op, 1, 0, 1, x, 1, 30, 1);   /* opset 1, axis 0: one row */
        ot_tensor_free(x);
        /* Long rows and many rows: vectorised and parallel paths (odd length for the tail). */
        x = oh_rand_f32(2, DIMS(64, 1001), 8.0f, 0.0f);
        softmax_case(op, 13, -1, 1, x, 64, 1001, 1);
        ot_tensor_free(x);
        x = oh_rand_f32(3, DIMS(4, 50, 300), 4.0f, 0.0f); /* strided, inner > one chunk */
        softmax_case(op, 13, 1, 1, x, 4, 50, 300);
        ot_tensor_free(x);
    }
}

static void test_softmax_special(void) {
    /* Large logits must not overflow: softmax([1000, 1001, 1002]) */
    float big[3] = {1000, 1001, 1002};
    ot_tensor *x = oh_tensor(OT_F32, 1, DIMS(3), big), *y;
    const ot_tensor *in[1] = {x};
    CHECK_OK(oh_run("Softmax", 13, NULL, 0, 1, in, &y));
    double e0 = exp(-2.0), e1 = exp(-1.0), s = e0 + e1 + 1.0;
    CHECK(y != NULL);
    if (y) {
        CHECK_NEAR(F(y)[0], e0 / s, 1e-6);
        CHECK_NEAR(F(y)[2], 1.0 / s, 1e-6);
    }
    ot_tensor_free(y);
    CHECK_OK(oh_run("LogSoftmax", 13, NULL, 0, 1, in, &y));
    if (y) CHECK_NEAR(F(y)[0], -2.0 - log(s), 1e-6);
    ot_tensor_free(y), ot_tensor_free(x);

    /* -inf masked entries get exactly 0 probability; a NaN row gives NaN */
    float masked[8] = {1.0f, -INFINITY, 2.0f, -INFINITY, NAN, 1.0f, 2.0f, 3.0f};
    x = oh_tensor(OT_F32, 2, DIMS(2, 4), masked);
    const ot_tensor *in2[1] = {x};
    CHECK_OK(oh_run("Softmax", 13, NULL, 0, 1, in2, &y));
    if (y) {
        CHECK(F(y)[1] == 0.0f && F(y)[3] == 0.0f && !signbit(F(y)[1]) && !signbit(F(y)[3]));
        CHECK_NEAR(F(y)[0], exp(-1.0) / (1 + exp(-1.0)), 1e-6);
        CHECK(isnan(F(y)[4]) && isnan(F(y)[7]));
    }
    ot_tensor_free(y), ot_tensor_free(x);

    /* gaps far beyond exp's range underflow to +0, never NaN; LogSoftmax stays finite */
    float gap[4] = {0.0f, -100.0f, -250.0f, 3.0e38f};
    x = oh_tensor(OT_F32, 1, DIMS(4), gap);
    const ot_tensor *in7[1] = {x};
    CHECK_OK(oh_run("Softmax", 13, NULL, 0, 1, in7, &y));
    CHECK(y && F(y)[0] == 0.0f && !signbit(F(y)[0]) && F(y)[1] == 0.0f && F(y)[2] == 0.0f && F(y)[3] == 1.0f);
    ot_tensor_free(y);
    CHECK_OK(oh_run("LogSoftmax", 13, NULL, 0, 1, in7, &y));
    CHECK(y && F(y)[3] == 0.0f && F(y)[1] == -100.0f - 3.0e38f && isfinite(F(y)[2]));
    ot_tensor_free(y), ot_tensor_free(x);

    /* f64 and a scalar */
    double dv[4] = {0.5, -1.5, 2.25, 0};
    x = oh_tensor(OT_F64, 2, DIMS(2, 2), dv);
    const ot_tensor *in3[1] = {x};
    CHECK_OK(oh_run("Softmax", 13, NULL, 0, 1, in3, &y));
    if (y) {
        CHECK(y->dtype == OT_F64);
        CHECK_NEAR(D(y)[0], 1.0 / (1.0 + exp(-2.0)), 1e-14);
        CHECK_NEAR(D(y)[3], 1.0 / (1.0 + exp(2.25)), 1e-14);
    }
    ot_tensor_free(y), ot_tensor_free(x);
    /* f64 along a middle axis and LogSoftmax, against the reference */
    x = oh_tensor(OT_F64, 3, DIMS(2, 5, 3), NULL);
    for (int i = 0; i < 30; i++) D(x)[i] = 0.37 * i - 4.0 + (i % 7) * 0.9;
    softmax_case("Softmax", 13, 1, 1, x, 2, 5, 3);
    softmax_case("LogSoftmax", 13, 1, 1, x, 2, 5, 3);
    softmax_case("LogSoftmax", 13, -1, 1, x, 10, 3, 1);
    softmax_case("LogSoftmax", 12, 1, 1, x, 2, 15, 1);
    ot_tensor_free(x);
    float one = 3.0f;
    x = oh_tensor(OT_F32, 0, NULL, &one);
    const ot_tensor *in4[1] = {x};
    CHECK_OK(oh_run("Softmax", 13, NULL, 0, 1, in4, &y));
    CHECK(y && y->ndim == 0 && F(y)[0] == 1.0f);
    ot_tensor_free(y), ot_tensor_free(x);

    /* empty and errors */
    x = oh_tensor(OT_F32, 2, DIMS(0, 4), NULL);
    const ot_tensor *in5[1] = {x};
    CHECK_OK(oh_run("Softmax", 13, NULL, 0, 1, in5, &y));
    CHECK(y && y->dims[0] == 0);
    ot_tensor_free(y);
    ot_attr ax = oh_attr_int("axis", 2);
    CHECK(oh_run("Softmax", 13, &ax, 1, 1, in5, &y) == OT_E_INVALID);
    CHECK(strstr(ot_last_error(), "Softmax node 't'") != NULL);
    ot_tensor_free(x);
    x = oh_tensor(OT_I32, 1, DIMS(3), NULL);
    const ot_tensor *in6[1] = {x};
    CHECK(oh_run("Softmax", 13, NULL, 0, 1, in6, &y) == OT_E_UNSUPPORTED);
    ot_tensor_free(x);
}

/* ---- LayerNormalization ------------------------------------------------------------------ */

/* Reference: rows x n view, scale/bias given as full [rows, n] expansions (NULL bias). */
static void ref_layernorm(const float *x, const double *sc, const double *bi, int64_t rows, int64_t n, double eps,
                          double *y, double *mean, double *inv) {
    for (int64_t r = 0; r < rows; r++) {
        double m = 0, v = 0;
        for (int64_t j = 0; j < n; j++) m += x[r * n + j];
        m /= (double)n;
        for (int64_t j = 0; j < n; j++) v += (x[r * n + j] - m) * (x[r * n + j] - m);
        v /= (double)n;
        double is = 1.0 / sqrt(v + eps);
        mean[r] = m;
        inv[r] = is;
        for (int64_t j = 0; j < n; j++)
            y[r * n + j] = (x[r * n + j] - m) * is * sc[r * n + j] + (bi ? bi[r * n + j] : 0.0);
    }
}

static void test_layernorm(void) {
    /* X [2, 3, 8], axis -1, Scale [8], B [8], all three outputs */
    ot_tensor *x = oh_rand_f32(3, DIMS(2, 3, 8), 2.0f, 0.5f), *sc = oh_rand_f32(1, DIMS(8), 1.0f, 1.0f),
              *bi = oh_rand_f32(1, DIMS(8), 1.0f, 0.0f);
    ot_attr at[2] = {oh_attr_int("axis", -1), oh_attr_float("epsilon", 1e-5f)};
    const ot_tensor *in[3] = {x, sc, bi};
    ot_tensor *out[3];
    int want[3] = {1, 1, 1};
    CHECK_OK(oh_run_n("LayerNormalization", 17, at, 2, 3, in, 3, want, out));
    double sfull[48], bfull[48], ry[48], rm[6], ri[6];
    for (int i = 0; i < 48; i++) sfull[i] = F(sc)[i % 8], bfull[i] = F(bi)[i % 8];
    ref_layernorm(F(x), sfull, bfull, 6, 8, 1e-5, ry, rm, ri);
    if (out[0]) {
        check_close(out[0], ry, 48, 1e-5, 1e-6);
        CHECK(out[1] && ot_shape_equal(out[1]->ndim, out[1]->dims, 3, DIMS(2, 3, 1)) && out[1]->dtype == OT_F32);
        CHECK(out[2] && ot_shape_equal(out[2]->ndim, out[2]->dims, 3, DIMS(2, 3, 1)));
        if (out[1] && out[2]) {
            check_close(out[1], rm, 6, 1e-6, 1e-7);
            check_close(out[2], ri, 6, 1e-6, 1e-7);
        }
    }
    for (int i = 0; i < 3; i++) ot_tensor_free(out[i]);

    /* axis 1: normalise over [3, 8] with Scale [3, 8] and no bias; only Y requested */
    ot_tensor *sc2 = oh_rand_f32(2, DIMS(3, 8), 1.0f, 0.0f);
    ot_attr at2 = oh_attr_int("axis", 1);
    const ot_tensor *in2[2] = {x, sc2};
    CHECK_OK(oh_run_n("LayerNormalization", 17, &at2, 1, 2, in2, 1, NULL, out));
    double s2[48], ry2[48], rm2[2], ri2[2];
    for (int i = 0; i < 48; i++) s2[i] = F(sc2)[i % 24];
    ref_layernorm(F(x), s2, NULL, 2, 24, 1e-5, ry2, rm2, ri2);
    if (out[0]) check_close(out[0], ry2, 48, 1e-5, 1e-6);
    ot_tensor_free(out[0]);
    /* Mean shape for axis 1 is [2, 1, 1] */
    int want2[3] = {1, 1, 0};
    CHECK_OK(oh_run_n("LayerNormalization", 17, &at2, 1, 2, in2, 3, want2, out));
    CHECK(out[1] && ot_shape_equal(out[1]->ndim, out[1]->dims, 3, DIMS(2, 1, 1)) && out[2] == NULL);
    if (out[1]) check_close(out[1], rm2, 2, 1e-6, 1e-7);
    for (int i = 0; i < 3; i++) ot_tensor_free(out[i]);

    /* Broadcast Scale [1, 8] (leading 1) and per-row Scale [3, 8] at axis -1 */
    ot_tensor *sc3 = oh_rand_f32(2, DIMS(1, 8), 1.0f, 0.0f);
    const ot_tensor *in3[3] = {x, sc3, bi};
    CHECK_OK(oh_run_n("LayerNormalization", 17, at, 2, 3, in3, 1, NULL, out));
    double s3[48];
    for (int i = 0; i < 48; i++) s3[i] = F(sc3)[i % 8];
    ref_layernorm(F(x), s3, bfull, 6, 8, 1e-5, ry, rm, ri);
    if (out[0]) check_close(out[0], ry, 48, 1e-5, 1e-6);
    ot_tensor_free(out[0]);
    const ot_tensor *in4[3] = {x, sc2, bi}; /* Scale [3, 8] varies along dim 1 < axis */
    CHECK_OK(oh_run_n("LayerNormalization", 17, at, 2, 3, in4, 1, NULL, out));
    for (int i = 0; i < 48; i++) s3[i] = F(sc2)[i % 24];
    ref_layernorm(F(x), s3, bfull, 6, 8, 1e-5, ry, rm, ri);
    if (out[0]) check_close(out[0], ry, 48, 1e-5, 1e-6);
    ot_tensor_free(out[0]);
    /* Scale [8, 1]... does not broadcast to [.., 3, 8]: [2, 8] does not either */
    ot_tensor *bad = oh_rand_f32(2, DIMS(2, 8), 1.0f, 0.0f);
    const ot_tensor *in5[2] = {x, bad};
    CHECK(oh_run_n("LayerNormalization", 17, at, 2, 2, in5, 1, NULL, out) == OT_E_SHAPE);
    CHECK(strstr(ot_last_error(), "Scale") != NULL);
    /* Scale [1, 3, 1] at axis 1: leading 1 dropped, broadcast over the last dim */
    ot_tensor *sc4 = oh_rand_f32(3, DIMS(1, 3, 1), 1.0f, 0.0f);
    const ot_tensor *in6[2] = {x, sc4};
    CHECK_OK(oh_run_n("LayerNormalization", 17, &at2, 1, 2, in6, 1, NULL, out));
    for (int i = 0; i < 48; i++) s2[i] = F(sc4)[(i % 24) / 8];
    ref_layernorm(F(x), s2, NULL, 2, 24, 1e-5, ry2, rm2, ri2);
    if (out[0]) check_close(out[0], ry2, 48, 1e-5, 1e-6);
    ot_tensor_free(out[0]), ot_tensor_free(sc4);
    /* zero-width rows: Y is empty, the statistics of nothing are NaN */
    ot_tensor *xe = oh_tensor(OT_F32, 2, DIMS(2, 0), NULL), *se = oh_tensor(OT_F32, 1, DIMS(0), NULL);
    const ot_tensor *in7[2] = {xe, se};
    int want7[3] = {1, 1, 1};
    CHECK_OK(oh_run_n("LayerNormalization", 17, NULL, 0, 2, in7, 3, want7, out));
    CHECK(out[0] && out[0]->dims[1] == 0 && out[1] && isnan(F(out[1])[0]) && out[2] && isnan(F(out[2])[1]));
    for (int i = 0; i < 3; i++) ot_tensor_free(out[i]);
    ot_tensor_free(xe), ot_tensor_free(se);
    ot_tensor_free(bad), ot_tensor_free(sc3), ot_tensor_free(sc2);
    ot_tensor_free(x), ot_tensor_free(sc), ot_tensor_free(bi);
}

static void test_layernorm_precision_and_errors(void) {
    /* Large offset (1e4) with small spread: single-pass E[x^2]-E[x]^2 in float would fail. */
    int64_t rows = 256, n = 768;
    ot_tensor *x = oh_rand_f32(2, DIMS(rows, n), 0.01f, 1.0e4f), *sc = oh_rand_f32(1, DIMS(n), 0.5f, 1.0f),
              *bi = oh_rand_f32(1, DIMS(n), 0.5f, 0.0f);
    ot_attr eps = oh_attr_float("epsilon", 1e-12f);
    const ot_tensor *in[3] = {x, sc, bi};
    ot_tensor *out[3];
    int want[3] = {1, 1, 1};
    CHECK_OK(oh_run_n("LayerNormalization", 17, &eps, 1, 3, in, 3, want, out));
    double *sf = malloc((size_t)(rows * n) * sizeof *sf), *bf = malloc((size_t)(rows * n) * sizeof *bf);
    double *ry = malloc((size_t)(rows * n) * sizeof *ry), rm[256], ri[256];
    for (int64_t i = 0; i < rows * n; i++) sf[i] = F(sc)[i % n], bf[i] = F(bi)[i % n];
    ref_layernorm(F(x), sf, bf, rows, n, 1e-12, ry, rm, ri);
    /* outputs are O(1); float rounding of x itself (ulp(1e4) ~ 1e-3 of the 0.01 spread) is
     * in both, so the comparison is tight */
    if (out[0]) check_close(out[0], ry, rows * n, 1e-4, 2e-5);
    if (out[2]) check_close(out[2], ri, rows, 1e-5, 0);
    for (int i = 0; i < 3; i++) ot_tensor_free(out[i]);
    free(sf), free(bf), free(ry);

    ot_attr stash = oh_attr_int("stash_type", 11);
    CHECK(oh_run_n("LayerNormalization", 17, &stash, 1, 3, in, 1, NULL, out) == OT_E_UNSUPPORTED);
    CHECK(strstr(ot_last_error(), "stash_type") != NULL);
    CHECK(oh_run_n("LayerNormalization", 16, NULL, 0, 3, in, 1, NULL, out) == OT_E_UNSUPPORTED); /* no entry */
    ot_attr ax = oh_attr_int("axis", 2);
    CHECK(oh_run_n("LayerNormalization", 17, &ax, 1, 3, in, 1, NULL, out) == OT_E_INVALID);
    ot_tensor *xd = oh_tensor(OT_F64, 2, DIMS(2, 3), (double[]){1, 2, 3, 4, 5, 7});
    const ot_tensor *in2[2] = {xd, sc};
    CHECK(oh_run_n("LayerNormalization", 17, NULL, 0, 2, in2, 1, NULL, out) == OT_E_SHAPE); /* Scale dtype */
    ot_tensor *sd = oh_tensor(OT_F64, 1, DIMS(3), (double[]){1, 1, 2});
    const ot_tensor *in3[2] = {xd, sd};
    int want3[3] = {1, 1, 0};
    CHECK_OK(oh_run_n("LayerNormalization", 17, NULL, 0, 2, in3, 3, want3, out));
    if (out[0] && out[1]) {
        /* row 1: 4, 5, 7 -> mean 16/3, var = ((4-m)^2 + (5-m)^2 + (7-m)^2) / 3 */
        double m = 16.0 / 3, v = ((4 - m) * (4 - m) + (5 - m) * (5 - m) + (7 - m) * (7 - m)) / 3;
        CHECK(out[0]->dtype == OT_F64 && out[1]->dtype == OT_F32);
        CHECK_NEAR(D(out[0])[5], (7 - m) / sqrt(v + 1e-5) * 2, 1e-12);
        CHECK_NEAR(F(out[1])[1], m, 1e-6);
    }
    for (int i = 0; i < 3; i++) ot_tensor_free(out[i]);
    ot_tensor_free(xd), ot_tensor_free(sd), ot_tensor_free(x), ot_tensor_free(sc), ot_tensor_free(bi);
}

/* ---- Gelu ---------------------------------------------------------------------------------- */

static void test_gelu(void) {
    int64_t n = 100003; /* odd, large enough for the parallel path */
    ot_tensor *x = oh_tensor(OT_F32, 1, DIMS(n), NULL), *y;
    for (int64_t i = 0; i < n; i++) F(x)[i] = -12.0f + 24.0f * (float)i / (float)(n - 1);
    const ot_tensor *in[1] = {x};
    double *ref = malloc((size_t)n * sizeof *ref);
    /* exact: 0.5 x erfc(-x / sqrt 2), which equals 0.5 x (1 + erf(x / sqrt 2)) */
    for (int64_t i = 0; i < n; i++) ref[i] = 0.5 * F(x)[i] * erfc(-F(x)[i] / sqrt(2.0));
    CHECK_OK(oh_run("Gelu", 20, NULL, 0, 1, in, &y));
    if (y) check_close(y, ref, n, 1e-5, 1e-37);
    ot_tensor_free(y);
    ot_attr none = oh_attr_str("approximate", "none");
    CHECK_OK(oh_run("Gelu", 20, &none, 1, 1, in, &y));
    if (y) check_close(y, ref, n, 1e-5, 1e-37);
    ot_tensor_free(y);
    /* tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); relative check where the value
     * is not vanishing, absolute where 1 + tanh cancels */
    for (int64_t i = 0; i < n; i++) {
        double v = F(x)[i];
        ref[i] = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    }
    ot_attr th = oh_attr_str("approximate", "tanh");
    CHECK_OK(oh_run("Gelu", 20, &th, 1, 1, in, &y));
    if (y) check_close(y, ref, n, 1e-5, 1e-9);
    ot_tensor_free(y);
    free(ref);
    ot_tensor_free(x);

    double dv[3] = {-3.0, 0.0, 1.5};
    x = oh_tensor(OT_F64, 1, DIMS(3), dv);
    const ot_tensor *in2[1] = {x};
    CHECK_OK(oh_run("Gelu", 20, NULL, 0, 1, in2, &y));
    if (y) {
        CHECK_NEAR(D(y)[0], -1.5 * erfc(3.0 / sqrt(2.0)), 1e-15);
        CHECK(D(y)[1] == 0.0);
        CHECK_NEAR(D(y)[2], 0.75 * (1 + erf(1.5 / sqrt(2.0))), 1e-15);
    }
    ot_tensor_free(y);
    ot_attr th2 = oh_attr_str("approximate", "tanh");
    CHECK_OK(oh_run("Gelu", 21, &th2, 1, 1, in2, &y));
    if (y) {
        double u = sqrt(2.0 / M_PI) * (-3.0 + 0.044715 * -27.0);
        CHECK_NEAR(D(y)[0], 0.5 * -3.0 * (1.0 + tanh(u)), 1e-14);
        CHECK(D(y)[1] == 0.0);
    }
    ot_tensor_free(y);
    ot_attr bad = oh_attr_str("approximate", "fast");
    CHECK(oh_run("Gelu", 20, &bad, 1, 1, in2, &y) == OT_E_INVALID);
    CHECK(strstr(ot_last_error(), "fast") != NULL);
    CHECK(oh_run("Gelu", 19, NULL, 0, 1, in2, &y) == OT_E_UNSUPPORTED); /* Gelu starts at opset 20 */
    ot_tensor_free(x);
}

int main(void) {
    oh_seed(777u);
    OT_RUN(test_softmax_axes);
    OT_RUN(test_softmax_special);
    OT_RUN(test_layernorm);
    OT_RUN(test_layernorm_precision_and_errors);
    OT_RUN(test_gelu);
    return OT_TEST_EXIT();
}
