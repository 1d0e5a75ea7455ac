/* test_ops_reduce.c — the reduce op family (ReduceSum, ReduceMean, ReduceMax) through its
 * registry entries: parse, infer and the CPU kernel on hand-built tensors. Expected values
 * come from a brute-force reference written here (every input element visited by explicit
 * index arithmetic, double or 64-bit accumulation), never from a kernel's output. Output
 * buffers carry guard bytes. Covers: every axis pattern the kernels distinguish (last axis,
 * middle axis, first axis, all axes, interleaved axes, size-1 axes), keepdims, negative
 * axes, axes as attribute (old opsets) and as input (new opsets), missing / empty axes and
 * noop_with_empty_axes, long sums staying accurate, large tensors on the parallel paths,
 * NaN in ReduceMax, empty reductions, integer dtypes (wrap-around, truncating mean), and
 * the error paths (duplicate / out-of-range axes, axes not constant, wrong attribute). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "op_harness.h"

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})
#define F(t) ((float *)(t)->data)
#define D(t) ((double *)(t)->data)
#define I32(t) ((int32_t *)(t)->data)
#define I64(t) ((int64_t *)(t)->data)

/* ---- harness: op_harness.h -------------------------------------------------------------- */

static ot_tensor *rnd_f32(int ndim, const int64_t *dims) { return oh_rand_f32(ndim, dims, 1.0f, 0.0f); }

/* ---- reference --------------------------------------------------------------------------- */

enum { SUM, MEAN, MAX };

/* Brute force over every input element: out (keepdims layout == reduced dims collapsed)
 * gets the sum / mean / max of its elements. reduced[d] marks reduced dims. */
static void ref_reduce(const ot_tensor *x, const int *reduced, int kind, double *out, int64_t *nout) {
    int64_t odims[8], on = 1;
    for (int d = 0; d < x->ndim; d++) odims[d] = reduced[d] ? 1 : x->dims[d], on *= odims[d];
    int64_t cnt = ot_tensor_numel(x) / (on ? on : 1);
    for (int64_t i = 0; i < on; i++) out[i] = kind == MAX ? -INFINITY : 0.0;
    for (int64_t i = 0; i < ot_tensor_numel(x); i++) {
        int64_t rem = i, o = 0, mul = 1;
        for (int d = x->ndim - 1; d >= 0; d--) {
            int64_t idx = rem % x->dims[d];
            rem /= x->dims[d];
            o += (reduced[d] ? 0 : idx) * mul;
            mul *= odims[d];
        }
        double v = ot_tensor_get_f64(x, i);
        if (kind == MAX) out[o] = (v > out[o] || isnan(v)) && !isnan(out[o]) ? v : out[o];
        else out[o] += v;
    }
    if (kind == MEAN)
        for (int64_t i = 0; i < on; i++) {
            out[i] /= (double)cnt;
            if (!ot_dtype_is_float(x->dtype)) out[i] = trunc(out[i]); /* integer division */
        }
    *nout = on;
}

static void check_close(const ot_tensor *y, const double *ref, int64_t n, double tol) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = ot_tensor_get_f64(y, i);
        int ok = fabs(g - ref[i]) <= tol * fmax(1.0, fabs(ref[i])) || (isnan(g) && isnan(ref[i])) || g == ref[i];
        if (!ok) {
            if (!bad) fprintf(stderr, "  element %lld: got %.9g want %.9g\n", (long long)i, g, ref[i]);
            bad++;
        }
    }
    CHECK(bad == 0);
}

static const char *kind_op(int kind) { return kind == SUM ? "ReduceSum" : kind == MEAN ? "ReduceMean" : "ReduceMax"; }

