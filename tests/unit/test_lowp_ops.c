/* test_lowp_ops.c — the 16-bit (bf16, f16) kernels of the non-GEMM ops, through their registry
 * entries (parse, infer, CPU kernel; output buffers carry guard bytes).
 *
 * The rule under test (issue 4, "CPU kernels"): an op whose infer accepts bf16/f16 computes in
 * f32 and rounds each output element once. So for every op and both 16-bit dtypes: random
 * inputs are rounded to the 16-bit type; the reference is the op's own f32 kernel run on the
 * f32 values of those inputs, its outputs then rounded to the 16-bit type; the native result
 * must equal it. Tolerance per op, in units in the last place of the 16-bit type:
 *   0 ulp (bit-exact) — every op here: data movement copies bytes; elementwise ops, softmax,
 *     layernorm, gelu and their gradients, ReduceSum/Mean/Max and the loss gradients run the
 *     very same f32 code on converted rows/blocks, so the f32 values before rounding are
 *     identical, and GatherGrad / ReduceSumTo / LayerNormGrad's parameter sums keep the f32
 *     kernel's summation order.
 *   1 ulp — ReduceSumTo with a reduced innermost dim (16-bit runs are summed in pieces of
 *     1024, which changes the vectorised double summation order; the double sums differ in
 *     the last bits at most, which can move the final rounding by one step).
 * Outputs that stay float32 (LayerNorm Mean/InvStdDev, loss values, lse, accuracy) are checked
 * to BE float32 and compared as f32 bit patterns (exact), except the cross-entropy over a
 * strided class dim (CrossEntropyLoss with extra dims), whose lse sums a gathered row in a
 * different order: 4 f32 ulps there.
 * Also: inputs of odd sizes that cross the 256/1024-element conversion blocks, broadcasting
 * in every direction, and ops that stay unsupported (Clip, CumSum, Max) rejecting 16-bit in
 * infer with a message that names the dtype, so the autocast pass wraps them in Casts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/lowp.h"
#include "op_harness.h"

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})
#define MAXIO 6

static const ot_dtype LOWP[2] = {OT_BF16, OT_F16};

/* ---- running an entry of any domain -------------------------------------------------- */

static ot_status run_dom(const char *dom, const char *op, int opset, const ot_attr *attrs, int na, int n_in,
                         const ot_tensor *const *in, int n_out, const int *want, ot_tensor **out, int infer_only) {
    for (int k = 0; k < n_out; k++) out[k] = NULL;
    int known = 0;
    const ot_op_def *def = ot_op_find(dom, op, opset, &known);
    if (!def) return ot_errorf(OT_E_UNSUPPORTED, "test: no entry for %s", op);
    OT_TRY(oh_check_arity(def, n_in));
    ot_node node;
    memset(&node, 0, sizeof node);
    node.name = (char *)"t";
    node.op_type = (char *)op;
    node.domain = (char *)dom;
    node.n_in = n_in;
    node.n_out = n_out;
    node.n_attrs = na;
    node.attrs = (ot_attr *)attrs;
    ot_tensor o[OH_MAX_OUT];
    ot_tensor *outs[OH_MAX_OUT] = {NULL};
    memset(o, 0, sizeof o);
    for (int k = 0; k < n_out; k++)
        if (!want || want[k]) outs[k] = &o[k];
    ot_status st = oh_exec(def, &node, opset, n_in, in, n_out, outs, infer_only);
    for (int k = 0; st == OT_OK && k < n_out; k++) {
        if (!outs[k]) continue;
        out[k] = oh_tensor(o[k].dtype, o[k].ndim, o[k].dims, infer_only ? NULL : o[k].data);
        if (!infer_only) free(o[k].data);
    }
    return st;
}

/* ---- 16-bit helpers --------------------------------------------------------------------- */

static uint16_t to16(float f, ot_dtype t) { return t == OT_BF16 ? ot_f32_to_bf16(f) : ot_f32_to_f16(f); }
static float from16(uint16_t h, ot_dtype t) { return t == OT_BF16 ? ot_bf16_to_f32(h) : ot_f16_to_f32(h); }

/* An f32 tensor's values rounded to t: as a t tensor (*lo) and back in f32 (*f). */
static void round_pair(const ot_tensor *src, ot_dtype t, ot_tensor **lo, ot_tensor **f) {
    int64_t n = ot_tensor_numel(src);
    *lo = oh_tensor(t, src->ndim, src->dims, NULL);
    *f = oh_tensor(OT_F32, src->ndim, src->dims, NULL);
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = to16(((const float *)src->data)[i], t);
        ((uint16_t *)(*lo)->data)[i] = h;
        ((float *)(*f)->data)[i] = from16(h, t);
    }
}

