/* test_ops_elementwise.c — the elementwise op family through its registry entries: parse,
 * infer and the CPU kernel, on hand-built tensors. Expected values are computed here
 * independently (plain loops over explicit indices, libm in double), never copied from a
 * kernel's output. Every output buffer carries guard bytes that must survive the kernel.
 * Covers: broadcasting (same shape, scalar, row vector, outer products, inner dims that do
 * not coalesce, empty dims, and a tensor large enough to take the parallel path), integer
 * semantics (wrapping, truncating division, division by zero), Pow's mixed dtypes and fast
 * paths, NaN handling of Relu/Max/Min/Clip/compares, stable Sigmoid, Erf accuracy, Where's
 * masked-fill shapes and non-float payloads, Cast conversions and attribute errors, Clip's
 * optional bounds, variadic Max/Min, dtype and shape rejections, and opset ranges. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "op_harness.h"

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

static ot_tensor *scalar_f32(float v) { return oh_tensor(OT_F32, 0, NULL, &v); }

#define F(t) ((float *)(t)->data)
#define D(t) ((double *)(t)->data)
#define I32(t) ((int32_t *)(t)->data)
#define I64(t) ((int64_t *)(t)->data)
#define U8(t) ((uint8_t *)(t)->data)
#define I8(t) ((int8_t *)(t)->data)
#define U16(t) ((uint16_t *)(t)->data)

/* Runs an op that must succeed and checks the output's dtype and shape. */
static ot_tensor *run_ok(const char *op, int opset, const ot_attr *attrs, int n_attrs, int n_in,
                         const ot_tensor *const *in, ot_dtype dt, int ndim, const int64_t *dims) {
    ot_tensor *y = NULL;
    CHECK_OK(oh_run(op, opset, attrs, n_attrs, n_in, in, &y));
    if (!y) return NULL;
    CHECK(y->dtype == dt);
    CHECK(ot_shape_equal(y->ndim, y->dims, ndim, dims));
    return y;
}

static ot_tensor *bin(const char *op, const ot_tensor *a, const ot_tensor *b, ot_dtype dt, int ndim,
                      const int64_t *dims) {
    const ot_tensor *in[2] = {a, b};
    return run_ok(op, 17, NULL, 0, 2, in, dt, ndim, dims);
}
static ot_tensor *un(const char *op, const ot_tensor *a) {
    const ot_tensor *in[1] = {a};
    return run_ok(op, 17, NULL, 0, 1, in, a->dtype, a->ndim, a->dims);
}

static int same_f32(float a, float b) { return (isnan(a) && isnan(b)) || a == b; }

/* ---- arithmetic and broadcasting ---- */

static void test_add_shapes(void) {
    float a[24], b[24], r[4] = {10, 20, 30, 40};
    for (int i = 0; i < 24; i++) a[i] = (float)i * 0.25f - 3, b[i] = (float)(i * i) / 7.0f;
    ot_tensor *A = oh_f32(3, DIMS(2, 3, 4), a), *B = oh_f32(3, DIMS(2, 3, 4), b), *R = oh_f32(1, DIMS(4), r);
    ot_tensor *S = scalar_f32(1.5f);

    ot_tensor *y = bin("Add", A, B, OT_F32, 3, DIMS(2, 3, 4));
    int ok = 1;
    for (int i = 0; y && i < 24; i++) ok &= F(y)[i] == a[i] + b[i];
    CHECK(ok);
    ot_tensor_free(y);

    y = bin("Sub", A, R, OT_F32, 3, DIMS(2, 3, 4)); /* row vector on the right */
    ok = 1;
    for (int i = 0; y && i < 24; i++) ok &= F(y)[i] == a[i] - r[i % 4];
    CHECK(ok);
    ot_tensor_free(y);

    y = bin("Sub", R, A, OT_F32, 3, DIMS(2, 3, 4)); /* row vector on the left */
    ok = 1;
    for (int i = 0; y && i < 24; i++) ok &= F(y)[i] == r[i % 4] - a[i];
    CHECK(ok);
    ot_tensor_free(y);

    y = bin("Mul", S, A, OT_F32, 3, DIMS(2, 3, 4)); /* scalar on the left */
    ok = 1;
    for (int i = 0; y && i < 24; i++) ok &= F(y)[i] == 1.5f * a[i];
    CHECK(ok);
    ot_tensor_free(y);

    y = bin("Div", A, S, OT_F32, 3, DIMS(2, 3, 4)); /* scalar on the right */
    ok = 1;
    for (int i = 0; y && i < 24; i++) ok &= F(y)[i] == a[i] / 1.5f;
    CHECK(ok);
    ot_tensor_free(y);

    y = bin("Add", S, S, OT_F32, 0, NULL); /* rank 0 */
    CHECK(y && F(y)[0] == 3.0f);
    ot_tensor_free(y);

    /* [3,1] (x) [1,4]: outer sum, both operands broadcast along one axis. */
    float c3[3] = {1, 2, 3};
    ot_tensor *C = oh_f32(2, DIMS(3, 1), c3), *R2 = oh_f32(2, DIMS(1, 4), r);
    y = bin("Add", C, R2, OT_F32, 2, DIMS(3, 4));
    ok = 1;
    for (int i = 0; y && i < 3; i++)
        for (int j = 0; j < 4; j++) ok &= F(y)[i * 4 + j] == c3[i] + r[j];
    CHECK(ok);
    ot_tensor_free(y);

    /* [2,3,4] + [2,1,4]: a middle broadcast axis, rows that cannot coalesce. */
    float m[8];
    for (int i = 0; i < 8; i++) m[i] = (float)(100 * i);
    ot_tensor *M = oh_f32(3, DIMS(2, 1, 4), m);
    y = bin("Add", A, M, OT_F32, 3, DIMS(2, 3, 4));
    ok = 1;
    for (int i = 0; y && i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++) ok &= F(y)[(i * 3 + j) * 4 + k] == a[(i * 3 + j) * 4 + k] + m[i * 4 + k];
    CHECK(ok);
    ot_tensor_free(y);

    /* Empty: [0,4] + [4] -> [0,4]; [2,0,1] * [3] -> [2,0,3]. */
    ot_tensor *E = oh_f32(2, DIMS(0, 4), NULL), *E2 = oh_f32(3, DIMS(2, 0, 1), NULL), *T3 = oh_f32(1, DIMS(3), c3);
    y = bin("Add", E, R, OT_F32, 2, DIMS(0, 4));
    ot_tensor_free(y);
    y = bin("Mul", E2, T3, OT_F32, 3, DIMS(2, 0, 3));
    ot_tensor_free(y);

    /* Shape and dtype errors. */
    ot_tensor *B5 = oh_f32(1, DIMS(5), NULL), *I = oh_tensor(OT_I64, 1, DIMS(4), NULL), *H = oh_tensor(OT_U16, 1, DIMS(4), NULL);
    const ot_tensor *p1[2] = {A, B5}, *p2[2] = {R, I}, *p3[2] = {H, H};
    CHECK(oh_run("Add", 17, NULL, 0, 2, p1, &y) == OT_E_SHAPE);
    CHECK(oh_run("Add", 17, NULL, 0, 2, p2, &y) == OT_E_SHAPE);
    CHECK(oh_run("Add", 17, NULL, 0, 2, p3, &y) == OT_E_UNSUPPORTED);
    CHECK(strstr(ot_last_error(), "uint16") && strstr(ot_last_error(), "Add node 't'"));

    ot_tensor *all[] = {A, B, R, S, C, R2, M, E, E2, T3, B5, I, H};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ot_tensor_free(all[k]);
}

