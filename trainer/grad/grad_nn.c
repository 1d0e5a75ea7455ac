/* grad_nn.c — gradient builders of the nn family: Softmax, LogSoftmax, LayerNormalization,
 * Gelu. Each emits one fused internal op of domain ai.onnxtune (kernels and math in
 * runtime/ops/grad_nn.h):
 *   Softmax     dX = Y ⊙ (dY − Σ_axis dY ⊙ Y)            SoftmaxGrad(dY, Y)
 *   LogSoftmax  dX = dY − exp(Y) · Σ_axis dY             LogSoftmaxGrad(dY, Y)
 *   LayerNorm   dX, dScale, dBias                        LayerNormGrad(dY, X, Scale, Mean, InvStdDev)
 *   Gelu        dX = dY · Gelu'(X)                       GeluGrad(dY, X)
 * Softmax/LogSoftmax read the forward output Y, not X, so nothing is recomputed. Before
 * opset 13 they normalised over the flattened dims [axis:]; the grad op gets coerce_2d = 1.
 *
 * LayerNormalization: the backward needs the forward's per-row Mean and InvStdDev. When the
 * forward node does not declare those optional outputs, the builder adds them to it
 * (fresh values "<node>/grad/saved_mean", ".../saved_inv_std_dev"), so the forward pass
 * saves them (as llm.c's layernorm_forward saves mean and rstd) instead of the backward
 * recomputing them. dScale and dBias come out in the normalised dims' shape X.dims[axis:];
 * where Scale/B are broadcast within those dims they are summed to their own shape
 * (ReduceSumTo). A gradient flowing into Mean/InvStdDev themselves is not supported.
 *
 * Accumulation rule: each input gradient is produced once with `=` (ot_autodiff sums). */
#include <stdlib.h>
#include <string.h>

#include "trainer/grad/grad.h"

/* Softmax / LogSoftmax (opset < 13 default axis 1 with coerce-to-2D, else -1). */
static ot_status grad_softmax(ot_grad_ctx *c) {
    const ot_node *n = ot_gb_fwd(c);
    int lg = strcmp(n->op_type, "LogSoftmax") == 0, coerce = c->opset < 13, node, dx;
    int64_t axis;
    OT_TRY(ot_attr_int(n, "axis", coerce ? 1 : -1, &axis));
    int in[2] = {ot_gb_dy(c, 0), ot_gb_out(c, 0)};
    OT_TRY(ot_gb_op1(c, lg ? "LogSoftmaxGrad" : "SoftmaxGrad", OT_DOMAIN, "dX", in, 2, &dx, &node));
    OT_TRY(ot_gb_attr_int(c, node, "axis", axis));
    if (coerce) OT_TRY(ot_gb_attr_int(c, node, "coerce_2d", 1));
    ot_gb_set_dx(c, 0, dx);
    return OT_OK;
}

/* Gelu (approximate "none" or "tanh", copied from the forward). */
static ot_status grad_gelu(ot_grad_ctx *c) {
    int in[2] = {ot_gb_dy(c, 0), ot_gb_in(c, 0)}, node, dx;
    OT_TRY(ot_gb_op1(c, "GeluGrad", OT_DOMAIN, "dX", in, 2, &dx, &node));
    OT_TRY(ot_gb_copy_attrs(c, node));
    ot_gb_set_dx(c, 0, dx);
    return OT_OK;
}

/* Makes sure the forward LayerNormalization node has outputs 1 (Mean) and 2 (InvStdDev). */
static ot_status ensure_saved_stats(ot_grad_ctx *c) {
    ot_node *n = &c->g->nodes[c->node];
    if (n->n_out < 3) {
        int *out = realloc(n->out, 3 * sizeof *out);
        if (!out) return ot_errorf(OT_E_NOMEM, "out of memory");
        for (int k = n->n_out; k < 3; k++) out[k] = -1;
        n->out = out;
        n->n_out = 3;
    }
    static const char *const tags[2] = {"saved_mean", "saved_inv_std_dev"};
    for (int k = 1; k < 3; k++) {
        if (c->g->nodes[c->node].out[k] >= 0) continue;
        int v;
        OT_TRY(ot_gb_tmp(c, tags[k - 1], &v));
        c->g->nodes[c->node].out[k] = v;
        c->g->values[v].producer = c->node;
    }
    return OT_OK;
}