/* Distance in representable steps between two 16-bit patterns (sign-magnitude order). */
static int64_t ulp16(uint16_t a, uint16_t b) {
    int32_t ia = a & 0x8000 ? -(int32_t)(a & 0x7fff) : (int32_t)a;
    int32_t ib = b & 0x8000 ? -(int32_t)(b & 0x7fff) : (int32_t)b;
    return ia > ib ? ia - ib : ib - ia;
}
static int64_t ulp32(float a, float b) {
    uint32_t ua = ot_f32_bits(a), ub = ot_f32_bits(b);
    int64_t ia = ua & 0x80000000u ? -(int64_t)(ua & 0x7fffffffu) : (int64_t)ua;
    int64_t ib = ub & 0x80000000u ? -(int64_t)(ub & 0x7fffffffu) : (int64_t)ub;
    return ia > ib ? ia - ib : ib - ia;
}

/* got (dtype t) against ref (f32) rounded to t: within `ulps` steps (NaN matches NaN). */
static void check16(const char *what, const ot_tensor *got, const ot_tensor *ref, ot_dtype t, int ulps) {
    CHECK(got->dtype == t);
    CHECK(ref->dtype == OT_F32);
    CHECK(ot_shape_equal(got->ndim, got->dims, ref->ndim, ref->dims));
    if (got->dtype != t || ref->dtype != OT_F32) return;
    int64_t n = ot_tensor_numel(ref), bad = 0, worst = 0, wi = -1;
    for (int64_t i = 0; i < n; i++) {
        uint16_t g = ((const uint16_t *)got->data)[i], w = to16(((const float *)ref->data)[i], t);
        float gf = from16(g, t), wf = from16(w, t);
        if (gf != gf && wf != wf) continue;
        int64_t d = ulp16(g, w);
        if (d > ulps) bad++;
        if (d > worst) worst = d, wi = i;
    }
    if (bad)
        fprintf(stderr, "  %s (%s): %lld of %lld off by > %d ulp; worst %lld ulp at %lld (got %g want %g)\n", what,
                ot_dtype_name(t), (long long)bad, (long long)n, ulps, (long long)worst, (long long)wi,
                (double)from16(((const uint16_t *)got->data)[wi], t),
                (double)((const float *)ref->data)[wi]);
    CHECK(bad == 0);
}

/* An output that must stay f32: dtype f32, values within `ulps` f32 steps of ref. */
static void check32(const char *what, const ot_tensor *got, const ot_tensor *ref, int ulps) {
    CHECK(got->dtype == OT_F32);
    CHECK(ot_shape_equal(got->ndim, got->dims, ref->ndim, ref->dims));
    if (got->dtype != OT_F32 || ref->dtype != OT_F32) return;
    int64_t n = ot_tensor_numel(ref), bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float g = ((const float *)got->data)[i], w = ((const float *)ref->data)[i];
        if (!(g != g && w != w) && ulp32(g, w) > ulps) bad++;
    }
    if (bad) fprintf(stderr, "  %s: %lld f32 outputs off by > %d ulp\n", what, (long long)bad, ulps);
    CHECK(bad == 0);
}

/* ---- the generic comparison ------------------------------------------------------------- */

typedef struct {
    const char *dom, *op;
    int opset;
    const ot_attr *attrs;
    int na;
    int n_in;
    const ot_tensor *in[MAXIO]; /* f32 for float inputs; any dtype otherwise */
    unsigned lowp_in;           /* bit i: input i is converted to the 16-bit type */
    int n_out;
    const int *want;            /* NULL: all */
    unsigned f32_out;           /* bit k: output k stays float32 */
    int ulps;                   /* for 16-bit outputs */
    int ulps32;                 /* for float32 outputs */
} lp_case;

