/* autodiff.c — reverse-mode differentiation over the graph IR; see autodiff.h.
 *
 * Owns: finding the nodes between the requested values and the loss, calling their
 * builders in reverse topological order, summing partial gradients, naming and exposing
 * the final gradients. It never touches forward nodes except through builders' reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/autodiff.h"
#include "trainer/grad/grad.h"

typedef struct {
    int *v; /* partial gradient values */
    int n, cap;
} partials;

static ot_status push_partial(partials *p, int v) {
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 4;
        int *nv = realloc(p->v, (size_t)cap * sizeof *nv);
        if (!nv) return ot_errorf(OT_E_NOMEM, "out of memory");
        p->v = nv;
        p->cap = cap;
    }
    p->v[p->n++] = v;
    return OT_OK;
}

/* A fresh value named `name`, or "<base>/sum_<k>" when name is NULL. */
static ot_status sum_value(ot_graph *g, const char *name, const char *base, int *v) {
    char tmp[1024];
    if (name) {
        if (ot_graph_find(g, name) >= 0) return ot_errorf(OT_E_INVALID, "gradient name '%s' is already taken", name);
        return ot_graph_value(g, name, v);
    }
    int k = 0;
    do snprintf(tmp, sizeof tmp, "%s/sum_%d", base, k++);
    while (ot_graph_find(g, tmp) >= 0);
    return ot_graph_value(g, tmp, v);
}

/* Sums the partial gradients in `p` into one value: dX = p0 + p1 + ... as a chain of Add
 * nodes, the last named `name` when given (final gradients of requested values). With one
 * partial and no name, the partial itself is the gradient. */
static ot_status sum_partials(ot_graph *g, const partials *p, const char *name, int *out) {
    *out = -1;
    if (p->n == 0) return OT_OK;
    int acc = p->v[0];
    if (p->n == 1) {
        if (name) {
            int dst;
            OT_TRY(sum_value(g, name, NULL, &dst));
            OT_TRY(ot_graph_add_node(g, "Identity", "", name, &acc, 1, &dst, 1, NULL));
            acc = dst;
        }
        *out = acc;
        return OT_OK;
    }
    for (int i = 1; i < p->n; i++) {
        int dst, in[2] = {acc, p->v[i]};
        OT_TRY(sum_value(g, i == p->n - 1 ? name : NULL, g->values[p->v[0]].name, &dst));
        OT_TRY(ot_graph_add_node(g, "Add", "", g->values[dst].name, in, 2, &dst, 1, NULL));
        acc = dst;
    }
    *out = acc;
    return OT_OK;
}

