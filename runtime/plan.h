/* plan.h — the plan's internal layout, shared by plan.c (building), memplan.c (buffer
 * offsets) and exec.c (running). Not part of the public API. */
#ifndef OT_PLAN_INTERNAL_H
#define OT_PLAN_INTERNAL_H

#include "onnxtune/runtime.h"
#include "runtime/op.h"

/* Inputs or outputs of one node the planner accepts (a Concat of 256 pieces is the widest
 * real exports produce). */
#define OT_MAX_NODE_IO 256

typedef enum {
    OT_VAL_UNUSED = 0, /* not needed by any scheduled step or output */
    OT_VAL_CONST,      /* initializer or folded constant: data fixed at plan time */
    OT_VAL_INPUT,      /* fed by the caller on each run */
    OT_VAL_PARAM,      /* a trainable initializer: data read from the graph on each run */
    OT_VAL_BUFFER,     /* produced by a step into the arena */
    OT_VAL_ALIAS,      /* a view step's output: same bytes as value `root` */
} ot_val_kind;

typedef struct ot_plan_val {
    ot_tensor t;        /* dtype, shape; data resolved per run (fixed for CONST) */
    ot_val_kind kind;
    int root;           /* ALIAS: the non-alias value whose bytes it shares */
    int def, last;      /* first step writing it, last step reading it (liveness) */
    size_t offset;      /* BUFFER: byte offset in the arena */
    ot_tensor *folded;  /* CONST made by folding: owned */
} ot_plan_val;

typedef struct ot_plan_step {
    int node;
    const ot_op_def *def;
    void *attr;
    int opset;
    int view; /* 1: output 0 aliases input 0, the kernel is skipped */
} ot_plan_step;

struct ot_plan {
    const ot_graph *g;
    ot_plan_val *vals;     /* one per graph value */
    ot_plan_step *steps;
    int n_steps;
    int n_values, n_nodes; /* of the graph when planned: it may grow later (autodiff) */
    void **attrs;          /* parsed attributes per node (owned), also of folded nodes */
    const ot_op_def **attr_defs; /* the entry that parsed attrs[n], for its release hook */
    char *value_bound;     /* per value: a graph input bound by value at plan time */
    unsigned char *arena;
    ot_plan_stats stats;
    int profile;           /* OT_PROFILE set: print per-op time after each run */
    double *op_seconds;    /* per step, accumulated when profiling */
};

/* Assigns arena offsets to every BUFFER value from its [def, last] interval; sets
 * p->stats.arena_bytes and naive_bytes. */
ot_status ot_memplan(ot_plan *p);

#endif