/* Runs one case at a new opset (axes as input) and an old opset (axes attribute). */
static void reduce_case(int kind, ot_tensor *x, int n_axes, const int64_t *axes, int keepdims) {
    int reduced[8] = {0};
    for (int i = 0; i < n_axes; i++) reduced[axes[i] < 0 ? axes[i] + x->ndim : axes[i]] = 1;
    if (n_axes == 0)
        for (int d = 0; d < x->ndim; d++) reduced[d] = 1;
    int64_t odims[8], ond = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!reduced[d]) odims[ond++] = x->dims[d];
        else if (keepdims) odims[ond++] = 1;
    }
    int64_t on0 = ot_shape_numel(x->ndim, x->dims), nout;
    double *ref = malloc((size_t)(on0 + 1) * sizeof *ref);
    ref_reduce(x, reduced, kind, ref, &nout);
    double tol = x->dtype == OT_F32 ? 2e-6 : 1e-12;
    for (int pass = 0; pass < 2; pass++) {
        int opset = pass == 0 ? (kind == SUM ? 13 : 18) : (kind == SUM ? 11 : 13);
        ot_tensor *ax = oh_tensor(OT_I64, 1, DIMS(n_axes), axes), *y;
        ot_attr at[2] = {oh_attr_int("keepdims", keepdims), oh_attr_ints("axes", n_axes, axes)};
        const ot_tensor *in[2] = {x, ax};
        ot_status st = pass == 0 ? oh_run(kind_op(kind), opset, at, 1, n_axes ? 2 : 1, in, &y)
                                 : oh_run(kind_op(kind), opset, at, n_axes ? 2 : 1, 1, in, &y);
        if (st) fprintf(stderr, "  %s opset %d: %s\n", kind_op(kind), opset, ot_last_error());
        CHECK(st == OT_OK);
        if (y) {
            CHECK(y->dtype == x->dtype && ot_shape_equal(y->ndim, y->dims, (int)ond, odims));
            check_close(y, ref, nout, tol);
        }
        ot_tensor_free(y), ot_tensor_free(ax);
    }
    free(ref);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_axis_patterns(void) {
    ot_tensor *x = rnd_f32(4, DIMS(3, 4, 5, 6));
    for (int kind = SUM; kind <= MAX; kind++)
        for (int keep = 0; keep < 2; keep++) {
            reduce_case(kind, x, 1, DIMS(3), keep);        /* last axis */
            reduce_case(kind, x, 1, DIMS(-1), keep);       /* negative */
            reduce_case(kind, x, 1, DIMS(1), keep);        /* middle axis */
            reduce_case(kind, x, 1, DIMS(0), keep);        /* first axis */
            reduce_case(kind, x, 2, DIMS(2, 3), keep);     /* trailing pair (merges) */
            reduce_case(kind, x, 2, DIMS(1, 2), keep);     /* middle pair */
            reduce_case(kind, x, 2, DIMS(0, 2), keep);     /* interleaved: generic */
            reduce_case(kind, x, 2, DIMS(-4, -1), keep);   /* [R, K, K, R]: generic */
            reduce_case(kind, x, 3, DIMS(0, 1, 3), keep);  /* generic */
            reduce_case(kind, x, 0, DIMS(0), keep);        /* no axes: everything */
            reduce_case(kind, x, 4, DIMS(3, 1, 0, 2), keep); /* all, listed */
        }
    ot_tensor_free(x);
    /* size-1 dims around the reduced axis */
    x = rnd_f32(4, DIMS(1, 7, 1, 9));
    for (int kind = SUM; kind <= MAX; kind++) {
        reduce_case(kind, x, 1, DIMS(2), 1); /* reducing a size-1 dim: copy */
        reduce_case(kind, x, 2, DIMS(0, 3), 0);
        reduce_case(kind, x, 1, DIMS(1), 1);
    }
    ot_tensor_free(x);
    /* large: parallel last-axis, middle-axis (inner wider than one chunk), total */
    x = rnd_f32(3, DIMS(64, 33, 700));
    for (int kind = SUM; kind <= MAX; kind++) {
        reduce_case(kind, x, 1, DIMS(2), 1);
        reduce_case(kind, x, 1, DIMS(1), 0);
        reduce_case(kind, x, 1, DIMS(0), 1);
        reduce_case(kind, x, 0, DIMS(0), 0);
        reduce_case(kind, x, 2, DIMS(0, 2), 1);
    }
    ot_tensor_free(x);
}

