/* test_grad_elementwise.c — gradient checks for the elementwise builders
 * (trainer/grad/grad_elementwise.c) and forward tests of the fused pointwise gradient ops
 * and ReduceSumTo (runtime/ops/grad_tensor.c), plus checks of the ot_autodiff engine itself
 * (pruning, summing partials of a value used twice, -1 for values that do not reach the loss).
 *
 * Gradient checks: f64 random inputs, central differences with eps = 1e-6 (gradcheck.h),
 * tolerance 1e-6 relative to max(1, |analytic|, |numeric|). Inputs are kept away from the
 * points where an op is not differentiable (Relu/Abs at 0, Max/Min ties, Clip bounds) by
 * more than eps, so the finite difference never straddles a kink. */
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "ot_test.h"
#include "runtime/op.h"
#include "trainer/grad/grad.h"

#define TOL 1e-6

/* ---- input helpers ---- */

static ot_tensor *rnd(int ndim, const int64_t *dims, double scale) { return gc_random(ndim, dims, scale); }

/* Random values in ±[lo, hi): bounded away from 0 (for Relu, Abs, Log, Div, Pow bases). */
static ot_tensor *rnd_away(int ndim, const int64_t *dims, double lo, double hi, int positive) {
    ot_tensor *t = gc_random(ndim, dims, 1.0);
    double *x = t->data;
    for (int64_t i = 0; i < ot_tensor_numel(t); i++) {
        double u = fabs(x[i]);
        double v = lo + (hi - lo) * u;
        x[i] = positive || x[i] >= 0 ? v : -v;
    }
    return t;
}

static ot_tensor *bool_rand(int ndim, const int64_t *dims) {
    ot_tensor *t;
    ot_tensor_new(&t, OT_BOOL, ndim, dims);
    for (int64_t i = 0; i < ot_tensor_numel(t); i++) ((unsigned char *)t->data)[i] = gc_uniform() > 0;
    return t;
}

/* Runs gc_check on a one-op graph and frees the inputs. */
static int check_op(const char *op, int opset, gc_input *in, int n_in, gc_attrs_fn attrs) {
    return gc_check_free(op, "", opset, in, n_in, 1, attrs, TOL, "op %s opset %d", op, opset);
}

static int check_unary(const char *op, int opset, ot_tensor *x) {
    gc_input in[1] = {{"x", x, 1}};
    return check_op(op, opset, in, 1, NULL);
}

static int check_binary(const char *op, int opset, ot_tensor *a, ot_tensor *b, int da, int db) {
    gc_input in[2] = {{"a", a, da}, {"b", b, db}};
    return check_op(op, opset, in, 2, NULL);
}

/* ---- binary arithmetic with broadcasting both ways ---- */

static const int64_t S23[] = {2, 3}, S3[] = {3}, S13[] = {1, 3}, S21[] = {2, 1}, S234[] = {2, 3, 4},
                     S14[] = {1, 4}, S31[] = {3, 1}, S1[] = {1};

static void test_add_sub_mul(void) {
    const char *ops[3] = {"Add", "Sub", "Mul"};
    for (int k = 0; k < 3; k++) {
        int opset = k == 0 ? 13 : k == 1 ? 14 : 21;
        CHECK(check_binary(ops[k], opset, rnd(2, S23, 1), rnd(2, S23, 1), 1, 1) == 0);
        CHECK(check_binary(ops[k], opset, rnd(2, S23, 1), rnd(1, S3, 1), 1, 1) == 0);   /* b broadcast */
        CHECK(check_binary(ops[k], opset, rnd(2, S21, 1), rnd(2, S23, 1), 1, 1) == 0);  /* a broadcast */
        CHECK(check_binary(ops[k], opset, rnd(2, S21, 1), rnd(2, S13, 1), 1, 1) == 0);  /* both */
        CHECK(check_binary(ops[k], opset, rnd(3, S234, 1), rnd(2, S31, 1), 1, 1) == 0); /* middle */
        CHECK(check_binary(ops[k], opset, rnd(3, S234, 1), gc_scalar(0.7), 1, 1) == 0);
        CHECK(check_binary(ops[k], opset, rnd(1, S1, 1), rnd(3, S234, 1), 1, 1) == 0); /* [1] vs rank 3 */
        CHECK(check_binary(ops[k], opset, rnd(3, S234, 1), rnd(2, S14, 1), 0, 1) == 0); /* one side only */
        CHECK(check_binary(ops[k], opset, rnd(3, S234, 1), rnd(2, S14, 1), 1, 0) == 0);
    }
}