/* A broadcast big enough for the parallel path and many chunk boundaries inside rows. */
static void test_large_broadcast(void) {
    const int P = 33, Q = 65, R = 517;
    float *a = malloc(sizeof(float) * P * R), *b = malloc(sizeof(float) * Q * R);
    for (int i = 0; i < P * R; i++) a[i] = (float)(i % 1000) * 0.125f;
    for (int i = 0; i < Q * R; i++) b[i] = (float)(i % 777) - 300.0f;
    ot_tensor *A = oh_f32(3, DIMS(P, 1, R), a), *B = oh_f32(3, DIMS(1, Q, R), b);
    ot_tensor *y = bin("Add", A, B, OT_F32, 3, DIMS(P, Q, R));
    int ok = 1;
    for (int i = 0; y && i < P; i++)
        for (int j = 0; j < Q; j++)
            for (int k = 0; k < R; k++) ok &= F(y)[((int64_t)i * Q + j) * R + k] == a[i * R + k] + b[j * R + k];
    CHECK(ok);
    ot_tensor_free(y);

    /* Variadic Max over three broadcast operands, folded in place. */
    float s = 200.0f;
    ot_tensor *S = scalar_f32(s);
    const ot_tensor *in3[3] = {A, B, S};
    y = run_ok("Max", 17, NULL, 0, 3, in3, OT_F32, 3, DIMS(P, Q, R));
    ok = 1;
    for (int i = 0; y && i < P; i++)
        for (int j = 0; j < Q; j++)
            for (int k = 0; k < R; k++) {
                float m = a[i * R + k] > b[j * R + k] ? a[i * R + k] : b[j * R + k];
                m = m > s ? m : s;
                ok &= F(y)[((int64_t)i * Q + j) * R + k] == m;
            }
    CHECK(ok);
    ot_tensor_free(y);

    /* Large unary (parallel, transcendental chunking). */
    int64_t n = 300001;
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((i % 2001) - 1000) / 100.0f;
    ot_tensor *X = oh_f32(1, DIMS(n), x);
    y = un("Tanh", X);
    ok = 1;
    for (int64_t i = 0; y && i < n; i++) ok &= fabs(F(y)[i] - tanh((double)x[i])) <= 1e-6;
    CHECK(ok);
    ot_tensor_free(y);
    free(x);
    ot_tensor_free(X);
    free(a);
    free(b);
    ot_tensor_free(A);
    ot_tensor_free(B);
    ot_tensor_free(S);
}

