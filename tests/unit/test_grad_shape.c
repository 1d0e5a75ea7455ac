/* test_grad_shape.c — gradient checks for the shape-family builders
 * (trainer/grad/grad_shape.c) and forward tests of the internal data-movement gradient ops
 * ReduceSumTo, GatherGrad, SliceGrad and the fused pointwise gradients
 * (runtime/ops/grad_tensor.c).
 *
 * Gradient checks: f64 random inputs, central differences with eps = 1e-6 (gradcheck.h),
 * tolerance 1e-6 relative to max(1, |analytic|, |numeric|). Forward tests compare with
 * naive index loops written here (multi-index walks, not the kernels' coalesced plans) and
 * with literal arrays worked out by hand; outputs start as garbage so a kernel that skips
 * an element fails; the large cases cross the kernels' parallel and split thresholds and
 * are re-run with another thread count to check bit-identical results. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "gradcheck.h"
#include "ot_test.h"
#include "runtime/op.h"
#include "trainer/grad/grad.h"

#define TOL 1e-6
#define D(...) ((int64_t[]){__VA_ARGS__})
#define NARG(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

/* ------------------------------------------------------------------------------------------ */
/* Tensors. */

static ot_tensor *i64v(int n, const int64_t *v) { return gc_i64(1, (const int64_t[]){n}, v); }
#define I64S(...) i64v(NARG(__VA_ARGS__), D(__VA_ARGS__))
static ot_tensor *i64_scalar(int64_t v) {
    ot_tensor *t;
    ot_tensor_new(&t, OT_I64, 0, NULL);
    *(int64_t *)t->data = v;
    return t;
}
static ot_tensor *rnd(int ndim, const int64_t *dims) { return gc_random(ndim, dims, 1.0); }
#define RND(...) rnd(NARG(__VA_ARGS__), D(__VA_ARGS__))

static ot_tensor *to_f32(const ot_tensor *x) { return gc_convert(x, OT_F32); }

/* ------------------------------------------------------------------------------------------ */
/* Gradient checks. */

static gc_attrs_fn g_attrs; /* set per check */
static int64_t a_axis, a_ex, a_rev, a_upper, a_perm[OT_MAX_DIMS];
static int a_nperm;
static void attrs_axis(ot_graph *g, int n) { gc_attr_int(g, n, "axis", a_axis); }
static void attrs_perm(ot_graph *g, int n) {
    if (a_nperm >= 0) gc_attr_ints(g, n, "perm", a_perm, a_nperm);
}
static void attrs_cumsum(ot_graph *g, int n) {
    gc_attr_int(g, n, "exclusive", a_ex);
    gc_attr_int(g, n, "reverse", a_rev);
}
static void attrs_trilu(ot_graph *g, int n) { gc_attr_int(g, n, "upper", a_upper); }
static void attrs_split18(ot_graph *g, int n) {
    gc_attr_int(g, n, "axis", a_axis);
    gc_attr_int(g, n, "num_outputs", 3);
}

/* x is differentiable, the rest constants (NULL = omitted). Frees the inputs. */
static int check(const char *op, int opset, int n_out, ot_tensor *x, ot_tensor *c1, ot_tensor *c2, ot_tensor *c3,
                 ot_tensor *c4) {
    gc_input in[5] = {{"x", x, 1}, {"c1", c1, 0}, {"c2", c2, 0}, {"c3", c3, 0}, {"c4", c4, 0}};
    int n = 5;
    while (n > 1 && !in[n - 1].value) n--;
    int r = gc_check_free(op, "", opset, in, n, n_out, g_attrs, TOL, "%s opset %d", op, opset);
    g_attrs = NULL;
    return r;
}

/* Every input differentiable (Concat). */
static int check_all(const char *op, int opset, ot_tensor **xs, int n) {
    gc_input in[8];
    static const char *names[8] = {"x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"};
    for (int i = 0; i < n; i++) in[i] = (gc_input){names[i], xs[i], 1};
    int r = gc_check_free(op, "", opset, in, n, 1, g_attrs, TOL, "%s opset %d", op, opset);
    g_attrs = NULL;
    return r;
}

