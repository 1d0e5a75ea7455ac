/* test_plan.c — the planner: symbolic-dimension binding, constant folding of the
 * Shape->Gather->Unsqueeze->Concat->Reshape chain exporters emit, dead-node removal, view
 * aliasing, buffer reuse in the arena, and errors naming inputs and nodes. Graphs are built
 * by hand so each property is checked in isolation. */
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "onnxtune/runtime.h"
#include "ot_test.h"

static int val(ot_graph *g, const char *name) {
    int v = -1;
    if (ot_graph_value(g, name, &v) != OT_OK) abort();
    return v;
}

static int node(ot_graph *g, const char *op, const char *name, const char **in, int n_in, const char **out, int n_out) {
    int iv[8], ov[8], idx;
    for (int i = 0; i < n_in; i++) iv[i] = in[i][0] ? val(g, in[i]) : -1;
    for (int i = 0; i < n_out; i++) ov[i] = val(g, out[i]);
    if (ot_graph_add_node(g, op, "", name, iv, n_in, ov, n_out, &idx) != OT_OK) abort();
    return idx;
}

static void set_attr_int(ot_graph *g, int n, const char *name, int64_t v) {
    ot_node *nd = &g->nodes[n];
    nd->attrs = realloc(nd->attrs, (size_t)(nd->n_attrs + 1) * sizeof(ot_attr));
    memset(&nd->attrs[nd->n_attrs], 0, sizeof(ot_attr));
    nd->attrs[nd->n_attrs].name = strdup(name);
    nd->attrs[nd->n_attrs].type = OT_ATTR_INT;
    nd->attrs[nd->n_attrs].i = v;
    nd->n_attrs++;
}

static void add_const_i64(ot_graph *g, const char *name, int n, const int64_t *vals, int rank) {
    int v = val(g, name);
    int64_t dims[1] = {n};
    if (ot_tensor_new(&g->values[v].init, OT_I64, rank, dims) != OT_OK) abort();
    memcpy(g->values[v].init->data, vals, (size_t)n * 8);
    g->values[v].dtype = OT_I64;
    g->values[v].ndim = rank;
    g->values[v].dims[0] = n;
}

/* x [batch, seq, 8] -> y = Reshape(Relu(x) + x, [batch, seq*8 / 4, 4]) built the way
 * torch.onnx.export builds it: Shape -> Gather -> Unsqueeze -> Concat; plus a dead branch. */
static ot_graph *reshape_graph(void) {
    ot_graph *g;
    if (ot_graph_new(&g) != OT_OK) abort();
    ot_graph_add_opset(g, "", 17);
    int x = val(g, "x");
    g->values[x].is_input = 1;
    g->values[x].dtype = OT_F32;
    g->values[x].ndim = 3;
    g->values[x].dims[0] = g->values[x].dims[1] = -1;
    g->values[x].dims[2] = 8;
    g->values[x].dim_param[0] = strdup("batch");
    g->values[x].dim_param[1] = strdup("seq");
    g->inputs = malloc(sizeof(int));
    g->inputs[0] = x;
    g->n_inputs = 1;
    int64_t zero = 0, minus_one = -1, four = 4, axes0 = 0;
    add_const_i64(g, "zero", 1, &zero, 0);
    add_const_i64(g, "m1", 1, &minus_one, 1);
    add_const_i64(g, "four", 1, &four, 1);
    add_const_i64(g, "axes0", 1, &axes0, 1);
    node(g, "Relu", "relu", (const char *[]){"x"}, 1, (const char *[]){"r"}, 1);
    node(g, "Add", "add", (const char *[]){"r", "x"}, 2, (const char *[]){"s"}, 1);
    node(g, "Shape", "shape", (const char *[]){"x"}, 1, (const char *[]){"shp"}, 1);
    int gi = node(g, "Gather", "gather", (const char *[]){"shp", "zero"}, 2, (const char *[]){"b"}, 1);
    set_attr_int(g, gi, "axis", 0);
    node(g, "Unsqueeze", "unsq", (const char *[]){"b", "axes0"}, 2, (const char *[]){"b1"}, 1);
    int ci = node(g, "Concat", "concat", (const char *[]){"b1", "m1", "four"}, 3, (const char *[]){"newshape"}, 1);
    set_attr_int(g, ci, "axis", 0);
    node(g, "Reshape", "reshape", (const char *[]){"s", "newshape"}, 2, (const char *[]){"y"}, 1);
    node(g, "Neg", "dead", (const char *[]){"x"}, 1, (const char *[]){"unused"}, 1);
    int y = val(g, "y");
    g->values[y].is_output = 1;
    g->outputs = malloc(sizeof(int));
    g->outputs[0] = y;
    g->n_outputs = 1;
    if (ot_graph_toposort(g) != OT_OK) abort();
    return g;
}