static void test_int_arith(void) {
    int32_t a[6] = {INT32_MAX, -7, 7, INT32_MIN, 9, -9}, b[6] = {1, 2, -2, -1, 3, 4};
    ot_tensor *A = oh_tensor(OT_I32, 1, DIMS(6), a), *B = oh_tensor(OT_I32, 1, DIMS(6), b);
    ot_tensor *y = bin("Add", A, B, OT_I32, 1, DIMS(6));
    CHECK(y && I32(y)[0] == INT32_MIN && I32(y)[1] == -5 && I32(y)[2] == 5 && I32(y)[3] == INT32_MAX);
    ot_tensor_free(y);
    y = bin("Div", A, B, OT_I32, 1, DIMS(6));
    /* truncation toward zero; INT_MIN / -1 wraps */
    CHECK(y && I32(y)[0] == INT32_MAX && I32(y)[1] == -3 && I32(y)[2] == -3 && I32(y)[3] == INT32_MIN &&
          I32(y)[4] == 3 && I32(y)[5] == -2);
    ot_tensor_free(y);
    y = bin("Mul", A, B, OT_I32, 1, DIMS(6));
    CHECK(y && I32(y)[0] == INT32_MAX && I32(y)[1] == -14 && I32(y)[3] == INT32_MIN && I32(y)[5] == -36);
    ot_tensor_free(y);

    int64_t la[3] = {(int64_t)1 << 40, -5, 12}, lb = 3;
    ot_tensor *LA = oh_tensor(OT_I64, 1, DIMS(3), la), *LB = oh_tensor(OT_I64, 0, NULL, &lb);
    y = bin("Sub", LA, LB, OT_I64, 1, DIMS(3));
    CHECK(y && I64(y)[0] == ((int64_t)1 << 40) - 3 && I64(y)[1] == -8 && I64(y)[2] == 9);
    ot_tensor_free(y);
    y = bin("Div", LA, LB, OT_I64, 1, DIMS(3));
    CHECK(y && I64(y)[0] == ((int64_t)1 << 40) / 3 && I64(y)[1] == -1 && I64(y)[2] == 4);
    ot_tensor_free(y);

    uint8_t ua[3] = {250, 3, 200}, ub[3] = {10, 5, 7};
    ot_tensor *UA = oh_tensor(OT_U8, 1, DIMS(3), ua), *UB = oh_tensor(OT_U8, 1, DIMS(3), ub);
    y = bin("Add", UA, UB, OT_U8, 1, DIMS(3));
    CHECK(y && U8(y)[0] == 4 && U8(y)[1] == 8 && U8(y)[2] == 207);
    ot_tensor_free(y);
    y = bin("Sub", UB, UA, OT_U8, 1, DIMS(3));
    CHECK(y && U8(y)[0] == 16 && U8(y)[1] == 2 && U8(y)[2] == 63);
    ot_tensor_free(y);

    /* Integer division by zero fails the node before writing. */
    int64_t z[3] = {1, 0, 2};
    ot_tensor *Z = oh_tensor(OT_I64, 1, DIMS(3), z);
    const ot_tensor *in[2] = {LA, Z};
    CHECK(oh_run("Div", 17, NULL, 0, 2, in, &y) == OT_E_INVALID);
    CHECK(y == NULL && strstr(ot_last_error(), "division by zero") && strstr(ot_last_error(), "element 1"));
    /* ... but float division by zero is IEEE. */
    float fz[2] = {1, -1}, f0 = 0;
    ot_tensor *FZ = oh_f32(1, DIMS(2), fz), *F0 = scalar_f32(f0);
    y = bin("Div", FZ, F0, OT_F32, 1, DIMS(2));
    CHECK(y && isinf(F(y)[0]) && F(y)[0] > 0 && isinf(F(y)[1]) && F(y)[1] < 0);
    ot_tensor_free(y);

    ot_tensor *all[] = {A, B, LA, LB, UA, UB, Z, FZ, F0};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ot_tensor_free(all[k]);
}

static void test_pow(void) {
    float x[6] = {1.5f, -2.0f, 0.3f, 4.0f, -0.0f, -INFINITY};
    ot_tensor *X = oh_f32(1, DIMS(6), x);
    float e2 = 2, e3 = 3, eh = 0.5f, e17 = 1.7f;
    ot_tensor *E2 = scalar_f32(e2), *E3 = scalar_f32(e3), *EH = scalar_f32(eh), *E17 = scalar_f32(e17);
    ot_tensor *y = bin("Pow", X, E2, OT_F32, 1, DIMS(6));
    int ok = 1;
    for (int i = 0; y && i < 6; i++) ok &= same_f32(F(y)[i], x[i] * x[i]);
    CHECK(ok);
    ot_tensor_free(y);
    y = bin("Pow", X, E3, OT_F32, 1, DIMS(6));
    ok = 1;
    for (int i = 0; y && i < 6; i++) ok &= same_f32(F(y)[i], x[i] * x[i] * x[i]);
    CHECK(ok);
    ot_tensor_free(y);
    y = bin("Pow", X, EH, OT_F32, 1, DIMS(6));
    /* pow(x, 0.5): sqrt with pow's special cases: pow(-0, .5) = +0, pow(-inf, .5) = +inf */
    CHECK(y && F(y)[0] == sqrtf(1.5f) && isnan(F(y)[1]) && F(y)[3] == 2.0f);
    CHECK(y && F(y)[4] == 0.0f && !signbit(F(y)[4]) && isinf(F(y)[5]) && F(y)[5] > 0);
    ot_tensor_free(y);
    y = bin("Pow", X, E17, OT_F32, 1, DIMS(6));
    CHECK(y && fabs(F(y)[0] - pow(1.5, 1.7)) < 1e-6 && isnan(F(y)[1]) && fabs(F(y)[2] - pow(0.3, 1.7)) < 1e-6);
    ot_tensor_free(y);

    /* Exponent broadcast along rows: [2,3] ^ [3]. */
    float b6[6] = {1, 2, 3, 4, 5, 6}, ev[3] = {0, 1, -1};
    ot_tensor *B6 = oh_f32(2, DIMS(2, 3), b6), *EV = oh_f32(1, DIMS(3), ev);
    y = bin("Pow", B6, EV, OT_F32, 2, DIMS(2, 3));
    CHECK(y && F(y)[0] == 1 && F(y)[1] == 2 && F(y)[2] == 1.0f / 3 && F(y)[3] == 1 && F(y)[4] == 5 &&
          F(y)[5] == 1.0f / 6);
    ot_tensor_free(y);

    /* float32 base, int64 exponent (computed in double). */
    int64_t ie[6] = {2, 3, -1, 0, 5, 2};
    ot_tensor *IE = oh_tensor(OT_I64, 1, DIMS(6), ie);
    y = bin("Pow", X, IE, OT_F32, 1, DIMS(6));
    CHECK(y && F(y)[0] == 2.25f && F(y)[1] == -8.0f && F(y)[2] == (float)(1 / 0.3f) && F(y)[3] == 1.0f &&
          F(y)[5] == INFINITY);
    ot_tensor_free(y);

    /* int32 base, int32 exponent: exact, x^-n = 0 unless |x| == 1. */
    int32_t ib[6] = {2, -3, 2, -1, 7, 0}, ix[6] = {10, 3, -1, -3, 0, 0};
    ot_tensor *IB = oh_tensor(OT_I32, 1, DIMS(6), ib), *IX = oh_tensor(OT_I32, 1, DIMS(6), ix);
    y = bin("Pow", IB, IX, OT_I32, 1, DIMS(6));
    CHECK(y && I32(y)[0] == 1024 && I32(y)[1] == -27 && I32(y)[2] == 0 && I32(y)[3] == -1 && I32(y)[4] == 1 &&
          I32(y)[5] == 1);
    ot_tensor_free(y);

    /* int64 base, int64 exponent, beyond double's 53 bits: 3^39 exactly. */
    int64_t l3 = 3, l39 = 39, p = 1;
    for (int i = 0; i < 39; i++) p *= 3;
    ot_tensor *L3 = oh_tensor(OT_I64, 1, DIMS(1), &l3), *L39 = oh_tensor(OT_I64, 0, NULL, &l39);
    y = bin("Pow", L3, L39, OT_I64, 1, DIMS(1));
    CHECK(y && I64(y)[0] == p);
    ot_tensor_free(y);

    /* int64 base, float exponent: trunc(pow). */
    int64_t lb[4] = {3, 4, -2, 10};
    float fe[4] = {2.5f, 0.5f, 3.0f, -1.0f};
    ot_tensor *LB = oh_tensor(OT_I64, 1, DIMS(4), lb), *FE = oh_f32(1, DIMS(4), fe);
    y = bin("Pow", LB, FE, OT_I64, 1, DIMS(4));
    CHECK(y && I64(y)[0] == 15 && I64(y)[1] == 2 && I64(y)[2] == -8 && I64(y)[3] == 0);
    ot_tensor_free(y);

    /* A bool exponent and a uint16 base are rejected. */
    ot_tensor *BO = oh_tensor(OT_BOOL, 1, DIMS(6), NULL), *H = oh_tensor(OT_U16, 1, DIMS(6), NULL);
    const ot_tensor *bad1[2] = {X, BO}, *bad2[2] = {H, X};
    CHECK(oh_run("Pow", 17, NULL, 0, 2, bad1, &y) == OT_E_UNSUPPORTED);
    CHECK(oh_run("Pow", 17, NULL, 0, 2, bad2, &y) == OT_E_UNSUPPORTED);

    ot_tensor *all[] = {X, E2, E3, EH, E17, B6, EV, IE, IB, IX, L3, L39, LB, FE, BO, H};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ot_tensor_free(all[k]);
}

