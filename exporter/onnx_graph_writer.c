/* onnx_graph_writer.c — writes a graph IR as a new ONNX model (ot_export_graph_onnx).
 *
 * For models that have no source .onnx (built from a Hugging Face config.json), the graph
 * itself is the model: this builds a ModelProto (protobuf-c, our onnx.proto) from it — IR
 * version 8 or what the opsets need, the graph's opset imports, inputs and outputs with their
 * declared dtype and shape (symbolic dims as dim_param; an output whose dtype the graph does
 * not declare gets the one its producing ops imply), nodes with every attribute kind the IR
 * holds, initializers as raw_data in their own dtype with `updates` replacing named ones —
 * and writes it atomically (onnx_write_util.c). A model that would pack to more than the
 * inline limit (protobuf's 2 GB) moves every initializer of 1 KB or more to "<dst>.data".
 *
 * Invariants: the proto borrows every string, shape array and payload from the graph and the
 * updates (only what needs converting is copied); all proto structs come from the writer's
 * own allocation list and are freed with it, never through protobuf-c. Only the forward
 * model is exported: onnxtune-internal nodes (domain "ai.onnxtune": loss heads, training
 * dropout) are refused naming the node, and so are attributes the IR keeps by name only
 * (subgraphs, sparse tensors), which could not be written faithfully. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporter/onnx_graph_writer.h"
#include "exporter/onnx_write_util.h"
#include "exporter/onnx_writer.h"

#define INTERNAL_DOMAIN "ai.onnxtune"

typedef struct gw {
    const ot_graph *g;
    void **allocs; /* every proto struct and array this writer made */
    int n_allocs, cap_allocs;
    const void **data; /* per value: the payload to write (an update's bytes), or NULL */
    size_t *nbytes;
    Onnx__TensorProto **inits;
    int n_inits;
    ot_onnx_ext_file ext;
} gw;

static void *gw_alloc(gw *w, size_t n) {
    if (w->n_allocs == w->cap_allocs) {
        int cap = w->cap_allocs ? 2 * w->cap_allocs : 256;
        void **a = realloc(w->allocs, (size_t)cap * sizeof *a);
        if (!a) return NULL;
        w->allocs = a;
        w->cap_allocs = cap;
    }
    void *p = calloc(1, n ? n : 1);
    if (p) w->allocs[w->n_allocs++] = p;
    return p;
}

static void gw_free(gw *w) {
    for (int i = 0; i < w->n_allocs; i++) free(w->allocs[i]);
    free(w->allocs);
    free(w->data);
    free(w->nbytes);
    free(w->inits);
    ot_onnx_ext_free(&w->ext);
}

#define NOMEM() ot_errorf(OT_E_NOMEM, "out of memory")

/* ---- output dtypes ---- */

static int op_in(const char *op, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(op, *list)) return 1;
    return 0;
}

/* The element type of value v when the graph does not declare it (ONNX requires one on every
 * graph output; a graph built in memory may only know it from the ops): follows the producing
 * nodes back to a typed value. Ops whose output type is not their first input's say so;
 * OT_UNDEFINED when the chain reaches something unknown. */
static ot_dtype infer_dtype(const ot_graph *g, int v) {
    static const char *const to_i64[] = {"Shape", "Size", "ArgMax", "ArgMin", "NonZero", NULL};
    static const char *const to_bool[] = {"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Not",
                                          "And", "Or", "Xor", "IsNaN", "IsInf", NULL};
    for (int steps = 0; v >= 0 && steps <= g->n_nodes; steps++) {
        const ot_value *val = &g->values[v];
        if (val->dtype != OT_UNDEFINED) return val->dtype;
        if (val->init) return val->init->dtype;
        if (val->producer < 0) return OT_UNDEFINED;
        const ot_node *n = &g->nodes[val->producer];
        if (n->domain[0] || n->n_out < 1 || n->out[0] != v) return OT_UNDEFINED;
        const ot_attr *a;
        if (op_in(n->op_type, to_i64)) return OT_I64;
        if (op_in(n->op_type, to_bool)) return OT_BOOL;
        if (!strcmp(n->op_type, "Cast"))
            return (a = ot_node_attr(n, "to")) && a->type == OT_ATTR_INT ? (ot_dtype)a->i : OT_UNDEFINED;
        if (!strcmp(n->op_type, "Constant") || !strcmp(n->op_type, "ConstantOfShape")) {
            if ((a = ot_node_attr(n, "value")) && a->type == OT_ATTR_TENSOR) return a->t->dtype;
            if (ot_node_attr(n, "value_float") || ot_node_attr(n, "value_floats")) return OT_F32;
            if (ot_node_attr(n, "value_int") || ot_node_attr(n, "value_ints")) return OT_I64;
            return !strcmp(n->op_type, "ConstantOfShape") ? OT_F32 : OT_UNDEFINED;
        }
        int from = !strcmp(n->op_type, "Where") ? 1 : !strcmp(n->op_type, "CastLike") ? 1 : 0;
        v = from < n->n_in ? n->in[from] : -1;
    }
    return OT_UNDEFINED;
}

