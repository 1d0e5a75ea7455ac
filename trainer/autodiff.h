/* autodiff.h — symbolic reverse-mode differentiation of a graph.
 *
 * ot_autodiff appends backward nodes to the graph that produce, for every requested value,
 * its gradient with respect to a scalar loss value. It walks the nodes that lie on a path
 * from a requested value to the loss in reverse topological order and asks each node's
 * gradient builder (trainer/grad/) for the gradients of the inputs that need one; partial
 * gradients of a value used several times are summed with Add nodes. Branches that do not
 * reach a requested value are pruned: no builder runs for them and nothing is emitted.
 *
 * Naming is deterministic: the gradient of value `x` is `x_grad`; intermediates are
 * `<node label>/grad/<tag>` with a counter suffix when needed. The loss gradient seed is a
 * constant 1 of the loss dtype (`<loss>_grad`), or a graph input when `seed_input` is set
 * (the loss scaler of mixed precision feeds it).
 *
 * The planner then plans forward + backward as one graph, so buffers are reused across both. */
#ifndef OT_AUTODIFF_H
#define OT_AUTODIFF_H

#include "core/graph.h"

typedef struct ot_autodiff_opts {
    int seed_input; /* 1: the loss gradient is a new graph input `<loss>_grad` instead of 1 */
} ot_autodiff_opts;

/* Adds backward nodes to `g` and marks each gradient as a graph output (in the order of
 * `wrt`). `meta` holds the dtype and shape of each of the graph's values as planned for the
 * training input shapes (ot_plan_value_meta), one per value at the time of the call. grads[i] receives the value index of d loss / d wrt[i], or -1 when wrt[i] does
 * not influence the loss. Fails naming the node whose op has no gradient builder, or whose
 * builder refused (e.g. a gradient through an integer input). */
ot_status ot_autodiff(ot_graph *g, const ot_tensor *meta, int loss, const int *wrt, int n_wrt,
                      const ot_autodiff_opts *opts, int *grads);

#endif