/* ---- unary ---- */

static void test_unary(void) {
    float x[9] = {-3.0f, -0.5f, 0.0f, 0.1f, 1.0f, 2.5f, 7.0f, 0.75f, 3.9f};
    ot_tensor *X = oh_f32(1, DIMS(9), x);
    struct {
        const char *op;
        double (*ref)(double);
        double tol;
    } cases[] = {{"Exp", exp, 1e-6}, {"Tanh", tanh, 1e-6}, {"Erf", erf, 1e-6}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ot_tensor *y = un(cases[k].op, X);
        for (int i = 0; y && i < 9; i++) CHECK_NEAR(F(y)[i], cases[k].ref(x[i]), cases[k].tol);
        ot_tensor_free(y);
    }
    ot_tensor *y = un("Sigmoid", X);
    for (int i = 0; y && i < 9; i++) CHECK_NEAR(F(y)[i], 1.0 / (1.0 + exp(-(double)x[i])), 1e-6);
    ot_tensor_free(y);
    y = un("Neg", X);
    for (int i = 0; y && i < 9; i++) CHECK(F(y)[i] == -x[i]);
    ot_tensor_free(y);
    y = un("Abs", X);
    for (int i = 0; y && i < 9; i++) CHECK(F(y)[i] == (x[i] < 0 ? -x[i] : x[i]));
    ot_tensor_free(y);

    float p[5] = {4.0f, 2.0f, 0.0f, 1e-3f, 1e6f};
    ot_tensor *P = oh_f32(1, DIMS(5), p);
    y = un("Sqrt", P);
    CHECK(y && F(y)[0] == 2.0f && F(y)[1] == (float)sqrt(2.0) && F(y)[2] == 0.0f && F(y)[4] == 1000.0f);
    ot_tensor_free(y);
    y = un("Log", P);
    CHECK(y && fabs(F(y)[0] - log(4.0)) < 1e-6 && isinf(F(y)[2]) && F(y)[2] < 0);
    for (int i = 0; y && i < 5; i++)
        if (p[i] > 0) CHECK_NEAR(F(y)[i], log((double)p[i]), 1e-6);
    ot_tensor_free(y);
    y = un("Reciprocal", P);
    CHECK(y && F(y)[0] == 0.25f && F(y)[1] == 0.5f && isinf(F(y)[2]) && F(y)[3] == 1.0f / 1e-3f);
    ot_tensor_free(y);

    /* Sigmoid at large |x| and NaN: no overflow, tails kept, NaN stays NaN. */
    float s[7] = {-100.0f, -20.0f, 20.0f, 100.0f, NAN, -88.0f, -90.0f};
    ot_tensor *S = oh_f32(1, DIMS(7), s);
    y = un("Sigmoid", S);
    CHECK(y && F(y)[0] >= 0.0f && F(y)[0] < 1e-40f);
    CHECK(y && fabs(F(y)[1] - exp(-20.0)) <= 1e-6 * exp(-20.0) * 10); /* relative, tail kept */
    CHECK(y && F(y)[2] == 1.0f && F(y)[3] == 1.0f && isnan(F(y)[4]));
    CHECK(y && fabs(F(y)[5] - exp(-88.0)) <= 1e-5 * exp(-88.0));
    CHECK(y && fabs(F(y)[6] - exp(-90.0)) <= 1e-5 * exp(-90.0)); /* 1/(1+exp(90)) would give 0 */
    ot_tensor_free(y);

    /* Erf over a dense grid to 1e-5 relative of the double reference. */
    float g[401];
    for (int i = 0; i < 401; i++) g[i] = (float)(i - 200) / 40.0f;
    ot_tensor *G = oh_f32(1, DIMS(401), g);
    y = un("Erf", G);
    int ok = 1;
    for (int i = 0; y && i < 401; i++) {
        double r = erf((double)g[i]);
        ok &= fabs(F(y)[i] - r) <= 1e-5 * fabs(r) + 1e-30;
    }
    CHECK(ok);
    ot_tensor_free(y);

    /* Relu keeps NaN and -0, like ONNX Runtime. */
    float r[5] = {NAN, -0.0f, -1.0f, 2.0f, -INFINITY};
    ot_tensor *R = oh_f32(1, DIMS(5), r);
    y = un("Relu", R);
    CHECK(y && isnan(F(y)[0]) && F(y)[1] == 0.0f && F(y)[2] == 0.0f && F(y)[3] == 2.0f && F(y)[4] == 0.0f);
    ot_tensor_free(y);

    /* float64 and integer paths. */
    double d[3] = {-1.0, 0.5, 2.0};
    ot_tensor *Dt = oh_tensor(OT_F64, 1, DIMS(3), d);
    y = un("Exp", Dt);
    CHECK(y && D(y)[0] == exp(-1.0) && D(y)[1] == exp(0.5) && D(y)[2] == exp(2.0));
    ot_tensor_free(y);
    int8_t i8[4] = {-128, -5, 0, 127};
    ot_tensor *I8t = oh_tensor(OT_I8, 1, DIMS(4), i8);
    y = un("Abs", I8t);
    CHECK(y && I8(y)[0] == -128 && I8(y)[1] == 5 && I8(y)[2] == 0 && I8(y)[3] == 127);
    ot_tensor_free(y);
    y = un("Neg", I8t);
    CHECK(y && I8(y)[0] == -128 && I8(y)[1] == 5 && I8(y)[3] == -127);
    ot_tensor_free(y);
    int64_t l[3] = {-4, 0, 9};
    ot_tensor *L = oh_tensor(OT_I64, 1, DIMS(3), l);
    y = un("Relu", L);
    CHECK(y && I64(y)[0] == 0 && I64(y)[1] == 0 && I64(y)[2] == 9);
    ot_tensor_free(y);
    const ot_tensor *li[1] = {L};
    CHECK(oh_run("Exp", 17, NULL, 0, 1, li, &y) == OT_E_UNSUPPORTED); /* Exp has no int64 kernel */

    /* Empty input. */
    ot_tensor *E = oh_f32(2, DIMS(0, 5), NULL);
    y = un("Exp", E);
    ot_tensor_free(y);

    ot_tensor *all[] = {X, P, S, G, R, Dt, I8t, L, E};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ot_tensor_free(all[k]);
}