static void test_views(void) {
    CHECK(check("Reshape", 13, 1, RND(2, 3, 4), I64S(4, -1), NULL, NULL, NULL) == 0);
    CHECK(check("Reshape", 14, 1, RND(2, 3, 4), I64S(0, 12), NULL, NULL, NULL) == 0);
    CHECK(check("Reshape", 21, 1, RND(6), I64S(1, 2, 1, 3), NULL, NULL, NULL) == 0);
    int64_t axes[3] = {0, 1, -1};
    for (int k = 0; k < 3; k++) {
        a_axis = axes[k];
        g_attrs = attrs_axis;
        CHECK(check("Flatten", 13, 1, RND(2, 3, 4), NULL, NULL, NULL, NULL) == 0);
    }
    CHECK(check("Squeeze", 13, 1, RND(2, 1, 3, 1), I64S(-1, 1), NULL, NULL, NULL) == 0);
    CHECK(check("Squeeze", 21, 1, RND(1, 3, 1), NULL, NULL, NULL, NULL) == 0);
    CHECK(check("Unsqueeze", 13, 1, RND(2, 3), I64S(0, -1), NULL, NULL, NULL) == 0);
    CHECK(check("Unsqueeze", 21, 1, rnd(0, NULL), I64S(0), NULL, NULL, NULL) == 0);
    CHECK(check("Identity", 16, 1, RND(3, 2), NULL, NULL, NULL, NULL) == 0);
}

static void test_transpose(void) {
    a_nperm = 3, a_perm[0] = 1, a_perm[1] = 2, a_perm[2] = 0;
    g_attrs = attrs_perm;
    CHECK(check("Transpose", 13, 1, RND(2, 3, 4), NULL, NULL, NULL, NULL) == 0);
    a_nperm = 4, a_perm[0] = 0, a_perm[1] = 2, a_perm[2] = 3, a_perm[3] = 1;
    g_attrs = attrs_perm;
    CHECK(check("Transpose", 21, 1, RND(2, 3, 4, 2), NULL, NULL, NULL, NULL) == 0);
    a_nperm = -1; /* no perm: reverse */
    g_attrs = attrs_perm;
    CHECK(check("Transpose", 13, 1, RND(2, 3, 4), NULL, NULL, NULL, NULL) == 0);
}

static void test_concat_split(void) {
    ot_tensor *xs[3] = {RND(2, 1, 4), RND(2, 3, 4), RND(2, 2, 4)};
    a_axis = 1, g_attrs = attrs_axis;
    CHECK(check_all("Concat", 13, xs, 3) == 0);
    ot_tensor *ys[2] = {RND(3, 2), RND(3, 5)};
    a_axis = -1, g_attrs = attrs_axis;
    CHECK(check_all("Concat", 21, ys, 2) == 0);
    /* a constant among the inputs: its Split output is omitted */
    gc_input in[3] = {{"a", RND(1, 3), 1}, {"b", RND(2, 3), 0}, {"c", RND(3, 3), 1}};
    a_axis = 0, g_attrs = attrs_axis;
    CHECK(gc_check("Concat", "", 13, in, 3, 1, g_attrs, TOL) == 0);
    for (int i = 0; i < 3; i++) ot_tensor_free(in[i].value);

    a_axis = 1, g_attrs = attrs_axis; /* uneven sizes from the split input */
    CHECK(check("Split", 13, 3, RND(2, 6, 3), I64S(1, 3, 2), NULL, NULL, NULL) == 0);
    a_axis = -1, g_attrs = attrs_axis; /* equal parts */
    CHECK(check("Split", 13, 2, RND(2, 4), NULL, NULL, NULL, NULL) == 0);
    a_axis = 0, g_attrs = attrs_split18; /* num_outputs: 3, 3, 1 */
    CHECK(check("Split", 18, 3, RND(7, 2), NULL, NULL, NULL, NULL) == 0);
}

/* Split whose middle output is unused: its gradient is zeros in the Concat. Checked by
 * value: d/dx Σ (y0·r0) + Σ (y2·r2) is r0 | 0 | r2. */
static void test_split_unused_output(void) {
    ot_graph *g;
    ot_graph_new(&g);
    ot_graph_add_opset(g, "", 13);
    int x = gc_value(g, "x"), s = gc_value(g, "s"), y[3] = {gc_value(g, "y0"), gc_value(g, "y1"), gc_value(g, "y2")};
    gc_set_init(g, x, RND(2, 5));
    g->values[x].is_param = 1;
    gc_set_init(g, s, I64S(2, 1, 2));
    int n, in[2] = {x, s};
    ot_graph_add_node(g, "Split", "", "split", in, 2, y, 3, &n);
    gc_attr_int(g, n, "axis", 1);
    int p0 = gc_value(g, "p0"), p2 = gc_value(g, "p2"), l = gc_value(g, "l");
    ot_graph_add_node(g, "Mul", "", "m0", (int[]){y[0], y[0]}, 2, &p0, 1, NULL); /* y0² */
    ot_graph_add_node(g, "Add", "", "a", (int[]){p0, y[2]}, 2, &p2, 1, NULL);    /* + y2 */
    gc_sum_all(g, "sum", p2, l);
    gc_output(g, l);
    ot_plan *p = NULL;
    ot_tensor *meta;
    CHECK_OK(gc_plan_meta(g, &meta));
    int grad = -1;
    CHECK_OK(ot_autodiff(g, meta, l, &x, 1, NULL, &grad));
    CHECK_OK(ot_plan_create(g, NULL, &p));
    ot_tensor outs[4];
    CHECK_OK(ot_plan_run(p, NULL, outs));
    const double *xv = g->values[x].init->data, *gv = outs[1].data;
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 5; c++) {
            double e = c < 2 ? 2 * xv[r * 5 + c] : c == 2 ? 0 : 1;
            CHECK_NEAR(gv[r * 5 + c], e, 1e-15);
        }
    free(meta);
    ot_plan_free(p);
    ot_graph_free(g);
}

