/* test_grad_reduce.c — gradient checks for the reduce builders (trainer/grad/grad_reduce.c):
 * ReduceSum (axes input, opset 13), ReduceMean and ReduceMax (axes attribute before opset
 * 18, axes input after), keepdims both ways, negative and multiple axes, no axes
 * (reduce all) and noop_with_empty_axes.
 *
 * Gradient checks: f64 random inputs, central differences with eps = 1e-6 (gradcheck.h),
 * tolerance 1e-6 relative to max(1, |analytic|, |numeric|). ReduceMax inputs are random
 * (ties have probability 0, so the max is differentiable); ties are checked separately
 * against the documented convention (the gradient is split evenly among tied maxima, as
 * torch.amax does), with expected values written out by hand. */
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "onnxtune/runtime.h"
#include "ot_test.h"
#include "trainer/autodiff.h"

#define TOL 1e-6

static const int64_t S234[] = {2, 3, 4}, S35[] = {3, 5}, S7[] = {7}, S2131[] = {2, 1, 3, 1};

/* ---- attribute setters (gc_attrs_fn takes no closure: the case lives in globals) ---- */

static int64_t g_axes[8];
static int g_n_axes = -1; /* -1: no axes attribute */
static int g_keepdims = -1, g_noop = -1;

static void set_attrs(ot_graph *g, int node) {
    if (g_n_axes >= 0) gc_attr_ints(g, node, "axes", g_axes, g_n_axes);
    if (g_keepdims >= 0) gc_attr_int(g, node, "keepdims", g_keepdims);
    if (g_noop >= 0) gc_attr_int(g, node, "noop_with_empty_axes", g_noop);
}
static void set_attrs_no_axes(ot_graph *g, int node) {
    if (g_keepdims >= 0) gc_attr_int(g, node, "keepdims", g_keepdims);
    if (g_noop >= 0) gc_attr_int(g, node, "noop_with_empty_axes", g_noop);
}

static ot_tensor *i64s(const int64_t *v, int n) { return gc_i64(1, (const int64_t[]){n}, v); }

/* One check: `op` at `opset` on x of shape dims; axes (n_axes < 0: none given) as an
 * attribute or, when axes_input, as the constant input 1. */
static int check_reduce(const char *op, int opset, int axes_input, int ndim, const int64_t *dims, const int64_t *axes,
                        int n_axes, int keepdims, int noop) {
    ot_tensor *x = gc_random(ndim, dims, 1.0), *ax = NULL;
    g_keepdims = keepdims, g_noop = noop;
    g_n_axes = axes_input ? -1 : n_axes;
    if (!axes_input && n_axes > 0) memcpy(g_axes, axes, (size_t)n_axes * sizeof *axes);
    if (axes_input && n_axes >= 0) ax = i64s(axes, n_axes);
    gc_input in[2] = {{"x", x, 1}, {"axes", ax, 0}};
    return gc_check_free(op, "", opset, in, ax ? 2 : 1, 1, axes_input ? set_attrs_no_axes : set_attrs, TOL,
                         "%s opset %d axes_input %d n_axes %d keepdims %d noop %d", op, opset, axes_input, n_axes,
                         keepdims, noop);
}

/* The same set of cases for one op, with its attribute and input opsets. */
static void cases(const char *op, int attr_opset, int input_opset) {
    static const int64_t a1[] = {1}, an1[] = {-1}, a02[] = {0, 2}, a0[] = {0}, a13[] = {1, 3};
    for (int form = attr_opset < 13 ? 1 : 0; form < 2; form++) {
        int opset = form ? input_opset : attr_opset;
        for (int kd = 0; kd <= 1; kd++) {
            CHECK(check_reduce(op, opset, form, 3, S234, a1, 1, kd, -1) == 0);  /* middle axis */
            CHECK(check_reduce(op, opset, form, 3, S234, an1, 1, kd, -1) == 0); /* last, negative */
            CHECK(check_reduce(op, opset, form, 3, S234, a02, 2, kd, -1) == 0); /* two axes */
            CHECK(check_reduce(op, opset, form, 2, S35, a0, 1, kd, -1) == 0);   /* first axis */
            CHECK(check_reduce(op, opset, form, 3, S234, NULL, -1, kd, -1) == 0); /* no axes: all */
            CHECK(check_reduce(op, opset, form, 1, S7, a0, 1, kd, -1) == 0);    /* 1-D to scalar */
            CHECK(check_reduce(op, opset, form, 4, S2131, a13, 2, kd, -1) == 0); /* size-1 dims */
        }
        /* keepdims attribute absent (default 1) */
        CHECK(check_reduce(op, opset, form, 3, S234, a1, 1, -1, -1) == 0);
        /* noop_with_empty_axes = 1 with no axes: identity, dX = dY */
        CHECK(check_reduce(op, opset, form, 3, S234, NULL, -1, 0, 1) == 0);
        /* noop_with_empty_axes = 1 with axes given: an ordinary reduction */
        CHECK(check_reduce(op, opset, form, 3, S234, a02, 2, 0, 1) == 0);
    }
    /* an empty axes list (input form): reduce all, or identity with noop */
    CHECK(check_reduce(op, input_opset, 1, 3, S234, NULL, 0, 1, 0) == 0);
    CHECK(check_reduce(op, input_opset, 1, 3, S234, NULL, 0, 1, 1) == 0);
}