/* ---- comparisons, logic, Where ---- */

static void test_compare_logic(void) {
    float a[6] = {1, 2, 3, NAN, -1, 5}, b[3] = {2, 2, NAN};
    ot_tensor *A = oh_f32(2, DIMS(2, 3), a), *B = oh_f32(1, DIMS(3), b);
    const char *ops[5] = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"};
    for (int o = 0; o < 5; o++) {
        ot_tensor *y = bin(ops[o], A, B, OT_BOOL, 2, DIMS(2, 3));
        int ok = 1;
        for (int i = 0; y && i < 6; i++) {
            float x = a[i], z = b[i % 3];
            int want = o == 0 ? x == z : o == 1 ? x < z : o == 2 ? x > z : o == 3 ? x <= z : x >= z;
            ok &= U8(y)[i] == want;
        }
        CHECK(ok);
        ot_tensor_free(y);
    }
    int64_t la[4] = {5, -3, 7, 7}, lb = 7;
    ot_tensor *LA = oh_tensor(OT_I64, 1, DIMS(4), la), *LB = oh_tensor(OT_I64, 0, NULL, &lb);
    ot_tensor *y = bin("Equal", LA, LB, OT_BOOL, 1, DIMS(4));
    CHECK(y && U8(y)[0] == 0 && U8(y)[1] == 0 && U8(y)[2] == 1 && U8(y)[3] == 1);
    ot_tensor_free(y);
    y = bin("Less", LB, LA, OT_BOOL, 1, DIMS(4));
    CHECK(y && U8(y)[0] == 0 && U8(y)[1] == 0 && U8(y)[2] == 0 && U8(y)[3] == 0);
    ot_tensor_free(y);

    uint8_t p[4] = {1, 0, 1, 0}, q[4] = {1, 1, 0, 0}, q2[4] = {2, 1, 0, 0}; /* q2: a nonzero non-1 "true" */
    ot_tensor *P = oh_tensor(OT_BOOL, 1, DIMS(4), p), *Q = oh_tensor(OT_BOOL, 1, DIMS(4), q), *Q2 = oh_tensor(OT_BOOL, 1, DIMS(4), q2);
    y = bin("And", P, Q, OT_BOOL, 1, DIMS(4));
    CHECK(y && U8(y)[0] == 1 && U8(y)[1] == 0 && U8(y)[2] == 0 && U8(y)[3] == 0);
    ot_tensor_free(y);
    y = bin("Or", P, Q2, OT_BOOL, 1, DIMS(4));
    CHECK(y && U8(y)[0] == 1 && U8(y)[1] == 1 && U8(y)[2] == 1 && U8(y)[3] == 0);
    ot_tensor_free(y);
    y = bin("Equal", Q, Q2, OT_BOOL, 1, DIMS(4));
    CHECK(y && U8(y)[0] == 1 && U8(y)[1] == 1 && U8(y)[2] == 1 && U8(y)[3] == 1);
    ot_tensor_free(y);
    y = un("Not", Q2);
    CHECK(y && U8(y)[0] == 0 && U8(y)[1] == 0 && U8(y)[2] == 1 && U8(y)[3] == 1);
    ot_tensor_free(y);
    const ot_tensor *fb[2] = {A, A};
    CHECK(oh_run("And", 17, NULL, 0, 2, fb, &y) == OT_E_UNSUPPORTED);
    const ot_tensor *pb[2] = {P, B};
    CHECK(oh_run("Less", 17, NULL, 0, 2, pb, &y) == OT_E_SHAPE); /* bool vs float */

    ot_tensor *all[] = {A, B, LA, LB, P, Q, Q2};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ot_tensor_free(all[k]);
}

