/* graph.c — graph IR construction, lookup, attributes and topological sort; see graph.h. */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

static char *dupstr(const char *s) { return strdup(s ? s : ""); }

struct ot_graph_keep {
    void *p;
    void (*free_fn)(void *);
};

ot_status ot_graph_keep(ot_graph *g, void *p, void (*free_fn)(void *)) {
    struct ot_graph_keep *k = realloc(g->keep, (size_t)(g->n_keep + 1) * sizeof *k);
    if (!k) return ot_errorf(OT_E_NOMEM, "out of memory");
    g->keep = k;
    k[g->n_keep].p = p;
    k[g->n_keep].free_fn = free_fn;
    g->n_keep++;
    return OT_OK;
}

ot_status ot_graph_new(ot_graph **out) {
    ot_graph *g = calloc(1, sizeof *g);
    if (!g || !(g->names = ot_strmap_new())) {
        free(g);
        return ot_errorf(OT_E_NOMEM, "out of memory creating a graph");
    }
    *out = g;
    return OT_OK;
}

void ot_attr_free(ot_attr *a) {
    free(a->name);
    free(a->s);
    ot_tensor_free(a->t);
    free(a->floats);
    free(a->ints);
    for (int i = 0; a->strings && i < a->n; i++) free(a->strings[i]);
    free(a->strings);
}

void ot_graph_free(ot_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_values; i++) {
        ot_value *v = &g->values[i];
        free(v->name);
        for (int d = 0; d < OT_MAX_DIMS; d++) free(v->dim_param[d]);
        ot_tensor_free(v->init);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        ot_node *n = &g->nodes[i];
        free(n->name);
        free(n->op_type);
        free(n->domain);
        free(n->in);
        free(n->out);
        for (int a = 0; a < n->n_attrs; a++) ot_attr_free(&n->attrs[a]);
        free(n->attrs);
    }
    for (int i = 0; i < g->n_opsets; i++) free(g->opsets[i].domain);
    free(g->opsets);
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->name);
    ot_strmap_free(g->names);
    if (g->backing_free) g->backing_free(g->backing);
    for (int i = g->n_keep - 1; i >= 0; i--)
        if (g->keep[i].free_fn) g->keep[i].free_fn(g->keep[i].p);
    free(g->keep);
    free(g);
}

int ot_graph_find(const ot_graph *g, const char *name) {
    int idx;
    return ot_strmap_get(g->names, name, &idx) ? idx : -1;
}

ot_status ot_graph_value(ot_graph *g, const char *name, int *idx) {
    int found = ot_graph_find(g, name);
    if (found >= 0) {
        *idx = found;
        return OT_OK;
    }
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values ? g->cap_values * 2 : 64;
        ot_value *v = realloc(g->values, (size_t)cap * sizeof *v);
        if (!v) return ot_errorf(OT_E_NOMEM, "out of memory adding value '%s'", name);
        g->values = v;
        g->cap_values = cap;
    }
    ot_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = dupstr(name);
    v->ndim = -1;
    v->producer = -1;
    if (!v->name) return ot_errorf(OT_E_NOMEM, "out of memory");
    OT_TRY(ot_strmap_put(g->names, name, g->n_values));
    *idx = g->n_values++;
    return OT_OK;
}

ot_status ot_graph_add_node(ot_graph *g, const char *op_type, const char *domain, const char *name,
                            const int *in, int n_in, const int *out, int n_out, int *idx) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
        ot_node *n = realloc(g->nodes, (size_t)cap * sizeof *n);
        if (!n) return ot_errorf(OT_E_NOMEM, "out of memory adding node '%s'", name ? name : op_type);
        g->nodes = n;
        g->cap_nodes = cap;
    }
    ot_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    if (domain && strcmp(domain, "ai.onnx") == 0) domain = "";
    n->op_type = dupstr(op_type);
    n->domain = dupstr(domain);
    n->name = dupstr(name);
    n->in = malloc((size_t)(n_in ? n_in : 1) * sizeof(int));
    n->out = malloc((size_t)(n_out ? n_out : 1) * sizeof(int));
    if (!n->op_type || !n->domain || !n->name || !n->in || !n->out) {
        free(n->op_type), free(n->domain), free(n->name), free(n->in), free(n->out);
        return ot_errorf(OT_E_NOMEM, "out of memory adding node '%s'", name ? name : op_type);
    }
    if (n_in) memcpy(n->in, in, (size_t)n_in * sizeof(int));
    if (n_out) memcpy(n->out, out, (size_t)n_out * sizeof(int));
    n->n_in = n_in;
    n->n_out = n_out;
    if (idx) *idx = g->n_nodes;
    g->n_nodes++;
    return OT_OK;
}

