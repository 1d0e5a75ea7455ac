/* onnx_reader.c — ONNX ModelProto -> graph IR.
 *
 * Owns the translation of the protobuf messages (parsed by protobuf-c from our own
 * onnx.proto) into ot_graph values, nodes and attributes, and the checks that make a file
 * acceptable: IR version, opsets, tensor types, graph inputs. Tensor payloads are handled
 * in onnx_tensor.c. Nothing here runs ops or infers shapes (runtime/ does). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "importer/onnx_model.h"
#include "onnxtune/importer.h"

static ot_status read_value_info(ot_graph *g, const Onnx__ValueInfoProto *vi, const char *role, int *idx) {
    const char *name = vi->name ? vi->name : "";
    if (!name[0]) return ot_errorf(OT_E_FORMAT, "a graph %s has no name", role);
    OT_TRY(ot_graph_value(g, name, idx));
    ot_value *v = &g->values[*idx];
    if (!vi->type) return OT_OK; /* untyped: inferred later */
    if (vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return ot_errorf(OT_E_UNSUPPORTED, "graph %s '%s' is not a tensor (sequences, maps and optionals are not supported)",
                         role, name);
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    if (tt->has_elem_type) v->dtype = (ot_dtype)tt->elem_type;
    if (v->dtype != OT_UNDEFINED && ot_dtype_size(v->dtype) == 0)
        return ot_errorf(OT_E_UNSUPPORTED, "graph %s '%s' has unsupported dtype %s", role, name, ot_dtype_name(v->dtype));
    if (!tt->shape) return OT_OK; /* unknown rank */
    if (tt->shape->n_dim > OT_MAX_DIMS)
        return ot_errorf(OT_E_UNSUPPORTED, "graph %s '%s' has rank %zu (at most %d)", role, name, tt->shape->n_dim, OT_MAX_DIMS);
    v->ndim = (int)tt->shape->n_dim;
    for (int d = 0; d < v->ndim; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
        v->dims[d] = -1;
        free(v->dim_param[d]); /* a value declared twice (input and output): last one wins */
        v->dim_param[d] = NULL;
        if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dim->dim_value >= 0) {
            v->dims[d] = dim->dim_value;
        } else if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && dim->dim_param &&
                   dim->dim_param[0]) {
            v->dim_param[d] = strdup(dim->dim_param);
            if (!v->dim_param[d]) return ot_errorf(OT_E_NOMEM, "out of memory");
        }
    }
    return OT_OK;
}

static ot_status read_attr(ot_onnx_model *m, const ot_node *n, const Onnx__AttributeProto *ap, ot_attr *a) {
    a->name = strdup(ap->name ? ap->name : "");
    if (!a->name) return ot_errorf(OT_E_NOMEM, "out of memory");
    if (ap->ref_attr_name && ap->ref_attr_name[0])
        return ot_errorf(OT_E_UNSUPPORTED, "%s node '%s': attribute '%s' refers to a function attribute", n->op_type, n->name,
                         a->name);
    int type = ap->has_type ? (int)ap->type : 0;
    if (type == 0) { /* IR < 3 files leave type unset: infer it from the field present */
        if (ap->has_f) type = OT_ATTR_FLOAT;
        else if (ap->has_i) type = OT_ATTR_INT;
        else if (ap->has_s) type = OT_ATTR_STRING;
        else if (ap->t) type = OT_ATTR_TENSOR;
        else if (ap->g) type = OT_ATTR_GRAPH;
        else if (ap->n_floats) type = OT_ATTR_FLOATS;
        else if (ap->n_ints) type = OT_ATTR_INTS;
        else if (ap->n_strings) type = OT_ATTR_STRINGS;
    }
    a->type = (ot_attr_type)type;
    switch (type) {
    case OT_ATTR_FLOAT: a->f = ap->f; break;
    case OT_ATTR_INT: a->i = ap->i; break;
    case OT_ATTR_STRING:
        a->s = strndup(ap->s.data ? (const char *)ap->s.data : "", ap->s.len);
        if (!a->s) return ot_errorf(OT_E_NOMEM, "out of memory");
        break;
    case OT_ATTR_TENSOR: {
        if (!ap->t) return ot_errorf(OT_E_FORMAT, "%s node '%s': tensor attribute '%s' has no tensor", n->op_type, n->name, a->name);
        char what[512];
        snprintf(what, sizeof what, "%s node '%s' attribute '%s'", n->op_type, n->name, a->name);
        OT_TRY(ot_onnx_tensor(m, ap->t, what, &a->t));
        break;
    }
    case OT_ATTR_FLOATS:
        a->n = (int)ap->n_floats;
        a->floats = malloc((ap->n_floats ? ap->n_floats : 1) * sizeof(float));
        if (!a->floats) return ot_errorf(OT_E_NOMEM, "out of memory");
        if (ap->n_floats) memcpy(a->floats, ap->floats, ap->n_floats * sizeof(float));
        break;
    case OT_ATTR_INTS:
        a->n = (int)ap->n_ints;
        a->ints = malloc((ap->n_ints ? ap->n_ints : 1) * sizeof(int64_t));
        if (!a->ints) return ot_errorf(OT_E_NOMEM, "out of memory");
        if (ap->n_ints) memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
        break;
    case OT_ATTR_STRINGS:
        a->strings = calloc(ap->n_strings ? ap->n_strings : 1, sizeof(char *));
        if (!a->strings) return ot_errorf(OT_E_NOMEM, "out of memory");
        for (size_t i = 0; i < ap->n_strings; i++, a->n++) {
            a->strings[i] = strndup(ap->strings[i].data ? (const char *)ap->strings[i].data : "", ap->strings[i].len);
            if (!a->strings[i]) return ot_errorf(OT_E_NOMEM, "out of memory");
        }
        break;
    default:
        /* Subgraphs (If/Loop/Scan) and sparse/type attributes: kept by name only, so an op
         * that needs them fails at plan time naming the node instead of the import. */
        break;
    }
    return OT_OK;
}