static void test_where(void) {
    /* Masked fill: mask [2,1,1,4], scores [2,3,4,4], fill scalar -inf. */
    uint8_t mask[8] = {1, 1, 0, 1, 0, 1, 1, 0};
    float sc[96];
    for (int i = 0; i < 96; i++) sc[i] = (float)i;
    float fill = -INFINITY;
    ot_tensor *M = oh_tensor(OT_BOOL, 4, DIMS(2, 1, 1, 4), mask), *S = oh_f32(4, DIMS(2, 3, 4, 4), sc), *Fl = scalar_f32(fill);
    const ot_tensor *in[3] = {M, S, Fl};
    ot_tensor *y = run_ok("Where", 17, NULL, 0, 3, in, OT_F32, 4, DIMS(2, 3, 4, 4));
    int ok = 1;
    for (int i = 0; y && i < 96; i++) {
        int bb = i / 48, k = i % 4;
        ok &= F(y)[i] == (mask[bb * 4 + k] ? sc[i] : fill);
    }
    CHECK(ok);
    ot_tensor_free(y);
    const ot_tensor *in2[3] = {M, Fl, S}; /* scalar on the X side */
    y = run_ok("Where", 17, NULL, 0, 3, in2, OT_F32, 4, DIMS(2, 3, 4, 4));
    ok = 1;
    for (int i = 0; y && i < 96; i++) ok &= F(y)[i] == (mask[(i / 48) * 4 + i % 4] ? fill : sc[i]);
    CHECK(ok);
    ot_tensor_free(y);

    /* Condition broadcast along the rows ([2,1]), int64 and float16 payloads. */
    uint8_t c2[2] = {0, 1};
    int64_t xa[6] = {1, 2, 3, 4, 5, 6}, ya[3] = {-1, -2, -3};
    ot_tensor *C2 = oh_tensor(OT_BOOL, 2, DIMS(2, 1), c2), *XA = oh_tensor(OT_I64, 2, DIMS(2, 3), xa);
    ot_tensor *YA = oh_tensor(OT_I64, 1, DIMS(3), ya);
    const ot_tensor *in3[3] = {C2, XA, YA};
    y = run_ok("Where", 17, NULL, 0, 3, in3, OT_I64, 2, DIMS(2, 3));
    CHECK(y && I64(y)[0] == -1 && I64(y)[1] == -2 && I64(y)[2] == -3 && I64(y)[3] == 4 && I64(y)[4] == 5 &&
          I64(y)[5] == 6);
    ot_tensor_free(y);
    uint16_t ha[3] = {0x3c00, 0x4000, 0x4200}, hb[3] = {0xbc00, 0xc000, 0xc200};
    uint8_t c3[3] = {1, 0, 1};
    ot_tensor *HA = oh_tensor(OT_F16, 1, DIMS(3), ha), *HB = oh_tensor(OT_F16, 1, DIMS(3), hb), *C3 = oh_tensor(OT_BOOL, 1, DIMS(3), c3);
    const ot_tensor *in4[3] = {C3, HA, HB};
    y = run_ok("Where", 17, NULL, 0, 3, in4, OT_F16, 1, DIMS(3));
    CHECK(y && U16(y)[0] == 0x3c00 && U16(y)[1] == 0xc000 && U16(y)[2] == 0x4200);
    ot_tensor_free(y);
    /* Empty and error cases. */
    ot_tensor *E = oh_tensor(OT_BOOL, 2, DIMS(0, 3), NULL);
    const ot_tensor *in5[3] = {E, YA, YA};
    y = run_ok("Where", 17, NULL, 0, 3, in5, OT_I64, 2, DIMS(0, 3));
    ot_tensor_free(y);
    const ot_tensor *bad[3] = {XA, XA, XA}, *bad2[3] = {C3, HA, S};
    CHECK(oh_run("Where", 17, NULL, 0, 3, bad, &y) == OT_E_SHAPE);
    CHECK(oh_run("Where", 17, NULL, 0, 3, bad2, &y) == OT_E_SHAPE);

    ot_tensor *all[] = {M, S, Fl, C2, XA, YA, HA, HB, C3, E};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ot_tensor_free(all[k]);
}

/* ---- Max, Min, Clip ---- */