static void test_slice(void) {
    CHECK(check("Slice", 13, 1, RND(5, 6), I64S(1, 0), I64S(4, 6), NULL, NULL) == 0); /* default axes */
    CHECK(check("Slice", 13, 1, RND(5, 6), I64S(0, 1), I64S(INT64_MAX, 5), I64S(1, 0), I64S(2, 3)) == 0);
    /* negative steps, negative axes, clamped start */
    CHECK(check("Slice", 21, 1, RND(4, 7), I64S(100, -2), I64S(-100, 0), I64S(-1, 0), I64S(-2, -1)) == 0);
    CHECK(check("Slice", 13, 1, RND(3, 4, 5), I64S(-1), I64S(INT64_MIN), I64S(2), I64S(-1)) == 0);
    CHECK(check("Slice", 13, 1, RND(3, 4, 5), I64S(1), I64S(3), I64S(1), NULL) == 0); /* axes, no steps */
}

static void test_gather(void) {
    /* embedding-style, repeated and negative indices */
    CHECK(check("Gather", 13, 1, RND(5, 3), I64S(1, 4, 1, -1, 0, 1), NULL, NULL, NULL) == 0);
    ot_tensor *ix;
    ot_tensor_new(&ix, OT_I32, 2, D(2, 2));
    int32_t iv[4] = {2, 0, 2, -3};
    memcpy(ix->data, iv, sizeof iv);
    a_axis = 1, g_attrs = attrs_axis;
    CHECK(check("Gather", 13, 1, RND(2, 3, 4), ix, NULL, NULL, NULL) == 0);
    a_axis = -1, g_attrs = attrs_axis;
    CHECK(check("Gather", 21, 1, RND(2, 3, 4), i64_scalar(2), NULL, NULL, NULL) == 0);
}

static void test_expand(void) {
    CHECK(check("Expand", 13, 1, RND(3, 1), I64S(2, 3, 4), NULL, NULL, NULL) == 0);
    CHECK(check("Expand", 13, 1, RND(2, 1, 4), I64S(3, 1), NULL, NULL, NULL) == 0); /* shape of lower rank */
    CHECK(check("Expand", 21, 1, RND(4), I64S(1, 1, 4), NULL, NULL, NULL) == 0);  /* reshape only */
    CHECK(check("Expand", 13, 1, rnd(0, NULL), I64S(2, 3), NULL, NULL, NULL) == 0);
    CHECK(check("Expand", 13, 1, RND(2, 3), I64S(2, 3), NULL, NULL, NULL) == 0);
}

static void test_cumsum(void) {
    for (int e = 0; e < 2; e++)
        for (int r = 0; r < 2; r++) {
            a_ex = e, a_rev = r, g_attrs = attrs_cumsum;
            CHECK(check("CumSum", 13, 1, RND(3, 5), i64_scalar(1), NULL, NULL, NULL) == 0);
            a_ex = e, a_rev = r, g_attrs = attrs_cumsum;
            CHECK(check("CumSum", 21, 1, RND(4, 2, 3), i64_scalar(-3), NULL, NULL, NULL) == 0);
        }
}

static void test_trilu_dropout(void) {
    for (int u = 0; u < 2; u++) {
        a_upper = u, g_attrs = attrs_trilu;
        CHECK(check("Trilu", 14, 1, RND(2, 4, 5), NULL, NULL, NULL, NULL) == 0);
        a_upper = u, g_attrs = attrs_trilu;
        CHECK(check("Trilu", 21, 1, RND(5, 3), i64_scalar(-1), NULL, NULL, NULL) == 0);
    }
    CHECK(check("Dropout", 13, 1, RND(3, 4), NULL, NULL, NULL, NULL) == 0);
    ot_tensor *ratio = gc_random(0, NULL, 0.1), *tm;
    ot_tensor_new(&tm, OT_BOOL, 0, NULL); /* training_mode = false */
    CHECK(check("Dropout", 21, 1, RND(3, 4), ratio, tm, NULL, NULL) == 0);
}