static void test_identity(void) {
    CHECK(check_unary("Identity", 13, rnd(3, S234, 1)) == 0);
    CHECK(check_unary("Identity", 21, rnd(0, NULL, 1)) == 0);
}

static void test_div_pow(void) {
    CHECK(check_binary("Div", 13, rnd(2, S23, 1), rnd_away(2, S23, 0.5, 1.5, 0), 1, 1) == 0);
    CHECK(check_binary("Div", 14, rnd(3, S234, 1), rnd_away(2, S31, 0.5, 1.5, 0), 1, 1) == 0);
    CHECK(check_binary("Div", 21, rnd(2, S21, 1), rnd_away(2, S13, 0.5, 1.5, 0), 1, 1) == 0);
    CHECK(check_binary("Div", 13, gc_scalar(0.3), rnd_away(2, S23, 0.5, 1.5, 0), 1, 1) == 0);
    /* Pow: positive bases (dB needs ln A) */
    CHECK(check_binary("Pow", 13, rnd_away(2, S23, 0.5, 2.0, 1), rnd(2, S23, 2), 1, 1) == 0);
    CHECK(check_binary("Pow", 15, rnd_away(3, S234, 0.5, 2.0, 1), rnd(2, S14, 2), 1, 1) == 0);
    CHECK(check_binary("Pow", 21, rnd_away(1, S3, 0.5, 2.0, 1), rnd(2, S23, 2), 1, 1) == 0);
    CHECK(check_binary("Pow", 13, rnd(2, S23, 2), gc_scalar(2.0), 1, 0) == 0); /* x², any sign */
    /* integer exponent: only dA, B cast to the base dtype */
    ot_tensor *e;
    ot_tensor_new(&e, OT_I64, 0, NULL);
    ((int64_t *)e->data)[0] = 3;
    CHECK(check_binary("Pow", 13, rnd(2, S23, 2), e, 1, 0) == 0);
}

static void test_unary(void) {
    CHECK(check_unary("Sqrt", 13, rnd_away(2, S23, 0.3, 2.0, 1)) == 0);
    CHECK(check_unary("Reciprocal", 13, rnd_away(3, S234, 0.5, 2.0, 0)) == 0);
    CHECK(check_unary("Neg", 13, rnd(3, S234, 1)) == 0);
    CHECK(check_unary("Abs", 13, rnd_away(3, S234, 0.01, 1.0, 0)) == 0);
    CHECK(check_unary("Exp", 13, rnd(3, S234, 2)) == 0);
    CHECK(check_unary("Log", 13, rnd_away(3, S234, 0.2, 3.0, 1)) == 0);
    CHECK(check_unary("Tanh", 13, rnd(3, S234, 2)) == 0);
    CHECK(check_unary("Erf", 13, rnd(3, S234, 2)) == 0);
    CHECK(check_unary("Sigmoid", 13, rnd(3, S234, 4)) == 0);
    CHECK(check_unary("Relu", 14, rnd_away(3, S234, 0.01, 1.0, 0)) == 0);
    CHECK(check_unary("Relu", 21, rnd_away(0, NULL, 0.01, 1.0, 0)) == 0);
    CHECK(check_unary("Sigmoid", 21, rnd(0, NULL, 1)) == 0);
}