ot_status ot_autodiff(ot_graph *g, const ot_tensor *meta, int loss, const int *wrt, int n_wrt,
                      const ot_autodiff_opts *opts, int *grads) {
    const int n_fwd_nodes = g->n_nodes, n_meta = g->n_values;
    ot_status st = OT_OK;
    int *dy = NULL, *dx = NULL;
    unsigned char *need = NULL;
    char *from_wrt = calloc((size_t)n_meta + 1, 1), *to_loss = calloc((size_t)n_meta + 1, 1);
    partials *parts = calloc((size_t)n_meta + 1, sizeof *parts);
    if (!from_wrt || !to_loss || !parts) {
        st = ot_errorf(OT_E_NOMEM, "out of memory");
        goto done;
    }
    if (loss < 0 || loss >= n_meta || meta[loss].ndim < 0 || ot_shape_numel(meta[loss].ndim, meta[loss].dims) != 1 ||
        !ot_dtype_is_float(meta[loss].dtype)) {
        st = ot_errorf(OT_E_INVALID, "the loss must be a floating-point scalar value");
        goto done;
    }
    for (int i = 0; i < n_wrt; i++) {
        grads[i] = -1;
        from_wrt[wrt[i]] = 1;
    }
    /* Values that depend on a requested value (forward sweep) ... */
    for (int ni = 0; ni < n_fwd_nodes; ni++) {
        const ot_node *n = &g->nodes[ni];
        int any = 0;
        for (int k = 0; k < n->n_in; k++) any |= n->in[k] >= 0 && from_wrt[n->in[k]];
        for (int k = 0; any && k < n->n_out; k++)
            if (n->out[k] >= 0) from_wrt[n->out[k]] = 1;
    }
    /* ... and values the loss depends on (backward sweep). */
    to_loss[loss] = 1;
    for (int ni = n_fwd_nodes - 1; ni >= 0; ni--) {
        const ot_node *n = &g->nodes[ni];
        int any = 0;
        for (int k = 0; k < n->n_out; k++) any |= n->out[k] >= 0 && to_loss[n->out[k]];
        for (int k = 0; any && k < n->n_in; k++)
            if (n->in[k] >= 0) to_loss[n->in[k]] = 1;
    }

    /* Seed: d loss / d loss. */
    int seed;
    char seed_name[1024];
    snprintf(seed_name, sizeof seed_name, "%s_grad", g->values[loss].name);
    if ((st = ot_graph_value(g, seed_name, &seed)) != OT_OK) goto done;
    if (opts && opts->seed_input) {
        ot_value *sv = &g->values[seed];
        sv->is_input = 1;
        sv->dtype = meta[loss].dtype;
        sv->ndim = meta[loss].ndim;
        memcpy(sv->dims, meta[loss].dims, sizeof sv->dims);
        int *inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *inputs);
        if (!inputs) {
            st = ot_errorf(OT_E_NOMEM, "out of memory");
            goto done;
        }
        g->inputs = inputs;
        g->inputs[g->n_inputs++] = seed;
    } else {
        ot_tensor *one;
        if ((st = ot_tensor_new(&one, meta[loss].dtype, meta[loss].ndim, meta[loss].dims)) != OT_OK) goto done;
        double x = 1.0;
        ot_convert(one->data, one->dtype, &x, OT_F64, 1);
        ot_value *sv = &g->values[seed];
        sv->init = one;
        sv->dtype = one->dtype;
        sv->ndim = one->ndim;
        memcpy(sv->dims, one->dims, sizeof sv->dims);
    }
    if ((st = push_partial(&parts[loss], seed)) != OT_OK) goto done;

    /* Per-node scratch sized for the widest forward node (a Concat may have hundreds of
     * inputs). */
    int max_io = 1;
    for (int ni = 0; ni < n_fwd_nodes; ni++) {
        if (g->nodes[ni].n_in > max_io) max_io = g->nodes[ni].n_in;
        if (g->nodes[ni].n_out > max_io) max_io = g->nodes[ni].n_out;
    }
    dy = malloc((size_t)max_io * sizeof *dy);
    dx = malloc((size_t)max_io * sizeof *dx);
    need = malloc((size_t)max_io);
    if (!dy || !dx || !need) {
        st = ot_errorf(OT_E_NOMEM, "out of memory");
        goto done;
    }
    for (int ni = n_fwd_nodes - 1; ni >= 0; ni--) {
        const ot_node *n = &g->nodes[ni];
        int n_in = n->n_in, n_out = n->n_out;
        int any_dy = 0, any_need = 0;
        for (int k = 0; k < n_out; k++) {
            dy[k] = -1;
            int v = n->out[k];
            if (v < 0 || !parts[v].n) continue;
            if ((st = sum_partials(g, &parts[v], NULL, &dy[k])) != OT_OK) goto done;
            n = &g->nodes[ni]; /* sum_partials may have moved the node array */
            any_dy = 1;
        }
        for (int k = 0; k < n_in; k++) {
            int v = n->in[k];
            need[k] = v >= 0 && from_wrt[v] && to_loss[v] && ot_dtype_is_float(meta[v].dtype);
            any_need |= need[k];
            dx[k] = -1;
        }
        if (!any_dy || !any_need) continue;
        int opset = (int)ot_graph_opset(g, n->domain);
        const ot_grad_def *def = ot_grad_find(n->domain, n->op_type, opset);
        if (!def) {
            st = ot_errorf(OT_E_UNSUPPORTED, "%s: no gradient builder for op %s (opset %d); it lies between a "
                           "trainable weight and the loss", ot_node_label(g, n), n->op_type, opset);
            goto done;
        }
        if (def->no_grad) continue;
        ot_grad_ctx c = {g, ni, dy, dx, need, opset, 0, meta, n_meta};
        if ((st = def->build(&c)) != OT_OK) {
            ot_error_wrap(st, "gradient of %s: ", ot_node_label(g, &g->nodes[ni]));
            goto done;
        }
        n = &g->nodes[ni];
        for (int k = 0; k < n_in; k++) {
            if (!need[k]) continue;
            if (dx[k] < 0) {
                st = ot_errorf(OT_E_INTERNAL, "%s: the gradient builder produced no gradient for input %d ('%s')",
                               ot_node_label(g, n), k, g->values[n->in[k]].name);
                goto done;
            }
            if ((st = push_partial(&parts[n->in[k]], dx[k])) != OT_OK) goto done;
        }
    }

    for (int i = 0; i < n_wrt; i++) {
        char name[1024];
        snprintf(name, sizeof name, "%s_grad", g->values[wrt[i]].name);
        if ((st = sum_partials(g, &parts[wrt[i]], name, &grads[i])) != OT_OK) goto done;
        if (grads[i] < 0) continue;
        int *outputs = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof *outputs);
        if (!outputs) {
            st = ot_errorf(OT_E_NOMEM, "out of memory");
            goto done;
        }
        g->outputs = outputs;
        g->outputs[g->n_outputs++] = grads[i];
        g->values[grads[i]].is_output = 1;
    }
    st = ot_graph_toposort(g);
done:
    for (int v = 0; parts && v < n_meta; v++) free(parts[v].v);
    free(parts);
    free(dy);
    free(dx);
    free(need);
    free(from_wrt);
    free(to_loss);
    return st;
}