static void test_fold_and_run(void) {
    ot_graph *g = reshape_graph();
    int64_t dims[3] = {2, 3, 8};
    ot_tensor *x;
    CHECK_OK(ot_tensor_new(&x, OT_F32, 3, dims));
    float *xd = x->data;
    for (int i = 0; i < 48; i++) xd[i] = (float)(i % 7) - 3.0f;
    ot_plan *p = NULL;
    const ot_tensor *in[1] = {x};
    CHECK_OK(ot_plan_create(g, in, &p));
    if (!p) return;
    ot_plan_stats s;
    ot_plan_get_stats(p, &s);
    CHECK(s.n_folded == 4);       /* Shape, Gather, Unsqueeze, Concat */
    CHECK(s.n_steps == 3);        /* Relu, Add, Reshape; the dead Neg is gone */
    CHECK(s.n_views == 1);        /* Reshape shares Add's buffer */
    CHECK(s.arena_bytes >= 2 * 48 * 4 && s.arena_bytes <= s.naive_bytes);
    ot_tensor out[1];
    CHECK_OK(ot_plan_run(p, in, out));
    CHECK(out[0].ndim == 3 && out[0].dims[0] == 2 && out[0].dims[1] == 6 && out[0].dims[2] == 4);
    int bad = 0;
    for (int i = 0; i < 48; i++) {
        float want = (xd[i] > 0 ? xd[i] : 0) + xd[i];
        if (((float *)out[0].data)[i] != want) bad++;
    }
    CHECK(bad == 0);
    /* A run with another shape than planned is refused, naming the input. */
    int64_t d2[3] = {2, 4, 8};
    ot_tensor *x2;
    CHECK_OK(ot_tensor_new(&x2, OT_F32, 3, d2));
    const ot_tensor *in2[1] = {x2};
    CHECK(ot_plan_run(p, in2, out) == OT_E_SHAPE && strstr(ot_last_error(), "'x'"));
    ot_plan_free(p);
    /* ...and planned for anew it works, with another batch and sequence. */
    CHECK_OK(ot_plan_create(g, in2, &p));
    CHECK_OK(ot_plan_run(p, in2, out));
    CHECK(out[0].dims[1] == 8);
    ot_plan_free(p);
    ot_tensor_free(x2);

    /* Wrong rank, wrong fixed dim and wrong dtype: each names the input. */
    int64_t bad_rank[2] = {2, 8}, bad_dim[3] = {2, 3, 9};
    ot_tensor *t;
    CHECK_OK(ot_tensor_new(&t, OT_F32, 2, bad_rank));
    in2[0] = t;
    CHECK(ot_plan_create(g, in2, &p) == OT_E_SHAPE && strstr(ot_last_error(), "'x'") && strstr(ot_last_error(), "rank"));
    ot_tensor_free(t);
    CHECK_OK(ot_tensor_new(&t, OT_F32, 3, bad_dim));
    in2[0] = t;
    CHECK(ot_plan_create(g, in2, &p) == OT_E_SHAPE && strstr(ot_last_error(), "dimension 2"));
    ot_tensor_free(t);
    CHECK_OK(ot_tensor_new(&t, OT_I64, 3, dims));
    in2[0] = t;
    CHECK(ot_plan_create(g, in2, &p) == OT_E_SHAPE && strstr(ot_last_error(), "float32"));
    ot_tensor_free(t);
    ot_tensor_free(x);
    ot_graph_free(g);
}

/* A chain of 6 Relu steps over equal-size buffers needs only two live at once. */
static void test_arena_reuse(void) {
    ot_graph *g;
    CHECK_OK(ot_graph_new(&g));
    ot_graph_add_opset(g, "", 17);
    int x = val(g, "v0");
    g->values[x].is_input = 1;
    g->values[x].dtype = OT_F32;
    g->values[x].ndim = 1;
    g->values[x].dims[0] = 1024;
    g->inputs = malloc(sizeof(int));
    g->inputs[0] = x;
    g->n_inputs = 1;
    char a[8], b[8];
    for (int i = 0; i < 6; i++) {
        snprintf(a, sizeof a, "v%d", i);
        snprintf(b, sizeof b, "v%d", i + 1);
        node(g, "Relu", b, (const char *[]){a}, 1, (const char *[]){b}, 1);
    }
    g->outputs = malloc(sizeof(int));
    g->outputs[0] = val(g, "v6");
    g->values[g->outputs[0]].is_output = 1;
    g->n_outputs = 1;
    CHECK_OK(ot_graph_toposort(g));
    int64_t dims[1] = {1024};
    ot_tensor *t;
    CHECK_OK(ot_tensor_new(&t, OT_F32, 1, dims));
    const ot_tensor *in[1] = {t};
    ot_plan *p = NULL;
    CHECK_OK(ot_plan_create(g, in, &p));
    ot_plan_stats s;
    if (p) {
        ot_plan_get_stats(p, &s);
        CHECK(s.naive_bytes == 6 * 4096);
        CHECK(s.arena_bytes == 2 * 4096);
    }
    ot_plan_free(p);
    ot_tensor_free(t);
    ot_graph_free(g);
}

static void test_unknown_op(void) {
    ot_graph *g;
    CHECK_OK(ot_graph_new(&g));
    ot_graph_add_opset(g, "", 17);
    int x = val(g, "x");
    g->values[x].is_input = 1;
    g->values[x].dtype = OT_F32;
    g->values[x].ndim = 1;
    g->values[x].dims[0] = 4;
    g->inputs = malloc(sizeof(int));
    g->inputs[0] = x;
    g->n_inputs = 1;
    node(g, "FooBar", "mystery", (const char *[]){"x"}, 1, (const char *[]){"y"}, 1);
    g->outputs = malloc(sizeof(int));
    g->outputs[0] = val(g, "y");
    g->n_outputs = 1;
    CHECK_OK(ot_graph_toposort(g));
    int64_t dims[1] = {4};
    ot_tensor *t;
    CHECK_OK(ot_tensor_new(&t, OT_F32, 1, dims));
    const ot_tensor *in[1] = {t};
    ot_plan *p = NULL;
    CHECK(ot_plan_create(g, in, &p) == OT_E_UNSUPPORTED);
    CHECK(strstr(ot_last_error(), "FooBar") && strstr(ot_last_error(), "mystery") && strstr(ot_last_error(), "17"));
    ot_tensor_free(t);
    ot_graph_free(g);
}

int main(void) {
    OT_RUN(test_fold_and_run);
    OT_RUN(test_arena_reuse);
    OT_RUN(test_unknown_op);
    return OT_TEST_EXIT();
}