static void test_where(void) {
    /* condition broadcast against both branches; no gradient to the condition */
    gc_input a[3] = {{"c", bool_rand(2, S23), 0}, {"a", rnd(2, S23, 1), 1}, {"b", rnd(2, S23, 1), 1}};
    CHECK(check_op("Where", 13, a, 3, NULL) == 0);
    gc_input b[3] = {{"c", bool_rand(2, S13), 0}, {"a", rnd(2, S21, 1), 1}, {"b", rnd(1, S3, 1), 1}};
    CHECK(check_op("Where", 16, b, 3, NULL) == 0);
    gc_input d[3] = {{"c", bool_rand(3, S234), 0}, {"a", gc_scalar(0.5), 1}, {"b", rnd(2, S14, 1), 1}};
    CHECK(check_op("Where", 21, d, 3, NULL) == 0);
}

static void cast_to_f32(ot_graph *g, int node) { gc_attr_int(g, node, "to", OT_F32); }
static void cast_to_f64(ot_graph *g, int node) { gc_attr_int(g, node, "to", OT_F64); }

/* Cast's gradient through f32 is exact only to f32 precision, so this check follows the
 * chain X(f64) -> Cast(f64) (identity dtype) at 1e-6 and, separately, X -> Cast(f32)
 * at f32 tolerance: the loss then is f32 and the finite difference of a f32 loss at
 * eps = 1e-6 is noise, so the f32 path is checked by value instead (test_cast_f32). */
static void test_cast(void) {
    gc_input a[1] = {{"x", rnd(2, S23, 1), 1}};
    CHECK(check_op("Cast", 13, a, 1, cast_to_f64) == 0);
    gc_input b[1] = {{"x", rnd(3, S234, 1), 1}};
    CHECK(check_op("Cast", 19, b, 1, cast_to_f64) == 0);
}

/* X(f64) -> Cast(to f32) -> Mul by R -> ReduceSum: d loss / dX = R (in f64), with R in
 * f32. Checks the builder casts the f32 gradient back to f64. */
static void test_cast_f32(void) {
    ot_graph *g;
    CHECK_OK(ot_graph_new(&g));
    ot_graph_add_opset(g, "", 17);
    int x = gc_value(g, "x"), y = gc_value(g, "y"), r = gc_value(g, "r"), p = gc_value(g, "p"), l = gc_value(g, "l");
    gc_set_init(g, x, rnd(2, S23, 1));
    g->values[x].is_param = 1;
    ot_tensor *rt;
    ot_tensor_new(&rt, OT_F32, 2, S23);
    for (int i = 0; i < 6; i++) ((float *)rt->data)[i] = (float)(0.25 * (i + 1));
    gc_set_init(g, r, rt);
    int n;
    ot_graph_add_node(g, "Cast", "", "cast", &x, 1, &y, 1, &n);
    cast_to_f32(g, n);
    int mi[2] = {y, r};
    ot_graph_add_node(g, "Mul", "", "mul", mi, 2, &p, 1, NULL);
    gc_sum_all(g, "sum", p, l);
    gc_output(g, l);
    ot_plan *pl = NULL;
    ot_tensor *meta;
    CHECK_OK(gc_plan_meta(g, &meta));
    int grad = -1;
    CHECK_OK(ot_autodiff(g, meta, l, &x, 1, NULL, &grad));
    CHECK(grad >= 0);
    CHECK_OK(ot_plan_create(g, NULL, &pl));
    ot_tensor outs[4];
    CHECK_OK(ot_plan_run(pl, NULL, outs));
    CHECK(outs[1].dtype == OT_F64);
    for (int i = 0; i < 6; i++) CHECK_NEAR(((double *)outs[1].data)[i], 0.25 * (i + 1), 1e-12);
    free(meta);
    ot_plan_free(pl);
    ot_graph_free(g);
}

/* Max/Min: random inputs have no ties; ties are checked by value in test_minmax_ties. */
static void test_minmax(void) {
    const char *ops[2] = {"Max", "Min"};
    for (int k = 0; k < 2; k++) {
        gc_input a[2] = {{"a", rnd(2, S23, 1), 1}, {"b", rnd(2, S23, 1), 1}};
        CHECK(check_op(ops[k], 13, a, 2, NULL) == 0);
        gc_input b[3] = {{"a", rnd(3, S234, 1), 1}, {"b", rnd(2, S14, 1), 1}, {"c", rnd(2, S31, 1), 1}};
        CHECK(check_op(ops[k], 21, b, 3, NULL) == 0);
        gc_input c1[1] = {{"a", rnd(2, S23, 1), 1}};
        CHECK(check_op(ops[k], 13, c1, 1, NULL) == 0);
        gc_input d[2] = {{"a", rnd(2, S23, 1), 0}, {"b", rnd(1, S3, 1), 1}};
        CHECK(check_op(ops[k], 13, d, 2, NULL) == 0);
    }
}

