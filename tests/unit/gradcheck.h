/* gradcheck.h — checks a gradient builder against central finite differences in f64.
 *
 * gc_check builds a graph around one op: differentiable inputs become trainable f64
 * parameters, the others constants; the loss is Σ_k ReduceSum(Y_k ⊙ R_k) over the op's
 * outputs with fixed pseudo-random R_k, so every output element gets a distinct upstream
 * gradient (a one-hot-free equivalent of back-propagating each output). ot_autodiff builds
 * the backward graph; each parameter element is then perturbed by ±eps and
 *   |analytic - (L(+eps) - L(-eps)) / 2eps| <= tol · max(1, |analytic|, |numeric|)
 * must hold. Failures print the op, input, element and both values. Header-only: include
 * it from one test file per op family.
 *
 * Around it, the pieces every gradient test file needs: input makers (gc_random, gc_scalar,
 * gc_i64, gc_convert), attribute setters for gc_attrs_fn callbacks (gc_attr_*), the
 * run-and-count wrapper gc_check_free, and for tests that build their own graph
 * (checking values by hand rather than by differences) gc_param, gc_sum_all, gc_output and
 * gc_plan_meta. */
#ifndef OT_GRADCHECK_H
#define OT_GRADCHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "onnxtune/runtime.h"
#include "trainer/autodiff.h"

typedef struct gc_input {
    const char *name;
    ot_tensor *value;   /* borrowed; copied into the graph */
    int differentiable; /* 1: a parameter whose gradient is checked; 0: a constant */
} gc_input;

/* Adds attributes to the op node (may be NULL). */
typedef void (*gc_attrs_fn)(ot_graph *g, int node);

static uint64_t gc_rng = 0x9e3779b97f4a7c15ull;
static inline double gc_uniform(void) { /* xorshift64*, in [-1, 1) */
    gc_rng ^= gc_rng >> 12, gc_rng ^= gc_rng << 25, gc_rng ^= gc_rng >> 27;
    return (double)((gc_rng * 2685821657736338717ull) >> 11) / 9007199254740992.0 * 2 - 1;
}

/* Random f64 tensor in [-scale, scale). Owned; free with ot_tensor_free. */
static inline ot_tensor *gc_random(int ndim, const int64_t *dims, double scale) {
    ot_tensor *t;
    if (ot_tensor_new(&t, OT_F64, ndim, dims) != OT_OK) abort();
    for (int64_t i = 0; i < ot_tensor_numel(t); i++) ((double *)t->data)[i] = scale * gc_uniform();
    return t;
}

/* f64 scalar (rank 0) holding v. Owned. */
static inline ot_tensor *gc_scalar(double v) {
    ot_tensor *t;
    if (ot_tensor_new(&t, OT_F64, 0, NULL) != OT_OK) abort();
    ((double *)t->data)[0] = v;
    return t;
}

/* int64 tensor of shape (ndim, dims) holding a copy of v (numel values; NULL: left as
 * ot_tensor_new made it). Owned. */
static inline ot_tensor *gc_i64(int ndim, const int64_t *dims, const int64_t *v) {
    ot_tensor *t;
    if (ot_tensor_new(&t, OT_I64, ndim, dims) != OT_OK) abort();
    if (v && ot_tensor_numel(t)) memcpy(t->data, v, (size_t)ot_tensor_numel(t) * sizeof *v);
    return t;
}

/* A copy of t converted to dtype dt (ot_convert's rounding). Owned. */
static inline ot_tensor *gc_convert(const ot_tensor *t, ot_dtype dt) {
    ot_tensor *o;
    if (ot_tensor_new(&o, dt, t->ndim, t->dims) != OT_OK) abort();
    ot_convert(o->data, dt, t->data, t->dtype, (size_t)ot_tensor_numel(t));
    return o;
}

static inline int gc_value(ot_graph *g, const char *name) {
    int v;
    if (ot_graph_value(g, name, &v) != OT_OK) abort();
    return v;
}

static inline void gc_set_init(ot_graph *g, int v, ot_tensor *t) {
    ot_value *val = &g->values[v];
    val->init = t;
    val->dtype = t->dtype;
    val->ndim = t->ndim;
    memcpy(val->dims, t->dims, sizeof val->dims);
}

/* The value `name` made a trainable parameter initialised with t (taken over). */
static inline int gc_param(ot_graph *g, const char *name, ot_tensor *t) {
    int v = gc_value(g, name);
    gc_set_init(g, v, t);
    g->values[v].is_param = 1;
    return v;
}

