/* exec.c — runs a plan: resolves each value's data pointer for this run, then calls the
 * scheduled kernels in order. View steps cost nothing (their output shares input bytes).
 * With OT_PROFILE=1 in the environment, per-step times accumulate over runs and
 * ot_plan_print_profile writes them to stderr by op type. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/plan.h"

#ifdef __has_include
#if __has_include(<cblas.h>)
#include <cblas.h>
#define OT_HAVE_OPENBLAS_THREADS 1
#endif
#endif

void ot_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
#ifdef OT_HAVE_OPENBLAS_THREADS
    openblas_set_num_threads(n);
#endif
}

void ot_plan_print_profile(const ot_plan *p) {
    if (!p->profile) return;
    /* Aggregate by op type; op types are few, a linear table is enough. */
    const char *names[128];
    double secs[128];
    int counts[128], n = 0;
    double total = 0;
    for (int s = 0; s < p->n_steps; s++) {
        const char *op = p->g->nodes[p->steps[s].node].op_type;
        int k = 0;
        while (k < n && strcmp(names[k], op) != 0) k++;
        if (k == n && n < 128) names[n] = op, secs[n] = 0, counts[n] = 0, n++;
        if (k < 128) secs[k] += p->op_seconds[s], counts[k]++;
        total += p->op_seconds[s];
    }
    fprintf(stderr, "profile: %.3f ms in %d steps\n", total * 1e3, p->n_steps);
    for (int k = 0; k < n; k++)
        fprintf(stderr, "  %-22s %5d steps %9.3f ms %5.1f%%\n", names[k], counts[k], secs[k] * 1e3,
                total > 0 ? 100 * secs[k] / total : 0);
}

ot_status ot_plan_run(ot_plan *p, const ot_tensor *const *inputs, ot_tensor *outputs) {
    const ot_graph *g = p->g;
    if (g->n_values != p->n_values || g->n_nodes != p->n_nodes)
        return ot_errorf(OT_E_INTERNAL, "the graph changed after it was planned; make a new plan");
    if (!p->arena) return ot_errorf(OT_E_INTERNAL, "a metadata-only plan cannot run");
    for (int i = 0; i < g->n_inputs; i++) {
        ot_plan_val *pv = &p->vals[g->inputs[i]];
        const ot_tensor *x = inputs[i];
        char s1[160], s2[160];
        if (!x || x->dtype != pv->t.dtype || !ot_shape_equal(x->ndim, x->dims, pv->t.ndim, pv->t.dims))
            return ot_errorf(OT_E_SHAPE, "input '%s' is %s %s but the plan was made for %s %s", g->values[g->inputs[i]].name,
                             x ? ot_dtype_name(x->dtype) : "missing", x ? ot_shape_str(s1, sizeof s1, x->ndim, x->dims) : "",
                             ot_dtype_name(pv->t.dtype), ot_shape_str(s2, sizeof s2, pv->t.ndim, pv->t.dims));
        if (p->value_bound[g->inputs[i]]) {
            if (memcmp(x->data, pv->t.data, ot_tensor_nbytes(x)) != 0)
                return ot_errorf(OT_E_INVALID, "input '%s' determines shapes and its value differs from the one the "
                                 "plan was made for; make a new plan", g->values[g->inputs[i]].name);
            continue;
        }
        pv->t.data = x->data;
    }
    for (int v = 0; v < g->n_values; v++) {
        if (p->vals[v].kind == OT_VAL_BUFFER) p->vals[v].t.data = p->arena + p->vals[v].offset;
        if (p->vals[v].kind == OT_VAL_PARAM) p->vals[v].t.data = g->values[v].init->data;
    }
    for (int v = 0; v < g->n_values; v++)
        if (p->vals[v].kind == OT_VAL_ALIAS) p->vals[v].t.data = p->vals[p->vals[v].root].t.data;

    for (int s = 0; s < p->n_steps; s++) {
        const ot_plan_step *step = &p->steps[s];
        if (step->view) continue;
        const ot_node *n = &g->nodes[step->node];
        const ot_tensor *in[OT_MAX_NODE_IO]; /* the planner refused wider nodes */
        ot_tensor *out[OT_MAX_NODE_IO];
        for (int k = 0; k < n->n_in; k++) in[k] = n->in[k] >= 0 ? &p->vals[n->in[k]].t : NULL;
        for (int k = 0; k < n->n_out; k++) out[k] = n->out[k] >= 0 ? &p->vals[n->out[k]].t : NULL;
        ot_op_ctx c = {g, n, step->attr, step->opset, n->n_in, n->n_out, in, out};
        double t0 = p->profile ? omp_get_wtime() : 0;
        ot_status st = step->def->cpu(&c);
        if (p->profile) p->op_seconds[s] += omp_get_wtime() - t0;
        if (st != OT_OK) return st;
    }
    for (int i = 0; i < g->n_outputs; i++) outputs[i] = p->vals[g->outputs[i]].t;
    return OT_OK;
}