/* Runs Max(a, b, c) with exact ties and returns the gradients of a, b, c for upstream
 * gradient 1 (loss = ReduceSum(Max)). Expected by hand: a tie between k inputs gives each
 * 1/k. */
static void test_minmax_ties(void) {
    const double av[4] = {1, 2, 3, 4}, bv[4] = {1, 5, 3, 0}, cv[4] = {1, 0, 3, 4};
    const double ea[4] = {1. / 3, 0, 1. / 3, 0.5}, eb[4] = {1. / 3, 1, 1. / 3, 0}, ec[4] = {1. / 3, 0, 1. / 3, 0.5};
    const int64_t dims[1] = {4};
    ot_graph *g;
    ot_graph_new(&g);
    ot_graph_add_opset(g, "", 13);
    int in[3], y = gc_value(g, "y"), l = gc_value(g, "l");
    const double *vals[3] = {av, bv, cv};
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        ot_tensor *t;
        ot_tensor_new(&t, OT_F64, 1, dims);
        memcpy(t->data, vals[i], sizeof av);
        in[i] = gc_value(g, names[i]);
        gc_set_init(g, in[i], t);
        g->values[in[i]].is_param = 1;
    }
    ot_graph_add_node(g, "Max", "", "max", in, 3, &y, 1, NULL);
    gc_sum_all(g, "sum", y, l);
    gc_output(g, l);
    ot_plan *pl = NULL;
    ot_tensor *meta;
    CHECK_OK(gc_plan_meta(g, &meta));
    int grads[3];
    CHECK_OK(ot_autodiff(g, meta, l, in, 3, NULL, grads));
    CHECK_OK(ot_plan_create(g, NULL, &pl));
    ot_tensor outs[8];
    CHECK_OK(ot_plan_run(pl, NULL, outs));
    const double *exp[3] = {ea, eb, ec};
    for (int i = 0; i < 3; i++)
        for (int e = 0; e < 4; e++) CHECK_NEAR(((double *)outs[1 + i].data)[e], exp[i][e], 1e-15);
    free(meta);
    ot_plan_free(pl);
    ot_graph_free(g);
}

/* Clip with random x kept at least 0.05 from the bounds -0.4 and 0.5. */
static ot_tensor *away_from_bounds(int ndim, const int64_t *dims) {
    ot_tensor *t = rnd(ndim, dims, 1);
    double *x = t->data;
    for (int64_t i = 0; i < ot_tensor_numel(t); i++) {
        if (fabs(x[i] + 0.4) < 0.05) x[i] -= 0.1;
        if (fabs(x[i] - 0.5) < 0.05) x[i] += 0.1;
    }
    return t;
}

static void test_clip(void) {
    gc_input a[3] = {{"x", away_from_bounds(3, S234), 1}, {"lo", gc_scalar(-0.4), 1}, {"hi", gc_scalar(0.5), 1}};
    CHECK(check_op("Clip", 13, a, 3, NULL) == 0);
    gc_input b[3] = {{"x", away_from_bounds(2, S23), 1}, {"lo", NULL, 0}, {"hi", gc_scalar(0.5), 0}};
    CHECK(check_op("Clip", 13, b, 3, NULL) == 0);
    gc_input c1[2] = {{"x", away_from_bounds(2, S23), 1}, {"lo", gc_scalar(-0.4), 0}};
    CHECK(check_op("Clip", 21, c1, 2, NULL) == 0);
    gc_input d[1] = {{"x", away_from_bounds(2, S23), 1}};
    CHECK(check_op("Clip", 13, d, 1, NULL) == 0);
}