static ot_status read_node(ot_onnx_model *m, ot_graph *g, const Onnx__NodeProto *np) {
    int in[256], out[256];
    if (np->n_input > 256 || np->n_output > 256)
        return ot_errorf(OT_E_UNSUPPORTED, "%s node '%s' has more than 256 inputs or outputs", np->op_type ? np->op_type : "?",
                         np->name ? np->name : "");
    if (!np->op_type || !np->op_type[0]) return ot_errorf(OT_E_FORMAT, "node '%s' has no op_type", np->name ? np->name : "");
    for (size_t i = 0; i < np->n_input; i++) {
        in[i] = -1;
        if (np->input[i][0]) OT_TRY(ot_graph_value(g, np->input[i], &in[i])); /* "" = omitted optional */
    }
    for (size_t i = 0; i < np->n_output; i++) {
        out[i] = -1;
        if (np->output[i][0]) OT_TRY(ot_graph_value(g, np->output[i], &out[i]));
    }
    int idx;
    OT_TRY(ot_graph_add_node(g, np->op_type, np->domain ? np->domain : "", np->name ? np->name : "", in, (int)np->n_input, out,
                             (int)np->n_output, &idx));
    ot_node *n = &g->nodes[idx];
    if (np->n_attribute) {
        n->attrs = calloc(np->n_attribute, sizeof(ot_attr));
        if (!n->attrs) return ot_errorf(OT_E_NOMEM, "out of memory");
        for (size_t i = 0; i < np->n_attribute; i++) {
            n->n_attrs++;
            OT_TRY(read_attr(m, n, np->attribute[i], &n->attrs[i]));
        }
    }
    return OT_OK;
}

static ot_status check_opsets(ot_graph *g, const Onnx__ModelProto *mp) {
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        OT_TRY(ot_graph_add_opset(g, o->domain ? o->domain : "", o->has_version ? o->version : 0));
    }
    int64_t v = ot_graph_opset(g, "");
    if (v == 0) return ot_errorf(OT_E_FORMAT, "the model imports no default-domain (ai.onnx) opset");
    if (v < OT_ONNX_MIN_OPSET || v > OT_ONNX_MAX_OPSET)
        return ot_errorf(OT_E_UNSUPPORTED, "the model uses ai.onnx opset %" PRId64 "; onnxtune supports opsets %d through %d "
                         "(convert it with onnx.version_converter)", v, OT_ONNX_MIN_OPSET, OT_ONNX_MAX_OPSET);
    return OT_OK;
}

