/* test_grad_nn.c — gradient checks for the nn builders (trainer/grad/grad_nn.c) and forward
 * tests of their internal ops' f32 paths (runtime/ops/grad_nn.c).
 *
 * Gradient checks: f64 random inputs, central differences with eps = 1e-6 (gradcheck.h),
 * tolerance 1e-6 relative to max(1, |analytic|, |numeric|). Covered: Softmax and LogSoftmax
 * on every axis of a 3-D input (opset 13) and with the opset < 13 coerce-to-2-D semantics
 * (checked by calling the builder directly with a constant upstream gradient, since the
 * runtime has no Mul below opset 13 for gradcheck's loss); LayerNormalization with axis -1,
 * 1 and 0, Scale/B present and absent, Scale broadcast inside the normalised dims; Gelu in
 * both forms. The f32 kernels (which LayerNormGrad runs with the forward's saved float32
 * statistics) are compared with double formulas evaluated here. A structural test checks
 * that the LayerNormalization builder adds Mean/InvStdDev outputs to the forward node and
 * feeds them to LayerNormGrad. */
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "onnxtune/runtime.h"
#include "ot_test.h"
#include "trainer/autodiff.h"
#include "trainer/grad/grad.h"

#define TOL 1e-6
#define DIMS(...) ((const int64_t[]){__VA_ARGS__})
#define NDIMS(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

static const int64_t S234[] = {2, 3, 4};

/* ---- Softmax / LogSoftmax ---- */

static int64_t g_axis;
static int g_set_axis;
static void axis_attr(ot_graph *g, int node) {
    if (g_set_axis) gc_attr_int(g, node, "axis", g_axis);
}

static int check_softmax(const char *op, int ndim, const int64_t *dims, int set_axis, int64_t axis, double scale) {
    ot_tensor *x = gc_random(ndim, dims, scale);
    gc_input in[1] = {{"x", x, 1}};
    g_axis = axis, g_set_axis = set_axis;
    return gc_check_free(op, "", 13, in, 1, 1, axis_attr, TOL, "%s axis %lld", op, (long long)axis);
}

static void test_softmax(void) {
    const char *ops[2] = {"Softmax", "LogSoftmax"};
    for (int k = 0; k < 2; k++) {
        for (int64_t ax = -3; ax < 3; ax++) CHECK(check_softmax(ops[k], 3, S234, 1, ax, 2.0) == 0);
        CHECK(check_softmax(ops[k], 3, S234, 0, 0, 2.0) == 0);           /* default axis -1 */
        CHECK(check_softmax(ops[k], 1, DIMS(7), 1, 0, 3.0) == 0);        /* 1-D */
        CHECK(check_softmax(ops[k], 2, DIMS(3, 300), 1, 1, 5.0) == 0);   /* long rows */
        CHECK(check_softmax(ops[k], 2, DIMS(300, 3), 1, 0, 5.0) == 0);   /* long strided columns */
    }
}

/* Checks the builder of `op` at `opset` directly: dY is a constant R (so no loss ops are
 * needed), L = Σ Y ⊙ R is computed here, and the builder's dX is compared with central
 * differences of L. Returns failing elements, -1 on a setup failure. */