/* ---- checks ---- */

static ot_status check_graph(const ot_graph *g) {
    for (int i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (!strcmp(n->domain, INTERNAL_DOMAIN))
            return ot_errorf(OT_E_UNSUPPORTED,
                             "node '%s' is the onnxtune-internal op %s (domain %s); an ONNX export holds the forward "
                             "model only (no loss heads or training dropout)",
                             ot_node_label(g, n), n->op_type, INTERNAL_DOMAIN);
        for (int k = 0; k < n->n_attrs; k++) {
            ot_attr_type t = n->attrs[k].type;
            if (t != OT_ATTR_FLOAT && t != OT_ATTR_INT && t != OT_ATTR_STRING && t != OT_ATTR_TENSOR && t != OT_ATTR_FLOATS &&
                t != OT_ATTR_INTS && t != OT_ATTR_STRINGS)
                return ot_errorf(OT_E_UNSUPPORTED,
                                 "%s node '%s': attribute '%s' has type %d (subgraph, sparse tensor or type), which the "
                                 "graph IR does not hold and cannot be written",
                                 n->op_type, ot_node_label(g, n), n->attrs[k].name, (int)t);
        }
    }
    if (ot_graph_opset(g, "") == 0) return ot_errorf(OT_E_INVALID, "the graph imports no default-domain (ai.onnx) opset");
    if (g->n_outputs == 0) return ot_errorf(OT_E_INVALID, "the graph has no outputs");
    for (int i = 0; i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i]];
        if (v->dtype == OT_UNDEFINED) return ot_errorf(OT_E_INVALID, "graph input '%s' has no element type", v->name);
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const ot_value *v = &g->values[g->outputs[i]];
        if (infer_dtype(g, g->outputs[i]) == OT_UNDEFINED)
            return ot_errorf(OT_E_INVALID, "graph output '%s' has no element type, and none follows from the nodes producing it",
                             v->name);
    }
    return OT_OK;
}

/* Names every update's value and checks it as ot_export_onnx does: an initializer of the same
 * shape, and the same dtype or float to float (converted once, rounded to nearest even). */
static ot_status resolve_updates(gw *w, const ot_named_tensor *updates, int n) {
    const ot_graph *g = w->g;
    w->data = calloc((size_t)g->n_values + 1, sizeof *w->data);
    w->nbytes = calloc((size_t)g->n_values + 1, sizeof *w->nbytes);
    if (!w->data || !w->nbytes) return NOMEM();
    for (int k = 0; k < n; k++) {
        const char *name = updates[k].name;
        const ot_tensor *t = updates[k].t;
        if (!name || !t) return ot_errorf(OT_E_INVALID, "update #%d has no %s", k, name ? "tensor" : "name");
        int v = ot_graph_find(g, name);
        if (v < 0 || !g->values[v].init)
            return ot_errorf(OT_E_INVALID, "update '%s' names no initializer of the graph", name);
        if (w->data[v]) return ot_errorf(OT_E_INVALID, "update '%s' is given twice", name);
        const ot_tensor *init = g->values[v].init;
        char have[256], want[256];
        if (!ot_shape_equal(t->ndim, t->dims, init->ndim, init->dims))
            return ot_errorf(OT_E_SHAPE, "update '%s' has shape %s but the initializer has shape %s", name,
                             ot_shape_str(have, sizeof have, t->ndim, t->dims),
                             ot_shape_str(want, sizeof want, init->ndim, init->dims));
        if (t->dtype != init->dtype && !(ot_dtype_is_float(t->dtype) && ot_dtype_is_float(init->dtype)))
            return ot_errorf(OT_E_SHAPE, "update '%s' is %s but the initializer is %s (only float types convert)", name,
                             ot_dtype_name(t->dtype), ot_dtype_name(init->dtype));
        size_t nb = (size_t)ot_tensor_numel(t) * ot_dtype_size(init->dtype);
        if (nb && !t->data) return ot_errorf(OT_E_INVALID, "update '%s' has no data", name);
        if (t->dtype == init->dtype) {
            w->data[v] = nb ? t->data : "";
        } else {
            void *c = gw_alloc(w, nb);
            if (!c) return ot_errorf(OT_E_NOMEM, "update '%s': out of memory converting to %s", name, ot_dtype_name(init->dtype));
            ot_convert(c, init->dtype, t->data, t->dtype, (size_t)ot_tensor_numel(t));
            w->data[v] = c;
        }
        w->nbytes[v] = nb;
    }
    return OT_OK;
}

