/* lora.c — finds linear layers, names their modules, and adds LoRA adapters as a graph
 * rewrite; see lora.h. The forward node keeps computing y = x·W (+ bias); its output is
 * renamed "<y>/base" and the adapter's sum takes over the name y, so every consumer of y
 * sees the adapted value without being touched. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "importer/module_path.h"
#include "trainer/lora.h"
#include "trainer/rng.h"

/* ---- module paths ---- */

/* Module paths come from the weight's name or the node's scope: importer/module_path.c. */

int ot_module_matches(const char *path, const char *target) {
    size_t np = strlen(path), nt = strlen(target);
    if (nt == 0 || nt > np) return 0;
    if (strcmp(path + np - nt, target) != 0) return 0;
    return np == nt || path[np - nt - 1] == '.';
}

void ot_linears_free(ot_linear *l, int n) {
    for (int i = 0; l && i < n; i++) free(l[i].module);
    free(l);
}

/* Whether value v is a graph output, directly or through a chain of single-consumer
 * reshaping views (a head computed on [batch·seq, d] and reshaped to [batch, seq, vocab]). */
static int reaches_output(const ot_graph *g, int v) {
    static const char *views[] = {"Reshape", "Identity", "Flatten", "Squeeze", "Unsqueeze"};
    for (int hops = 0; v >= 0 && hops < 8; hops++) {
        if (g->values[v].is_output) return 1;
        int consumer = -1, n_consumers = 0;
        for (int i = 0; i < g->n_nodes; i++)
            for (int k = 0; k < g->nodes[i].n_in; k++)
                if (g->nodes[i].in[k] == v) consumer = i, n_consumers++;
        if (n_consumers != 1 || g->nodes[consumer].in[0] != v) return 0;
        int is_view = 0;
        for (size_t k = 0; k < sizeof views / sizeof views[0]; k++) is_view |= !strcmp(g->nodes[consumer].op_type, views[k]);
        if (!is_view) return 0;
        v = g->nodes[consumer].out[0];
    }
    return 0;
}

ot_status ot_find_linears(const ot_graph *g, ot_linear **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    ot_linear *l = calloc((size_t)g->n_nodes + 1, sizeof *l);
    if (!l) return ot_errorf(OT_E_NOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const ot_node *node = &g->nodes[i];
        int is_gemm = strcmp(node->op_type, "Gemm") == 0;
        if (node->domain[0] || (!is_gemm && strcmp(node->op_type, "MatMul") != 0) || node->n_in < 2) continue;
        int w = node->in[1];
        if (w < 0 || !g->values[w].init || g->values[w].init->ndim != 2 || !ot_dtype_is_float(g->values[w].dtype))
            continue;
        int64_t trans_a = 0, trans_b = 0;
        if (is_gemm) {
            OT_TRY(ot_attr_int(node, "transA", 0, &trans_a));
            OT_TRY(ot_attr_int(node, "transB", 0, &trans_b));
            if (trans_a) continue; /* x enters transposed: not a linear layer on x */
        }
        const ot_tensor *wt = g->values[w].init;
        ot_linear *li = &l[n];
        li->node = i;
        li->weight = w;
        li->w_transposed = (int)trans_b;
        li->in = trans_b ? wt->dims[1] : wt->dims[0];
        li->out = trans_b ? wt->dims[0] : wt->dims[1];
        li->module = ot_module_from_weight(g->values[w].name);
        if (!li->module) li->module = ot_module_from_scope(node->name);
        if (!li->module) li->module = strdup(node->name[0] ? node->name : g->values[w].name);
        if (!li->module) {
            ot_linears_free(l, n);
            return ot_errorf(OT_E_NOMEM, "out of memory");
        }
        li->is_head = reaches_output(g, node->out[0]);
        n++;
    }
    *out = l;
    *n_out = n;
    return OT_OK;
}

/* ---- the rewrite ---- */

void ot_lora_adapters_free(ot_lora_adapter *a, int n) {
    for (int i = 0; a && i < n; i++) free(a[i].module);
    free(a);
}

static int targeted(const ot_linear *li, const ot_lora_config *cfg) {
    for (int t = 0; t < cfg->n_targets; t++) {
        if (strcmp(cfg->targets[t], "all-linear") == 0) {
            if (!li->is_head) return 1;
        } else if (ot_module_matches(li->module, cfg->targets[t])) {
            return 1;
        }
    }
    return 0;
}

static ot_status new_param(ot_graph *g, const char *name, int64_t d0, int64_t d1, int *v) {
    if (ot_graph_find(g, name) >= 0) return ot_errorf(OT_E_INVALID, "the model already has a tensor named '%s'", name);
    OT_TRY(ot_graph_value(g, name, v));
    int64_t dims[2] = {d0, d1};
    ot_value *val = &g->values[*v];
    OT_TRY(ot_tensor_new(&val->init, OT_F32, 2, dims));
    val->dtype = OT_F32;
    val->ndim = 2;
    val->dims[0] = d0;
    val->dims[1] = d1;
    val->is_param = 1;
    return OT_OK;
}