static int raw_check(const char *op, int opset, int ndim, const int64_t *dims, int set_axis, int64_t axis) {
    ot_graph *g;
    if (ot_graph_new(&g) != OT_OK) return -1;
    ot_graph_add_opset(g, "", opset);
    ot_tensor *x = gc_random(ndim, dims, 2.0), *r = gc_random(ndim, dims, 1.0);
    int vx = gc_value(g, "x"), vy = gc_value(g, "y"), vr = gc_value(g, "r"), node;
    gc_set_init(g, vx, x);
    gc_set_init(g, vr, r);
    g->values[vx].is_param = 1;
    ot_graph_add_node(g, op, "", "op", &vx, 1, &vy, 1, &node);
    if (set_axis) gc_attr_int(g, node, "axis", axis);
    g->outputs = malloc(4 * sizeof(int));
    g->outputs[g->n_outputs++] = vy;
    int fails = -1;
    ot_plan *p = NULL;
    ot_tensor *meta = calloc((size_t)g->n_values, sizeof *meta), outs[4];
    if (ot_graph_toposort(g) != OT_OK || ot_plan_create(g, NULL, &p) != OT_OK) goto done;
    ot_plan_value_meta(p, meta);
    ot_plan_free(p);
    p = NULL;
    const ot_grad_def *def = ot_grad_find("", op, opset);
    if (!def) goto done;
    int dy[1] = {vr}, dx[1] = {-1};
    unsigned char need[1] = {1};
    ot_grad_ctx ctx = {g, node, dy, dx, need, opset, 0, meta, g->n_values};
    if (def->build(&ctx) != OT_OK || dx[0] < 0) goto done;
    g->outputs[g->n_outputs++] = dx[0];
    if (ot_graph_toposort(g) != OT_OK || ot_plan_create(g, NULL, &p) != OT_OK || ot_plan_run(p, NULL, outs) != OT_OK)
        goto done;
    int64_t n = ot_tensor_numel(x);
    double *ana = malloc((size_t)n * sizeof *ana), *xv = g->values[vx].init->data;
    const double *rv = r->data;
    memcpy(ana, outs[1].data, (size_t)n * sizeof *ana);
    fails = 0;
    for (int64_t e = 0; e < n; e++) {
        double x0 = xv[e], l[2];
        for (int s = 0; s < 2; s++) {
            xv[e] = x0 + (s ? -1e-6 : 1e-6);
            ot_plan_run(p, NULL, outs);
            l[s] = 0;
            for (int64_t i = 0; i < n; i++) l[s] += ((const double *)outs[0].data)[i] * rv[i];
        }
        xv[e] = x0;
        double num = (l[0] - l[1]) / 2e-6;
        if (!(fabs(num - ana[e]) <= TOL * fmax(1.0, fmax(fabs(num), fabs(ana[e]))))) {
            if (fails < 5) fprintf(stderr, "  %s opset %d: dX[%lld] analytic %.10g numeric %.10g\n", op, opset,
                                   (long long)e, ana[e], num);
            fails++;
        }
    }
    free(ana);
done:
    if (fails < 0) fprintf(stderr, "  raw_check %s opset %d: %s\n", op, opset, ot_last_error());
    free(meta);
    ot_plan_free(p);
    ot_graph_free(g); /* owns x and r */
    return fails;
}

/* Opset < 13: the normalisation runs over the flattened dims [axis:]. */
static void test_softmax_coerce_2d(void) {
    const char *ops[2] = {"Softmax", "LogSoftmax"};
    for (int k = 0; k < 2; k++) {
        CHECK(raw_check(ops[k], 11, 3, S234, 0, 0) == 0); /* default axis 1: rows of 3·4 */
        CHECK(raw_check(ops[k], 12, 3, S234, 1, 0) == 0); /* one row of everything */
        CHECK(raw_check(ops[k], 11, 3, S234, 1, 2) == 0);
        CHECK(raw_check(ops[k], 11, 3, S234, 1, -1) == 0);
        CHECK(raw_check(ops[k], 13, 3, S234, 1, 1) == 0); /* the same harness at 13: single axis */
    }
}

/* ---- LayerNormalization ---- */

static int64_t g_ln_axis;
static int g_ln_set_axis;
static float g_eps;
static void ln_attrs(ot_graph *g, int node) {
    if (g_ln_set_axis) gc_attr_int(g, node, "axis", g_ln_axis);
    gc_attr_float(g, node, "epsilon", g_eps);
}

/* sd: Scale's shape (sn dims); bias: 0 none, 1 same shape as Scale. diff: which of X,
 * Scale, B are differentiable (bits 0, 1, 2). */
static int check_ln(int xn, const int64_t *xd, int set_axis, int64_t axis, int sn, const int64_t *sd, int bias,
                    unsigned diff) {
    ot_tensor *x = gc_random(xn, xd, 2.0), *s = gc_random(sn, sd, 1.0), *b = bias ? gc_random(sn, sd, 1.0) : NULL;
    /* an offset per tensor so the normalisation matters */
    for (int64_t i = 0; i < ot_tensor_numel(x); i++) ((double *)x->data)[i] += 0.5;
    gc_input in[3] = {{"x", x, (diff & 1) != 0}, {"scale", s, (diff & 2) != 0}, {"bias", b, (diff & 4) != 0}};
    g_ln_axis = axis, g_ln_set_axis = set_axis, g_eps = 1e-5f;
    return gc_check_free("LayerNormalization", "", 17, in, b ? 3 : 2, 1, ln_attrs, TOL,
                         "LayerNormalization axis %lld bias %d diff %u", (long long)axis, bias, diff);
}

