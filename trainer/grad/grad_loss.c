/* grad_loss.c — gradient builders of the loss heads (domain ai.onnxtune; forward ops and
 * kernels in runtime/ops/loss.c, signatures in runtime/ops/loss.h):
 *   CausalLMLoss(logits, labels)     dLogits = CausalLMLossGrad(dLoss, logits, labels, lse)
 *   CrossEntropyLoss(logits, labels) dLogits = CrossEntropyLossGrad(dLoss, logits, labels, lse)
 *       = (softmax − onehot(label)) · dLoss / count on counted rows, 0 elsewhere.
 *   MSELoss(pred, target)            dPred = MSELossGrad(dLoss, pred, target) = 2(pred − target)·dLoss/N
 *                                    dTarget = −dPred (only when the target is trainable)
 * The cross-entropy forward saves the per-row logsumexp as its optional output 1; when the
 * forward node does not declare it, the builder adds it (a fresh value), so the backward
 * needs one pass over the logits and no second reduction. Labels are integers and get no
 * gradient; a gradient flowing into the saved lse output is refused. The mean token accuracy
 * (optional output 2) is piecewise constant in the logits: it is non-differentiable and any
 * gradient arriving there is dropped (d acc / d logits = 0), so a node whose only incoming
 * gradient is the accuracy's produces none.
 * Accumulation rule: each input gradient is produced once with `=` (ot_autodiff sums). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/grad/grad.h"

/* Output 1 (lse) of the forward node, added when absent. */
static ot_status ensure_lse(ot_grad_ctx *c, int *lse) {
    ot_node *n = &c->g->nodes[c->node];
    if (n->n_out < 2) {
        int *out = realloc(n->out, 2 * sizeof *out);
        if (!out) return ot_errorf(OT_E_NOMEM, "out of memory");
        out[1] = -1;
        n->out = out;
        n->n_out = 2;
    }
    if (c->g->nodes[c->node].out[1] < 0) {
        int v;
        OT_TRY(ot_gb_tmp(c, "saved_lse", &v));
        c->g->nodes[c->node].out[1] = v;
        c->g->values[v].producer = c->node;
    }
    *lse = c->g->nodes[c->node].out[1];
    return OT_OK;
}

static ot_status grad_xent(ot_grad_ctx *c) {
    if (ot_gb_dy(c, 1) >= 0)
        return ot_errorf(OT_E_UNSUPPORTED, "a gradient flows into the loss's logsumexp output; only the loss is "
                         "differentiable");
    if (!ot_gb_need(c, 0)) return OT_OK; /* only the (integer) labels were asked for: none */
    int dloss = ot_gb_dy(c, 0), lse = -1, node, dx;
    if (dloss < 0) return OT_OK; /* only the accuracy (output 2) had a gradient: it is constant */
    OT_TRY(ensure_lse(c, &lse));
    const ot_node *n = ot_gb_fwd(c);
    char op[64];
    snprintf(op, sizeof op, "%sGrad", n->op_type);
    int in[4] = {dloss, ot_gb_in(c, 0), ot_gb_in(c, 1), lse};
    OT_TRY(ot_gb_op1(c, op, OT_DOMAIN, "dLogits", in, 4, &dx, &node));
    OT_TRY(ot_gb_copy_attrs(c, node));
    ot_gb_set_dx(c, 0, dx);
    return OT_OK;
}

static ot_status grad_mse(ot_grad_ctx *c) {
    int in[3] = {ot_gb_dy(c, 0), ot_gb_in(c, 0), ot_gb_in(c, 1)}, dp;
    OT_TRY(ot_gb_op1(c, "MSELossGrad", OT_DOMAIN, "dPred", in, 3, &dp, NULL));
    if (ot_gb_need(c, 0)) ot_gb_set_dx(c, 0, dp);
    if (ot_gb_need(c, 1)) {
        const ot_tensor *pm = ot_gb_meta(c, ot_gb_in(c, 0)), *tm = ot_gb_meta(c, ot_gb_in(c, 1));
        int dt;
        if (pm->dtype != tm->dtype) {
            int node;
            OT_TRY(ot_gb_op1(c, "Cast", "", "dPred_cast", &dp, 1, &dp, &node));
            OT_TRY(ot_gb_attr_int(c, node, "to", tm->dtype));
        }
        OT_TRY(ot_gb_op1(c, "Neg", "", "dTarget", &dp, 1, &dt, NULL));
        ot_gb_set_dx(c, 1, dt);
    }
    return OT_OK;
}

const ot_grad_def ot_grads_loss[] = {
    {OT_DOMAIN, "CausalLMLoss", 1, 1, grad_xent, 0},
    {OT_DOMAIN, "CrossEntropyLoss", 1, 1, grad_xent, 0},
    {OT_DOMAIN, "MSELoss", 1, 1, grad_mse, 0},
};
const int ot_grads_loss_count = (int)(sizeof ot_grads_loss / sizeof ot_grads_loss[0]);