static void test_dtypes(void) {
    double dv[6] = {1.5, -2.25, 3, 1e300, -3e299, 7}; /* no order-dependent cancellation */
    ot_tensor *x = oh_tensor(OT_F64, 2, DIMS(2, 3), dv);
    for (int kind = SUM; kind <= MAX; kind++) {
        reduce_case(kind, x, 1, DIMS(1), 1);
        reduce_case(kind, x, 1, DIMS(0), 0);
    }
    ot_tensor_free(x);
    int32_t iv[6] = {5, -7, 2, 100, 3, -1};
    x = oh_tensor(OT_I32, 2, DIMS(3, 2), iv);
    for (int kind = SUM; kind <= MAX; kind++) reduce_case(kind, x, 1, DIMS(0), 1);
    ot_tensor_free(x);
    int64_t lv[4] = {-7, 0, 4, 3};
    x = oh_tensor(OT_I64, 2, DIMS(2, 2), lv);
    ot_tensor *y;
    const ot_tensor *in[1] = {x};
    ot_attr ax = oh_attr_ints("axes", 1, DIMS(1));
    CHECK_OK(oh_run("ReduceMean", 13, &ax, 1, 1, in, &y));
    CHECK(y && I64(y)[0] == -3 && I64(y)[1] == 3); /* -7/2 truncates toward zero; 7/2 = 3 */
    ot_tensor_free(y), ot_tensor_free(x);
    /* int32 sum wraps: INT32_MAX + 1 = INT32_MIN */
    int32_t wv[2] = {INT32_MAX, 1};
    x = oh_tensor(OT_I32, 1, DIMS(2), wv);
    const ot_tensor *in2[1] = {x};
    CHECK_OK(oh_run("ReduceSum", 13, NULL, 0, 1, in2, &y));
    CHECK(y && y->ndim == 1 && y->dims[0] == 1 && I32(y)[0] == INT32_MIN);
    ot_tensor_free(y), ot_tensor_free(x);
    /* unsupported dtype */
    x = oh_tensor(OT_U8, 1, DIMS(2), NULL);
    const ot_tensor *in3[1] = {x};
    CHECK(oh_run("ReduceSum", 13, NULL, 0, 1, in3, &y) == OT_E_UNSUPPORTED);
    ot_tensor_free(x);
}

static void test_accuracy(void) {
    /* 2^22 + 1 values of 0.1f summed: a float accumulator drifts far beyond 1e-5 */
    int64_t n = (1 << 22) + 1;
    ot_tensor *x = oh_tensor(OT_F32, 1, DIMS(n), NULL), *y;
    for (int64_t i = 0; i < n; i++) F(x)[i] = 0.1f;
    const ot_tensor *in[1] = {x};
    CHECK_OK(oh_run("ReduceSum", 13, NULL, 0, 1, in, &y));
    double want = (double)0.1f * (double)n;
    if (y) CHECK_NEAR(F(y)[0], want, 1e-6);
    ot_tensor_free(y);
    CHECK_OK(oh_run("ReduceMean", 18, NULL, 0, 1, in, &y));
    if (y) CHECK_NEAR(F(y)[0], (double)0.1f, 1e-7);
    ot_tensor_free(y), ot_tensor_free(x);
    /* long rows on the last-axis and middle-axis paths */
    x = oh_tensor(OT_F32, 2, DIMS(3, 1000000), NULL);
    for (int64_t i = 0; i < 3000000; i++) F(x)[i] = (float)(i % 1000) * 0.001f + 1000.0f;
    reduce_case(SUM, x, 1, DIMS(1), 0);
    reduce_case(MEAN, x, 1, DIMS(1), 0);
    ot_tensor_free(x);
    x = oh_tensor(OT_F32, 2, DIMS(400000, 3), NULL);
    for (int64_t i = 0; i < 1200000; i++) F(x)[i] = (float)(i % 997) * 0.01f + 100.0f;
    reduce_case(SUM, x, 1, DIMS(0), 0);
    ot_tensor_free(x);
}

