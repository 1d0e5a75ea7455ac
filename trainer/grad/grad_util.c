/* grad_util.c — the builder vocabulary of grad.h (fresh names, node and attribute
 * emission, constants) and the builder lookup over the family tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/grad/grad.h"

static const struct {
    const ot_grad_def *defs;
    const int *count;
} families[] = {
    {ot_grads_elementwise, &ot_grads_elementwise_count}, {ot_grads_shape, &ot_grads_shape_count},
    {ot_grads_linalg, &ot_grads_linalg_count},           {ot_grads_nn, &ot_grads_nn_count},
    {ot_grads_reduce, &ot_grads_reduce_count},           {ot_grads_loss, &ot_grads_loss_count},
    {ot_grads_train, &ot_grads_train_count},
};

const ot_grad_def *ot_grad_find(const char *domain, const char *op_type, int opset) {
    if (strcmp(domain, "ai.onnx") == 0) domain = "";
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (int i = 0; i < *families[f].count; i++) {
            const ot_grad_def *d = &families[f].defs[i];
            if (strcmp(d->domain, domain) == 0 && strcmp(d->op_type, op_type) == 0 && opset >= d->since &&
                opset <= d->until)
                return d;
        }
    return NULL;
}

ot_status ot_gb_tmp(ot_grad_ctx *c, const char *tag, int *v) {
    const ot_node *n = ot_gb_fwd(c);
    char base[768], name[800];
    if (n->name[0]) snprintf(base, sizeof base, "%s/grad/%s", n->name, tag);
    else snprintf(base, sizeof base, "%s_%d/grad/%s", n->op_type, c->node, tag);
    snprintf(name, sizeof name, "%s", base);
    while (ot_graph_find(c->g, name) >= 0) snprintf(name, sizeof name, "%s_%d", base, ++c->counter);
    return ot_graph_value(c->g, name, v);
}

ot_status ot_gb_node(ot_grad_ctx *c, const char *op, const char *domain, const int *in, int n_in, const int *out,
                     int n_out, int *idx) {
    char name[800];
    const ot_node *n = ot_gb_fwd(c);
    /* Internal gradient ops are looked up at the graph's opset of their domain: import
     * "ai.onnxtune" version 1 the first time a builder emits one. */
    if (domain && strcmp(domain, OT_DOMAIN) == 0 && ot_graph_opset(c->g, OT_DOMAIN) == 0) {
        OT_TRY(ot_graph_add_opset(c->g, OT_DOMAIN, 1));
        n = ot_gb_fwd(c);
    }
    if (n->name[0]) snprintf(name, sizeof name, "%s/grad/%s", n->name, op);
    else snprintf(name, sizeof name, "%s_%d/grad/%s", n->op_type, c->node, op);
    return ot_graph_add_node(c->g, op, domain, name, in, n_in, out, n_out, idx);
}

ot_status ot_gb_op1(ot_grad_ctx *c, const char *op, const char *domain, const char *tag, const int *in, int n_in,
                    int *out, int *idx) {
    OT_TRY(ot_gb_tmp(c, tag, out));
    return ot_gb_node(c, op, domain, in, n_in, out, 1, idx);
}

static ot_status new_attr(ot_grad_ctx *c, int node, const char *name, ot_attr **a) {
    ot_node *n = &c->g->nodes[node];
    ot_attr *attrs = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof *attrs);
    if (!attrs) return ot_errorf(OT_E_NOMEM, "out of memory");
    n->attrs = attrs;
    *a = &attrs[n->n_attrs];
    memset(*a, 0, sizeof **a);
    (*a)->name = strdup(name);
    if (!(*a)->name) return ot_errorf(OT_E_NOMEM, "out of memory");
    n->n_attrs++;
    return OT_OK;
}

ot_status ot_gb_attr_int(ot_grad_ctx *c, int node, const char *name, int64_t v) {
    ot_attr *a = NULL;
    OT_TRY(new_attr(c, node, name, &a));
    a->type = OT_ATTR_INT;
    a->i = v;
    return OT_OK;
}

