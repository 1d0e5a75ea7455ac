/* plan.c — turns a graph plus input shapes into an executable plan.
 *
 * Owns: binding input shapes (symbolic dims must agree across inputs), per-node attribute
 * parsing and shape inference in topological order, constant folding (a node whose inputs
 * are all constant runs once here), dead-node removal (only what the graph outputs need is
 * scheduled), view aliasing (Reshape-like steps share their input's bytes) and the buffer
 * liveness fed to memplan.c. It never changes the graph. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/plan.h"

/* Marks values whose data some node's shape inference needs (Reshape's shape, Slice's
 * starts, ...) and, transitively, the data they are computed from. Shape-only ops stop the
 * walk: Shape(x) needs x's dims, not its data. Graph inputs so marked are bound by value at
 * plan time. */
static void mark_value_needed(const ot_graph *g, char *value_needed) {
    for (int ni = g->n_nodes - 1; ni >= 0; ni--) {
        const ot_node *n = &g->nodes[ni];
        const ot_op_def *def = ot_op_find(n->domain, n->op_type, (int)ot_graph_opset(g, n->domain), NULL);
        if (!def || (def->flags & OT_OP_SHAPE_ONLY)) continue;
        int outputs_needed = 0;
        for (int k = 0; k < n->n_out; k++) outputs_needed |= n->out[k] >= 0 && value_needed[n->out[k]];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && (outputs_needed || (k < 32 && (def->value_inputs >> k) & 1u)))
                value_needed[n->in[k]] = 1;
    }
}

static ot_status bind_inputs(ot_plan *p, const ot_tensor *const *inputs) {
    const ot_graph *g = p->g;
    /* symbol name -> bound value, first binding wins and later ones must agree */
    const char *sym_name[64];
    int64_t sym_val[64];
    const char *sym_from[64];
    int n_sym = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i]];
        const ot_tensor *x = inputs[i];
        char s1[160];
        if (!x) return ot_errorf(OT_E_INVALID, "graph input '%s' was not given", v->name);
        if (x->dtype != v->dtype)
            return ot_errorf(OT_E_SHAPE, "input '%s' must be %s, got %s", v->name, ot_dtype_name(v->dtype),
                             ot_dtype_name(x->dtype));
        if (v->ndim >= 0 && x->ndim != v->ndim)
            return ot_errorf(OT_E_SHAPE, "input '%s' must have rank %d, got shape %s", v->name, v->ndim,
                             ot_shape_str(s1, sizeof s1, x->ndim, x->dims));
        for (int d = 0; v->ndim >= 0 && d < v->ndim; d++) {
            if (v->dims[d] >= 0 && x->dims[d] != v->dims[d])
                return ot_errorf(OT_E_SHAPE, "input '%s' dimension %d must be %lld, got shape %s", v->name, d,
                                 (long long)v->dims[d], ot_shape_str(s1, sizeof s1, x->ndim, x->dims));
            if (!v->dim_param[d]) continue;
            int k = 0;
            while (k < n_sym && strcmp(sym_name[k], v->dim_param[d]) != 0) k++;
            if (k == n_sym) {
                if (n_sym == 64) continue; /* more symbols than we track: no cross-check */
                sym_name[k] = v->dim_param[d], sym_val[k] = x->dims[d], sym_from[k] = v->name;
                n_sym++;
            } else if (sym_val[k] != x->dims[d]) {
                return ot_errorf(OT_E_SHAPE, "input '%s' has shape %s, but dimension '%s' is %lld from input '%s'",
                                 v->name, ot_shape_str(s1, sizeof s1, x->ndim, x->dims), sym_name[k],
                                 (long long)sym_val[k], sym_from[k]);
            }
        }
        ot_plan_val *pv = &p->vals[g->inputs[i]];
        pv->kind = OT_VAL_INPUT;
        pv->t = *x;
        pv->t.data = NULL;
        pv->t.owned = 0;
        if (!p->value_bound[g->inputs[i]]) continue;
        /* The input decides shapes: plan for its value, and check each run feeds the same. */
        if (!x->data)
            return ot_errorf(OT_E_INVALID, "input '%s' determines shapes inside the model, so its value is needed "
                             "when the plan is made", v->name);
        OT_TRY(ot_tensor_clone(&pv->folded, x));
        pv->t.data = pv->folded->data;
        pv->kind = OT_VAL_CONST;
    }
    return OT_OK;
}

