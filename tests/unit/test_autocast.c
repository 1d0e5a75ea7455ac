/* test_autocast.c — the mixed-precision graph pass (runtime/autocast.c) on hand-built graphs:
 * which weights and constants become 16-bit, that an op without 16-bit kernels (CumSum) runs in
 * f32 between Casts whose temporaries feed exactly one node, that an f32 constant the 16-bit
 * type cannot hold turns an Add into its mixed-precision variant, that outputs take the new dtype,
 * and that the result stays within the rounding the 16-bit type implies of the f32 graph. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "core/lowp.h"
#include "onnxtune/runtime.h"
#include "ot_test.h"
#include "runtime/autocast.h"

static int val(ot_graph *g, const char *name) {
    int v = -1;
    if (ot_graph_value(g, name, &v) != OT_OK) abort();
    return v;
}

static int node(ot_graph *g, const char *op, const char *name, const char **in, int n_in, const char *out) {
    int iv[4], ov = val(g, out), idx;
    for (int i = 0; i < n_in; i++) iv[i] = val(g, in[i]);
    if (ot_graph_add_node(g, op, "", name, iv, n_in, &ov, 1, &idx) != OT_OK) abort();
    return idx;
}

static void add_f32(ot_graph *g, const char *name, int ndim, const int64_t *dims, const float *data) {
    int v = val(g, name);
    if (ot_tensor_new(&g->values[v].init, OT_F32, ndim, dims) != OT_OK) abort();
    memcpy(g->values[v].init->data, data, ot_tensor_nbytes(g->values[v].init));
    g->values[v].dtype = OT_F32;
}

/* x [4, 8] -> h = MatMul(x, W [8, 6]) and then `tail`, which must produce "out" (the output);
 * W's values from w, or a ramp when w is NULL; "axis0" is an int64 0 for tails to use. */
static ot_graph *graph_with(const float *w, void (*tail)(ot_graph *)) {
    ot_graph *g;
    if (ot_graph_new(&g) != OT_OK) abort();
    ot_graph_add_opset(g, "", 17);
    int x = val(g, "x");
    g->values[x].is_input = 1;
    g->values[x].dtype = OT_F32;
    g->values[x].ndim = 2;
    g->values[x].dims[0] = 4, g->values[x].dims[1] = 8;
    g->inputs = malloc(sizeof(int));
    g->inputs[0] = x;
    g->n_inputs = 1;
    float ramp[48];
    for (int i = 0; i < 48; i++) ramp[i] = (float)i / 48.0f - 0.5f;
    add_f32(g, "W", 2, (int64_t[]){8, 6}, w ? w : ramp);
    int ax = val(g, "axis0");
    if (ot_tensor_new(&g->values[ax].init, OT_I64, 0, NULL) != OT_OK) abort(); /* zero: axis 0 */
    g->values[ax].dtype = OT_I64;
    node(g, "MatMul", "matmul", (const char *[]){"x", "W"}, 2, "h");
    tail(g);
    int out = val(g, "out");
    g->values[out].is_output = 1;
    g->values[out].dtype = OT_F32;
    g->outputs = malloc(sizeof(int));
    g->outputs[0] = out;
    g->n_outputs = 1;
    if (ot_graph_toposort(g) != OT_OK) abort();
    return g;
}

/* s = CumSum(h, axis 0); y = s + 1e-5; out = y * 2. */
static void tail_main(ot_graph *g) {
    float eps = 1e-5f, two = 2.0f;
    add_f32(g, "eps", 0, NULL, &eps);
    add_f32(g, "two", 0, NULL, &two);
    node(g, "CumSum", "cumsum", (const char *[]){"h", "axis0"}, 2, "s");
    node(g, "Add", "add_eps", (const char *[]){"s", "eps"}, 2, "y");
    node(g, "Mul", "mul_two", (const char *[]){"y", "two"}, 2, "out");
}

static ot_graph *make_graph(const float *w) { return graph_with(w, tail_main); }

static void run(ot_graph *g, const ot_tensor *x, float *out, ot_dtype *dt) {
    ot_plan *p = NULL;
    const ot_tensor *in[1] = {x};
    CHECK_OK(ot_plan_create(g, in, &p));
    if (!p) return;
    ot_tensor y[1];
    CHECK_OK(ot_plan_run(p, in, y));
    *dt = y[0].dtype;
    ot_lowp_to_f32_n(out, y[0].data, y[0].dtype, 24);
    ot_plan_free(p);
}