static void run_case(const char *name, const lp_case *k) {
    for (int d = 0; d < 2; d++) {
        ot_dtype t = LOWP[d];
        ot_tensor *lo[MAXIO] = {0}, *fr[MAXIO] = {0};
        const ot_tensor *in16[MAXIO], *in32[MAXIO];
        for (int i = 0; i < k->n_in; i++) {
            in16[i] = in32[i] = k->in[i];
            if (k->in[i] && (k->lowp_in >> i & 1)) {
                round_pair(k->in[i], t, &lo[i], &fr[i]);
                in16[i] = lo[i], in32[i] = fr[i];
            }
        }
        ot_tensor *ref[OH_MAX_OUT], *got[OH_MAX_OUT];
        ot_status s1 = run_dom(k->dom, k->op, k->opset, k->attrs, k->na, k->n_in, in32, k->n_out, k->want, ref, 0);
        if (s1 != OT_OK) fprintf(stderr, "  %s f32 reference: %s\n", name, ot_last_error());
        ot_status s2 = run_dom(k->dom, k->op, k->opset, k->attrs, k->na, k->n_in, in16, k->n_out, k->want, got, 0);
        if (s2 != OT_OK) fprintf(stderr, "  %s %s: %s\n", name, ot_dtype_name(t), ot_last_error());
        CHECK(s1 == OT_OK);
        CHECK(s2 == OT_OK);
        for (int o = 0; s1 == OT_OK && s2 == OT_OK && o < k->n_out; o++) {
            if (!ref[o]) continue;
            char what[96];
            snprintf(what, sizeof what, "%s out %d", name, o);
            if (k->f32_out >> o & 1) check32(what, got[o], ref[o], k->ulps32);
            else check16(what, got[o], ref[o], t, k->ulps);
        }
        for (int o = 0; o < k->n_out; o++) ot_tensor_free(ref[o]), ot_tensor_free(got[o]);
        for (int i = 0; i < k->n_in; i++) ot_tensor_free(lo[i]), ot_tensor_free(fr[i]);
    }
}

static ot_tensor *rnd(int nd, const int64_t *dims, float scale, float off) { return oh_rand_f32(nd, dims, scale, off); }
static ot_tensor *i64t(int nd, const int64_t *dims, const int64_t *v) { return oh_tensor(OT_I64, nd, dims, v); }

/* ---- 1. data movement ------------------------------------------------------------------- */