static void test_layernorm(void) {
    /* axis -1 (default), scale/bias present and absent */
    CHECK(check_ln(3, S234, 0, 0, 1, DIMS(4), 1, 7) == 0);
    CHECK(check_ln(3, S234, 1, -1, 1, DIMS(4), 0, 3) == 0);
    /* axis 1: normalise over [3, 4] */
    CHECK(check_ln(3, S234, 1, 1, 2, DIMS(3, 4), 1, 7) == 0);
    CHECK(check_ln(3, S234, 1, 1, 2, DIMS(3, 4), 0, 3) == 0);
    /* axis 1 with Scale/B broadcast inside the normalised dims: [4] and [1, 4] and [3, 1] */
    CHECK(check_ln(3, S234, 1, 1, 1, DIMS(4), 1, 7) == 0);
    CHECK(check_ln(3, S234, 1, 1, 2, DIMS(1, 4), 1, 7) == 0);
    CHECK(check_ln(3, S234, 1, 1, 2, DIMS(3, 1), 1, 7) == 0);
    /* axis 0: one row; a 2-D input */
    CHECK(check_ln(3, S234, 1, 0, 3, S234, 1, 7) == 0);
    CHECK(check_ln(2, DIMS(5, 6), 1, -1, 1, DIMS(6), 1, 7) == 0);
    /* only some inputs differentiable */
    CHECK(check_ln(3, S234, 1, -1, 1, DIMS(4), 1, 1) == 0);
    CHECK(check_ln(3, S234, 1, -1, 1, DIMS(4), 1, 2) == 0);
    CHECK(check_ln(3, S234, 1, -1, 1, DIMS(4), 1, 4) == 0);
    CHECK(check_ln(3, S234, 1, -1, 1, DIMS(4), 1, 6) == 0); /* weights only (LoRA-frozen X) */
    /* rows long enough for the parallel block split */
    CHECK(check_ln(2, DIMS(40, 8), 1, -1, 1, DIMS(8), 1, 7) == 0);
}

/* The builder adds Mean/InvStdDev outputs to a forward node that lacks them and wires them
 * into LayerNormGrad; a node that already has them keeps its values. */
static void test_layernorm_saves_stats(void) {
    for (int declared = 0; declared < 2; declared++) {
        ot_graph *g;
        CHECK_OK(ot_graph_new(&g));
        ot_graph_add_opset(g, "", 17);
        ot_tensor *x = gc_random(2, DIMS(3, 4), 1.0), *s = gc_random(1, DIMS(4), 1.0);
        int vx = gc_value(g, "x"), vs = gc_value(g, "s"), vy = gc_value(g, "y"), vl = gc_value(g, "loss");
        int vm = gc_value(g, "mean"), vi = gc_value(g, "istd");
        gc_set_init(g, vx, x);
        gc_set_init(g, vs, s);
        g->values[vx].is_param = 1;
        int in[2] = {vx, vs}, outs3[3] = {vy, vm, vi};
        ot_graph_add_node(g, "LayerNormalization", "", "ln", in, 2, outs3, declared ? 3 : 1, NULL);
        gc_sum_all(g, "sum", vy, vl);
        gc_output(g, vl);
        ot_plan *p = NULL;
        ot_tensor *meta;
        CHECK_OK(gc_plan_meta(g, &meta));
        int grad = -1;
        CHECK_OK(ot_autodiff(g, meta, vl, &vx, 1, NULL, &grad));
        const ot_node *ln = NULL, *lng = NULL;
        for (int i = 0; i < g->n_nodes; i++) {
            if (strcmp(g->nodes[i].op_type, "LayerNormalization") == 0) ln = &g->nodes[i];
            if (strcmp(g->nodes[i].op_type, "LayerNormGrad") == 0) lng = &g->nodes[i];
        }
        CHECK(ln && lng);
        if (ln && lng) {
            CHECK(ln->n_out == 3 && ln->out[1] >= 0 && ln->out[2] >= 0);
            CHECK(lng->n_in == 5 && lng->in[3] == ln->out[1] && lng->in[4] == ln->out[2]);
            if (declared) CHECK(ln->out[1] == vm && ln->out[2] == vi);
            CHECK(strcmp(lng->domain, OT_DOMAIN) == 0);
        }
        CHECK_OK(ot_plan_create(g, NULL, &p));
        ot_tensor o[4];
        CHECK_OK(ot_plan_run(p, NULL, o));
        free(meta);
        ot_plan_free(p);
        ot_graph_free(g);
    }
}

