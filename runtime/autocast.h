/* autocast.h — mixed precision as a graph rewrite (what ONNX Runtime's training does).
 *
 * ot_autocast turns an f32 graph into one that stores weights, activations and gradients in
 * a 16-bit float type (bf16 or f16, "lowp"). Weights the caller marks are converted once
 * (round to nearest even). Then every node, in schedule order, is asked — through its op's
 * own `infer` — whether it takes its inputs in 16 bits:
 *   - yes: it runs natively (its kernel computes in f32 and rounds once; outputs the op
 *     chooses to keep in f32, such as LayerNorm statistics or a loss, stay f32);
 *   - no: it is wrapped in Cast nodes: 16-bit inputs are widened to f32 just before it, it
 *     runs in f32, and each float output of more than one element is rounded back to 16 bits
 *     right after it. The f32 temporaries live for one step.
 * Float constants that the 16-bit type represents exactly are narrowed (the Cast folds at plan
 * time) when that lets a node run natively; others (attention masks at -3.4e38, epsilons) stay
 * f32 and their node computes in f32. Float graph inputs are narrowed where a 16-bit node reads
 * them. A node none of whose inputs is 16-bit is left alone, so explicit upcasts in a model
 * (Cast to float32 around a norm) keep their f32 chains.
 *
 * The graph is planned once in f32 inside (for shapes and folded constants), so `inputs` are
 * the ones ot_plan_create would take. Afterwards every graph output's declared dtype is the
 * new one (parameter gradients become 16-bit). With OT_AUTOCAST_TRACE set in the environment,
 * every node wrapped in Casts is named on stderr (to find ops worth a 16-bit kernel). */
#ifndef OT_AUTOCAST_H
#define OT_AUTOCAST_H

#include "core/graph.h"

typedef struct ot_autocast_stats {
    int n_native;   /* nodes with 16-bit inputs that run natively */
    int n_wrapped;  /* nodes run in f32 between Casts */
    int n_casts;    /* Cast nodes added */
    int n_weights;  /* initializers converted */
    size_t weight_bytes_saved;
} ot_autocast_stats;

/* What the pass may do with a value: policy[v] for every v < g->n_values. */
enum {
    OT_AUTOCAST_AUTO = 0,     /* constants and inputs: narrowed only where a node needs it and it is exact */
    OT_AUTOCAST_WEIGHT = 1,   /* a float initializer stored in 16 bits (model weights, parameters) */
    OT_AUTOCAST_KEEP_F32 = 2, /* a float graph input never narrowed (the fp16 loss-scale seed: 65536 is
                                 not an f16 number) */
};

/* flags: OT_AUTOCAST_SHAPES_ONLY gives weights 16-bit storage without converting them (zero
 * filled: for plans that are measured, never run). */
#define OT_AUTOCAST_SHAPES_ONLY 1u

/* lowp: OT_BF16 or OT_F16. */
ot_status ot_autocast(ot_graph *g, const ot_tensor *const *inputs, ot_dtype lowp, const unsigned char *policy,
                      unsigned flags, ot_autocast_stats *stats);

#endif
