/* autocast.c — see autocast.h. The node order is rebuilt as: for each original node, the
 * Casts feeding it, the node, the Casts after it; the min-index toposort then keeps that
 * order, so every f32 temporary lives exactly one step. */
#include "runtime/autocast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lowp.h"
#include "runtime/plan.h"

typedef struct {
    ot_graph *g;
    ot_plan *p;          /* the f32 plan: shapes, kinds, folded constants, parsed attributes */
    int n_planned;       /* values the plan knows */
    ot_dtype lowp;
    ot_dtype *dt;        /* current dtype of every value */
    const unsigned char *policy; /* OT_AUTOCAST_* per planned value */
    char *live;          /* per node: reachable from a graph output (the nodes a plan infers) */
    int cap_dt;
    int *narrowed;       /* per planned value: its 16-bit copy made by a Cast, -1 if none yet */
    int *order, n_order, cap_order;
    int orig_in[OT_MAX_NODE_IO]; /* wrap: the node's inputs before it was rewired */
    ot_autocast_stats *st;
} autocast;

static ot_status push_order(autocast *a, int node) {
    if (a->n_order == a->cap_order) {
        int cap = a->cap_order ? 2 * a->cap_order : 256;
        int *o = realloc(a->order, (size_t)cap * sizeof *o);
        if (!o) return ot_errorf(OT_E_NOMEM, "out of memory");
        a->order = o, a->cap_order = cap;
    }
    a->order[a->n_order++] = node;
    return OT_OK;
}

/* A new value `name` of dtype dt (the name must be free). */
static ot_status new_value(autocast *a, const char *name, ot_dtype dt, int *v) {
    if (ot_graph_find(a->g, name) >= 0) return ot_errorf(OT_E_INTERNAL, "autocast: value name '%s' is taken", name);
    OT_TRY(ot_graph_value(a->g, name, v));
    if (*v >= a->cap_dt) {
        int cap = 2 * (*v + 1);
        ot_dtype *d = realloc(a->dt, (size_t)cap * sizeof *d);
        if (!d) return ot_errorf(OT_E_NOMEM, "out of memory");
        a->dt = d, a->cap_dt = cap;
    }
    a->dt[*v] = dt;
    return OT_OK;
}

static ot_status add_cast(autocast *a, int src, int dst, ot_dtype to, const char *name) {
    int idx;
    OT_TRY(ot_graph_add_node(a->g, "Cast", "", name, &src, 1, &dst, 1, &idx));
    ot_node *n = &a->g->nodes[idx];
    if (!(n->attrs = calloc(1, sizeof *n->attrs)) || !(n->attrs[0].name = strdup("to")))
        return ot_errorf(OT_E_NOMEM, "out of memory");
    n->n_attrs = 1;
    n->attrs[0].type = OT_ATTR_INT;
    n->attrs[0].i = to;
    a->st->n_casts++;
    return push_order(a, idx);
}

static int planned_numel_gt1(const autocast *a, int v) {
    return v < a->n_planned && ot_tensor_numel(&a->p->vals[v].t) > 1;
}

/* May input value v be narrowed to 16 bits so that its node runs natively? Constants the type
 * represents exactly, and float graph inputs (data the user feeds). */
static int narrowable(const autocast *a, int v) {
    if (v < 0 || v >= a->n_planned || a->dt[v] != OT_F32) return 0;
    const ot_plan_val *pv = &a->p->vals[v];
    if (pv->kind == OT_VAL_INPUT) return a->policy[v] != OT_AUTOCAST_KEEP_F32;
    if (pv->kind != OT_VAL_CONST || !pv->t.data) return 0;
    return ot_f32_exact_in(pv->t.data, (size_t)ot_tensor_numel(&pv->t), a->lowp);
}

/* Runs the node's infer with the given input dtypes; on success out_dt[k] holds the output
 * dtypes. Constant data is passed only for inputs whose dtype is unchanged. */