/* Appends value v to the graph outputs. */
static inline void gc_output(ot_graph *g, int v) {
    int *o = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof *o);
    if (!o) abort();
    g->outputs = o;
    g->outputs[g->n_outputs++] = v;
}

/* Sorts g and plans it once to learn every value's dtype and shape: *meta is a calloc'd
 * array of g->n_values entries (owned by the caller, also on failure, when it stays zeroed
 * past the failing step), ready for ot_autodiff. The plan itself is freed. */
static inline ot_status gc_plan_meta(ot_graph *g, ot_tensor **meta) {
    *meta = calloc((size_t)g->n_values, sizeof **meta);
    if (!*meta) abort();
    ot_plan *p = NULL;
    OT_TRY(ot_graph_toposort(g));
    OT_TRY(ot_plan_create(g, NULL, &p));
    ot_plan_value_meta(p, *meta);
    ot_plan_free(p);
    return OT_OK;
}

static inline void gc_node_attr(ot_graph *g, int node, ot_attr a) {
    ot_node *n = &g->nodes[node];
    n->attrs = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof *n->attrs);
    n->attrs[n->n_attrs++] = a;
}
static inline void gc_attr_int(ot_graph *g, int node, const char *name, int64_t v) {
    ot_attr a = {0};
    a.name = strdup(name), a.type = OT_ATTR_INT, a.i = v;
    gc_node_attr(g, node, a);
}
static inline void gc_attr_float(ot_graph *g, int node, const char *name, float v) {
    ot_attr a = {0};
    a.name = strdup(name), a.type = OT_ATTR_FLOAT, a.f = v;
    gc_node_attr(g, node, a);
}
static inline void gc_attr_ints(ot_graph *g, int node, const char *name, const int64_t *v, int n) {
    ot_attr a = {0};
    a.name = strdup(name), a.type = OT_ATTR_INTS, a.n = n;
    a.ints = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (n) memcpy(a.ints, v, (size_t)n * sizeof *v);
    gc_node_attr(g, node, a);
}
static inline void gc_attr_string(ot_graph *g, int node, const char *name, const char *v) {
    ot_attr a = {0};
    a.name = strdup(name), a.type = OT_ATTR_STRING, a.s = strdup(v);
    gc_node_attr(g, node, a);
}

/* Adds `out = ReduceSum(x)` with keepdims 0 (a scalar loss), as node `name`. Returns the
 * node index. */
static inline int gc_sum_all(ot_graph *g, const char *name, int x, int out) {
    int node;
    if (ot_graph_add_node(g, "ReduceSum", "", name, &x, 1, &out, 1, &node) != OT_OK) abort();
    gc_attr_int(g, node, "keepdims", 0);
    return node;
}

static inline double gc_run_loss(ot_plan *p, const ot_graph *g, ot_tensor *outs) {
    if (ot_plan_run(p, NULL, outs) != OT_OK) {
        fprintf(stderr, "gradcheck: run failed: %s\n", ot_last_error());
        return NAN;
    }
    (void)g;
    return ((double *)outs[0].data)[0];
}

/* Returns the number of failing elements (0 = pass); -1 when the graph cannot be built,
 * planned or differentiated (the message is printed). */