/* ---- Gelu ---- */

static const char *g_approx;
static void gelu_attrs(ot_graph *g, int node) {
    if (g_approx) gc_attr_string(g, node, "approximate", g_approx);
}

static void test_gelu(void) {
    const char *forms[3] = {NULL, "none", "tanh"};
    for (int k = 0; k < 3; k++) {
        ot_tensor *x = gc_random(2, DIMS(5, 8), 4.0);
        gc_input in[1] = {{"x", x, 1}};
        g_approx = forms[k];
        CHECK(gc_check_free("Gelu", "", 20, in, 1, 1, gelu_attrs, TOL, "Gelu approximate %s",
                            forms[k] ? forms[k] : "(default)") == 0);
    }
}

/* ---- f32 kernels of the internal ops vs double formulas ---- */

typedef void (*attrs_fn)(ot_graph *g, int node);

/* Runs one ai.onnxtune op on initializer inputs (NULL = omitted) and returns its outputs
 * (copied, owned by the caller) in outs[0..n_out). */
static int run_op(const char *op, ot_tensor **ins, int n_in, int n_out, attrs_fn attrs, ot_tensor **outs) {
    ot_graph *g;
    if (ot_graph_new(&g) != OT_OK) return -1;
    ot_graph_add_opset(g, "", 17);
    ot_graph_add_opset(g, OT_DOMAIN, 1);
    int in[8], out[8], node;
    char name[32];
    for (int i = 0; i < n_in; i++) {
        in[i] = -1;
        if (!ins[i]) continue;
        snprintf(name, sizeof name, "in%d", i);
        in[i] = gc_value(g, name);
        ot_tensor *c;
        ot_tensor_clone(&c, ins[i]);
        gc_set_init(g, in[i], c);
        g->values[in[i]].is_param = 1; /* keep the planner from folding the op away */
    }
    for (int k = 0; k < n_out; k++) {
        snprintf(name, sizeof name, "out%d", k);
        out[k] = gc_value(g, name);
    }
    ot_graph_add_node(g, op, OT_DOMAIN, "op", in, n_in, out, n_out, &node);
    if (attrs) attrs(g, node);
    g->outputs = malloc(8 * sizeof(int));
    for (int k = 0; k < n_out; k++) g->outputs[g->n_outputs++] = out[k];
    ot_plan *p = NULL;
    ot_tensor o[8];
    int rc = -1;
    if (ot_graph_toposort(g) == OT_OK && ot_plan_create(g, NULL, &p) == OT_OK && ot_plan_run(p, NULL, o) == OT_OK) {
        for (int k = 0; k < n_out; k++) ot_tensor_clone(&outs[k], &o[k]);
        rc = 0;
    } else {
        fprintf(stderr, "  run_op %s: %s\n", op, ot_last_error());
    }
    ot_plan_free(p);
    ot_graph_free(g);
    return rc;
}

static ot_tensor *to_f32(const ot_tensor *t) { return gc_convert(t, OT_F32); }

static void attrs_lng(ot_graph *g, int node) {
    gc_attr_int(g, node, "axis", -1);
    gc_attr_float(g, node, "epsilon", 1e-5f);
}
static void attrs_axis1(ot_graph *g, int node) { gc_attr_int(g, node, "axis", 1); }
static void attrs_tanh(ot_graph *g, int node) { gc_attr_string(g, node, "approximate", "tanh"); }

/* LayerNormGrad in f32 with the forward's float32 Mean/InvStdDev (the training path),
 * against the formula in double with statistics computed here. */