static ot_status build_graph(ot_onnx_model *m, ot_graph *g) {
    const Onnx__ModelProto *mp = m->proto;
    if (!mp->has_ir_version || mp->ir_version < OT_ONNX_MIN_IR)
        return ot_errorf(OT_E_UNSUPPORTED, "IR version %" PRId64 " is not supported (onnxtune reads IR %d and later)",
                         mp->has_ir_version ? mp->ir_version : 0, OT_ONNX_MIN_IR);
    g->ir_version = mp->ir_version;
    const Onnx__GraphProto *gp = mp->graph;
    if (!gp) return ot_errorf(OT_E_FORMAT, "the model has no graph");
    OT_TRY(check_opsets(g, mp));
    g->name = strdup(gp->name ? gp->name : "");
    if (!g->name) return ot_errorf(OT_E_NOMEM, "out of memory");
    if (gp->n_sparse_initializer) return ot_errorf(OT_E_UNSUPPORTED, "sparse initializers are not supported");

    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp->name || !tp->name[0]) return ot_errorf(OT_E_FORMAT, "initializer #%zu has no name", i);
        char what[512];
        snprintf(what, sizeof what, "initializer '%s'", tp->name);
        int idx;
        OT_TRY(ot_graph_value(g, tp->name, &idx));
        if (g->values[idx].init) return ot_errorf(OT_E_FORMAT, "initializer '%s' appears twice", tp->name);
        OT_TRY(ot_onnx_tensor(m, tp, what, &g->values[idx].init));
        ot_value *v = &g->values[idx];
        v->dtype = v->init->dtype;
        v->ndim = v->init->ndim;
        memcpy(v->dims, v->init->dims, sizeof v->dims);
    }
    g->inputs = malloc((gp->n_input ? gp->n_input : 1) * sizeof(int));
    g->outputs = malloc((gp->n_output ? gp->n_output : 1) * sizeof(int));
    if (!g->inputs || !g->outputs) return ot_errorf(OT_E_NOMEM, "out of memory");
    for (size_t i = 0; i < gp->n_input; i++) {
        int idx;
        int had_init = gp->input[i]->name && ot_graph_find(g, gp->input[i]->name) >= 0 &&
                       g->values[ot_graph_find(g, gp->input[i]->name)].init;
        if (had_init) continue; /* an input with an initializer is a constant with a default */
        OT_TRY(read_value_info(g, gp->input[i], "input", &idx));
        if (g->values[idx].is_input) return ot_errorf(OT_E_FORMAT, "graph input '%s' is declared twice", g->values[idx].name);
        if (g->values[idx].dtype == OT_UNDEFINED)
            return ot_errorf(OT_E_FORMAT, "graph input '%s' has no element type", g->values[idx].name);
        g->values[idx].is_input = 1;
        g->inputs[g->n_inputs++] = idx;
    }
    for (size_t i = 0; i < gp->n_node; i++) OT_TRY(read_node(m, g, gp->node[i]));
    for (size_t i = 0; i < gp->n_output; i++) {
        int idx;
        OT_TRY(read_value_info(g, gp->output[i], "output", &idx));
        g->values[idx].is_output = 1;
        g->outputs[g->n_outputs++] = idx;
    }
    if (g->n_outputs == 0) return ot_errorf(OT_E_FORMAT, "the graph has no outputs");
    return ot_graph_toposort(g);
}

static ot_status load(ot_onnx_model *m, const void *data, size_t size, ot_graph **out) {
    *out = NULL;
    m->proto = onnx__model_proto__unpack(NULL, size, data);
    if (!m->proto) {
        ot_status st = ot_errorf(OT_E_FORMAT, "'%s' is not a valid ONNX model (protobuf parse failed: truncated or not ONNX)",
                                 m->path);
        ot_onnx_model_free(m);
        return st;
    }
    ot_graph *g;
    ot_status st = ot_graph_new(&g);
    if (st != OT_OK) {
        ot_onnx_model_free(m);
        return st;
    }
    g->backing = m;
    g->backing_free = ot_onnx_model_free;
    st = build_graph(m, g);
    if (st != OT_OK) {
        ot_error_wrap(st, "'%s': ", m->path);
        ot_graph_free(g);
        return st;
    }
    *out = g;
    return OT_OK;
}

ot_status ot_onnx_load(const char *path, ot_graph **out) {
    *out = NULL;
    ot_mapped_file f;
    OT_TRY(ot_mapped_open(&f, path));
    if (f.size == 0) {
        ot_mapped_close(&f);
        return ot_errorf(OT_E_FORMAT, "'%s' is empty, not an ONNX model", path);
    }
    ot_onnx_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path)) || !(m->dir = ot_dirname_dup(path))) {
        if (m) free(m->path);
        free(m);
        ot_mapped_close(&f);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    /* protobuf-c copies what it keeps (raw_data included), so the map can go right after:
     * inline weights end up in memory once, external data stays mmapped. */
    ot_status st = load(m, f.data, f.size, out);
    ot_mapped_close(&f);
    return st;
}

ot_status ot_onnx_load_buffer(const void *data, size_t size, const char *name, ot_graph **out) {
    *out = NULL;
    ot_onnx_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(name))) {
        free(m);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    return load(m, data, size, out);
}