static int try_infer(autocast *a, int ni, const ot_op_def *def, const ot_dtype *in_dt, ot_dtype *out_dt) {
    const ot_node *n = &a->g->nodes[ni];
    ot_tensor in_t[OT_MAX_NODE_IO], out_t[OT_MAX_NODE_IO];
    const ot_tensor *in[OT_MAX_NODE_IO];
    ot_tensor *out[OT_MAX_NODE_IO];
    for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        in[k] = NULL;
        if (v < 0) continue;
        in_t[k] = a->p->vals[v].t;
        in_t[k].owned = 0;
        if (a->p->vals[v].kind != OT_VAL_CONST || in_dt[k] != a->p->vals[v].t.dtype) in_t[k].data = NULL;
        in_t[k].dtype = in_dt[k];
        in[k] = &in_t[k];
    }
    for (int k = 0; k < n->n_out; k++) {
        memset(&out_t[k], 0, sizeof out_t[k]);
        out[k] = n->out[k] >= 0 ? &out_t[k] : NULL;
    }
    ot_op_ctx c = {a->g, n, a->p->attrs[ni], (int)ot_graph_opset(a->g, n->domain), n->n_in, n->n_out, in, out};
    if (def->infer(&c) != OT_OK) return 0;
    for (int k = 0; k < n->n_out; k++) out_dt[k] = out[k] ? out_t[k].dtype : OT_UNDEFINED;
    return 1;
}

static void set_outputs(autocast *a, int ni, const ot_dtype *out_dt) {
    const ot_node *n = &a->g->nodes[ni];
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0) a->dt[n->out[k]] = out_dt[k];
}

/* Runs node ni in f32 between Casts. */
static ot_status wrap(autocast *a, int ni) {
    char name[1200], vname[1200];
    for (int k = 0; k < a->g->nodes[ni].n_in; k++) a->orig_in[k] = a->g->nodes[ni].in[k];
    const char *label = a->g->nodes[ni].name && a->g->nodes[ni].name[0] ? a->g->nodes[ni].name : a->g->nodes[ni].op_type;
    for (int k = 0; k < a->g->nodes[ni].n_in; k++) {
        int v = a->g->nodes[ni].in[k], f, seen = -1;
        if (v < 0 || !ot_dtype_is_lowp(a->dt[v])) continue;
        for (int j = 0; j < k && seen < 0; j++) /* Max(h, h): one f32 copy serves both */
            if (a->g->nodes[ni].in[j] >= 0 && a->orig_in[j] == v) seen = a->g->nodes[ni].in[j];
        a->orig_in[k] = v;
        if (seen >= 0) {
            a->g->nodes[ni].in[k] = seen;
            continue;
        }
        snprintf(vname, sizeof vname, "%s/f32@%d", a->g->values[v].name, ni);
        snprintf(name, sizeof name, "%s/autocast/in%d", label, k);
        OT_TRY(new_value(a, vname, OT_F32, &f));
        OT_TRY(add_cast(a, v, f, OT_F32, name));
        a->g->nodes[ni].in[k] = f;
    }
    OT_TRY(push_order(a, ni));
    for (int k = 0; k < a->g->nodes[ni].n_out; k++) {
        int v = a->g->nodes[ni].out[k], f;
        if (v < 0) continue;
        a->dt[v] = a->p->vals[v].t.dtype;
        if (a->dt[v] != OT_F32 || !planned_numel_gt1(a, v)) continue; /* scalars (a loss) stay f32 */
        snprintf(vname, sizeof vname, "%s/f32", a->g->values[v].name);
        snprintf(name, sizeof name, "%s/autocast/out%d", label, k);
        OT_TRY(new_value(a, vname, OT_F32, &f));
        a->g->nodes[ni].out[k] = f;
        OT_TRY(add_cast(a, f, v, a->lowp, name));
        a->dt[v] = a->lowp;
    }
    a->st->n_wrapped++;
    if (getenv("OT_AUTOCAST_TRACE")) fprintf(stderr, "autocast: %s runs in f32\n", ot_node_label(a->g, &a->g->nodes[ni]));
    return OT_OK;
}