static void test_data_movement(void) {
    ot_tensor *x = rnd(3, DIMS(3, 5, 7), 4, 0), *y = rnd(3, DIMS(3, 2, 7), 4, 0), *z = rnd(3, DIMS(3, 1, 7), 4, 0);
    int64_t perm[3] = {2, 0, 1};
    ot_attr ap = oh_attr_ints("perm", 3, perm);
    run_case("Transpose", &(lp_case){"", "Transpose", 17, &ap, 1, 1, {x}, 1, 1, NULL, 0, 0, 0});
    ot_attr ax1 = oh_attr_int("axis", 1);
    run_case("Concat", &(lp_case){"", "Concat", 17, &ax1, 1, 3, {x, y, z}, 7, 1, NULL, 0, 0, 0});
    ot_tensor *sp = i64t(1, DIMS(2), (int64_t[]){2, 3});
    run_case("Split", &(lp_case){"", "Split", 17, &ax1, 1, 2, {x, sp}, 1, 2, NULL, 0, 0, 0});
    ot_tensor *st = i64t(1, DIMS(2), (int64_t[]){1, 6}), *en = i64t(1, DIMS(2), (int64_t[]){5, 0});
    ot_tensor *axs = i64t(1, DIMS(2), (int64_t[]){1, 2}), *stp = i64t(1, DIMS(2), (int64_t[]){2, -2});
    run_case("Slice", &(lp_case){"", "Slice", 17, NULL, 0, 5, {x, st, en, axs, stp}, 1, 1, NULL, 0, 0, 0});
    ot_tensor *ix = i64t(2, DIMS(2, 2), (int64_t[]){4, 0, -1, 4});
    run_case("Gather", &(lp_case){"", "Gather", 17, &ax1, 1, 2, {x, ix}, 1, 1, NULL, 0, 0, 0});
    ot_tensor *es = i64t(1, DIMS(4), (int64_t[]){2, 3, 5, 7});
    run_case("Expand", &(lp_case){"", "Expand", 17, NULL, 0, 2, {z, es}, 1, 1, NULL, 0, 0, 0});
    ot_tensor *cond = oh_tensor(OT_BOOL, 2, DIMS(5, 1), (uint8_t[]){1, 0, 0, 1, 1});
    run_case("Where", &(lp_case){"", "Where", 17, NULL, 0, 3, {cond, x, z}, 6, 1, NULL, 0, 0, 0});
    ot_tensor *rs = i64t(1, DIMS(2), (int64_t[]){-1, 21});
    run_case("Reshape", &(lp_case){"", "Reshape", 17, NULL, 0, 2, {x, rs}, 1, 1, NULL, 0, 0, 0});
    ot_tensor *sq = i64t(1, DIMS(1), (int64_t[]){1});
    run_case("Squeeze", &(lp_case){"", "Squeeze", 17, NULL, 0, 2, {z, sq}, 1, 1, NULL, 0, 0, 0});
    run_case("Unsqueeze", &(lp_case){"", "Unsqueeze", 17, NULL, 0, 2, {x, sq}, 1, 1, NULL, 0, 0, 0});
    run_case("Flatten", &(lp_case){"", "Flatten", 17, &ax1, 1, 1, {x}, 1, 1, NULL, 0, 0, 0});
    run_case("Identity", &(lp_case){"", "Identity", 17, NULL, 0, 1, {x}, 1, 1, NULL, 0, 0, 0});
    run_case("Dropout", &(lp_case){"", "Dropout", 17, NULL, 0, 1, {x}, 1, 1, NULL, 0, 0, 0});
    /* SliceGrad with a strided innermost axis (the 2-byte scatter) and a negative step. */
    ot_tensor *dys = rnd(3, DIMS(3, 2, 3), 4, 0), *shp = i64t(1, DIMS(3), (int64_t[]){3, 5, 7});
    run_case("SliceGrad", &(lp_case){"ai.onnxtune", "SliceGrad", 1, NULL, 0, 6, {dys, shp, st, en, axs, stp}, 1, 1,
                                     NULL, 0, 0, 0});
    /* GatherGrad: repeated indices accumulate (in f32, one rounding), out-of-order and negative. */
    ot_tensor *dyg = rnd(3, DIMS(3, 6, 300), 4, 0), *gi = i64t(1, DIMS(6), (int64_t[]){2, 0, 2, -3, 4, 2});
    ot_tensor *gs = i64t(1, DIMS(3), (int64_t[]){3, 5, 300});
    run_case("GatherGrad", &(lp_case){"ai.onnxtune", "GatherGrad", 1, &ax1, 1, 3, {dyg, gi, gs}, 1, 1, NULL, 0, 0, 0});
    /* The same sums, checked independently: row 2 = dy rows 0 + 2 + 3 + 5 summed in f32. */
    {
        ot_tensor *lo, *fr, *out[1];
        round_pair(dyg, OT_BF16, &lo, &fr);
        CHECK_OK(run_dom("ai.onnxtune", "GatherGrad", 1, &ax1, 1, 3, (const ot_tensor *[]){lo, gi, gs}, 1, NULL, out, 0));
        int bad = 0;
        for (int64_t o = 0; out[0] && o < 3; o++)
            for (int64_t j = 0; j < 300; j++) {
                const float *f = (const float *)fr->data + o * 6 * 300 + j;
                float s = ((f[0] + f[2 * 300]) + f[3 * 300]) + f[5 * 300];
                bad += ((uint16_t *)out[0]->data)[(o * 5 + 2) * 300 + j] != ot_f32_to_bf16(s);
                bad += ((uint16_t *)out[0]->data)[(o * 5 + 1) * 300 + j] != 0;
            }
        CHECK(out[0] && bad == 0);
        ot_tensor_free(out[0]), ot_tensor_free(lo), ot_tensor_free(fr);
    }
    ot_tensor *all[] = {x, y, z, sp, st, en, axs, stp, ix, es, cond, rs, sq, dys, shp, dyg, gi, gs};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ot_tensor_free(all[i]);
}

/* ---- 2. elementwise --------------------------------------------------------------------- */