static void test_special_values_and_axes_options(void) {
    float v[6] = {1.0f, NAN, 3.0f, -INFINITY, -5.0f, 2.0f};
    ot_tensor *x = oh_tensor(OT_F32, 2, DIMS(2, 3), v), *y;
    const ot_tensor *in[1] = {x};
    ot_attr ax = oh_attr_ints("axes", 1, DIMS(1));
    CHECK_OK(oh_run("ReduceMax", 13, &ax, 1, 1, in, &y));
    CHECK(y && isnan(F(y)[0]) && F(y)[1] == 2.0f);
    ot_tensor_free(y);
    /* NaN in the middle-axis and total kernels */
    ot_attr ax0 = oh_attr_ints("axes", 1, DIMS(0));
    CHECK_OK(oh_run("ReduceMax", 13, &ax0, 1, 1, in, &y));
    CHECK(y && F(y)[0] == 1.0f && isnan(F(y)[1]) && F(y)[2] == 3.0f);
    ot_tensor_free(y);
    CHECK_OK(oh_run("ReduceMax", 13, NULL, 0, 1, in, &y));
    CHECK(y && isnan(F(y)[0]) && y->ndim == 2 && y->dims[0] == 1 && y->dims[1] == 1);
    ot_tensor_free(y);

    /* axes input: absent -> all; empty -> all; empty + noop -> identity */
    ot_tensor *empty_axes = oh_tensor(OT_I64, 1, DIMS(0), NULL);
    const ot_tensor *in2[2] = {x, empty_axes};
    CHECK_OK(oh_run("ReduceSum", 13, NULL, 0, 2, in2, &y));
    CHECK(y && y->ndim == 2 && y->dims[0] == 1 && y->dims[1] == 1 && isnan(F(y)[0]));
    ot_tensor_free(y);
    ot_attr noop[2] = {oh_attr_int("noop_with_empty_axes", 1), oh_attr_int("keepdims", 0)};
    CHECK_OK(oh_run("ReduceSum", 13, noop, 2, 2, in2, &y));
    CHECK(y && ot_shape_equal(y->ndim, y->dims, 2, DIMS(2, 3)) && F(y)[2] == 3.0f && F(y)[4] == -5.0f);
    ot_tensor_free(y);
    CHECK_OK(oh_run("ReduceMean", 18, noop, 2, 1, in, &y)); /* axes omitted + noop */
    CHECK(y && ot_shape_equal(y->ndim, y->dims, 2, DIMS(2, 3)));
    ot_tensor_free(y);
    ot_tensor_free(empty_axes), ot_tensor_free(x);

    /* empty reductions: sum/mean 0, max -inf / INT64_MIN; empty outputs */
    x = oh_tensor(OT_F32, 2, DIMS(2, 0), NULL);
    const ot_tensor *in3[1] = {x};
    ot_attr keep0 = oh_attr_int("keepdims", 0);
    CHECK_OK(oh_run("ReduceSum", 13, NULL, 0, 1, in3, &y));
    CHECK(y && ot_tensor_numel(y) == 1 && F(y)[0] == 0.0f);
    ot_tensor_free(y);
    CHECK_OK(oh_run("ReduceMax", 13, &ax, 1, 1, in3, &y));
    CHECK(y && ot_tensor_numel(y) == 2 && F(y)[0] == -INFINITY && F(y)[1] == -INFINITY);
    ot_tensor_free(y);
    ot_attr both[2] = {ax0, keep0};
    CHECK_OK(oh_run("ReduceMean", 13, both, 2, 1, in3, &y));
    CHECK(y && y->ndim == 1 && y->dims[0] == 0);
    ot_tensor_free(y), ot_tensor_free(x);
    x = oh_tensor(OT_I64, 2, DIMS(0, 2), NULL);
    const ot_tensor *in4[1] = {x};
    CHECK_OK(oh_run("ReduceMax", 13, &ax0, 1, 1, in4, &y));
    CHECK(y && ot_tensor_numel(y) == 2 && I64(y)[0] == INT64_MIN);
    ot_tensor_free(y), ot_tensor_free(x);

    /* a scalar reduces to itself */
    float sv = 4.5f;
    x = oh_tensor(OT_F32, 0, NULL, &sv);
    const ot_tensor *in5[1] = {x};
    CHECK_OK(oh_run("ReduceMean", 18, NULL, 0, 1, in5, &y));
    CHECK(y && y->ndim == 0 && F(y)[0] == 4.5f);
    ot_tensor_free(y), ot_tensor_free(x);
}