static void test_minmax_clip(void) {
    float a[3] = {NAN, 1, 2}, b[3] = {1, NAN, 3};
    ot_tensor *A = oh_f32(1, DIMS(3), a), *B = oh_f32(1, DIMS(3), b);
    ot_tensor *y = bin("Max", A, B, OT_F32, 1, DIMS(3));
    CHECK(y && isnan(F(y)[0]) && isnan(F(y)[1]) && F(y)[2] == 3);
    ot_tensor_free(y);
    y = bin("Min", A, B, OT_F32, 1, DIMS(3));
    CHECK(y && isnan(F(y)[0]) && isnan(F(y)[1]) && F(y)[2] == 2);
    ot_tensor_free(y);

    /* Min of [3,1], [1,4] and a scalar; single-input Max is a copy. */
    int64_t c[3] = {5, -2, 9}, r[4] = {0, 3, 7, -5}, s = 4;
    ot_tensor *C = oh_tensor(OT_I64, 2, DIMS(3, 1), c), *R = oh_tensor(OT_I64, 2, DIMS(1, 4), r), *S = oh_tensor(OT_I64, 0, NULL, &s);
    const ot_tensor *in[3] = {C, R, S};
    y = run_ok("Min", 13, NULL, 0, 3, in, OT_I64, 2, DIMS(3, 4));
    int ok = 1;
    for (int i = 0; y && i < 3; i++)
        for (int j = 0; j < 4; j++) {
            int64_t m = c[i] < r[j] ? c[i] : r[j];
            ok &= I64(y)[i * 4 + j] == (m < s ? m : s);
        }
    CHECK(ok);
    ot_tensor_free(y);
    const ot_tensor *one[1] = {C};
    y = run_ok("Max", 21, NULL, 0, 1, one, OT_I64, 2, DIMS(3, 1));
    CHECK(y && I64(y)[0] == 5 && I64(y)[1] == -2 && I64(y)[2] == 9);
    ot_tensor_free(y);

    /* Clip, f32: both bounds; max only (min omitted); none (infinities clamp to the largest
     * finite values); min > max gives max everywhere. */
    float x[6] = {NAN, -5, 5, 0.5f, -INFINITY, INFINITY};
    ot_tensor *X = oh_f32(1, DIMS(6), x), *Lo = scalar_f32(0), *Hi = scalar_f32(1);
    const ot_tensor *c1[3] = {X, Lo, Hi};
    y = run_ok("Clip", 13, NULL, 0, 3, c1, OT_F32, 1, DIMS(6));
    CHECK(y && isnan(F(y)[0]) && F(y)[1] == 0 && F(y)[2] == 1 && F(y)[3] == 0.5f && F(y)[4] == 0 && F(y)[5] == 1);
    ot_tensor_free(y);
    const ot_tensor *c2[3] = {X, NULL, Hi};
    y = run_ok("Clip", 17, NULL, 0, 3, c2, OT_F32, 1, DIMS(6));
    CHECK(y && F(y)[1] == -5 && F(y)[2] == 1 && F(y)[4] == -FLT_MAX && F(y)[5] == 1);
    ot_tensor_free(y);
    const ot_tensor *c3[1] = {X};
    y = run_ok("Clip", 17, NULL, 0, 1, c3, OT_F32, 1, DIMS(6));
    CHECK(y && F(y)[1] == -5 && F(y)[2] == 5 && F(y)[4] == -FLT_MAX && F(y)[5] == FLT_MAX);
    ot_tensor_free(y);
    const ot_tensor *c4[3] = {X, Hi, Lo};
    y = run_ok("Clip", 17, NULL, 0, 3, c4, OT_F32, 1, DIMS(6));
    CHECK(y && F(y)[1] == 0 && F(y)[2] == 0 && F(y)[3] == 0);
    ot_tensor_free(y);

    /* Clip, int64, min only; a non-scalar bound and a mismatched dtype are rejected. */
    int64_t xi[4] = {-9, 0, 3, INT64_MAX}, lo = -1;
    ot_tensor *XI = oh_tensor(OT_I64, 2, DIMS(2, 2), xi), *LOI = oh_tensor(OT_I64, 1, DIMS(1), &lo);
    const ot_tensor *c5[2] = {XI, LOI};
    y = run_ok("Clip", 17, NULL, 0, 2, c5, OT_I64, 2, DIMS(2, 2));
    CHECK(y && I64(y)[0] == -1 && I64(y)[1] == 0 && I64(y)[2] == 3 && I64(y)[3] == INT64_MAX);
    ot_tensor_free(y);
    const ot_tensor *c6[3] = {X, A, NULL}, *c7[2] = {X, LOI};
    CHECK(oh_run("Clip", 17, NULL, 0, 3, c6, &y) == OT_E_SHAPE);
    CHECK(strstr(ot_last_error(), "'min' must be a scalar") != NULL);
    CHECK(oh_run("Clip", 17, NULL, 0, 2, c7, &y) == OT_E_SHAPE);

    ot_tensor *all[] = {A, B, C, R, S, X, Lo, Hi, XI, LOI};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ot_tensor_free(all[k]);
}

/* ---- Cast ---- */

static ot_tensor *cast(const ot_tensor *x, ot_dtype to, int opset) {
    ot_attr at = oh_attr_int("to", to);
    const ot_tensor *in[1] = {x};
    return run_ok("Cast", opset, &at, 1, 1, in, to, x->ndim, x->dims);
}