/* Comparisons and logic ops are registered without a gradient: a chain that reaches a
 * parameter only through them gives it no gradient (grads[i] = -1), and the lookup finds
 * them as no_grad at both ends of the opset range. */
static void test_no_grad(void) {
    const char *ops[8] = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or"};
    for (int i = 0; i < 8; i++) {
        const ot_grad_def *d13 = ot_grad_find("", ops[i], 13), *d21 = ot_grad_find("", ops[i], 21);
        CHECK(d13 && d13->no_grad && d21 && d21->no_grad);
    }
    CHECK(ot_grad_find("", "Add", 12) == NULL);
    CHECK(ot_grad_find("", "Add", 22) == NULL);
    CHECK(ot_grad_find("ai.onnx", "Mul", 17) != NULL);
}

/* ---- the ot_autodiff engine ---- */

typedef struct {
    ot_graph *g;
    ot_plan *p;
    ot_tensor *meta;
} eng;

/* Plans g (outputs already set), fills meta, differentiates loss w.r.t. wrt, replans. */
static ot_status eng_diff(eng *e, int loss, const int *wrt, int n, int *grads, const ot_autodiff_opts *o,
                          const ot_tensor *const *inputs) {
    OT_TRY(ot_graph_toposort(e->g));
    OT_TRY(ot_plan_create(e->g, inputs, &e->p));
    e->meta = calloc((size_t)e->g->n_values, sizeof *e->meta);
    ot_plan_value_meta(e->p, e->meta);
    ot_plan_free(e->p);
    e->p = NULL;
    OT_TRY(ot_autodiff(e->g, e->meta, loss, wrt, n, o, grads));
    return OT_OK;
}
static void eng_free(eng *e) {
    free(e->meta);
    ot_plan_free(e->p);
    ot_graph_free(e->g);
}
static int node1(ot_graph *g, const char *op, const char *name, int a, int b) {
    int out = gc_value(g, name), in[2] = {a, b};
    ot_graph_add_node(g, op, "", name, in, b < 0 ? 1 : 2, &out, 1, NULL);
    return out;
}
static int sum_all(ot_graph *g, int x) {
    int l = gc_value(g, "loss");
    gc_sum_all(g, "loss", x, l);
    gc_output(g, l);
    return l;
}
static int count_ops(const ot_graph *g, const char *op) {
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) k += strcmp(g->nodes[i].op_type, op) == 0;
    return k;
}

/* loss = Σ (w1 ⊙ c + tanh c); also Sigmoid(w1) and Exp(w2) that never reach the loss.
 * Only w1 gets a gradient (= c); no builder runs for Tanh (its input is not trainable),
 * Sigmoid or Exp (they do not reach the loss); w2's gradient is -1. */
static void test_engine_pruning(void) {
    eng e = {0};
    ot_graph_new(&e.g);
    ot_graph_add_opset(e.g, "", 17);
    ot_graph *g = e.g;
    int w1 = gc_param(g, "w1", rnd(2, S23, 1)), w2 = gc_param(g, "w2", rnd(2, S23, 1)), c = gc_value(g, "c");
    gc_set_init(g, c, rnd(2, S23, 1));
    int y = node1(g, "Mul", "y", w1, c), u = node1(g, "Tanh", "u", c, -1);
    node1(g, "Sigmoid", "dead1", w1, -1);
    node1(g, "Exp", "dead2", w2, -1);
    int l = sum_all(g, node1(g, "Add", "s", y, u));
    int wrt[2] = {w1, w2}, grads[2] = {-7, -7}, n_before = 0;
    n_before = g->n_nodes;
    CHECK_OK(eng_diff(&e, l, wrt, 2, grads, NULL, NULL));
    CHECK(grads[0] >= 0 && grads[1] == -1);
    CHECK(count_ops(g, "TanhGrad") == 0 && count_ops(g, "SigmoidGrad") == 0 && count_ops(g, "Exp") == 1);
    CHECK(g->n_nodes - n_before <= 4); /* ReduceSum's backward, Add's (nothing), Mul's, Identity */
    CHECK(strcmp(g->values[grads[0]].name, "w1_grad") == 0);
    CHECK_OK(ot_plan_create(g, NULL, &e.p));
    ot_tensor outs[4];
    CHECK_OK(ot_plan_run(e.p, NULL, outs));
    CHECK(g->n_outputs == 2);
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(((double *)outs[1].data)[i], ((double *)g->values[c].init->data)[i], 1e-15);
    eng_free(&e);
}