ot_status ot_graph_add_opset(ot_graph *g, const char *domain, int64_t version) {
    if (domain && strcmp(domain, "ai.onnx") == 0) domain = "";
    ot_opset *o = realloc(g->opsets, (size_t)(g->n_opsets + 1) * sizeof *o);
    if (!o) return ot_errorf(OT_E_NOMEM, "out of memory");
    g->opsets = o;
    o[g->n_opsets].domain = dupstr(domain);
    o[g->n_opsets].version = version;
    if (!o[g->n_opsets].domain) return ot_errorf(OT_E_NOMEM, "out of memory");
    g->n_opsets++;
    return OT_OK;
}

int64_t ot_graph_opset(const ot_graph *g, const char *domain) {
    if (strcmp(domain, "ai.onnx") == 0) domain = "";
    for (int i = 0; i < g->n_opsets; i++)
        if (strcmp(g->opsets[i].domain, domain) == 0) return g->opsets[i].version;
    return 0;
}

const char *ot_node_label(const ot_graph *g, const ot_node *n) {
    static _Thread_local char buf[512];
    if (n->name && n->name[0])
        snprintf(buf, sizeof buf, "%s node '%s'", n->op_type, n->name);
    else
        snprintf(buf, sizeof buf, "%s node #%d", n->op_type, (int)(n - g->nodes));
    return buf;
}

const char *ot_node_name(const ot_node *n) {
    static _Thread_local char buf[512];
    snprintf(buf, sizeof buf, "%s node '%s'", n->op_type, n->name && n->name[0] ? n->name : "(unnamed)");
    return buf;
}

/* Kahn's algorithm, stable: among ready nodes the earliest in file order goes first, so a
 * graph that is already sorted keeps its order. */
ot_status ot_graph_toposort(ot_graph *g) {
    int nv = g->n_values, nn = g->n_nodes;
    ot_status st = OT_OK;
    int *producer = malloc((size_t)(nv ? nv : 1) * sizeof(int));
    int *pending = calloc((size_t)(nn ? nn : 1), sizeof(int));
    int *order = malloc((size_t)(nn ? nn : 1) * sizeof(int));
    int *ready = malloc((size_t)(nn ? nn : 1) * sizeof(int)); /* min-heap of node indices */
    ot_node *sorted = malloc((size_t)(nn ? nn : 1) * sizeof(ot_node));
    int *use_start = NULL, *uses = NULL;
    if (!producer || !pending || !order || !ready || !sorted) {
        st = ot_errorf(OT_E_NOMEM, "out of memory sorting the graph");
        goto done;
    }
    for (int v = 0; v < nv; v++) producer[v] = -1;
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_out; k++) {
            int v = g->nodes[i].out[k];
            if (v < 0) continue;
            if (producer[v] >= 0 || g->values[v].init || g->values[v].is_input) {
                st = ot_errorf(OT_E_INVALID, "value '%s' is produced by %s but is already defined",
                               g->values[v].name, ot_node_label(g, &g->nodes[i]));
                goto done;
            }
            producer[v] = i;
        }
    /* Count inputs still to be produced; an input nobody defines is an error. */
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v < 0) continue;
            if (producer[v] >= 0) {
                pending[i]++;
            } else if (!g->values[v].init && !g->values[v].is_input) {
                st = ot_errorf(OT_E_INVALID, "%s reads '%s', which is not a graph input, an initializer or "
                               "any node's output", ot_node_label(g, &g->nodes[i]), g->values[v].name);
                goto done;
            }
        }
    /* Consumers of each value as CSR (use_start[v]..use_start[v+1] index into uses). */
    use_start = calloc((size_t)nv + 1, sizeof(int));
    int n_uses = 0;
    for (int i = 0; i < nn; i++) n_uses += g->nodes[i].n_in;
    uses = malloc((size_t)(n_uses ? n_uses : 1) * sizeof(int));
    if (!use_start || !uses) {
        st = ot_errorf(OT_E_NOMEM, "out of memory sorting the graph");
        goto done;
    }
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0) use_start[g->nodes[i].in[k] + 1]++;
    for (int v = 0; v < nv; v++) use_start[v + 1] += use_start[v];
    int *fill = producer; /* reused as a cursor; producer[] is rebuilt below */
    for (int v = 0; v < nv; v++) fill[v] = use_start[v];
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0) uses[fill[g->nodes[i].in[k]]++] = i;
    int nready = 0, nord = 0;