static void test_errors(void) {
    ot_tensor *x = rnd_f32(3, DIMS(2, 3, 4)), *y;
    ot_tensor *dup = oh_tensor(OT_I64, 1, DIMS(2), (int64_t[]){1, -2});
    const ot_tensor *in[2] = {x, dup};
    CHECK(oh_run("ReduceSum", 13, NULL, 0, 2, in, &y) == OT_E_INVALID);
    CHECK(strstr(ot_last_error(), "ReduceSum node 't'") && strstr(ot_last_error(), "twice"));
    ot_tensor *far = oh_tensor(OT_I64, 1, DIMS(1), (int64_t[]){3});
    const ot_tensor *in2[2] = {x, far};
    CHECK(oh_run("ReduceMean", 18, NULL, 0, 2, in2, &y) == OT_E_INVALID);
    CHECK(strstr(ot_last_error(), "out of range") != NULL);
    /* axes input whose value is unknown at plan time */
    ot_tensor unknown = *far;
    unknown.data = NULL;
    const ot_tensor *in3[2] = {x, &unknown};
    CHECK(oh_run("ReduceMax", 18, NULL, 0, 2, in3, &y) == OT_E_UNSUPPORTED);
    CHECK(strstr(ot_last_error(), "axes") != NULL);
    /* axes attribute where the opset wants an input, and a float axes tensor */
    ot_attr ax = oh_attr_ints("axes", 1, DIMS(0));
    const ot_tensor *in4[1] = {x};
    CHECK(oh_run("ReduceMax", 18, &ax, 1, 1, in4, &y) == OT_E_INVALID);
    ot_tensor *fax = oh_tensor(OT_F32, 1, DIMS(1), (float[]){1.0f});
    const ot_tensor *in5[2] = {x, fax};
    CHECK(oh_run("ReduceSum", 13, NULL, 0, 2, in5, &y) != OT_OK);
    /* duplicate axes in the attribute form too */
    ot_attr ax2 = oh_attr_ints("axes", 2, DIMS(0, 0));
    CHECK(oh_run("ReduceMean", 13, &ax2, 1, 1, in4, &y) == OT_E_INVALID);
    /* opset ranges: ReduceMean 18 takes 2 inputs, 17 only 1 */
    CHECK(oh_run("ReduceMean", 17, NULL, 0, 2, in2, &y) == OT_E_INVALID);
    ot_tensor_free(x), ot_tensor_free(dup), ot_tensor_free(far), ot_tensor_free(fax);
}

int main(void) {
    oh_seed(4242u);
    OT_RUN(test_axis_patterns);
    OT_RUN(test_dtypes);
    OT_RUN(test_accuracy);
    OT_RUN(test_special_values_and_axes_options);
    OT_RUN(test_errors);
    return OT_TEST_EXIT();
}