ot_status ot_gb_attr_float(ot_grad_ctx *c, int node, const char *name, float v) {
    ot_attr *a = NULL;
    OT_TRY(new_attr(c, node, name, &a));
    a->type = OT_ATTR_FLOAT;
    a->f = v;
    return OT_OK;
}

ot_status ot_gb_attr_ints(ot_grad_ctx *c, int node, const char *name, const int64_t *v, int n) {
    ot_attr *a = NULL;
    OT_TRY(new_attr(c, node, name, &a));
    a->type = OT_ATTR_INTS;
    a->ints = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!a->ints) return ot_errorf(OT_E_NOMEM, "out of memory");
    if (n) memcpy(a->ints, v, (size_t)n * sizeof *v);
    a->n = n;
    return OT_OK;
}

ot_status ot_gb_attr_string(ot_grad_ctx *c, int node, const char *name, const char *v) {
    ot_attr *a = NULL;
    OT_TRY(new_attr(c, node, name, &a));
    a->type = OT_ATTR_STRING;
    a->s = strdup(v);
    return a->s ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
}

ot_status ot_gb_copy_attrs(ot_grad_ctx *c, int node) {
    int fwd = c->node;
    for (int i = 0; i < c->g->nodes[fwd].n_attrs; i++) {
        const ot_attr *src = &c->g->nodes[fwd].attrs[i];
        ot_attr *a = NULL;
        OT_TRY(new_attr(c, node, src->name, &a));
        src = &c->g->nodes[fwd].attrs[i]; /* fwd != node, but keep it obviously safe */
        a->type = src->type;
        a->f = src->f;
        a->i = src->i;
        a->n = src->n;
        if (src->s && !(a->s = strdup(src->s))) return ot_errorf(OT_E_NOMEM, "out of memory");
        if (src->ints) {
            a->ints = malloc((size_t)(src->n ? src->n : 1) * sizeof(int64_t));
            if (!a->ints) return ot_errorf(OT_E_NOMEM, "out of memory");
            if (src->n) memcpy(a->ints, src->ints, (size_t)src->n * sizeof(int64_t));
        }
        if (src->floats) {
            a->floats = malloc((size_t)(src->n ? src->n : 1) * sizeof(float));
            if (!a->floats) return ot_errorf(OT_E_NOMEM, "out of memory");
            if (src->n) memcpy(a->floats, src->floats, (size_t)src->n * sizeof(float));
        }
        if (src->t) OT_TRY(ot_tensor_clone(&a->t, src->t));
        if (src->strings) { /* no supported differentiable op has string-list attributes */
            a->n = 0;
            a->type = OT_ATTR_UNDEFINED;
        }
    }
    return OT_OK;
}

static ot_status new_const(ot_grad_ctx *c, ot_dtype dt, int ndim, const int64_t *dims, int *v, ot_tensor **t) {
    OT_TRY(ot_gb_tmp(c, "const", v));
    OT_TRY(ot_tensor_new(t, dt, ndim, dims));
    ot_value *val = &c->g->values[*v];
    val->init = *t;
    val->dtype = dt;
    val->ndim = ndim;
    for (int d = 0; d < ndim; d++) val->dims[d] = dims[d];
    return OT_OK;
}

ot_status ot_gb_const_scalar(ot_grad_ctx *c, ot_dtype dt, double x, int *v) {
    ot_tensor *t;
    OT_TRY(new_const(c, dt, 0, NULL, v, &t));
    ot_convert(t->data, dt, &x, OT_F64, 1);
    return OT_OK;
}

ot_status ot_gb_const_i64s(ot_grad_ctx *c, const int64_t *x, int n, int *v) {
    ot_tensor *t;
    int64_t dims[1] = {n};
    OT_TRY(new_const(c, OT_I64, 1, dims, v, &t));
    if (n) memcpy(t->data, x, (size_t)n * sizeof *x);
    return OT_OK;
}