static void test_layernorm_grad_f32(void) {
    const int R = 37, N = 96;
    ot_tensor *dy = gc_random(2, DIMS(37, 96), 1.0), *x = gc_random(2, DIMS(37, 96), 3.0),
              *s = gc_random(1, DIMS(96), 1.0);
    ot_tensor *mean, *istd;
    ot_tensor_new(&mean, OT_F32, 2, DIMS(37, 1));
    ot_tensor_new(&istd, OT_F32, 2, DIMS(37, 1));
    const double *X = x->data, *G = dy->data, *S = s->data;
    double *edx = calloc((size_t)R * N, sizeof *edx), eds[96] = {0}, edb[96] = {0};
    for (int r = 0; r < R; r++) {
        double m = 0, v = 0;
        for (int j = 0; j < N; j++) m += X[r * N + j];
        m /= N;
        for (int j = 0; j < N; j++) v += (X[r * N + j] - m) * (X[r * N + j] - m);
        double is = 1.0 / sqrt(v / N + 1e-5);
        ((float *)mean->data)[r] = (float)m;
        ((float *)istd->data)[r] = (float)is;
        double a1 = 0, a2 = 0;
        for (int j = 0; j < N; j++) {
            double xh = (X[r * N + j] - m) * is, gj = G[r * N + j] * S[j];
            a1 += gj, a2 += gj * xh;
            eds[j] += G[r * N + j] * xh;
            edb[j] += G[r * N + j];
        }
        for (int j = 0; j < N; j++) {
            double xh = (X[r * N + j] - m) * is;
            edx[r * N + j] = is * (G[r * N + j] * S[j] - a1 / N - xh * a2 / N);
        }
    }
    ot_tensor *ins[5] = {to_f32(dy), to_f32(x), to_f32(s), mean, istd}, *outs[3] = {0};
    CHECK(run_op("LayerNormGrad", ins, 5, 3, attrs_lng, outs) == 0);
    if (outs[0] && outs[1] && outs[2]) {
        int bad = 0;
        for (int i = 0; i < R * N; i++) bad += fabs(((float *)outs[0]->data)[i] - edx[i]) > 2e-5 * fmax(1, fabs(edx[i]));
        for (int j = 0; j < N; j++) {
            bad += fabs(((float *)outs[1]->data)[j] - eds[j]) > 2e-5 * fmax(1, fabs(eds[j]));
            bad += fabs(((float *)outs[2]->data)[j] - edb[j]) > 2e-5 * fmax(1, fabs(edb[j]));
        }
        CHECK(bad == 0);
        CHECK(outs[1]->ndim == 1 && outs[1]->dims[0] == N);
    }
    /* the same op with Mean/InvStdDev omitted recomputes them: same result */
    ot_tensor *outs2[3] = {0};
    ot_tensor *ins2[5] = {ins[0], ins[1], ins[2], NULL, NULL};
    CHECK(run_op("LayerNormGrad", ins2, 3, 3, attrs_lng, outs2) == 0);
    if (outs2[0] && outs[0]) {
        int bad = 0;
        for (int i = 0; i < R * N; i++)
            bad += fabs(((float *)outs2[0]->data)[i] - ((float *)outs[0]->data)[i]) > 1e-5;
        CHECK(bad == 0);
    }
    for (int k = 0; k < 3; k++) ot_tensor_free(outs[k]), ot_tensor_free(outs2[k]);
    for (int k = 0; k < 5; k++) ot_tensor_free(ins[k]);
    ot_tensor_free(dy), ot_tensor_free(x), ot_tensor_free(s);
    free(edx);
}