static ot_status visit(autocast *a, int ni) {
    const ot_node *n = &a->g->nodes[ni];
    int live = a->live[ni], has_lowp = 0;
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && ot_dtype_is_lowp(a->dt[n->in[k]])) has_lowp = 1;
    int known;
    const ot_op_def *def = ot_op_find(n->domain, n->op_type, (int)ot_graph_opset(a->g, n->domain), &known);
    if (!live || !def || !has_lowp) { /* dead, unknown (the plan reports it) or all-f32: as it is */
        for (int k = 0; k < n->n_out; k++)
            if (live && n->out[k] >= 0) a->dt[n->out[k]] = a->p->vals[n->out[k]].t.dtype;
        return push_order(a, ni);
    }
    if (n->n_in > OT_MAX_NODE_IO || n->n_out > OT_MAX_NODE_IO)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: too many inputs or outputs", ot_node_label(a->g, n));
    ot_dtype in_dt[OT_MAX_NODE_IO], out_dt[OT_MAX_NODE_IO];
    for (int k = 0; k < n->n_in; k++) in_dt[k] = n->in[k] >= 0 ? a->dt[n->in[k]] : OT_UNDEFINED;
    if (try_infer(a, ni, def, in_dt, out_dt)) {
        set_outputs(a, ni, out_dt);
        a->st->n_native++;
        return push_order(a, ni);
    }
    int any = 0;
    for (int k = 0; k < n->n_in; k++)
        if (narrowable(a, n->in[k])) in_dt[k] = a->lowp, any = 1;
    if (any && try_infer(a, ni, def, in_dt, out_dt)) {
        for (int k = 0; k < a->g->nodes[ni].n_in; k++) {
            int v = a->g->nodes[ni].in[k];
            if (v < 0 || in_dt[k] != a->lowp || a->dt[v] == a->lowp) continue;
            if (a->narrowed[v] < 0) {
                char name[1200];
                int c;
                snprintf(name, sizeof name, "%s/%s", a->g->values[v].name, a->lowp == OT_BF16 ? "bf16" : "f16");
                OT_TRY(new_value(a, name, a->lowp, &c));
                OT_TRY(add_cast(a, v, c, a->lowp, name));
                a->narrowed[v] = c;
            }
            a->g->nodes[ni].in[k] = a->narrowed[v];
        }
        set_outputs(a, ni, out_dt);
        a->st->n_native++;
        return push_order(a, ni);
    }
    /* A mixed-precision variant of the op in onnxtune's domain (Mul of a 16-bit tensor by an
     * f32 constant): the node switches to it. */
    const ot_op_def *mixed = ot_op_find("ai.onnxtune", n->op_type, 1, &known);
    for (int k = 0; k < n->n_in; k++) in_dt[k] = n->in[k] >= 0 ? a->dt[n->in[k]] : OT_UNDEFINED;
    if (mixed && !n->domain[0] && !mixed->attr_size && !def->attr_size && try_infer(a, ni, mixed, in_dt, out_dt)) {
        if (!ot_graph_opset(a->g, "ai.onnxtune")) OT_TRY(ot_graph_add_opset(a->g, "ai.onnxtune", 1));
        char *dom = strdup("ai.onnxtune");
        if (!dom) return ot_errorf(OT_E_NOMEM, "out of memory");
        free(a->g->nodes[ni].domain);
        a->g->nodes[ni].domain = dom;
        set_outputs(a, ni, out_dt);
        a->st->n_native++;
        return push_order(a, ni);
    }
    return wrap(a, ni);
}

/* Nodes reachable backwards from the graph outputs: what ot_plan_create infers, including a
 * node whose only reader is a Shape the plan folded (its outputs are UNUSED values). */
static ot_status mark_live(autocast *a) {
    const ot_graph *g = a->g;
    char *need = calloc((size_t)g->n_values + 1, 1);
    if (!need || !(a->live = calloc((size_t)g->n_nodes + 1, 1))) {
        free(need);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    for (int o = 0; o < g->n_outputs; o++) need[g->outputs[o]] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--) { /* the graph is in topological order */
        const ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_out && !a->live[i]; k++) a->live[i] = n->out[k] >= 0 && need[n->out[k]];
        for (int k = 0; a->live[i] && k < n->n_in; k++)
            if (n->in[k] >= 0) need[n->in[k]] = 1;
    }
    free(need);
    return OT_OK;
}

