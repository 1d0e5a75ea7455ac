/* onnxtune/runtime.h — planning and running a graph on the CPU.
 *
 * A plan is made once per set of input shapes: it binds symbolic dimensions, infers every
 * shape and dtype, folds what is constant (the Shape->Gather->Concat->Reshape chains
 * exporters emit), drops nodes no output needs, and lays out every intermediate buffer in
 * one arena by liveness. Running it only executes kernels. */
#ifndef ONNXTUNE_RUNTIME_H
#define ONNXTUNE_RUNTIME_H

#include <stddef.h>

#include "core/graph.h"

typedef struct ot_plan ot_plan;

typedef struct ot_plan_stats {
    size_t arena_bytes;    /* planned peak of intermediate buffers */
    size_t naive_bytes;    /* the same buffers without reuse */
    size_t folded_bytes;   /* constants created by folding */
    int n_nodes;           /* nodes in the graph */
    int n_steps;           /* kernels run per forward pass */
    int n_folded;          /* nodes folded into constants */
    int n_views;           /* nodes that became buffer aliases */
} ot_plan_stats;

/* Plans `g` for inputs shaped like `inputs[i]` (one per g->inputs[i], in order). Only dtype
 * and shape are read, except for the rare inputs whose values decide shapes inside the
 * model (a Reshape target fed as a graph input): those need data here, and every run must
 * feed the same values. The graph must outlive the plan and not change while it lives.
 * Errors name the input or node. */
ot_status ot_plan_create(const ot_graph *g, const ot_tensor *const *inputs, ot_plan **out);
/* The same without allocating the activation arena: every shape, dtype and folded constant,
 * and the stats, for callers that only read those (graph passes, memory estimates). Such a
 * plan cannot run. */
ot_status ot_plan_create_meta(const ot_graph *g, const ot_tensor *const *inputs, ot_plan **out);
void ot_plan_free(ot_plan *p);
void ot_plan_get_stats(const ot_plan *p, ot_plan_stats *s);

/* Runs the plan. `inputs` must have the planned dtypes and shapes. On success outputs[i]
 * (one per g->outputs[i]) describes the i-th output; its data belongs to the plan and stays
 * valid until the next run or ot_plan_free. */
ot_status ot_plan_run(ot_plan *p, const ot_tensor *const *inputs, ot_tensor *outputs);

/* With OT_PROFILE=1 set when the plan was made: time per op type over all runs, to stderr. */
void ot_plan_print_profile(const ot_plan *p);

/* The planned dtype and shape of every graph value (data NULL; ndim -1 for values the plan
 * never inferred, e.g. dead branches): meta[v] for v < g->n_values at plan time. */
void ot_plan_value_meta(const ot_plan *p, ot_tensor *meta);

/* Sets the CPU threads used by kernels and BLAS (0 = all cores). */
void ot_set_threads(int n);

#endif