#define HEAP_PUSH(x)                                                               \
    do {                                                                           \
        int j_ = nready++;                                                         \
        ready[j_] = (x);                                                           \
        while (j_ && ready[(j_ - 1) / 2] > ready[j_]) {                            \
            int t_ = ready[j_]; ready[j_] = ready[(j_ - 1) / 2]; ready[(j_ - 1) / 2] = t_; \
            j_ = (j_ - 1) / 2;                                                     \
        }                                                                          \
    } while (0)
    for (int i = 0; i < nn; i++)
        if (!pending[i]) HEAP_PUSH(i);
    while (nready) {
        int cur = ready[0];
        ready[0] = ready[--nready];
        for (int j = 0;;) { /* sift down */
            int l = 2 * j + 1, r = l + 1, m = j;
            if (l < nready && ready[l] < ready[m]) m = l;
            if (r < nready && ready[r] < ready[m]) m = r;
            if (m == j) break;
            int t = ready[j]; ready[j] = ready[m]; ready[m] = t;
            j = m;
        }
        order[nord++] = cur;
        for (int k = 0; k < g->nodes[cur].n_out; k++) {
            int v = g->nodes[cur].out[k];
            if (v < 0) continue;
            for (int e = use_start[v]; e < use_start[v + 1]; e++)
                if (--pending[uses[e]] == 0) HEAP_PUSH(uses[e]);
        }
    }
#undef HEAP_PUSH
    if (nord != nn) {
        for (int i = 0; i < nn; i++)
            if (pending[i]) {
                st = ot_errorf(OT_E_INVALID, "the graph has a cycle through %s", ot_node_label(g, &g->nodes[i]));
                goto done;
            }
    }
    for (int i = 0; i < nn; i++) sorted[i] = g->nodes[order[i]];
    if (nn) memcpy(g->nodes, sorted, (size_t)nn * sizeof(ot_node));
    for (int v = 0; v < nv; v++) g->values[v].producer = -1;
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_out; k++)
            if (g->nodes[i].out[k] >= 0) g->values[g->nodes[i].out[k]].producer = i;
done:
    free(producer), free(pending), free(order), free(ready), free(sorted), free(use_start), free(uses);
    return st;
}

const ot_attr *ot_node_attr(const ot_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

static ot_status attr_type_error(const ot_node *n, const ot_attr *a, const char *want) {
    return ot_errorf(OT_E_INVALID, "%s node '%s': attribute '%s' must be %s (ONNX attribute type %d)", n->op_type,
                     n->name, a->name, want, (int)a->type);
}

ot_status ot_attr_int(const ot_node *n, const char *name, int64_t dflt, int64_t *v) {
    const ot_attr *a = ot_node_attr(n, name);
    *v = dflt;
    if (!a) return OT_OK;
    if (a->type != OT_ATTR_INT) return attr_type_error(n, a, "an int");
    *v = a->i;
    return OT_OK;
}

ot_status ot_attr_float(const ot_node *n, const char *name, float dflt, float *v) {
    const ot_attr *a = ot_node_attr(n, name);
    *v = dflt;
    if (!a) return OT_OK;
    if (a->type != OT_ATTR_FLOAT) return attr_type_error(n, a, "a float");
    *v = a->f;
    return OT_OK;
}

ot_status ot_attr_string(const ot_node *n, const char *name, const char *dflt, const char **v) {
    const ot_attr *a = ot_node_attr(n, name);
    *v = dflt;
    if (!a) return OT_OK;
    if (a->type != OT_ATTR_STRING) return attr_type_error(n, a, "a string");
    *v = a->s;
    return OT_OK;
}

ot_status ot_attr_ints(const ot_node *n, const char *name, const int64_t **v, int *count) {
    const ot_attr *a = ot_node_attr(n, name);
    *v = NULL;
    *count = -1;
    if (!a) return OT_OK;
    if (a->type != OT_ATTR_INTS) return attr_type_error(n, a, "a list of ints");
    *v = a->ints;
    *count = a->n;
    return OT_OK;
}
