/* remat.h — activation checkpointing: recompute each transformer block's intermediates in
 * the backward pass instead of keeping them alive from the forward pass.
 *
 * Runs on the joint forward + backward graph that ot_autodiff made, before planning. The
 * forward nodes are the first n_forward nodes (ot_autodiff appends backward nodes and its
 * min-index toposort keeps a sorted forward prefix in place; the pass checks that no forward
 * node reads a backward value). Each forward node is put in a block: the module-path prefix
 * up to and including the first all-digit component ("transformer.h.3", "model.layers.0",
 * "bert.encoder.layer.1"), found, in this order, from
 *   1. its name: an exporter scope ("/transformer/h.3/attn/MatMul"), or a "<module>/..."
 *      name of onnxtune's own rewrites ("transformer.h.3.attn.c_attn/lora/MatMul"), or a
 *      dotted name ("ot.loss_head": no digits, so no block);
 *   2. the module of a weight it reads ("model.layers.0.mlp.up_proj.weight"): the Hugging
 *      Face builders name their nodes "hf.<Op>_<n>", so their weights carry the module;
 *   3. otherwise the latest block among the nodes producing its inputs (the attention and
 *      residual ops around a builder's weighted ops), none when they have none; then, walking
 *      backwards, such a node that reads no weighted block node directly and whose readers
 *      all lie in one block (or all outside blocks) joins them: an RMSNorm's weightless
 *      Pow/ReduceMean/Sqrt/Div go with the block whose weight they feed.
 * Nodes without a block (embeddings, final norm, head, loss) are not checkpointed.
 *
 * A value made in block b is internal unless a forward node outside b reads it, it is a graph
 * output, or the planner folds it into a constant anyway (it depends on initializers and
 * shapes only). Backward nodes that read an internal value read a clone ("<value>/remat")
 * made by re-running its producers within b from b's inputs; only what backward reads is
 * cloned. The clones of b go right before the first backward node reading one of them, so
 * the recomputation happens just in time and its buffers die within b's backward.
 *
 * Clones run the same kernels on the same inputs, so gradients are bit-identical to the
 * plain graph's. Random ops cannot be re-run, except TrainingDropout whose mask is a hash of
 * (seed input, stream attribute, element index); any other OT_OP_NO_FOLD op inside a
 * recomputed region is refused. */
#ifndef OT_REMAT_H
#define OT_REMAT_H

#include "core/graph.h"

typedef struct ot_remat_stats {
    int n_blocks;           /* distinct blocks found among the forward nodes */
    int n_recomputed_nodes; /* clone nodes added */
} ot_remat_stats;

/* Rewrites `g` (forward nodes [0, n_forward), backward nodes after them) so that backward
 * nodes read recomputed copies of block intermediates; re-sorts the graph. Fails with a
 * message when no forward node belongs to a numbered block, when a random op would have to
 * be recomputed, or when the forward prefix is not closed. `stats` may be NULL. */
ot_status ot_remat_blocks(ot_graph *g, int n_forward, ot_remat_stats *stats);

/* The block of a forward node from its own name or the weights it reads (rules 1 and 2
 * above): *block receives a malloc'd block prefix, or NULL with *known = 1 when the node is
 * known to lie outside any block, *known = 0 when neither rule applies. Exposed for tests. */
ot_status ot_remat_node_block(const ot_graph *g, const ot_node *n, char **block, int *known);

#endif