static void test_cast(void) {
    float x[7] = {2.7f, -2.7f, NAN, 0.0f, -0.0f, 1e10f, 1.00390625f};
    ot_tensor *X = oh_f32(1, DIMS(7), x);
    ot_tensor *y = cast(X, OT_I64, 13);
    CHECK(y && I64(y)[0] == 2 && I64(y)[1] == -2 && I64(y)[2] == 0 && I64(y)[3] == 0 && I64(y)[5] == 10000000000LL);
    ot_tensor_free(y);
    y = cast(X, OT_I32, 19);
    CHECK(y && I32(y)[0] == 2 && I32(y)[1] == -2 && I32(y)[6] == 1);
    ot_tensor_free(y);
    y = cast(X, OT_BOOL, 21);
    CHECK(y && U8(y)[0] == 1 && U8(y)[2] == 1 && U8(y)[3] == 0 && U8(y)[4] == 0 && U8(y)[5] == 1);
    ot_tensor_free(y);
    y = cast(X, OT_BF16, 17); /* 1 + 2^-8 ties to even: 1.0 */
    CHECK(y && U16(y)[6] == 0x3f80 && U16(y)[3] == 0x0000 && U16(y)[4] == 0x8000);
    ot_tensor *z = y ? cast(y, OT_F32, 17) : NULL;
    CHECK(z && F(z)[6] == 1.0f && F(z)[0] == 2.703125f && isnan(F(z)[2]));
    ot_tensor_free(z);
    ot_tensor_free(y);
    y = cast(X, OT_F64, 17);
    for (int i = 0; y && i < 7; i++) CHECK(same_f32((float)D(y)[i], x[i]));
    ot_tensor_free(y);

    int64_t l[4] = {(1LL << 24) + 1, -3, 0, (1LL << 53) + 1};
    ot_tensor *L = oh_tensor(OT_I64, 1, DIMS(4), l);
    y = cast(L, OT_F32, 17);
    CHECK(y && F(y)[0] == 16777216.0f && F(y)[1] == -3.0f && F(y)[2] == 0.0f && F(y)[3] == 9007199254740992.0f);
    ot_tensor_free(y);
    y = cast(L, OT_BOOL, 17);
    CHECK(y && U8(y)[0] == 1 && U8(y)[1] == 1 && U8(y)[2] == 0);
    ot_tensor_free(y);
    y = cast(L, OT_I32, 17);
    CHECK(y && I32(y)[0] == (1 << 24) + 1 && I32(y)[1] == -3 && I32(y)[3] == 1);
    ot_tensor_free(y);
    y = cast(L, OT_I64, 17); /* identity */
    CHECK(y && I64(y)[3] == l[3]);
    ot_tensor_free(y);

    uint8_t bo[3] = {1, 0, 1};
    ot_tensor *BO = oh_tensor(OT_BOOL, 1, DIMS(3), bo);
    y = cast(BO, OT_F32, 17);
    CHECK(y && F(y)[0] == 1 && F(y)[1] == 0 && F(y)[2] == 1);
    ot_tensor_free(y);
    y = cast(BO, OT_I64, 17);
    CHECK(y && I64(y)[0] == 1 && I64(y)[1] == 0);
    ot_tensor_free(y);

    double d[3] = {65504.0, 1e6, 1.0 / 3};
    ot_tensor *Dd = oh_tensor(OT_F64, 1, DIMS(3), d);
    y = cast(Dd, OT_F16, 17);
    CHECK(y && U16(y)[0] == 0x7bff && U16(y)[1] == 0x7c00 && U16(y)[2] == 0x3555);
    ot_tensor_free(y);
    int32_t iv[2] = {-7, 300};
    ot_tensor *IV = oh_tensor(OT_I32, 1, DIMS(2), iv);
    y = cast(IV, OT_U8, 17);
    CHECK(y && U8(y)[0] == 249 && U8(y)[1] == 44);
    ot_tensor_free(y);
    y = cast(IV, OT_F32, 17);
    CHECK(y && F(y)[0] == -7.0f && F(y)[1] == 300.0f);
    ot_tensor_free(y);

    /* Empty tensors; attribute errors: missing `to`, float8 target, string target. */
    ot_tensor *E = oh_f32(2, DIMS(3, 0), NULL);
    y = cast(E, OT_F16, 19);
    ot_tensor_free(y);
    const ot_tensor *in[1] = {X};
    CHECK(oh_run("Cast", 17, NULL, 0, 1, in, &y) == OT_E_INVALID);
    CHECK(strstr(ot_last_error(), "'to'") != NULL);
    ot_attr f8[2] = {oh_attr_int("to", 17), oh_attr_int("saturate", 0)};
    CHECK(oh_run("Cast", 19, f8, 2, 1, in, &y) == OT_E_UNSUPPORTED);
    ot_attr st = oh_attr_int("to", OT_STRING);
    CHECK(oh_run("Cast", 17, &st, 1, 1, in, &y) == OT_E_UNSUPPORTED);
    ot_attr sat[2] = {oh_attr_int("to", OT_F16), oh_attr_int("saturate", 0)}; /* accepted at 19 */
    y = run_ok("Cast", 19, sat, 2, 1, in, OT_F16, 1, DIMS(7));
    CHECK(y && U16(y)[3] == 0 && U16(y)[6] == 0x3c04); /* 1 + 2^-8 is exact in f16 */
    ot_tensor_free(y);

    ot_tensor *all[] = {X, L, BO, Dd, IV, E};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ot_tensor_free(all[k]);
}

/* ---- registry ---- */

static void test_registry(void) {
    const char *ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Exp",
                         "Log", "Tanh", "Erf", "Sigmoid", "Relu", "Equal", "Less", "Greater", "LessOrEqual",
                         "GreaterOrEqual", "Not", "And", "Or", "Where", "Cast", "Max", "Min", "Clip"};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        int known = 0;
        const ot_op_def *lo = ot_op_find("", ops[k], 13, &known), *hi = ot_op_find("ai.onnx", ops[k], 21, NULL);
        if (!lo || !hi) fprintf(stderr, "missing entry for %s\n", ops[k]);
        CHECK(lo && hi && known);
    }
    const ot_op_def *c18 = ot_op_find("", "Cast", 18, NULL), *c19 = ot_op_find("", "Cast", 19, NULL);
    CHECK(c18 && c19 && c18 != c19 && c18->until == 18 && c19->since == 19);
    CHECK(ot_op_find("", "Add", 12, NULL) == NULL);
    const ot_op_def *mx = ot_op_find("", "Max", 17, NULL);
    CHECK(mx && mx->min_in == 1 && mx->max_in == -1);
    const ot_op_def *cl = ot_op_find("", "Clip", 17, NULL);
    CHECK(cl && cl->min_in == 1 && cl->max_in == 3);
}

int main(void) {
    OT_RUN(test_registry);
    OT_RUN(test_add_shapes);
    OT_RUN(test_large_broadcast);
    OT_RUN(test_int_arith);
    OT_RUN(test_pow);
    OT_RUN(test_unary);
    OT_RUN(test_compare_logic);
    OT_RUN(test_where);
    OT_RUN(test_minmax_clip);
    OT_RUN(test_cast);
    return OT_TEST_EXIT();
}