static void test_elementwise(void) {
    /* Broadcast in both directions, a scalar, and rows longer than the 256-element blocks. */
    ot_tensor *a = rnd(3, DIMS(3, 4, 701), 3, 0), *b = rnd(2, DIMS(4, 701), 3, 0), *c1 = rnd(3, DIMS(3, 4, 1), 3, 0);
    ot_tensor *sc = rnd(0, NULL, 3, 0), *pos = rnd(3, DIMS(3, 4, 701), 2, 2.5f);
    const char *bin[] = {"Add", "Sub", "Mul", "Div"};
    for (int i = 0; i < 4; i++) {
        run_case(bin[i], &(lp_case){"", bin[i], 17, NULL, 0, 2, {a, b}, 3, 1, NULL, 0, 0, 0});
        run_case(bin[i], &(lp_case){"", bin[i], 17, NULL, 0, 2, {c1, b}, 3, 1, NULL, 0, 0, 0});
        run_case(bin[i], &(lp_case){"", bin[i], 17, NULL, 0, 2, {sc, a}, 3, 1, NULL, 0, 0, 0});
        run_case(bin[i], &(lp_case){"", bin[i], 17, NULL, 0, 2, {a, pos}, 3, 1, NULL, 0, 0, 0});
    }
    const char *un[] = {"Neg", "Abs", "Reciprocal", "Exp", "Tanh", "Erf", "Sigmoid", "Relu"};
    for (int i = 0; i < 8; i++) run_case(un[i], &(lp_case){"", un[i], 17, NULL, 0, 1, {a}, 1, 1, NULL, 0, 0, 0});
    run_case("Sqrt", &(lp_case){"", "Sqrt", 17, NULL, 0, 1, {pos}, 1, 1, NULL, 0, 0, 0});
    run_case("Log", &(lp_case){"", "Log", 17, NULL, 0, 1, {pos}, 1, 1, NULL, 0, 0, 0});
    const float ex[] = {2.0f, 3.0f, 0.5f, 1.75f};
    for (int i = 0; i < 4; i++) {
        ot_tensor *e = oh_f32(0, NULL, &ex[i]);
        run_case("Pow", &(lp_case){"", "Pow", 17, NULL, 0, 2, {pos, e}, 3, 1, NULL, 0, 0, 0});
        /* an f32 exponent with a 16-bit base (ONNX lets the exponent's type differ) */
        run_case("Pow f32 exp", &(lp_case){"", "Pow", 17, NULL, 0, 2, {pos, e}, 1, 1, NULL, 0, 0, 0});
        ot_tensor_free(e);
    }
    /* Infer's output dtype is the 16-bit input dtype. */
    ot_tensor *lo, *fr, *out[1];
    round_pair(a, OT_F16, &lo, &fr);
    CHECK_OK(run_dom("", "Add", 17, NULL, 0, 2, (const ot_tensor *[]){lo, lo}, 1, NULL, out, 1));
    CHECK(out[0] && out[0]->dtype == OT_F16);
    ot_tensor_free(out[0]), ot_tensor_free(lo), ot_tensor_free(fr);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(c1), ot_tensor_free(sc), ot_tensor_free(pos);
}

/* ---- 3. softmax, layernorm, gelu and their gradients -------------------------------------- */