/* Infers one node; folds it when every input is constant. */
static ot_status plan_node(ot_plan *p, int ni, int *foldable) {
    const ot_graph *g = p->g;
    const ot_node *n = &g->nodes[ni];
    int opset = (int)ot_graph_opset(g, n->domain);
    int known = 0;
    const ot_op_def *def = ot_op_find(n->domain, n->op_type, opset, &known);
    if (!def) {
        if (known)
            return ot_errorf(OT_E_UNSUPPORTED, "%s: op %s is not supported at opset %d of domain '%s'",
                             ot_node_label(g, n), n->op_type, opset, n->domain[0] ? n->domain : "ai.onnx");
        return ot_errorf(OT_E_UNSUPPORTED, "%s: unknown op '%s' (domain '%s', opset %d)", ot_node_label(g, n), n->op_type,
                         n->domain[0] ? n->domain : "ai.onnx", opset);
    }
    if (n->n_in > OT_MAX_NODE_IO || n->n_out > OT_MAX_NODE_IO)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: %d inputs and %d outputs; at most %d of each are supported",
                         ot_node_label(g, n), n->n_in, n->n_out, OT_MAX_NODE_IO);
    if (n->n_in < def->min_in || (def->max_in >= 0 && n->n_in > def->max_in))
        return ot_errorf(OT_E_INVALID, "%s: has %d inputs, the op takes %d to %d", ot_node_label(g, n), n->n_in,
                         def->min_in, def->max_in);
    if (def->attr_size) {
        p->attrs[ni] = calloc(1, def->attr_size);
        if (!p->attrs[ni]) return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    p->attr_defs[ni] = def;
    if (def->parse) OT_TRY(def->parse(n, opset, p->attrs[ni]));

    const ot_tensor *in[OT_MAX_NODE_IO];
    ot_tensor *out[OT_MAX_NODE_IO];
    int all_const = 1;
    for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        in[k] = NULL;
        if (v < 0) continue;
        if (p->vals[v].kind == OT_VAL_UNUSED)
            return ot_errorf(OT_E_INTERNAL, "%s: input '%s' was not planned", ot_node_label(g, n), g->values[v].name);
        in[k] = &p->vals[v].t;
        if (p->vals[v].kind != OT_VAL_CONST && !(def->flags & OT_OP_SHAPE_ONLY)) all_const = 0;
    }
    for (int k = 0; k < n->n_out; k++) {
        out[k] = n->out[k] >= 0 ? &p->vals[n->out[k]].t : NULL;
        if (out[k]) memset(out[k], 0, sizeof *out[k]);
    }
    ot_op_ctx c = {g, n, p->attrs[ni], opset, n->n_in, n->n_out, in, out};
    OT_TRY(def->infer(&c));
    for (int k = 0; k < n->n_out; k++) {
        int v = n->out[k];
        if (v < 0) continue;
        const ot_value *gv = &g->values[v];
        if (gv->is_output && gv->dtype != OT_UNDEFINED && gv->dtype != out[k]->dtype)
            return ot_errorf(OT_E_SHAPE, "%s: output '%s' is declared %s but computes %s", ot_node_label(g, n), gv->name,
                             ot_dtype_name(gv->dtype), ot_dtype_name(out[k]->dtype));
    }
    *foldable = all_const && !(def->flags & OT_OP_NO_FOLD);
    if (!*foldable) return OT_OK;
    for (int k = 0; k < n->n_out; k++) {
        int v = n->out[k];
        if (v < 0) continue;
        ot_plan_val *pv = &p->vals[v];
        OT_TRY(ot_tensor_new(&pv->folded, pv->t.dtype, pv->t.ndim, pv->t.dims));
        pv->t.data = pv->folded->data;
        pv->kind = OT_VAL_CONST;
        p->stats.folded_bytes += ot_tensor_nbytes(&pv->t);
    }
    OT_TRY(def->cpu(&c));
    p->stats.n_folded++;
    return OT_OK;
}

static void note_use(ot_plan *p, int v, int step) {
    while (v >= 0 && p->vals[v].kind == OT_VAL_ALIAS) {
        if (p->vals[v].last < step) p->vals[v].last = step;
        v = p->vals[v].root;
    }
    if (v >= 0 && p->vals[v].last < step) p->vals[v].last = step;
}