/* Dropout (inference mode) with its mask output present: y = x, so d/dx Σ y ⊙ r = r. */
static void test_dropout_mask_output(void) {
    ot_graph *g;
    ot_graph_new(&g);
    ot_graph_add_opset(g, "", 13);
    int x = gc_value(g, "x"), ys[2] = {gc_value(g, "y"), gc_value(g, "mask")}, r = gc_value(g, "r");
    int p = gc_value(g, "p"), l = gc_value(g, "l");
    gc_set_init(g, x, RND(3, 4));
    g->values[x].is_param = 1;
    gc_set_init(g, r, RND(3, 4));
    ot_graph_add_node(g, "Dropout", "", "drop", &x, 1, ys, 2, NULL);
    ot_graph_add_node(g, "Mul", "", "mul", (int[]){ys[0], r}, 2, &p, 1, NULL);
    gc_sum_all(g, "sum", p, l);
    gc_output(g, l);
    gc_output(g, ys[1]);
    ot_plan *pl = NULL;
    ot_tensor *meta;
    CHECK_OK(gc_plan_meta(g, &meta));
    int grad = -1;
    CHECK_OK(ot_autodiff(g, meta, l, &x, 1, NULL, &grad));
    CHECK_OK(ot_plan_create(g, NULL, &pl));
    ot_tensor outs[4];
    CHECK_OK(ot_plan_run(pl, NULL, outs));
    for (int i = 0; i < 12; i++) CHECK(((double *)outs[2].data)[i] == ((double *)g->values[r].init->data)[i]);
    free(meta);
    ot_plan_free(pl);
    ot_graph_free(g);
}

/* Dropout in training mode is refused by name (the forward kernel refuses it too, so the
 * metadata is written by hand). */
static void test_dropout_training_refused(void) {
    ot_graph *g;
    ot_graph_new(&g);
    ot_graph_add_opset(g, "", 13);
    int x = gc_value(g, "x"), r = gc_value(g, "ratio"), tm = gc_value(g, "tm"), y = gc_value(g, "y"), l = gc_value(g, "l");
    gc_set_init(g, x, RND(2, 3));
    g->values[x].is_param = 1;
    gc_set_init(g, r, gc_random(0, NULL, 0.1));
    ot_tensor *t;
    ot_tensor_new(&t, OT_BOOL, 0, NULL);
    *(unsigned char *)t->data = 1;
    gc_set_init(g, tm, t);
    ot_graph_add_node(g, "Dropout", "", "drop", (int[]){x, r, tm}, 3, &y, 1, NULL);
    ot_graph_add_node(g, "ReduceSum", "", "sum", &y, 1, &l, 1, NULL);
    CHECK_OK(ot_graph_toposort(g));
    ot_tensor meta[5];
    memset(meta, 0, sizeof meta);
    meta[x] = meta[y] = *g->values[x].init;
    meta[r] = *g->values[r].init;
    meta[tm] = *t;
    meta[l].dtype = OT_F64;
    int grad;
    CHECK(ot_autodiff(g, meta, l, &x, 1, NULL, &grad) == OT_E_UNSUPPORTED);
    CHECK(strstr(ot_last_error(), "training_mode") != NULL);
    ot_graph_free(g);
}