/* ReduceSum's attribute form (opsets 1..12) is not checked in a graph: the runtime
 * registers Mul, Reshape and Expand from opset 13 only, so no graph of opset <= 12 that
 * uses them can be planned. The builder reads the attribute form all the same. */
static void test_reduce_sum(void) { cases("ReduceSum", 11, 13); }
static void test_reduce_mean(void) { cases("ReduceMean", 13, 18); }
static void test_reduce_max(void) { cases("ReduceMax", 13, 18); }

/* ReduceMax with ties: loss = Σ_k w_k · ReduceMax(X, axis 1)_k; the gradient of each row is
 * w_k / (number of maxima in the row) at every maximum and 0 elsewhere. Built by hand so
 * the expected values are independent of the builder. */
static void test_reduce_max_ties(void) {
    ot_graph *g;
    CHECK_OK(ot_graph_new(&g));
    ot_graph_add_opset(g, "", 18);
    int64_t xd[2] = {3, 4}, wd[1] = {3};
    const double xv[12] = {1, 5, 5, 2, /* two tied maxima */ 7, 7, 7, 7, /* all tied */ -3, 0, -1, -2 /* one */};
    const double wv[3] = {0.5, -2.0, 3.0};
    ot_tensor *x = gc_random(2, xd, 1.0), *w = gc_random(1, wd, 1.0), *ax = i64s((const int64_t[]){1}, 1);
    memcpy(x->data, xv, sizeof xv);
    memcpy(w->data, wv, sizeof wv);
    int vx = gc_value(g, "x"), vw = gc_value(g, "w"), vax = gc_value(g, "axes"), vm = gc_value(g, "m"),
        vp = gc_value(g, "p"), vl = gc_value(g, "loss");
    gc_set_init(g, vx, x);
    gc_set_init(g, vw, w);
    gc_set_init(g, vax, ax);
    g->values[vx].is_param = 1;
    int node, in2[2] = {vx, vax};
    ot_graph_add_node(g, "ReduceMax", "", "max", in2, 2, &vm, 1, &node);
    gc_attr_int(g, node, "keepdims", 0);
    int mi[2] = {vm, vw};
    ot_graph_add_node(g, "Mul", "", "mul", mi, 2, &vp, 1, NULL);
    gc_sum_all(g, "sum", vp, vl);
    gc_output(g, vl);
    ot_plan *p = NULL;
    ot_tensor *meta;
    CHECK_OK(gc_plan_meta(g, &meta));
    int grad = -1;
    CHECK_OK(ot_autodiff(g, meta, vl, &vx, 1, NULL, &grad));
    CHECK(grad >= 0);
    CHECK_OK(ot_plan_create(g, NULL, &p));
    ot_tensor outs[4];
    CHECK_OK(ot_plan_run(p, NULL, outs));
    const double expect[12] = {0, 0.25, 0.25, 0, -0.5, -0.5, -0.5, -0.5, 0, 3.0, 0, 0};
    const double *gx = outs[1].data;
    for (int i = 0; i < 12; i++) CHECK_NEAR(gx[i], expect[i], 1e-15);
    CHECK_NEAR(((double *)outs[0].data)[0], 0.5 * 5 - 2.0 * 7 + 3.0 * 0, 1e-15);
    free(meta);
    ot_plan_free(p);
    ot_graph_free(g);
}

/* The ReduceSum builder must refuse an axes input whose value is not a constant: the
 * message names the input. */
static void test_axes_not_constant(void) {
    ot_graph *g;
    CHECK_OK(ot_graph_new(&g));
    ot_graph_add_opset(g, "", 13);
    int64_t xd[2] = {2, 3};
    ot_tensor *x = gc_random(2, xd, 1.0);
    int vx = gc_value(g, "x"), vax = gc_value(g, "axes_in"), vl = gc_value(g, "loss");
    gc_set_init(g, vx, x);
    g->values[vx].is_param = 1;
    ot_value *a = &g->values[vax];
    a->is_input = 1, a->dtype = OT_I64, a->ndim = 1, a->dims[0] = 2;
    g->inputs = malloc(sizeof(int));
    g->inputs[g->n_inputs++] = vax;
    int node, in2[2] = {vx, vax};
    ot_graph_add_node(g, "ReduceSum", "", "sum", in2, 2, &vl, 1, &node);
    gc_attr_int(g, node, "keepdims", 0);
    g->outputs = malloc(sizeof(int));
    g->outputs[g->n_outputs++] = vl;
    CHECK_OK(ot_graph_toposort(g));
    /* meta by hand: the plan cannot infer a reduction over unknown axes */
    ot_tensor *meta = calloc((size_t)g->n_values, sizeof *meta);
    meta[vx] = *x;
    meta[vx].data = NULL;
    meta[vax].dtype = OT_I64, meta[vax].ndim = 1, meta[vax].dims[0] = 2;
    meta[vl].dtype = OT_F64, meta[vl].ndim = 0;
    int grad;
    ot_status st = ot_autodiff(g, meta, vl, &vx, 1, NULL, &grad);
    CHECK(st != OT_OK);
    CHECK(strstr(ot_last_error(), "axes_in") != NULL);
    free(meta);
    ot_graph_free(g);
}

int main(void) {
    OT_RUN(test_reduce_sum);
    OT_RUN(test_reduce_mean);
    OT_RUN(test_reduce_max);
    OT_RUN(test_reduce_max_ties);
    OT_RUN(test_axes_not_constant);
    return OT_TEST_EXIT();
}