static ot_status fresh_value(ot_graph *g, const char *module, const char *tag, int *v) {
    char name[1024];
    snprintf(name, sizeof name, "%s/lora/%s", module, tag);
    if (ot_graph_find(g, name) >= 0) return ot_errorf(OT_E_INVALID, "the model already has a value named '%s'", name);
    return ot_graph_value(g, name, v);
}

static ot_status add_node(ot_graph *g, const char *module, const char *op, const int *in, int n_in, int out,
                          int *idx) {
    char name[1024];
    snprintf(name, sizeof name, "%s/lora/%s", module, op);
    return ot_graph_add_node(g, op, "", name, in, n_in, &out, 1, idx);
}

static ot_status set_perm(ot_graph *g, int node) {
    ot_node *n = &g->nodes[node];
    n->attrs = calloc(1, sizeof *n->attrs);
    if (!n->attrs) return ot_errorf(OT_E_NOMEM, "out of memory");
    n->n_attrs = 1;
    n->attrs[0].name = strdup("perm");
    n->attrs[0].type = OT_ATTR_INTS;
    n->attrs[0].n = 2;
    n->attrs[0].ints = malloc(2 * sizeof(int64_t));
    if (!n->attrs[0].name || !n->attrs[0].ints) return ot_errorf(OT_E_NOMEM, "out of memory");
    n->attrs[0].ints[0] = 1;
    n->attrs[0].ints[1] = 0;
    return OT_OK;
}

/* y = base(x) + scale · ((x · Aᵀ) · Bᵀ) */
static ot_status adapt(ot_graph *g, const ot_linear *li, const ot_lora_config *cfg, ot_rng *rng, ot_lora_adapter *ad) {
    char name[1024];
    ad->module = strdup(li->module);
    if (!ad->module) return ot_errorf(OT_E_NOMEM, "out of memory");
    ad->linear_node = li->node;
    ad->weight = li->weight;
    ad->in = li->in;
    ad->out = li->out;
    ad->w_transposed = li->w_transposed;
    ad->scale = cfg->rslora ? cfg->alpha / sqrtf((float)cfg->r) : cfg->alpha / (float)cfg->r;

    snprintf(name, sizeof name, "%s.lora_A.weight", li->module);
    OT_TRY(new_param(g, name, cfg->r, li->in, &ad->a));
    snprintf(name, sizeof name, "%s.lora_B.weight", li->module);
    OT_TRY(new_param(g, name, li->out, cfg->r, &ad->b)); /* zeros */
    float *a = g->values[ad->a].init->data;
    int64_t na = (int64_t)cfg->r * li->in;
    if (cfg->init == OT_LORA_INIT_GAUSSIAN) {
        for (int64_t i = 0; i < na; i++) a[i] = (float)(ot_rng_normal(rng) / cfg->r);
    } else { /* kaiming_uniform_(a=√5): bound = √(6 / ((1 + 5) · fan_in)) = 1/√fan_in */
        double bound = 1.0 / sqrt((double)li->in);
        for (int64_t i = 0; i < na; i++) a[i] = (float)((2 * ot_rng_uniform(rng) - 1) * bound);
    }

    int x = g->nodes[li->node].in[0], y = g->nodes[li->node].out[0];
    int base, at, bt, t, u, s, scale, idx;
    snprintf(name, sizeof name, "%s/base", g->values[y].name);
    if (ot_graph_find(g, name) >= 0) return ot_errorf(OT_E_INVALID, "the model already has a value named '%s'", name);
    OT_TRY(ot_graph_value(g, name, &base));
    g->nodes[li->node].out[0] = base;

    int xin = x;
    if (cfg->dropout > 0) {
        int seed = ot_graph_find(g, "ot.dropout_seed"), xd;
        if (seed < 0) return ot_errorf(OT_E_INTERNAL, "dropout seed input missing");
        OT_TRY(fresh_value(g, li->module, "dropout", &xd));
        int in[2] = {x, seed};
        char nn[1024];
        snprintf(nn, sizeof nn, "%s/lora/Dropout", li->module);
        OT_TRY(ot_graph_add_node(g, "TrainingDropout", "ai.onnxtune", nn, in, 2, &xd, 1, &idx));
        ot_node *d = &g->nodes[idx];
        d->attrs = calloc(2, sizeof *d->attrs);
        if (!d->attrs) return ot_errorf(OT_E_NOMEM, "out of memory");
        d->n_attrs = 2;
        d->attrs[0].name = strdup("ratio");
        d->attrs[0].type = OT_ATTR_FLOAT;
        d->attrs[0].f = cfg->dropout;
        d->attrs[1].name = strdup("stream"); /* distinct masks per adapter within a step */
        d->attrs[1].type = OT_ATTR_INT;
        d->attrs[1].i = ad->a;
        if (!d->attrs[0].name || !d->attrs[1].name) return ot_errorf(OT_E_NOMEM, "out of memory");
        xin = xd;
    }
    OT_TRY(fresh_value(g, li->module, "A_t", &at));
    OT_TRY(add_node(g, li->module, "Transpose", &ad->a, 1, at, &idx));
    OT_TRY(set_perm(g, idx));
    OT_TRY(fresh_value(g, li->module, "B_t", &bt));
    OT_TRY(add_node(g, li->module, "Transpose", &ad->b, 1, bt, &idx));
    OT_TRY(set_perm(g, idx));
    OT_TRY(fresh_value(g, li->module, "xA", &t));
    OT_TRY(add_node(g, li->module, "MatMul", (int[]){xin, at}, 2, t, NULL));
    OT_TRY(fresh_value(g, li->module, "xAB", &u));
    OT_TRY(add_node(g, li->module, "MatMul", (int[]){t, bt}, 2, u, NULL));
    OT_TRY(fresh_value(g, li->module, "scale", &scale));
    OT_TRY(ot_tensor_new(&g->values[scale].init, OT_F32, 0, NULL));
    *(float *)g->values[scale].init->data = ad->scale;
    g->values[scale].dtype = OT_F32;
    g->values[scale].ndim = 0;
    OT_TRY(fresh_value(g, li->module, "delta", &s));
    OT_TRY(add_node(g, li->module, "Mul", (int[]){u, scale}, 2, s, NULL));
    OT_TRY(add_node(g, li->module, "Add", (int[]){base, s}, 2, y, NULL));
    return OT_OK;
}