static ot_status plan_create(const ot_graph *g, const ot_tensor *const *inputs, int with_arena, ot_plan **out);

ot_status ot_plan_create(const ot_graph *g, const ot_tensor *const *inputs, ot_plan **out) {
    return plan_create(g, inputs, 1, out);
}

ot_status ot_plan_create_meta(const ot_graph *g, const ot_tensor *const *inputs, ot_plan **out) {
    return plan_create(g, inputs, 0, out);
}

static ot_status plan_create(const ot_graph *g, const ot_tensor *const *inputs, int with_arena, ot_plan **out) {
    *out = NULL;
    ot_plan *p = calloc(1, sizeof *p);
    if (!p) return ot_errorf(OT_E_NOMEM, "out of memory");
    p->g = g;
    p->vals = calloc((size_t)g->n_values + 1, sizeof *p->vals);
    p->n_values = g->n_values;
    p->n_nodes = g->n_nodes;
    p->attrs = calloc((size_t)g->n_nodes + 1, sizeof *p->attrs);
    p->attr_defs = calloc((size_t)g->n_nodes + 1, sizeof *p->attr_defs);
    p->steps = calloc((size_t)g->n_nodes + 1, sizeof *p->steps);
    int *foldable = calloc((size_t)g->n_nodes + 1, sizeof(int));
    char *needed = calloc((size_t)g->n_values + 1, 1);
    ot_status st = OT_OK;
    if (!p->vals || !p->attrs || !p->attr_defs || !p->steps || !foldable || !needed) {
        st = ot_errorf(OT_E_NOMEM, "out of memory planning the graph");
        goto fail;
    }
    p->stats.n_nodes = g->n_nodes;
    for (int v = 0; v < g->n_values; v++) {
        p->vals[v].root = -1;
        p->vals[v].def = p->vals[v].last = -1;
        if (g->values[v].init) {
            /* Parameters are read through init->data on every run (the optimizer updates
             * them in place), so they are never constant. */
            p->vals[v].kind = g->values[v].is_param ? OT_VAL_PARAM : OT_VAL_CONST;
            p->vals[v].t = *g->values[v].init;
            p->vals[v].t.owned = 0;
            if (g->values[v].is_param) p->vals[v].t.data = NULL; /* infer must not read it */
        }
    }
    p->value_bound = calloc((size_t)g->n_values + 1, 1);
    if (!p->value_bound) {
        st = ot_errorf(OT_E_NOMEM, "out of memory");
        goto fail;
    }
    mark_value_needed(g, p->value_bound);
    for (int v = 0; v < g->n_values; v++) p->value_bound[v] &= g->values[v].is_input;
    if ((st = bind_inputs(p, inputs)) != OT_OK) goto fail;

    /* Nodes no output depends on are never inferred, so an unsupported op in a dead
     * branch does not stop the plan. */
    for (int i = 0; i < g->n_outputs; i++) needed[g->outputs[i]] = 1;
    for (int ni = g->n_nodes - 1; ni >= 0; ni--) {
        const ot_node *n = &g->nodes[ni];
        int any = 0;
        for (int k = 0; k < n->n_out; k++) any |= n->out[k] >= 0 && needed[n->out[k]];
        foldable[ni] = any ? 0 : -1; /* -1: structurally dead */
        for (int k = 0; any && k < n->n_in; k++)
            if (n->in[k] >= 0) needed[n->in[k]] = 1;
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (p->vals[g->outputs[i]].kind == OT_VAL_UNUSED && g->values[g->outputs[i]].producer < 0) {
            st = ot_errorf(OT_E_INVALID, "graph output '%s' is not produced by any node", g->values[g->outputs[i]].name);
            goto fail;
        }

    /* Infer and fold in topological order. Every node's outputs become BUFFER until
     * proven otherwise; folded ones are CONST. */
    for (int ni = 0; ni < g->n_nodes; ni++) {
        if (foldable[ni] < 0) continue;
        for (int k = 0; k < g->nodes[ni].n_out; k++)
            if (g->nodes[ni].out[k] >= 0) p->vals[g->nodes[ni].out[k]].kind = OT_VAL_BUFFER;
        if ((st = plan_node(p, ni, &foldable[ni])) != OT_OK) goto fail;
    }

    /* Dead-node removal, now knowing what folded: walk back from the outputs. */
    memset(needed, 0, (size_t)g->n_values);
    for (int i = 0; i < g->n_outputs; i++) needed[g->outputs[i]] = 1;
    for (int ni = g->n_nodes - 1; ni >= 0; ni--) {
        const ot_node *n = &g->nodes[ni];
        int any = 0;
        for (int k = 0; k < n->n_out; k++) any |= n->out[k] >= 0 && needed[n->out[k]];
        if (!any || foldable[ni]) continue; /* dead (-1) or folded (1) */
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) needed[n->in[k]] = 1;
    }

    /* Schedule needed non-folded nodes; decide views; record liveness. */
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const ot_node *n = &g->nodes[ni];
        int any = 0;
        for (int k = 0; k < n->n_out; k++) any |= n->out[k] >= 0 && needed[n->out[k]];
        if (!any || foldable[ni]) {
            for (int k = 0; k < n->n_out; k++)
                if (n->out[k] >= 0 && foldable[ni] != 1) p->vals[n->out[k]].kind = OT_VAL_UNUSED;
            continue;
        }
        int s = p->n_steps++;
        ot_plan_step *step = &p->steps[s];
        step->node = ni;
        step->opset = (int)ot_graph_opset(g, n->domain);
        step->def = ot_op_find(n->domain, n->op_type, step->opset, NULL);
        step->attr = p->attrs[ni];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) note_use(p, n->in[k], s);
        step->view = (step->def->flags & OT_OP_VIEW) && n->n_in > 0 && n->in[0] >= 0 && n->out[0] >= 0;
        for (int k = 1; k < n->n_out; k++) step->view &= n->out[k] < 0 || !needed[n->out[k]];
        for (int k = 0; k < n->n_out; k++) {
            int v = n->out[k];
            if (v < 0) continue;
            p->vals[v].def = p->vals[v].last = s;
            if (k == 0 && step->view) {
                int root = n->in[0];
                while (p->vals[root].kind == OT_VAL_ALIAS) root = p->vals[root].root;
                p->vals[v].kind = OT_VAL_ALIAS;
                p->vals[v].root = root;
                p->stats.n_views++;
            }
        }
    }
    p->stats.n_steps = p->n_steps;
    /* Graph outputs stay alive to the end so the caller can read them. */
    for (int i = 0; i < g->n_outputs; i++) note_use(p, g->outputs[i], p->n_steps);
    if ((st = ot_memplan(p)) != OT_OK) goto fail;
    if (with_arena) p->arena = aligned_alloc(64, p->stats.arena_bytes ? (p->stats.arena_bytes + 63) / 64 * 64 : 64);
    if (with_arena && !p->arena) {
        st = ot_errorf(OT_E_NOMEM, "out of memory allocating the %zu-byte activation arena", p->stats.arena_bytes);
        goto fail;
    }
    const char *prof = getenv("OT_PROFILE");
    p->profile = prof && prof[0] && strcmp(prof, "0") != 0;
    if (p->profile && !(p->op_seconds = calloc((size_t)p->n_steps + 1, sizeof(double)))) {
        st = ot_errorf(OT_E_NOMEM, "out of memory");
        goto fail;
    }
    free(foldable);
    free(needed);
    *out = p;
    return OT_OK;
fail:
    free(foldable);
    free(needed);
    ot_plan_free(p);
    return st;
}

void ot_plan_free(ot_plan *p) {
    if (!p) return;
    for (int v = 0; p->vals && v < p->n_values; v++) ot_tensor_free(p->vals[v].folded);
    for (int n = 0; p->attrs && n < p->n_nodes; n++) {
        if (!p->attrs[n]) continue;
        if (p->attr_defs[n]->release) p->attr_defs[n]->release(p->attrs[n]);
        free(p->attrs[n]);
    }
    free(p->attr_defs);
    free(p->vals);
    free(p->value_bound);
    free(p->attrs);
    free(p->steps);
    free(p->arena);
    free(p->op_seconds);
    free(p);
}

void ot_plan_get_stats(const ot_plan *p, ot_plan_stats *s) { *s = p->stats; }

void ot_plan_value_meta(const ot_plan *p, ot_tensor *meta) {
    for (int v = 0; v < p->n_values; v++) {
        meta[v] = p->vals[v].t;
        meta[v].data = NULL;
        meta[v].owned = 0;
        if (meta[v].dtype == OT_UNDEFINED) meta[v].ndim = -1; /* never inferred */
    }
}