/* loss = Σ (x ⊙ x + exp x): x feeds Mul twice and Exp once; dx = 2x + exp x. */
static void test_engine_partials(void) {
    eng e = {0};
    ot_graph_new(&e.g);
    ot_graph_add_opset(e.g, "", 13);
    ot_graph *g = e.g;
    int x = gc_param(g, "x", rnd(3, S234, 1));
    int l = sum_all(g, node1(g, "Add", "s", node1(g, "Mul", "sq", x, x), node1(g, "Exp", "ex", x, -1)));
    int grad = -1;
    CHECK_OK(eng_diff(&e, l, &x, 1, &grad, NULL, NULL));
    CHECK(grad >= 0);
    CHECK_OK(ot_plan_create(g, NULL, &e.p));
    ot_tensor outs[4];
    CHECK_OK(ot_plan_run(e.p, NULL, outs));
    const double *xv = g->values[x].init->data;
    for (int i = 0; i < 24; i++) CHECK_NEAR(((double *)outs[1].data)[i], 2 * xv[i] + exp(xv[i]), 1e-14);
    eng_free(&e);
}

/* The loss-gradient seed as a graph input (the loss scaler's path): feeding 2.5 scales
 * every gradient by 2.5. */
static void test_engine_seed_input(void) {
    eng e = {0};
    ot_graph_new(&e.g);
    ot_graph_add_opset(e.g, "", 13);
    ot_graph *g = e.g;
    int x = gc_param(g, "x", rnd(2, S23, 1));
    int l = sum_all(g, node1(g, "Mul", "sq", x, x));
    int grad = -1;
    ot_autodiff_opts o = {.seed_input = 1};
    CHECK_OK(eng_diff(&e, l, &x, 1, &grad, &o, NULL));
    CHECK(g->n_inputs == 1 && strcmp(g->values[g->inputs[0]].name, "loss_grad") == 0);
    ot_tensor *seed = gc_scalar(2.5);
    const ot_tensor *ins[1] = {seed};
    CHECK_OK(ot_plan_create(g, ins, &e.p));
    ot_tensor outs[4];
    CHECK_OK(ot_plan_run(e.p, ins, outs));
    const double *xv = g->values[x].init->data;
    for (int i = 0; i < 6; i++) CHECK_NEAR(((double *)outs[1].data)[i], 2.5 * 2 * xv[i], 1e-14);
    ot_tensor_free(seed);
    eng_free(&e);
}

/* A Concat of many trainable pieces: each piece's gradient is its slice of R. 40 pieces
 * go through the planner (checked by value); 70 (wider than the planner's and the old
 * engine's fixed 64-entry per-node buffers) are differentiated with hand-written metadata
 * only, checking every piece gets a gradient from one Split. */