static void test_nn(void) {
    ot_tensor *x = rnd(3, DIMS(2, 3, 1031), 6, 0), *x2 = rnd(3, DIMS(2, 9, 300), 6, 0);
    ot_tensor *dy = rnd(3, DIMS(2, 3, 1031), 1, 0), *dy2 = rnd(3, DIMS(2, 9, 300), 1, 0);
    ot_attr axl = oh_attr_int("axis", -1), ax1 = oh_attr_int("axis", 1);
    run_case("Softmax", &(lp_case){"", "Softmax", 13, &axl, 1, 1, {x}, 1, 1, NULL, 0, 0, 0});
    run_case("Softmax ax1", &(lp_case){"", "Softmax", 13, &ax1, 1, 1, {x2}, 1, 1, NULL, 0, 0, 0});
    run_case("LogSoftmax", &(lp_case){"", "LogSoftmax", 13, &axl, 1, 1, {x}, 1, 1, NULL, 0, 0, 0});
    run_case("LogSoftmax ax1", &(lp_case){"", "LogSoftmax", 13, &ax1, 1, 1, {x2}, 1, 1, NULL, 0, 0, 0});
    /* Gradients: y is the (rounded) softmax output of a rounded x. */
    for (int lg = 0; lg < 2; lg++) {
        for (int v = 0; v < 2; v++) {
            ot_tensor *xi = v ? x2 : x, *yo[1];
            CHECK_OK(run_dom("", lg ? "LogSoftmax" : "Softmax", 13, v ? &ax1 : &axl, 1, 1, (const ot_tensor *[]){xi}, 1,
                             NULL, yo, 0));
            if (!yo[0]) continue;
            run_case(lg ? "LogSoftmaxGrad" : "SoftmaxGrad",
                     &(lp_case){"ai.onnxtune", lg ? "LogSoftmaxGrad" : "SoftmaxGrad", 1, v ? &ax1 : &axl, 1, 2,
                                {v ? dy2 : dy, yo[0]}, 3, 1, NULL, 0, 0, 0});
            ot_tensor_free(yo[0]);
        }
    }
    /* LayerNormalization over the last dim, Scale and B [1031]; Mean/InvStdDev must be f32. */
    ot_tensor *s = rnd(1, DIMS(1031), 1, 1), *bb = rnd(1, DIMS(1031), 1, 0), *xo = rnd(3, DIMS(2, 3, 1031), 2, 30);
    ot_attr eps = oh_attr_float("epsilon", 1e-5f);
    run_case("LayerNorm", &(lp_case){"", "LayerNormalization", 17, &eps, 1, 3, {x, s, bb}, 7, 3, NULL, 6, 0, 0});
    run_case("LayerNorm offset", &(lp_case){"", "LayerNormalization", 17, &eps, 1, 2, {xo, s}, 3, 3, NULL, 6, 0, 0});
    /* per-row Scale (varies along dim 1) */
    ot_tensor *sr = rnd(3, DIMS(1, 3, 1031), 1, 1);
    run_case("LayerNorm per-row", &(lp_case){"", "LayerNormalization", 17, &eps, 1, 3, {x, sr, bb}, 7, 3, NULL, 6, 0, 0});
    {   /* the statistics: f32 (not 16-bit) even for 16-bit X */
        ot_tensor *lo, *fr, *sl, *sf, *out[3];
        round_pair(x, OT_BF16, &lo, &fr);
        round_pair(s, OT_BF16, &sl, &sf);
        CHECK_OK(run_dom("", "LayerNormalization", 17, &eps, 1, 2, (const ot_tensor *[]){lo, sl}, 3, NULL, out, 1));
        CHECK(out[0] && out[0]->dtype == OT_BF16 && out[1]->dtype == OT_F32 && out[2]->dtype == OT_F32);
        for (int k = 0; k < 3; k++) ot_tensor_free(out[k]);
        ot_tensor_free(lo), ot_tensor_free(fr), ot_tensor_free(sl), ot_tensor_free(sf);
    }
    /* LayerNormGrad from the saved f32 statistics, and without them (recomputed). */
    ot_tensor *st[3];
    CHECK_OK(run_dom("", "LayerNormalization", 17, &eps, 1, 3, (const ot_tensor *[]){x, s, bb}, 3, NULL, st, 0));
    if (st[0]) {
        run_case("LayerNormGrad", &(lp_case){"ai.onnxtune", "LayerNormGrad", 1, &eps, 1, 5, {dy, x, s, st[1], st[2]}, 7,
                                             3, NULL, 0, 0, 0});
        run_case("LayerNormGrad nostats",
                 &(lp_case){"ai.onnxtune", "LayerNormGrad", 1, &eps, 1, 3, {dy, x, s}, 7, 3, NULL, 0, 0, 0});
    }
    for (int k = 0; k < 3; k++) ot_tensor_free(st[k]);
    ot_attr ga[2] = {oh_attr_str("approximate", "none"), oh_attr_str("approximate", "tanh")};
    for (int k = 0; k < 2; k++) {
        ot_tensor *big = rnd(2, DIMS(9, 1031), 5, 0), *g = rnd(2, DIMS(9, 1031), 1, 0);
        run_case("Gelu", &(lp_case){"", "Gelu", 20, &ga[k], 1, 1, {big}, 1, 1, NULL, 0, 0, 0});
        run_case("GeluGrad", &(lp_case){"ai.onnxtune", "GeluGrad", 1, &ga[k], 1, 2, {g, big}, 3, 1, NULL, 0, 0, 0});
        ot_tensor_free(big), ot_tensor_free(g);
    }
    ot_tensor *v = rnd(2, DIMS(5, 333), 3, 0), *g = rnd(2, DIMS(5, 333), 1, 0), *pv = rnd(2, DIMS(5, 333), 0.49f, 0.5f);
    run_case("ReluGrad", &(lp_case){"ai.onnxtune", "ReluGrad", 1, NULL, 0, 2, {g, v}, 3, 1, NULL, 0, 0, 0});
    run_case("SigmoidGrad", &(lp_case){"ai.onnxtune", "SigmoidGrad", 1, NULL, 0, 2, {g, pv}, 3, 1, NULL, 0, 0, 0});
    run_case("TanhGrad", &(lp_case){"ai.onnxtune", "TanhGrad", 1, NULL, 0, 2, {g, pv}, 3, 1, NULL, 0, 0, 0});
    run_case("AbsGrad", &(lp_case){"ai.onnxtune", "AbsGrad", 1, NULL, 0, 2, {g, v}, 3, 1, NULL, 0, 0, 0});
    ot_tensor *all[] = {x, x2, dy, dy2, s, bb, xo, sr, v, g, pv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ot_tensor_free(all[i]);
}

/* ---- 4. reductions ------------------------------------------------------------------------ */

static void test_reduce(void) {
    ot_tensor *x = rnd(3, DIMS(4, 37, 301), 2, 0.3f);
    ot_tensor *al = i64t(1, DIMS(1), (int64_t[]){-1}), *am = i64t(1, DIMS(1), (int64_t[]){1});
    ot_tensor *a02 = i64t(1, DIMS(2), (int64_t[]){0, 2});
    ot_tensor *axes[3] = {al, am, a02};
    const char *ops[3] = {"ReduceSum", "ReduceMean", "ReduceMax"};
    for (int o = 0; o < 3; o++)
        for (int k = 0; k < 3; k++)
            run_case(ops[o], &(lp_case){"", ops[o], 18, NULL, 0, 2, {x, axes[k]}, 1, 1, NULL, 0, 0, 0});
    /* ReduceSumTo: kept inner dim ([301] bias gradient), reduced inner dim, and mixed. */
    ot_tensor *t1 = i64t(1, DIMS(1), (int64_t[]){301}), *t2 = i64t(1, DIMS(3), (int64_t[]){4, 37, 1});
    ot_tensor *t3 = i64t(1, DIMS(2), (int64_t[]){37, 1});
    run_case("ReduceSumTo kept", &(lp_case){"ai.onnxtune", "ReduceSumTo", 1, NULL, 0, 2, {x, t1}, 1, 1, NULL, 0, 0, 0});
    run_case("ReduceSumTo reduced",
             &(lp_case){"ai.onnxtune", "ReduceSumTo", 1, NULL, 0, 2, {x, t2}, 1, 1, NULL, 0, 1, 0});
    run_case("ReduceSumTo mixed", &(lp_case){"ai.onnxtune", "ReduceSumTo", 1, NULL, 0, 2, {x, t3}, 1, 1, NULL, 0, 1, 0});
    /* a long reduced run (> 1024, cut in pieces) to one value */
    ot_tensor *big = rnd(2, DIMS(3, 5000), 1, 0.1f), *t0 = i64t(1, DIMS(0), NULL);
    run_case("ReduceSumTo all", &(lp_case){"ai.onnxtune", "ReduceSumTo", 1, NULL, 0, 2, {big, t0}, 1, 1, NULL, 0, 1, 0});
    ot_tensor *all[] = {x, al, am, a02, t1, t2, t3, big, t0};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ot_tensor_free(all[i]);
}

/* ---- 5. losses ---------------------------------------------------------------------------- */

static void test_loss(void) {
    /* CausalLMLoss: logits [2, 5, 1031], labels [2, 5] with an ignored one. */
    ot_tensor *lg = rnd(3, DIMS(2, 5, 1031), 8, 0);
    ot_tensor *lab = i64t(2, DIMS(2, 5), (int64_t[]){3, 1030, -100, 7, 0, 12, 5, 999, 1, 4});
    run_case("CausalLMLoss", &(lp_case){"ai.onnxtune", "CausalLMLoss", 1, NULL, 0, 2, {lg, lab}, 1, 3, NULL, 7, 0, 0});
    ot_tensor *fo[3];
    CHECK_OK(run_dom("ai.onnxtune", "CausalLMLoss", 1, NULL, 0, 2, (const ot_tensor *[]){lg, lab}, 3, NULL, fo, 0));
    ot_tensor *seed = oh_f32(0, NULL, (const float[]){65536.0f});
    /* Grad with the f32 seed (a loss scale), with and without the saved (f32) lse. The lse
     * from the f32 run is used for both dtypes: it is the f32 input the kernel reads. */
    run_case("CausalLMLossGrad", &(lp_case){"ai.onnxtune", "CausalLMLossGrad", 1, NULL, 0, 3, {seed, lg, lab}, 2, 1,
                                            NULL, 0, 0, 0});
    if (fo[1]) {
        run_case("CausalLMLossGrad lse", &(lp_case){"ai.onnxtune", "CausalLMLossGrad", 1, NULL, 0, 4,
                                                    {seed, lg, lab, fo[1]}, 2, 1, NULL, 0, 0, 0});
    }
    for (int k = 0; k < 3; k++) ot_tensor_free(fo[k]);
    /* CrossEntropyLoss [N, C] and [N, C, d] (strided classes). */
    ot_tensor *ce = rnd(2, DIMS(6, 300), 5, 0), *cl = i64t(1, DIMS(6), (int64_t[]){0, 299, 5, -100, 17, 2});
    run_case("CrossEntropyLoss", &(lp_case){"ai.onnxtune", "CrossEntropyLoss", 1, NULL, 0, 2, {ce, cl}, 1, 3, NULL, 7,
                                            0, 0});
    run_case("CrossEntropyLossGrad", &(lp_case){"ai.onnxtune", "CrossEntropyLossGrad", 1, NULL, 0, 3, {seed, ce, cl},
                                                2, 1, NULL, 0, 0, 0});
    ot_tensor *ce3 = rnd(3, DIMS(2, 40, 3), 5, 0), *cl3 = i64t(2, DIMS(2, 3), (int64_t[]){0, 39, 5, -100, 17, 2});
    run_case("CrossEntropyLoss strided", &(lp_case){"ai.onnxtune", "CrossEntropyLoss", 1, NULL, 0, 2, {ce3, cl3}, 1, 3,
                                                    NULL, 7, 0, 4});
    /* The gradient recomputes lse over a gathered row (summation order differs from the
     * strided f32 loop): the f32 values differ in the last bits, so 1 ulp of the 16-bit type. */
    run_case("CrossEntropyLossGrad strided", &(lp_case){"ai.onnxtune", "CrossEntropyLossGrad", 1, NULL, 0, 3,
                                                        {seed, ce3, cl3}, 2, 1, NULL, 0, 1, 0});
    /* MSE: pred and target 16-bit, loss f32, dPred 16-bit from an f32 seed. */
    ot_tensor *p = rnd(2, DIMS(7, 333), 2, 0), *t = rnd(2, DIMS(7, 333), 2, 0);
    run_case("MSELoss", &(lp_case){"ai.onnxtune", "MSELoss", 1, NULL, 0, 2, {p, t}, 3, 1, NULL, 1, 0, 0});
    run_case("MSELossGrad", &(lp_case){"ai.onnxtune", "MSELossGrad", 1, NULL, 0, 3, {seed, p, t}, 6, 1, NULL, 0, 0, 0});
    /* A 16-bit seed is rejected for 16-bit logits (the seed is float32 by contract). */
    {
        ot_tensor *lo, *fr, *s16, *s32, *out[1];
        round_pair(lg, OT_BF16, &lo, &fr);
        round_pair(seed, OT_BF16, &s16, &s32);
        ot_status st = run_dom("ai.onnxtune", "CausalLMLossGrad", 1, NULL, 0, 3, (const ot_tensor *[]){s16, lo, lab}, 1,
                               NULL, out, 1);
        CHECK(st != OT_OK);
        ot_tensor_free(lo), ot_tensor_free(fr), ot_tensor_free(s16), ot_tensor_free(s32);
    }
    ot_tensor *all[] = {lg, lab, seed, ce, cl, ce3, cl3, p, t};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ot_tensor_free(all[i]);
}

/* ---- 6. TrainingDropout ------------------------------------------------------------------- */

static void test_dropout(void) {
    ot_tensor *x = rnd(2, DIMS(9, 1001), 3, 0), *seed = i64t(0, NULL, (int64_t[]){1234});
    ot_attr at[2] = {oh_attr_float("ratio", 0.3f), oh_attr_int("stream", 7)};
    run_case("TrainingDropout", &(lp_case){"ai.onnxtune", "TrainingDropout", 1, at, 2, 2, {x, seed}, 1, 1, NULL, 0, 0, 0});
    ot_tensor_free(x), ot_tensor_free(seed);
}

/* ---- ops without 16-bit kernels reject 16-bit in infer ------------------------------------- */

static void test_rejects(void) {
    ot_tensor *x = rnd(2, DIMS(3, 4), 1, 0), *ax = i64t(0, NULL, (int64_t[]){1});
    for (int d = 0; d < 2; d++) {
        ot_tensor *lo, *fr, *out[1];
        round_pair(x, LOWP[d], &lo, &fr);
        struct { const char *op; int n; const ot_tensor *in[2]; } cs[] = {
            {"Clip", 1, {lo}}, {"CumSum", 2, {lo, ax}}, {"Max", 2, {lo, lo}}, {"Less", 2, {lo, lo}}};
        for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
            ot_status st = run_dom("", cs[k].op, 17, NULL, 0, cs[k].n, cs[k].in, 1, NULL, out, 1);
            CHECK(st == OT_E_UNSUPPORTED);
            CHECK(strstr(ot_last_error(), ot_dtype_name(LOWP[d])) != NULL);
            if (st == OT_OK) ot_tensor_free(out[0]);
        }
        ot_tensor_free(lo), ot_tensor_free(fr);
    }
    ot_tensor_free(x), ot_tensor_free(ax);
}

int main(void) {
    oh_seed(0x1b16u);
    OT_RUN(test_data_movement);
    OT_RUN(test_elementwise);
    OT_RUN(test_nn);
    OT_RUN(test_reduce);
    OT_RUN(test_loss);
    OT_RUN(test_dropout);
    OT_RUN(test_rejects);
    return OT_TEST_EXIT();
}