/* dScale/dBias (shape X.dims[axis:]) summed to the weight's own shape. */
static ot_status weight_grad(ot_grad_ctx *c, int g, int nd, const int64_t *dims, int w, int *out) {
    const ot_tensor *wm = ot_gb_meta(c, w);
    if (ot_shape_equal(nd, dims, wm->ndim, wm->dims)) {
        *out = g;
        return OT_OK;
    }
    int shp, in[2];
    OT_TRY(ot_gb_const_i64s(c, wm->dims, wm->ndim, &shp));
    in[0] = g, in[1] = shp;
    int same = ot_shape_numel(nd, dims) == ot_tensor_numel(wm);
    return ot_gb_op1(c, same ? "Reshape" : "ReduceSumTo", same ? "" : OT_DOMAIN, "dW", in, 2, out, NULL);
}

/* LayerNormalization(X, Scale, B?) -> Y, Mean?, InvStdDev?:
 *   x̂ = (x − μ)·rstd, g = dY ⊙ Scale
 *   dX = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)), dScale = Σ_rows dY ⊙ x̂, dB = Σ_rows dY */
static ot_status grad_layernorm(ot_grad_ctx *c) {
    if (ot_gb_dy(c, 1) >= 0 || ot_gb_dy(c, 2) >= 0)
        return ot_errorf(OT_E_UNSUPPORTED, "a gradient flows into LayerNormalization's Mean/InvStdDev outputs; only "
                         "Y is differentiable here");
    const ot_node *fn = ot_gb_fwd(c);
    int64_t axis;
    float eps;
    OT_TRY(ot_attr_int(fn, "axis", -1, &axis));
    OT_TRY(ot_attr_float(fn, "epsilon", 1e-5f, &eps));
    const ot_tensor *xm = ot_gb_meta(c, ot_gb_in(c, 0));
    int ax = (int)(axis < 0 ? axis + xm->ndim : axis);
    if (ax < 0 || ax >= xm->ndim) return ot_errorf(OT_E_INVALID, "axis %lld is out of range for rank %d", (long long)axis, xm->ndim);
    OT_TRY(ensure_saved_stats(c));
    int in[5] = {ot_gb_dy(c, 0), ot_gb_in(c, 0), ot_gb_in(c, 1), ot_gb_out(c, 1), ot_gb_out(c, 2)};
    int out[3] = {-1, -1, -1}, node;
    static const char *const tags[3] = {"dX", "dScale_rows", "dB_rows"};
    for (int k = 0; k < 3; k++)
        if (ot_gb_need(c, k) && ot_gb_in(c, k) >= 0) OT_TRY(ot_gb_tmp(c, tags[k], &out[k]));
    OT_TRY(ot_gb_node(c, "LayerNormGrad", OT_DOMAIN, in, 5, out, 3, &node));
    OT_TRY(ot_gb_attr_int(c, node, "axis", ax));
    OT_TRY(ot_gb_attr_float(c, node, "epsilon", eps));
    if (out[0] >= 0) ot_gb_set_dx(c, 0, out[0]);
    for (int k = 1; k < 3; k++) {
        if (out[k] < 0) continue;
        int dw;
        OT_TRY(weight_grad(c, out[k], xm->ndim - ax, xm->dims + ax, ot_gb_in(c, k), &dw));
        ot_gb_set_dx(c, k, dw);
    }
    return OT_OK;
}

const ot_grad_def ot_grads_nn[] = {
    {"", "Softmax", 1, 21, grad_softmax, 0},
    {"", "LogSoftmax", 1, 21, grad_softmax, 0},
    {"", "LayerNormalization", 17, 21, grad_layernorm, 0},
    {"", "Gelu", 20, 21, grad_gelu, 0},
};
const int ot_grads_nn_count = (int)(sizeof ot_grads_nn / sizeof ot_grads_nn[0]);