static void wide_concat(int N, int run) {
    eng e = {0};
    ot_graph_new(&e.g);
    ot_graph_add_opset(e.g, "", 13);
    ot_graph *g = e.g;
    int xs[128], grads[128], y = gc_value(g, "cat"), r = gc_value(g, "r"), n;
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "x%d", i);
        xs[i] = gc_param(g, name, rnd(2, S21, 1));
    }
    ot_graph_add_node(g, "Concat", "", "cat", xs, N, &y, 1, &n);
    gc_attr_int(g, n, "axis", 1);
    ot_tensor *rt = rnd(2, (int64_t[]){2, N}, 1);
    gc_set_init(g, r, rt);
    int l = sum_all(g, node1(g, "Mul", "m", y, r));
    if (!run) {
        CHECK_OK(ot_graph_toposort(g));
        e.meta = calloc((size_t)g->n_values, sizeof *e.meta);
        for (int v = 0; v < g->n_values; v++) {
            e.meta[v].dtype = OT_F64;
            e.meta[v].ndim = 2, e.meta[v].dims[0] = 2, e.meta[v].dims[1] = v == y || v == r || v == g->values[l].producer ? N : 1;
        }
        e.meta[l].ndim = 0;
        e.meta[gc_value(g, "m")].dims[1] = N;
        CHECK_OK(ot_autodiff(g, e.meta, l, xs, N, NULL, grads));
        int ok = 1;
        for (int i = 0; i < N; i++) ok &= grads[i] >= 0;
        CHECK(ok);
        CHECK(count_ops(g, "Split") == 1);
        eng_free(&e);
        return;
    }
    CHECK_OK(eng_diff(&e, l, xs, N, grads, NULL, NULL));
    CHECK_OK(ot_plan_create(g, NULL, &e.p));
    ot_tensor outs[128];
    CHECK_OK(ot_plan_run(e.p, NULL, outs));
    int bad = 0;
    for (int i = 0; i < N; i++)
        for (int row = 0; row < 2; row++) bad += ((double *)outs[1 + i].data)[row] != ((double *)rt->data)[row * N + i];
    CHECK(bad == 0);
    eng_free(&e);
}
static void test_engine_wide_node(void) {
    wide_concat(40, 1);
    wide_concat(70, 0);
}

/* Errors: a node whose op has no builder (named in the message), a non-scalar loss. The
 * metadata is written by hand, so no forward kernel is needed for the unknown op. */
static void test_engine_errors(void) {
    ot_graph *g;
    ot_graph_new(&g);
    ot_graph_add_opset(g, "", 13);
    int x = gc_param(g, "x", rnd(2, S23, 1)), y = gc_value(g, "y"), l = gc_value(g, "l");
    ot_graph_add_node(g, "NoSuchOp", "", "mystery", &x, 1, &y, 1, NULL);
    ot_graph_add_node(g, "ReduceSum", "", "sum", &y, 1, &l, 1, NULL);
    ot_tensor meta[3];
    memset(meta, 0, sizeof meta);
    for (int v = 0; v < 2; v++) meta[v].dtype = OT_F64, meta[v].ndim = 2, meta[v].dims[0] = 2, meta[v].dims[1] = 3;
    meta[l].dtype = OT_F64, meta[l].ndim = 0;
    int grad;
    CHECK(ot_autodiff(g, meta, l, &x, 1, NULL, &grad) == OT_E_UNSUPPORTED);
    CHECK(strstr(ot_last_error(), "NoSuchOp") && strstr(ot_last_error(), "mystery"));
    ot_graph_free(g);
    ot_graph_new(&g);
    ot_graph_add_opset(g, "", 13);
    x = gc_param(g, "x", rnd(2, S23, 1));
    y = node1(g, "Exp", "y", x, -1);
    memset(meta, 0, sizeof meta);
    for (int v = 0; v < 2; v++) meta[v].dtype = OT_F64, meta[v].ndim = 2, meta[v].dims[0] = 2, meta[v].dims[1] = 3;
    CHECK(ot_autodiff(g, meta, y, &x, 1, NULL, &grad) == OT_E_INVALID); /* [2, 3] is not a scalar */
    ot_graph_free(g);
}

int main(void) {
    /* gradcheck.h's helpers are plain statics; mark the ones this file does not call as used */
    OT_RUN(test_add_sub_mul);
    OT_RUN(test_identity);
    OT_RUN(test_div_pow);
    OT_RUN(test_unary);
    OT_RUN(test_where);
    OT_RUN(test_cast);
    OT_RUN(test_cast_f32);
    OT_RUN(test_minmax);
    OT_RUN(test_minmax_ties);
    OT_RUN(test_clip);
    OT_RUN(test_no_grad);
    OT_RUN(test_engine_pruning);
    OT_RUN(test_engine_partials);
    OT_RUN(test_engine_seed_input);
    OT_RUN(test_engine_wide_node);
    OT_RUN(test_engine_errors);
    return OT_TEST_EXIT();
}