/* SoftmaxGrad / LogSoftmaxGrad / GeluGrad in f32 against double formulas. */
static void test_pointwise_grads_f32(void) {
    /* softmax over axis 1 of [4, 50, 3] (strided) */
    ot_tensor *x = gc_random(3, DIMS(4, 50, 3), 3.0), *dy = gc_random(3, DIMS(4, 50, 3), 1.0);
    const double *X = x->data, *G = dy->data;
    ot_tensor *y, *ly;
    ot_tensor_new(&y, OT_F64, 3, DIMS(4, 50, 3));
    ot_tensor_new(&ly, OT_F64, 3, DIMS(4, 50, 3));
    for (int o = 0; o < 4; o++)
        for (int i = 0; i < 3; i++) {
            double m = -INFINITY, s = 0;
            for (int j = 0; j < 50; j++) m = fmax(m, X[(o * 50 + j) * 3 + i]);
            for (int j = 0; j < 50; j++) s += exp(X[(o * 50 + j) * 3 + i] - m);
            for (int j = 0; j < 50; j++) {
                int e = (o * 50 + j) * 3 + i;
                ((double *)y->data)[e] = exp(X[e] - m) / s;
                ((double *)ly->data)[e] = X[e] - m - log(s);
            }
        }
    for (int lg = 0; lg < 2; lg++) {
        ot_tensor *ins[2] = {to_f32(dy), to_f32(lg ? ly : y)}, *out[1] = {0};
        CHECK(run_op(lg ? "LogSoftmaxGrad" : "SoftmaxGrad", ins, 2, 1, attrs_axis1, out) == 0);
        int bad = 0;
        for (int o = 0; o < 4 && out[0]; o++)
            for (int i = 0; i < 3; i++) {
                double s = 0;
                for (int j = 0; j < 50; j++) {
                    int e = (o * 50 + j) * 3 + i;
                    s += lg ? G[e] : G[e] * ((double *)y->data)[e];
                }
                for (int j = 0; j < 50; j++) {
                    int e = (o * 50 + j) * 3 + i;
                    double p = ((double *)y->data)[e];
                    double ex = lg ? G[e] - p * s : p * (G[e] - s);
                    bad += fabs(((float *)out[0]->data)[e] - ex) > 1e-5;
                }
            }
        CHECK(bad == 0);
        ot_tensor_free(ins[0]), ot_tensor_free(ins[1]), ot_tensor_free(out[0]);
    }
    /* GeluGrad: both forms, x over [-6, 6] */
    ot_tensor *gx = gc_random(1, DIMS(4001), 6.0), *gdy = gc_random(1, DIMS(4001), 1.0);
    const double tails[6] = {-30, -12, -9, 9, 12, 30}; /* saturated exp: no inf·0, no cancellation */
    memcpy(gx->data, tails, sizeof tails);
    for (int th = 0; th < 2; th++) {
        ot_tensor *ins[2] = {to_f32(gdy), to_f32(gx)}, *out[1] = {0};
        CHECK(run_op("GeluGrad", ins, 2, 1, th ? attrs_tanh : NULL, out) == 0);
        int bad = 0;
        for (int i = 0; i < 4001 && out[0]; i++) {
            double v = (double)((float *)ins[1]->data)[i], d;
            if (th) {
                double u = sqrt(2 / M_PI) * (v + 0.044715 * v * v * v), t = tanh(u);
                d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * sqrt(2 / M_PI) * (1 + 3 * 0.044715 * v * v);
            } else {
                d = 0.5 * erfc(-v / sqrt(2)) + v * exp(-v * v / 2) / sqrt(2 * M_PI);
            }
            double ex = (double)((float *)ins[0]->data)[i] * d;
            double err = fabs(((float *)out[0]->data)[i] - ex);
            if (!isfinite(((float *)out[0]->data)[i])) err = INFINITY;
            if (err > 1e-6 * fmax(1, fabs(ex)) + 1e-7 && bad++ < 3)
                fprintf(stderr, "  GeluGrad%s x=%.9g: %.9g vs %.9g\n", th ? "(tanh)" : "", v,
                        (double)((float *)out[0]->data)[i], ex);
        }
        CHECK(bad == 0);
        ot_tensor_free(ins[0]), ot_tensor_free(ins[1]), ot_tensor_free(out[0]);
    }
    ot_tensor_free(gx), ot_tensor_free(gdy);
    ot_tensor_free(x), ot_tensor_free(dy), ot_tensor_free(y), ot_tensor_free(ly);
}

int main(void) {
    OT_RUN(test_softmax);
    OT_RUN(test_softmax_coerce_2d);
    OT_RUN(test_layernorm);
    OT_RUN(test_layernorm_saves_stats);
    OT_RUN(test_gelu);
    OT_RUN(test_layernorm_grad_f32);
    OT_RUN(test_pointwise_grads_f32);
    return OT_TEST_EXIT();
}