static void check_lowp(ot_dtype lowp) {
    float w[48], ref[24], got[24];
    for (int i = 0; i < 48; i++) w[i] = (float)sin(0.7 * i) * 0.5f;
    ot_tensor *x;
    CHECK_OK(ot_tensor_new(&x, OT_F32, 2, (int64_t[]){4, 8}));
    for (int i = 0; i < 32; i++) ((float *)x->data)[i] = (float)cos(0.3 * i);

    ot_graph *g32 = make_graph(w), *g = make_graph(w);
    ot_dtype dt;
    run(g32, x, ref, &dt);
    CHECK(dt == OT_F32);

    unsigned char *mask = calloc((size_t)g->n_values, 1);
    mask[ot_graph_find(g, "W")] = OT_AUTOCAST_WEIGHT; /* the weight; eps and two are constants */
    const ot_tensor *in[1] = {x};
    ot_autocast_stats st;
    CHECK_OK(ot_autocast(g, in, lowp, mask, 0, &st));
    free(mask);
    CHECK(st.n_weights == 1 && st.weight_bytes_saved == 48 * 2);
    CHECK(g->values[ot_graph_find(g, "W")].init->dtype == lowp);
    CHECK(g->values[ot_graph_find(g, "eps")].init->dtype == OT_F32); /* 1e-5 is not exact in 16 bits */
    CHECK(g->values[g->outputs[0]].dtype == lowp);
    CHECK(st.n_wrapped == 1); /* CumSum has no 16-bit kernel; MatMul, Add, Mul do */

    /* Every f32 temporary the pass made is read by exactly one node (it lives one step). */
    for (int v = 0; v < g->n_values; v++) {
        if (!strstr(g->values[v].name, "/f32")) continue;
        int readers = 0;
        for (int n = 0; n < g->n_nodes; n++)
            for (int k = 0; k < g->nodes[n].n_in; k++) readers += g->nodes[n].in[k] == v;
        CHECK(readers == 1);
    }
    /* MatMul reads the 16-bit x (a float graph input, narrowed) and W; CumSum reads an f32
     * copy of h and writes an f32 temporary rounded back into s; s + 1e-5 became the
     * mixed-precision Add (16-bit s, the f32 constant as it is); y * 2 a plain 16-bit Mul (2 is
     * exact in 16 bits). */
    for (int n = 0; n < g->n_nodes; n++) {
        const ot_node *nd = &g->nodes[n];
        if (!strcmp(nd->op_type, "MatMul")) CHECK(nd->in[1] == ot_graph_find(g, "W"));
        if (!strcmp(nd->op_type, "CumSum"))
            CHECK(strstr(g->values[nd->in[0]].name, "/f32") && strstr(g->values[nd->out[0]].name, "/f32"));
        if (!strcmp(nd->name, "add_eps")) CHECK(!strcmp(nd->domain, "ai.onnxtune") && nd->in[1] == ot_graph_find(g, "eps"));
        if (!strcmp(nd->name, "mul_two"))
            CHECK(!nd->domain[0] && !strcmp(g->values[nd->in[1]].name, lowp == OT_BF16 ? "two/bf16" : "two/f16"));
    }

    run(g, x, got, &dt);
    CHECK(dt == lowp);
    /* x and W rounded, then h, s, y and z: 6 roundings of unit 2^-p (p = 8 bf16, 11 f16),
     * each relative to at most the magnitude bound of z: 2 · 4 rows · Σ|x||w| <= 2·4·8·0.5. */
    double u = lowp == OT_BF16 ? 1.0 / 256 : 1.0 / 2048, worst = 0;
    for (int i = 0; i < 24; i++) worst = fmax(worst, fabs(got[i] - ref[i]));
    CHECK(worst <= 6 * u * 32.0);
    CHECK(worst > 0); /* it did compute in 16 bits */
    ot_graph_free(g32);
    ot_graph_free(g);
    ot_tensor_free(x);
}

static void test_rejects_f32(void) {
    ot_graph *g = make_graph((float[48]){0});
    ot_tensor *x;
    CHECK_OK(ot_tensor_new(&x, OT_F32, 2, (int64_t[]){4, 8}));
    const ot_tensor *in[1] = {x};
    unsigned char *mask = calloc((size_t)g->n_values, 1);
    CHECK(ot_autocast(g, in, OT_F32, mask, 0, NULL) == OT_E_INVALID);
    free(mask);
    ot_graph_free(g);
    ot_tensor_free(x);
}