static ot_status convert_weights(autocast *a, const unsigned char *to_lowp, int shapes_only) {
    ot_graph *g = a->g;
    for (int v = 0; v < a->n_planned; v++) {
        ot_tensor *w = g->values[v].init;
        if (to_lowp[v] != OT_AUTOCAST_WEIGHT || !w || w->dtype != OT_F32) continue;
        ot_tensor *t;
        OT_TRY(ot_tensor_new(&t, a->lowp, w->ndim, w->dims));
        if (!shapes_only) ot_f32_to_lowp_n(t->data, a->lowp, w->data, (size_t)ot_tensor_numel(w));
        a->st->weight_bytes_saved += ot_tensor_nbytes(w) - ot_tensor_nbytes(t);
        ot_tensor_free(w);
        g->values[v].init = t;
        g->values[v].dtype = a->lowp;
        a->dt[v] = a->lowp;
        a->st->n_weights++;
    }
    return OT_OK;
}

ot_status ot_autocast(ot_graph *g, const ot_tensor *const *inputs, ot_dtype lowp, const unsigned char *policy,
                      unsigned flags, ot_autocast_stats *stats) {
    if (!ot_dtype_is_lowp(lowp)) return ot_errorf(OT_E_INVALID, "autocast: %s is not a 16-bit float type", ot_dtype_name(lowp));
    ot_autocast_stats local;
    autocast a = {0};
    a.g = g;
    a.lowp = lowp;
    a.policy = policy;
    a.st = stats ? stats : &local;
    memset(a.st, 0, sizeof *a.st);
    OT_TRY(ot_plan_create_meta(g, inputs, &a.p)); /* no f32 arena: only shapes and constants are read */
    ot_status st = OT_OK;
    int n_nodes = g->n_nodes;
    a.n_planned = g->n_values;
    a.cap_dt = 2 * g->n_values + 16;
    a.dt = malloc((size_t)a.cap_dt * sizeof *a.dt);
    a.narrowed = malloc((size_t)(a.n_planned + 1) * sizeof *a.narrowed);
    if (!a.dt || !a.narrowed) st = ot_errorf(OT_E_NOMEM, "out of memory");
    for (int v = 0; st == OT_OK && v < a.n_planned; v++) {
        a.narrowed[v] = -1;
        a.dt[v] = a.p->vals[v].kind != OT_VAL_UNUSED ? a.p->vals[v].t.dtype
                  : g->values[v].init                ? g->values[v].init->dtype
                                                     : g->values[v].dtype;
    }
    if (st == OT_OK) st = mark_live(&a);
    if (st == OT_OK) st = convert_weights(&a, policy, (flags & OT_AUTOCAST_SHAPES_ONLY) != 0);
    for (int i = 0; st == OT_OK && i < n_nodes; i++) st = visit(&a, i);
    if (st == OT_OK) { /* nodes in the new order; anything not visited (none expected) keeps its place after */
        ot_node *nodes = malloc((size_t)(g->n_nodes ? g->n_nodes : 1) * sizeof *nodes);
        char *seen = calloc((size_t)g->n_nodes + 1, 1);
        if (!nodes || !seen) {
            st = ot_errorf(OT_E_NOMEM, "out of memory");
        } else {
            int k = 0;
            for (int i = 0; i < a.n_order; i++) nodes[k++] = g->nodes[a.order[i]], seen[a.order[i]] = 1;
            for (int i = 0; i < g->n_nodes; i++)
                if (!seen[i]) nodes[k++] = g->nodes[i];
            memcpy(g->nodes, nodes, (size_t)g->n_nodes * sizeof *nodes);
        }
        free(nodes);
        free(seen);
    }
    for (int o = 0; st == OT_OK && o < g->n_outputs; o++) {
        ot_value *v = &g->values[g->outputs[o]];
        if (v->dtype != OT_UNDEFINED && ot_dtype_is_float(v->dtype)) v->dtype = a.dt[g->outputs[o]];
    }
    ot_plan_free(a.p);
    free(a.dt);
    free(a.narrowed);
    free(a.live);
    free(a.order);
    if (st == OT_OK) st = ot_graph_toposort(g);
    return st;
}