static inline int gc_check(const char *op, const char *domain, int opset, const gc_input *inputs, int n_in, int n_out,
                    gc_attrs_fn attrs, double tol) {
    ot_graph *g;
    if (ot_graph_new(&g) != OT_OK) abort();
    ot_graph_add_opset(g, "", opset);
    if (domain && domain[0]) ot_graph_add_opset(g, domain, 1);
    int in[16], out[16], params[16], n_params = 0;
    char name[64];
    for (int i = 0; i < n_in; i++) {
        if (!inputs[i].value) {
            in[i] = -1;
            continue;
        }
        in[i] = gc_value(g, inputs[i].name);
        ot_tensor *copy;
        if (ot_tensor_clone(&copy, inputs[i].value) != OT_OK) abort();
        gc_set_init(g, in[i], copy);
        if (inputs[i].differentiable) {
            g->values[in[i]].is_param = 1;
            params[n_params++] = in[i];
        }
    }
    for (int k = 0; k < n_out; k++) {
        snprintf(name, sizeof name, "y%d", k);
        out[k] = gc_value(g, name);
    }
    int node;
    if (ot_graph_add_node(g, op, domain ? domain : "", "op", in, n_in, out, n_out, &node) != OT_OK) abort();
    if (attrs) attrs(g, node);
    g->outputs = malloc(sizeof(int) * 16);
    for (int k = 0; k < n_out; k++) g->outputs[g->n_outputs++] = out[k];
    int fails = -1;
    ot_plan *p = NULL;
    ot_tensor *meta = NULL, outs[64];
    if (gc_plan_meta(g, &meta) != OT_OK) {
        fprintf(stderr, "gradcheck %s: forward plan failed: %s\n", op, ot_last_error());
        goto done;
    }
    /* loss = Σ_k ReduceSum(Y_k * R_k) */
    int acc = -1;
    for (int k = 0; k < n_out; k++) {
        int r, prod, sum;
        snprintf(name, sizeof name, "r%d", k);
        r = gc_value(g, name);
        gc_set_init(g, r, gc_random(meta[out[k]].ndim, meta[out[k]].dims, 1.0));
        snprintf(name, sizeof name, "prod%d", k);
        prod = gc_value(g, name);
        snprintf(name, sizeof name, "sum%d", k);
        sum = gc_value(g, name);
        int mi[2] = {out[k], r};
        ot_graph_add_node(g, "Mul", "", name, mi, 2, &prod, 1, NULL);
        gc_sum_all(g, name, prod, sum);
        if (acc < 0) {
            acc = sum;
        } else {
            snprintf(name, sizeof name, "acc%d", k);
            int nacc = gc_value(g, name), ai[2] = {acc, sum};
            ot_graph_add_node(g, "Add", "", name, ai, 2, &nacc, 1, NULL);
            acc = nacc;
        }
    }
    g->outputs[0] = acc;
    g->n_outputs = 1;
    free(meta);
    meta = NULL;
    if (gc_plan_meta(g, &meta) != OT_OK) {
        fprintf(stderr, "gradcheck %s: loss plan failed: %s\n", op, ot_last_error());
        goto done;
    }
    int grads[16];
    if (ot_autodiff(g, meta, acc, params, n_params, NULL, grads) != OT_OK ||
        ot_plan_create(g, NULL, &p) != OT_OK) {
        fprintf(stderr, "gradcheck %s: backward failed: %s\n", op, ot_last_error());
        goto done;
    }
    if (isnan(gc_run_loss(p, g, outs))) goto done;
    fails = 0;
    const double eps = 1e-6;
    for (int i = 0; i < n_params; i++) {
        ot_tensor *w = g->values[params[i]].init;
        int64_t n = ot_tensor_numel(w);
        double *analytic = malloc((size_t)(n ? n : 1) * sizeof(double));
        gc_run_loss(p, g, outs);
        int gi = -1;
        for (int o = 0; o < g->n_outputs; o++)
            if (g->outputs[o] == grads[i]) gi = o;
        if (grads[i] < 0 || gi < 0) {
            fprintf(stderr, "gradcheck %s: no gradient for '%s'\n", op, g->values[params[i]].name);
            fails++;
            free(analytic);
            continue;
        }
        memcpy(analytic, outs[gi].data, (size_t)n * sizeof(double));
        double *x = w->data;
        for (int64_t e = 0; e < n; e++) {
            double x0 = x[e];
            x[e] = x0 + eps;
            double lp = gc_run_loss(p, g, outs);
            x[e] = x0 - eps;
            double lm = gc_run_loss(p, g, outs);
            x[e] = x0;
            double num = (lp - lm) / (2 * eps), ana = analytic[e];
            double scale = fmax(1.0, fmax(fabs(ana), fabs(num)));
            if (!(fabs(ana - num) <= tol * scale)) {
                if (fails < 5)
                    fprintf(stderr, "gradcheck %s: d/d%s[%lld] analytic %.10g numeric %.10g\n", op,
                            g->values[params[i]].name, (long long)e, ana, num);
                fails++;
            }
        }
        free(analytic);
    }
done:
    free(meta);
    ot_plan_free(p);
    ot_graph_free(g);
    return fails;
}

/* gc_check, then frees every input value (gc_check works on copies; NULL ones are skipped).
 * On failure also prints "  (<label>: N failures)", the label formatted from fmt like
 * printf, so the failing case is named. Returns gc_check's result. */
static inline int gc_check_free(const char *op, const char *domain, int opset, gc_input *inputs, int n_in, int n_out,
                                gc_attrs_fn attrs, double tol, const char *fmt, ...) {
    int r = gc_check(op, domain, opset, inputs, n_in, n_out, attrs, tol);
    if (r != 0) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "  (");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, ": %d failures)\n", r);
        va_end(ap);
    }
    for (int i = 0; i < n_in; i++) ot_tensor_free(inputs[i].value);
    return r;
}

#endif