/* Max has no 16-bit kernel and reads h twice: one f32 copy of h serves both inputs. */
static void tail_max_same(ot_graph *g) { node(g, "Max", "max", (const char *[]){"h", "h"}, 2, "out"); }
/* CumSum's only reader is a Shape the plan folds: it is still inferred, so still rewritten. */
static void tail_shape_only(ot_graph *g) {
    node(g, "CumSum", "cumsum", (const char *[]){"h", "axis0"}, 2, "s");
    node(g, "Shape", "shape", (const char *[]){"s"}, 1, "shp");
    node(g, "Reshape", "reshape", (const char *[]){"h", "shp"}, 2, "out");
}

static void tail_where(ot_graph *g) {
    int m = val(g, "mask"), c = val(g, "minval");
    if (ot_tensor_new(&g->values[m].init, OT_BOOL, 2, (int64_t[]){4, 6}) != OT_OK) abort();
    for (int i = 0; i < 24; i++) ((uint8_t *)g->values[m].init->data)[i] = i % 3 != 0;
    g->values[m].dtype = OT_BOOL;
    float mn = -3.4028234663852886e38f;
    add_f32(g, "minval", 0, NULL, &mn);
    (void)c;
    node(g, "Where", "where", (const char *[]){"mask", "h", "minval"}, 3, "out");
}

/* An attention mask's Where(mask, h, -3.4e38): the constant does not fit bf16, so the node
 * becomes the mixed-precision Where (16-bit h, the f32 constant, the result rounded once). */
static void test_mixed_where(void) {
    ot_graph *g = graph_with(NULL, tail_where);
    ot_tensor *x;
    CHECK_OK(ot_tensor_new(&x, OT_F32, 2, (int64_t[]){4, 8}));
    for (int k = 0; k < 32; k++) ((float *)x->data)[k] = (float)k / 32.0f;
    const ot_tensor *in[1] = {x};
    unsigned char *policy = calloc((size_t)g->n_values, 1);
    policy[ot_graph_find(g, "W")] = OT_AUTOCAST_WEIGHT;
    ot_autocast_stats st;
    CHECK_OK(ot_autocast(g, in, OT_BF16, policy, 0, &st));
    free(policy);
    CHECK(st.n_wrapped == 0);
    for (int n = 0; n < g->n_nodes; n++)
        if (!strcmp(g->nodes[n].op_type, "Where"))
            CHECK(!strcmp(g->nodes[n].domain, "ai.onnxtune") && g->nodes[n].in[2] == ot_graph_find(g, "minval"));
    ot_plan *p = NULL;
    CHECK_OK(ot_plan_create(g, in, &p));
    ot_tensor y[1];
    if (p && ot_plan_run(p, in, y) == OT_OK) {
        const uint16_t *yd = y[0].data;
        CHECK(y[0].dtype == OT_BF16);
        for (int i = 0; i < 24; i++) /* masked where i % 3 == 0: -3.4e38 rounds past bf16's range */
            CHECK(i % 3 == 0 ? yd[i] == 0xff80 : isfinite(ot_bf16_to_f32(yd[i])));
    }
    ot_plan_free(p);
    ot_graph_free(g);
    ot_tensor_free(x);
}

static void test_regressions(void) {
    void (*tails[2])(ot_graph *) = {tail_max_same, tail_shape_only};
    for (int i = 0; i < 2; i++) {
        ot_graph *g = graph_with(NULL, tails[i]);
        ot_tensor *x;
        CHECK_OK(ot_tensor_new(&x, OT_F32, 2, (int64_t[]){4, 8}));
        for (int k = 0; k < 32; k++) ((float *)x->data)[k] = (float)k / 32.0f;
        const ot_tensor *in[1] = {x};
        unsigned char *policy = calloc((size_t)g->n_values, 1);
        policy[ot_graph_find(g, "W")] = OT_AUTOCAST_WEIGHT;
        CHECK_OK(ot_autocast(g, in, OT_BF16, policy, 0, NULL));
        free(policy);
        ot_plan *p = NULL;
        CHECK_OK(ot_plan_create(g, in, &p));
        ot_tensor y[1];
        if (p) CHECK_OK(ot_plan_run(p, in, y));
        if (p) CHECK(y[0].dtype == OT_BF16 && ot_tensor_numel(&y[0]) == 24);
        ot_plan_free(p);
        ot_graph_free(g);
        ot_tensor_free(x);
    }
}

static void test_bf16(void) { check_lowp(OT_BF16); }
static void test_f16(void) { check_lowp(OT_F16); }

int main(void) {
    OT_RUN(test_bf16);
    OT_RUN(test_f16);
    OT_RUN(test_rejects_f32);
    OT_RUN(test_regressions);
    OT_RUN(test_mixed_where);
    return OT_TEST_EXIT();
}