static void test_no_grad(void) {
    const char *ops[4] = {"Shape", "ConstantOfShape", "Constant", "Range"};
    for (int i = 0; i < 4; i++) {
        const ot_grad_def *d = ot_grad_find("", ops[i], 13);
        CHECK(d && d->no_grad);
    }
    CHECK(ot_grad_find("", "Trilu", 13) == NULL); /* Trilu starts at 14, like its forward entry */
    CHECK(ot_grad_find("", "Trilu", 14) != NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Forward tests of the internal ops: a harness running the registry entry the way the
 * planner does (value inputs carry data at infer time), outputs filled with garbage. */

typedef struct {
    ot_node node;
    ot_attr attr;
} tnode;

static ot_status run_op(const char *op, int64_t axis, int n_in, ot_tensor **in, ot_tensor *out) {
    const ot_op_def *def = ot_op_find(OT_DOMAIN, op, 1, NULL);
    if (!def) return ot_errorf(OT_E_UNSUPPORTED, "test: no entry for %s", op);
    tnode t;
    memset(&t, 0, sizeof t);
    t.node.op_type = (char *)op;
    t.node.name = (char *)"t";
    t.node.domain = (char *)OT_DOMAIN;
    t.node.n_in = n_in;
    t.node.n_out = 1;
    t.attr.name = (char *)"axis", t.attr.type = OT_ATTR_INT, t.attr.i = axis;
    t.node.attrs = &t.attr;
    t.node.n_attrs = 1;
    void *attr = def->attr_size ? calloc(1, def->attr_size) : NULL;
    ot_status st = def->parse ? def->parse(&t.node, 1, attr) : OT_OK;
    const ot_tensor *inp[8];
    for (int k = 0; k < n_in; k++) inp[k] = in[k];
    ot_tensor *outp[1] = {out};
    memset(out, 0, sizeof *out);
    ot_op_ctx c = {NULL, &t.node, attr, 1, n_in, 1, inp, outp};
    if (st == OT_OK) st = def->infer(&c);
    if (st == OT_OK) {
        size_t nb = ot_tensor_nbytes(out);
        out->data = malloc(nb ? nb : 1);
        memset(out->data, 0xAB, nb ? nb : 1);
        st = def->cpu(&c);
        if (st != OT_OK) free(out->data), out->data = NULL;
    }
    free(attr);
    return st;
}

static double elem(const ot_tensor *t, int64_t i) {
    return t->dtype == OT_F32 ? ((const float *)t->data)[i] : ((const double *)t->data)[i];
}

/* Naive ReduceSumTo: walk every x element by multi-index, add it to the target element
 * whose index is the x index with broadcast dims set to 0 (right-aligned). */
static void naive_rst(const ot_tensor *x, int tn, const int64_t *t, double *y) {
    int64_t ny = ot_shape_numel(tn, t), idx[OT_MAX_DIMS] = {0};
    for (int64_t i = 0; i < ny; i++) y[i] = 0;
    for (int64_t e = 0; e < ot_tensor_numel(x); e++) {
        int64_t rem = e;
        for (int d = x->ndim - 1; d >= 0; d--) idx[d] = rem % x->dims[d], rem /= x->dims[d];
        int64_t o = 0;
        for (int d = 0; d < tn; d++) {
            int64_t xi = idx[x->ndim - tn + d];
            o = o * t[d] + (t[d] == 1 ? 0 : xi);
        }
        y[o] += elem(x, e);
    }
}

static int same_bits(const ot_tensor *a, const ot_tensor *b) {
    return ot_tensor_nbytes(a) == ot_tensor_nbytes(b) && memcmp(a->data, b->data, ot_tensor_nbytes(a)) == 0;
}

/* Checks ReduceSumTo(x, t) against naive_rst (f64 exactly up to rounding, f32 to 1e-5),
 * and that 1 and 3 threads give identical bits. */
static void rst_case(ot_tensor *x, int tn, const int64_t *t) {
    ot_tensor *sh = i64v(tn, t), out, out2;
    ot_tensor *in[2] = {x, sh};
    ot_status st = run_op("ReduceSumTo", 0, 2, in, &out);
    CHECK_OK(st);
    if (st == OT_OK) {
        CHECK(ot_shape_equal(out.ndim, out.dims, tn, t) && out.dtype == x->dtype);
        int64_t ny = ot_shape_numel(tn, t);
        double *e = malloc((size_t)(ny ? ny : 1) * sizeof *e);
        naive_rst(x, tn, t, e);
        int bad = 0;
        for (int64_t i = 0; i < ny; i++) {
            double tol = (x->dtype == OT_F32 ? 1e-5 : 1e-12) * fmax(1.0, fabs(e[i]));
            if (!(fabs(elem(&out, i) - e[i]) <= tol)) {
                if (bad++ < 3) fprintf(stderr, "  ReduceSumTo y[%lld] = %.12g, expected %.12g\n", (long long)i, elem(&out, i), e[i]);
            }
        }
        CHECK(bad == 0);
        free(e);
#ifdef _OPENMP
        int nt = omp_get_max_threads();
        omp_set_num_threads(nt == 3 ? 2 : 3);
        CHECK_OK(run_op("ReduceSumTo", 0, 2, in, &out2));
        omp_set_num_threads(nt);
        CHECK(same_bits(&out, &out2));
        free(out2.data);
#endif
        free(out.data);
    }
    ot_tensor_free(sh);
}

static void test_reduce_sum_to(void) {
    ot_tensor *x = RND(2, 3, 4);
    rst_case(x, 2, D(3, 1));
    rst_case(x, 0, NULL);
    rst_case(x, 3, D(2, 1, 4));
    rst_case(x, 3, D(1, 3, 1));
    rst_case(x, 3, D(2, 3, 4)); /* nothing reduced */
    rst_case(x, 1, D(4));
    ot_tensor *xf = to_f32(x);
    rst_case(xf, 2, D(1, 4));
    ot_tensor_free(xf);
    ot_tensor_free(x);
    x = RND(5, 1, 7);
    rst_case(x, 2, D(1, 7));
    rst_case(x, 3, D(5, 1, 1));
    ot_tensor_free(x);
    /* large: split partial sums (few outputs), parallel outputs, long contiguous sums */
    x = RND(300, 1000);
    rst_case(x, 1, D(1000));
    rst_case(x, 2, D(300, 1));
    rst_case(x, 0, NULL);
    xf = to_f32(x);
    rst_case(xf, 1, D(1000));
    rst_case(xf, 0, NULL);
    ot_tensor_free(xf);
    ot_tensor_free(x);
    x = RND(3, 50000);
    rst_case(x, 2, D(3, 1));
    ot_tensor_free(x);
    x = RND(8, 3000, 2);
    rst_case(x, 3, D(8, 1, 2)); /* kept inner of 2, many rows */
    rst_case(x, 3, D(1, 3000, 1));
    ot_tensor_free(x);
    /* an empty input sums to zeros */
    ot_tensor *z, out;
    ot_tensor_new(&z, OT_F64, 2, D(0, 3));
    ot_tensor *sh = I64S(3), *in[2] = {z, sh};
    CHECK_OK(run_op("ReduceSumTo", 0, 2, in, &out));
    for (int i = 0; i < 3; i++) CHECK(((double *)out.data)[i] == 0);
    free(out.data);
    ot_tensor_free(sh);
    /* a target x does not broadcast from */
    ot_tensor_free(z);
    x = RND(2, 3, 4);
    sh = I64S(3, 3);
    in[0] = x, in[1] = sh;
    CHECK(run_op("ReduceSumTo", 0, 2, in, &out) == OT_E_SHAPE);
    CHECK(strstr(ot_last_error(), "ReduceSumTo") != NULL);
    ot_tensor_free(sh);
    sh = I64S(1, 2, 3, 4);
    in[1] = sh;
    CHECK(run_op("ReduceSumTo", 0, 2, in, &out) == OT_E_SHAPE);
    ot_tensor_free(sh);
    ot_tensor_free(x);
}

/* Naive GatherGrad: zeros, then for each dy element at (o, k, i) add it at (o, idx[k], i). */
static void gg_case(ot_dtype dt, int dr, const int64_t *ddims, ot_tensor *ix, int64_t axis) {
    int a = (int)(axis < 0 ? axis + dr : axis);
    int64_t gd[OT_MAX_DIMS];
    int gr = 0;
    for (int d = 0; d < a; d++) gd[gr++] = ddims[d];
    for (int d = 0; d < ix->ndim; d++) gd[gr++] = ix->dims[d];
    for (int d = a + 1; d < dr; d++) gd[gr++] = ddims[d];
    ot_tensor *dy64 = rnd(gr, gd), *dy = dt == OT_F32 ? to_f32(dy64) : dy64, *sh = i64v(dr, ddims), out, out2;
    ot_tensor *in[3] = {dy, ix, sh};
    ot_status st = run_op("GatherGrad", axis, 3, in, &out);
    CHECK_OK(st);
    if (st == OT_OK) {
        CHECK(ot_shape_equal(out.ndim, out.dims, dr, ddims) && out.dtype == dt);
        int64_t outer = ot_shape_numel(a, ddims), n = ddims[a], inner = ot_shape_numel(dr - a - 1, ddims + a + 1);
        int64_t ni = ot_tensor_numel(ix);
        double *e = calloc((size_t)(outer * n * inner + 1), sizeof *e);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < ni; k++) {
                int64_t v = ot_tensor_get_i64(ix, k);
                if (v < 0) v += n;
                for (int64_t i = 0; i < inner; i++) e[(o * n + v) * inner + i] += elem(dy, (o * ni + k) * inner + i);
            }
        int bad = 0;
        for (int64_t i = 0; i < outer * n * inner; i++)
            if (!(fabs(elem(&out, i) - e[i]) <= (dt == OT_F32 ? 1e-5 : 1e-13) * fmax(1, fabs(e[i])))) bad++;
        CHECK(bad == 0);
        free(e);
#ifdef _OPENMP
        int nt = omp_get_max_threads();
        omp_set_num_threads(nt == 3 ? 2 : 3);
        CHECK_OK(run_op("GatherGrad", axis, 3, in, &out2));
        omp_set_num_threads(nt);
        CHECK(same_bits(&out, &out2));
        free(out2.data);
#endif
        free(out.data);
    }
    if (dy != dy64) ot_tensor_free(dy);
    ot_tensor_free(dy64);
    ot_tensor_free(sh);
    ot_tensor_free(ix);
}

static void test_gather_grad(void) {
    gg_case(OT_F64, 2, D(5, 3), I64S(1, 4, 1, -1, 0, 1), 0);
    ot_tensor *i32;
    ot_tensor_new(&i32, OT_I32, 1, D(3));
    memcpy(i32->data, (int32_t[]){3, -1, 0}, 12);
    gg_case(OT_F32, 3, D(2, 4, 3), i32, -2);
    gg_case(OT_F64, 3, D(2, 4, 3), i64_scalar(-4), 1);
    gg_case(OT_F64, 2, D(3, 6), I64S(5, 5, 5, 0), 1); /* inner 1 */
    /* embedding size: many repeats, parallel rows */
    int64_t n = 4096;
    ot_tensor *big = i64v((int)n, NULL);
    for (int64_t k = 0; k < n; k++) ((int64_t *)big->data)[k] = (int64_t)((k * 7919) % 1000) - (k % 3 == 0 ? 1000 : 0);
    ot_tensor *big2;
    ot_tensor_clone(&big2, big);
    gg_case(OT_F32, 2, D(1000, 64), big, 0);
    gg_case(OT_F64, 2, D(1000, 64), big2, 0);
    /* literal: data [3], indices [2, 2, 0], dy [1, 2, 3] -> [3, 0, 3] */
    ot_tensor *dy, *ix = I64S(2, 2, 0), *sh = I64S(3), out;
    ot_tensor_new(&dy, OT_F64, 1, D(3));
    memcpy(dy->data, (double[]){1, 2, 3}, 24);
    ot_tensor *in[3] = {dy, ix, sh};
    CHECK_OK(run_op("GatherGrad", 0, 3, in, &out));
    CHECK(((double *)out.data)[0] == 3 && ((double *)out.data)[1] == 0 && ((double *)out.data)[2] == 3);
    free(out.data);
    /* out of range index, dy of the wrong shape */
    ((int64_t *)ix->data)[1] = 3;
    CHECK(run_op("GatherGrad", 0, 3, in, &out) == OT_E_INVALID);
    CHECK(strstr(ot_last_error(), "out of range") != NULL);
    ot_tensor_free(sh);
    sh = I64S(3, 2);
    in[2] = sh;
    CHECK(run_op("GatherGrad", 0, 3, in, &out) == OT_E_SHAPE);
    ot_tensor_free(dy), ot_tensor_free(ix), ot_tensor_free(sh);
}

/* Naive SliceGrad for 2-D: walk every output (i, j) and find whether Slice picks it. */
static void sg_case(ot_dtype dt, int64_t R, int64_t C, int64_t s0, int64_t e0, int64_t st0, int64_t s1, int64_t e1,
                    int64_t st1) {
    /* expected selection per axis by brute force over the definition (positions start,
     * start+step, ... strictly before end, after ONNX's clamping) */
    int64_t sel0[512], n0 = 0, sel1[512], n1 = 0;
    int64_t lim[2] = {R, C}, ss[2] = {s0, s1}, ee[2] = {e0, e1}, tt[2] = {st0, st1}, *sel[2] = {sel0, sel1},
            *nn[2] = {&n0, &n1};
    for (int a = 0; a < 2; a++) {
        int64_t d = lim[a], s = ss[a], e = ee[a], t = tt[a];
        if (s < 0) s += d;
        if (e < 0) e += d;
        if (t > 0) {
            s = s < 0 ? 0 : s > d ? d : s;
            e = e < 0 ? 0 : e > d ? d : e;
            for (int64_t i = s; i < e; i += t) sel[a][(*nn[a])++] = i;
        } else {
            s = s < 0 ? 0 : s > d - 1 ? d - 1 : s;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            for (int64_t i = s; i > e; i += t) sel[a][(*nn[a])++] = i;
        }
    }
    ot_tensor *dy64 = rnd(2, D(n0, n1)), *dy = dt == OT_F32 ? to_f32(dy64) : dy64;
    ot_tensor *sh = I64S(R, C), *sts = I64S(s0, s1), *ens = I64S(e0, e1), *ax = I64S(0, -1), *stp = I64S(st0, st1), out;
    ot_tensor *in[6] = {dy, sh, sts, ens, ax, stp};
    ot_status st = run_op("SliceGrad", 0, 6, in, &out);
    CHECK_OK(st);
    if (st == OT_OK) {
        double *e = calloc((size_t)(R * C), sizeof *e);
        for (int64_t i = 0; i < n0; i++)
            for (int64_t j = 0; j < n1; j++) e[sel0[i] * C + sel1[j]] = elem(dy, i * n1 + j);
        int bad = 0;
        for (int64_t i = 0; i < R * C; i++) bad += elem(&out, i) != e[i];
        CHECK(bad == 0);
        free(e);
        free(out.data);
    }
    if (dy != dy64) ot_tensor_free(dy);
    ot_tensor_free(dy64), ot_tensor_free(sh), ot_tensor_free(sts), ot_tensor_free(ens), ot_tensor_free(ax),
        ot_tensor_free(stp);
}

static void test_slice_grad(void) {
    sg_case(OT_F64, 5, 6, 1, 4, 1, 0, 6, 2);
    sg_case(OT_F32, 5, 6, -1, -100, -2, 5, 0, -1);
    sg_case(OT_F64, 7, 9, 100, -100, -3, -7, INT64_MAX, 3);
    sg_case(OT_F64, 4, 4, 2, 2, 1, 0, 4, 1);     /* empty selection: all zeros */
    sg_case(OT_F32, 300, 200, 0, 300, 1, 10, 190, 1); /* parallel, contiguous rows */
    sg_case(OT_F64, 300, 200, 299, 0, -1, 199, 0, -1);
    /* default axes and steps; dy of the wrong shape */
    ot_tensor *dy = RND(2, 3), *sh = I64S(4, 3), *s = I64S(1), *e = I64S(3), out;
    ot_tensor *in[4] = {dy, sh, s, e};
    CHECK_OK(run_op("SliceGrad", 0, 4, in, &out));
    for (int i = 0; i < 12; i++) CHECK(((double *)out.data)[i] == (i >= 3 && i < 9 ? ((double *)dy->data)[i - 3] : 0));
    free(out.data);
    ot_tensor_free(e);
    e = I64S(4);
    in[3] = e;
    CHECK(run_op("SliceGrad", 0, 4, in, &out) == OT_E_SHAPE);
    ot_tensor_free(dy), ot_tensor_free(sh), ot_tensor_free(s), ot_tensor_free(e);
}

static void pw_case(const char *op, ot_dtype dt, int64_t n) {
    ot_tensor *g64 = rnd(1, D(n)), *v64 = gc_random(1, D(n), 2.0), out;
    if (n > 3) ((double *)v64->data)[3] = 0; /* Relu/Abs at exactly 0 */
    ot_tensor *g = dt == OT_F32 ? to_f32(g64) : g64, *v = dt == OT_F32 ? to_f32(v64) : v64;
    ot_tensor *in[2] = {g, v};
    ot_status st = run_op(op, 0, 2, in, &out);
    CHECK_OK(st);
    if (st == OT_OK) {
        int bad = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = elem(g, i), a = elem(v, i), e;
            if (!strcmp(op, "ReluGrad")) e = a > 0 ? d : 0;
            else if (!strcmp(op, "SigmoidGrad")) e = d * a * (1 - a);
            else if (!strcmp(op, "TanhGrad")) e = d * (1 - a * a);
            else e = a > 0 ? d : a < 0 ? -d : 0;
            bad += !(fabs(elem(&out, i) - e) <= (dt == OT_F32 ? 1e-6 : 1e-15) * fmax(1, fabs(e)));
        }
        CHECK(bad == 0);
        free(out.data);
    }
    if (g != g64) ot_tensor_free(g), ot_tensor_free(v);
    ot_tensor_free(g64), ot_tensor_free(v64);
}