/* ---- proto pieces ---- */

/* A TensorProto viewing `t`'s dims and `data` (nbytes of raw little-endian bytes). */
static ot_status tensor_proto(gw *w, const ot_tensor *t, const char *name, const void *data, size_t nbytes, const char *what,
                              Onnx__TensorProto **out) {
    if (ot_dtype_size(t->dtype) == 0)
        return ot_errorf(OT_E_UNSUPPORTED, "%s has dtype %s, which cannot be written", what, ot_dtype_name(t->dtype));
    Onnx__TensorProto *tp = gw_alloc(w, sizeof *tp);
    if (!tp) return NOMEM();
    onnx__tensor_proto__init(tp);
    tp->name = (char *)name;
    tp->n_dims = (size_t)t->ndim;
    tp->dims = (int64_t *)t->dims;
    tp->has_data_type = 1;
    tp->data_type = (int32_t)t->dtype;
    tp->has_raw_data = 1;
    tp->raw_data.len = nbytes;
    tp->raw_data.data = (uint8_t *)data;
    *out = tp;
    return OT_OK;
}

static ot_status value_info(gw *w, int idx, Onnx__ValueInfoProto **out) {
    const ot_value *v = &w->g->values[idx];
    Onnx__ValueInfoProto *vi = gw_alloc(w, sizeof *vi);
    Onnx__TypeProto *type = gw_alloc(w, sizeof *type);
    Onnx__TypeProto__Tensor *tt = gw_alloc(w, sizeof *tt);
    if (!vi || !type || !tt) return NOMEM();
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(type);
    onnx__type_proto__tensor__init(tt);
    vi->name = v->name;
    vi->type = type;
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = (int32_t)infer_dtype(w->g, idx); /* the declared one when there is one */
    if (v->ndim >= 0) { /* rank unknown: no shape at all */
        Onnx__TensorShapeProto *sh = gw_alloc(w, sizeof *sh);
        Onnx__TensorShapeProto__Dimension **dims = gw_alloc(w, (size_t)v->ndim * sizeof *dims);
        if (!sh || !dims) return NOMEM();
        onnx__tensor_shape_proto__init(sh);
        sh->n_dim = (size_t)v->ndim;
        sh->dim = dims;
        for (int d = 0; d < v->ndim; d++) {
            if (!(dims[d] = gw_alloc(w, sizeof *dims[d]))) return NOMEM();
            onnx__tensor_shape_proto__dimension__init(dims[d]);
            if (v->dims[d] >= 0) {
                dims[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                dims[d]->dim_value = v->dims[d];
            } else if (v->dim_param[d]) {
                dims[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                dims[d]->dim_param = v->dim_param[d];
            } /* else an unknown dim: neither field set, as ONNX allows */
        }
        tt->shape = sh;
    }
    *out = vi;
    return OT_OK;
}

static ot_status attribute(gw *w, const ot_node *n, const ot_attr *a, Onnx__AttributeProto **out) {
    Onnx__AttributeProto *ap = gw_alloc(w, sizeof *ap);
    if (!ap) return NOMEM();
    onnx__attribute_proto__init(ap);
    ap->name = a->name;
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)a->type;
    switch (a->type) {
    case OT_ATTR_FLOAT: ap->has_f = 1, ap->f = a->f; break;
    case OT_ATTR_INT: ap->has_i = 1, ap->i = a->i; break;
    case OT_ATTR_STRING:
        ap->has_s = 1;
        ap->s.len = strlen(a->s);
        ap->s.data = (uint8_t *)a->s;
        break;
    case OT_ATTR_TENSOR: {
        char what[512];
        snprintf(what, sizeof what, "%s node '%s' attribute '%s'", n->op_type, ot_node_label(w->g, n), a->name);
        OT_TRY(tensor_proto(w, a->t, NULL, a->t->data, ot_tensor_nbytes(a->t), what, &ap->t));
        break;
    }
    case OT_ATTR_FLOATS: ap->n_floats = (size_t)a->n, ap->floats = a->floats; break;
    case OT_ATTR_INTS: ap->n_ints = (size_t)a->n, ap->ints = a->ints; break;
    case OT_ATTR_STRINGS:
        if (!(ap->strings = gw_alloc(w, (size_t)a->n * sizeof *ap->strings))) return NOMEM();
        ap->n_strings = (size_t)a->n;
        for (int i = 0; i < a->n; i++) {
            ap->strings[i].len = strlen(a->strings[i]);
            ap->strings[i].data = (uint8_t *)a->strings[i];
        }
        break;
    default: return ot_errorf(OT_E_INTERNAL, "attribute '%s' of unexpected type %d", a->name, (int)a->type);
    }
    *out = ap;
    return OT_OK;
}

static ot_status node_proto(gw *w, const ot_node *n, Onnx__NodeProto **out) {
    const ot_graph *g = w->g;
    Onnx__NodeProto *np = gw_alloc(w, sizeof *np);
    char **in = gw_alloc(w, (size_t)n->n_in * sizeof *in), **outs = gw_alloc(w, (size_t)n->n_out * sizeof *outs);
    Onnx__AttributeProto **attrs = gw_alloc(w, (size_t)n->n_attrs * sizeof *attrs);
    if (!np || !in || !outs || !attrs) return NOMEM();
    onnx__node_proto__init(np);
    for (int i = 0; i < n->n_in; i++) in[i] = n->in[i] >= 0 ? g->values[n->in[i]].name : ""; /* "": omitted optional */
    for (int i = 0; i < n->n_out; i++) outs[i] = n->out[i] >= 0 ? g->values[n->out[i]].name : "";
    for (int i = 0; i < n->n_attrs; i++) OT_TRY(attribute(w, n, &n->attrs[i], &attrs[i]));
    np->n_input = (size_t)n->n_in;
    np->input = in;
    np->n_output = (size_t)n->n_out;
    np->output = outs;
    np->name = n->name[0] ? n->name : NULL;
    np->op_type = n->op_type;
    np->domain = n->domain[0] ? n->domain : NULL;
    np->n_attribute = (size_t)n->n_attrs;
    np->attribute = attrs;
    *out = np;
    return OT_OK;
}

/* The lowest IR version that may import this default-domain opset (onnx's VERSION_TABLE):
 * opset 19 and 20 came with IR 9, opset 21 with IR 10; 8 covers everything older. */
static int64_t ir_for_opset(int64_t opset) { return opset >= 21 ? 10 : opset >= 19 ? 9 : 8; }

static ot_status build(gw *w, Onnx__ModelProto *mp, Onnx__GraphProto *gp) {
    const ot_graph *g = w->g;
    onnx__model_proto__init(mp);
    onnx__graph_proto__init(gp);
    int64_t ir = ir_for_opset(ot_graph_opset(g, ""));
    mp->has_ir_version = 1;
    mp->ir_version = g->ir_version > ir ? g->ir_version : ir;
    mp->producer_name = "onnxtune";
    mp->graph = gp;
    if (!(mp->opset_import = gw_alloc(w, (size_t)g->n_opsets * sizeof *mp->opset_import))) return NOMEM();
    for (int i = 0; i < g->n_opsets; i++) {
        if (!strcmp(g->opsets[i].domain, INTERNAL_DOMAIN)) continue; /* no node uses it (check_graph) */
        Onnx__OperatorSetIdProto *o = gw_alloc(w, sizeof *o);
        if (!o) return NOMEM();
        onnx__operator_set_id_proto__init(o);
        o->domain = g->opsets[i].domain;
        o->has_version = 1;
        o->version = g->opsets[i].version;
        mp->opset_import[mp->n_opset_import++] = o;
    }

    gp->name = g->name && g->name[0] ? g->name : "onnxtune";
    gp->input = gw_alloc(w, (size_t)g->n_inputs * sizeof *gp->input);
    gp->output = gw_alloc(w, (size_t)g->n_outputs * sizeof *gp->output);
    gp->node = gw_alloc(w, (size_t)g->n_nodes * sizeof *gp->node);
    w->inits = calloc((size_t)g->n_values + 1, sizeof *w->inits);
    if (!gp->input || !gp->output || !gp->node || !w->inits) return NOMEM();
    for (int i = 0; i < g->n_inputs; i++) OT_TRY(value_info(w, g->inputs[i], &gp->input[i]));
    gp->n_input = (size_t)g->n_inputs;
    for (int i = 0; i < g->n_outputs; i++) OT_TRY(value_info(w, g->outputs[i], &gp->output[i]));
    gp->n_output = (size_t)g->n_outputs;
    for (int i = 0; i < g->n_nodes; i++) OT_TRY(node_proto(w, &g->nodes[i], &gp->node[i]));
    gp->n_node = (size_t)g->n_nodes;
    for (int v = 0; v < g->n_values; v++) { /* initializers in value order: the source file's order */
        const ot_value *val = &g->values[v];
        if (!val->init) continue;
        const void *data = w->data[v] ? w->data[v] : val->init->data;
        size_t nb = w->data[v] ? w->nbytes[v] : ot_tensor_nbytes(val->init);
        char what[512];
        snprintf(what, sizeof what, "initializer '%s'", val->name);
        OT_TRY(tensor_proto(w, val->init, val->name, data, nb, what, &w->inits[w->n_inits]));
        w->n_inits++;
    }
    gp->initializer = w->inits;
    gp->n_initializer = (size_t)w->n_inits;
    return OT_OK;
}

static ot_status export_graph(gw *w, const ot_named_tensor *updates, int n_updates, const char *dst, uint64_t inline_limit) {
    Onnx__ModelProto mp;
    Onnx__GraphProto gp;
    OT_TRY(check_graph(w->g));
    OT_TRY(ot_onnx_ext_init(&w->ext, dst));
    OT_TRY(resolve_updates(w, updates, n_updates));
    OT_TRY(build(w, &mp, &gp));
    size_t size = protobuf_c_message_get_packed_size(&mp.base);
    if (size > inline_limit) {
        for (int i = 0; i < w->n_inits; i++) {
            Onnx__TensorProto *tp = w->inits[i];
            if (tp->raw_data.len < OT_ONNX_EXTERNAL_MIN_BYTES) continue;
            OT_TRY(ot_onnx_ext_add(&w->ext, tp, tp->raw_data.data, tp->raw_data.len, NULL, 0, NULL));
        }
        size = protobuf_c_message_get_packed_size(&mp.base);
        if (size > inline_limit)
            return ot_errorf(OT_E_UNSUPPORTED,
                             "the model is %zu bytes even with every initializer of %d bytes or more in external data "
                             "(protobuf's limit is %" PRIu64 ")",
                             size, OT_ONNX_EXTERNAL_MIN_BYTES, inline_limit);
    }
    return ot_onnx_write_files(&mp.base, size, dst, &w->ext);
}

ot_status ot_export_graph_onnx_limit(const ot_graph *g, const ot_named_tensor *updates, int n_updates, const char *dst,
                                     uint64_t inline_limit) {
    if (!g || !dst || !dst[0] || n_updates < 0 || (n_updates && !updates))
        return ot_errorf(OT_E_INVALID, "ONNX export: graph, destination and updates are required");
    gw w = {.g = g};
    ot_status st = export_graph(&w, updates, n_updates, dst, inline_limit);
    gw_free(&w);
    if (st != OT_OK) ot_error_wrap(st, "exporting graph '%s' to '%s': ", g->name ? g->name : "", dst);
    return st;
}

ot_status ot_export_graph_onnx(const ot_graph *g, const ot_named_tensor *updates, int n_updates, const char *dst) {
    return ot_export_graph_onnx_limit(g, updates, n_updates, dst, OT_ONNX_INLINE_LIMIT);
}