ot_status ot_lora_apply(ot_graph *g, const ot_lora_config *cfg, ot_lora_adapter **adapters, int *n_adapters) {
    *adapters = NULL;
    *n_adapters = 0;
    if (cfg->r <= 0) return ot_errorf(OT_E_INVALID, "LoRA rank r must be positive, got %d", cfg->r);
    if (cfg->n_targets <= 0) return ot_errorf(OT_E_INVALID, "no LoRA target modules given");
    if (cfg->dropout < 0 || cfg->dropout >= 1)
        return ot_errorf(OT_E_INVALID, "LoRA dropout must be in [0, 1), got %g", cfg->dropout);
    ot_linear *lin;
    int n_lin;
    OT_TRY(ot_find_linears(g, &lin, &n_lin));
    ot_lora_adapter *ad = calloc((size_t)n_lin + 1, sizeof *ad);
    ot_status st = ad ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
    int n = 0;
    if (st == OT_OK && cfg->dropout > 0 && ot_graph_find(g, "ot.dropout_seed") < 0) {
        int seed;
        st = ot_graph_value(g, "ot.dropout_seed", &seed);
        if (st == OT_OK) {
            int *inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *inputs);
            if (!inputs) {
                st = ot_errorf(OT_E_NOMEM, "out of memory");
            } else {
                g->inputs = inputs;
                g->inputs[g->n_inputs++] = seed;
                g->values[seed].is_input = 1;
                g->values[seed].dtype = OT_I64;
                g->values[seed].ndim = 0;
                if (ot_graph_opset(g, "ai.onnxtune") == 0) st = ot_graph_add_opset(g, "ai.onnxtune", 1);
            }
        }
    }
    ot_rng rng;
    ot_rng_seed(&rng, cfg->seed);
    for (int i = 0; st == OT_OK && i < n_lin; i++) {
        if (!targeted(&lin[i], cfg)) continue;
        st = adapt(g, &lin[i], cfg, &rng, &ad[n]);
        n++;
    }
    if (st == OT_OK && n == 0) {
        char known[4096];
        size_t k = 0;
        known[0] = '\0';
        for (int i = 0; i < n_lin && k + 1 < sizeof known; i++)
            k += (size_t)snprintf(known + k, sizeof known - k, "%s%s%s", i ? ", " : "", lin[i].module,
                                  lin[i].is_head ? " (head)" : "");
        char asked[1024];
        size_t q = 0;
        asked[0] = '\0';
        for (int t = 0; t < cfg->n_targets && q + 1 < sizeof asked; t++)
            q += (size_t)snprintf(asked + q, sizeof asked - q, "%s'%s'", t ? ", " : "", cfg->targets[t]);
        st = ot_errorf(OT_E_INVALID, "LoRA targets %s match no linear layer; the model's linear modules are: %s", asked,
                       n_lin ? known : "(none)");
    }
    if (st == OT_OK) st = ot_graph_toposort(g);
    ot_linears_free(lin, n_lin);
    if (st != OT_OK) {
        ot_lora_adapters_free(ad, n);
        return st;
    }
    *adapters = ad;
    *n_adapters = n;
    return OT_OK;
}
