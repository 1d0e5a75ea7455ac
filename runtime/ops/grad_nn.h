/* grad_nn.h — internal gradient ops of the nn family (domain "ai.onnxtune", opset 1), emitted
 * by the gradient builders in trainer/grad/grad_nn.c; kernels in grad_nn.c. Signatures:
 *
 *   SoftmaxGrad(dY, Y) -> dX          dX = Y ⊙ (dY − Σ_axis dY ⊙ Y)
 *   LogSoftmaxGrad(dY, Y) -> dX       dX = dY − exp(Y) · Σ_axis dY
 *     attrs: axis (int, default -1), coerce_2d (int, default 0: 1 = the opset < 13 view,
 *     the softmax ran over the flattened dims [axis:]). Y is the forward output.
 *   LayerNormGrad(dY, X, Scale, Mean?, InvStdDev?) -> dX?, dScale?, dBias?
 *     attrs: axis (default -1), epsilon (default 1e-5). Rows are X viewed as
 *     [prod(dims[:axis]), n = prod(dims[axis:])]; with x̂ = (x − mean)·rstd, g = dY ⊙ Scale:
 *       dX = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)),  dScale = Σ_rows dY ⊙ x̂,  dBias = Σ_rows dY.
 *     Scale broadcasts to the normalised dims (not per row). dScale and dBias have the
 *     normalised dims' shape X.dims[axis:]; the builder sums them to Scale's/B's shape.
 *     Mean/InvStdDev are the forward's float32 outputs; for f64 X (or when absent) the
 *     statistics are recomputed in double so gradient checks keep full precision.
 *   GeluGrad(dY, X) -> dX             dX = dY · Gelu'(X); attr approximate "none" | "tanh".
 *
 * dtypes f32 and f64 (dY, X, Y, Scale the same). */
#ifndef OT_GRAD_NN_H
#define OT_GRAD_NN_H

#include "../op.h"

#define OT_GRAD_NN_DOMAIN "ai.onnxtune" /* = OT_DOMAIN of trainer/grad/grad.h */

#endif