static void test_pointwise_grads(void) {
    const char *ops[4] = {"ReluGrad", "SigmoidGrad", "TanhGrad", "AbsGrad"};
    for (int k = 0; k < 4; k++) {
        pw_case(ops[k], OT_F64, 37);
        pw_case(ops[k], OT_F32, 100003);
    }
    ot_tensor *a = RND(3, 4), *b = RND(4, 3), *c = RND(3, 4), out;
    ot_tensor *in[2] = {a, b};
    CHECK(run_op("TanhGrad", 0, 2, in, &out) == OT_E_SHAPE);
    ot_tensor *cf = to_f32(c);
    in[1] = cf;
    CHECK(run_op("TanhGrad", 0, 2, in, &out) == OT_E_SHAPE); /* dtype mismatch */
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(c), ot_tensor_free(cf);
}

int main(void) {
    OT_RUN(test_views);
    OT_RUN(test_transpose);
    OT_RUN(test_concat_split);
    OT_RUN(test_split_unused_output);
    OT_RUN(test_slice);
    OT_RUN(test_gather);
    OT_RUN(test_expand);
    OT_RUN(test_cumsum);
    OT_RUN(test_trilu_dropout);
    OT_RUN(test_dropout_mask_output);
    OT_RUN(test_dropout_training_refused);
    OT_RUN(test_no_grad);
    OT_RUN(test_reduce_sum_to);
    OT_RUN(test_gather_grad);
    OT_RUN(test_slice_grad);
    OT_RUN(test_pointwise_grads);
    return OT_TEST_EXIT();
}
