/* loss.h — the loss heads' forward ops and their gradients (domain "ai.onnxtune", opset 1);
 * kernels in loss.c, gradient builders in trainer/grad/grad_loss.c. Signatures:
 *
 *   CausalLMLoss(logits [..., S, V], labels [..., S] int64|int32) -> loss [], lse? [..., S], acc? []
 *     attr ignore_index (default -100). Shifted: position t predicts labels[..., t+1]; the
 *     last position has no target. loss = mean over counted positions of
 *     lse(logits[.., t, :]) − logits[.., t, label]; counted = has a target that is not
 *     ignore_index. lse (optional output 1) is the per-row logsumexp the backward reuses;
 *     rows without a target hold 0 there. acc (optional output 2, always float32) is the mean
 *     token accuracy: the fraction of counted positions whose argmax over the logits equals
 *     the label (ties -> the lowest index and a NaN is the maximum, as torch.argmax); 0 when
 *     nothing is counted. It is not differentiable: its gradient is ignored (treated as 0).
 *   CausalLMLossGrad(dLoss [], logits, labels, lse?) -> dLogits (logits' shape)
 *     dLogits[row] = (softmax(row) − onehot(label)) · dLoss / count for counted rows, 0 for
 *     the others; lse is recomputed when absent.
 *   CrossEntropyLoss(logits [N, C] | [N, C, d1, ...], labels [N] | [N, d1, ...]) -> loss [], lse?, acc?
 *   CrossEntropyLossGrad(dLoss [], logits, labels, lse?) -> dLogits
 *     attr ignore_index (default -100); mean over non-ignored samples; classes along dim 1
 *     (ONNX SoftmaxCrossEntropyLoss / PyTorch layout); no shift; lse and acc as for CausalLMLoss
 *     (acc: fraction of non-ignored samples whose argmax along dim 1 is the label).
 *   MSELoss(pred, target) -> loss [] = mean((pred − target)²)
 *   MSELossGrad(dLoss [], pred, target) -> dPred = 2 (pred − target) · dLoss / numel
 *     target has pred's shape, float32 or float64 (any mix with pred's dtype).
 *
 * Common rules: f32 and f64 logits/pred; the loss has the logits' dtype; sums accumulate in
 * double. Nothing that counts is undefined: with no counted position (all ignored, or
 * S = 1, or an empty tensor) the loss is 0 and the gradient is 0 — never NaN. A label
 * outside [0, V) that is not ignore_index is an error naming the op, the label value and
 * its position. No op materialises a copy of the logits besides the gradient itself. */
#ifndef OT_LOSS_H
#define OT_LOSS_H

#include "../op.h"

#define OT_LOSS_DOMAIN "ai.onnxtune" /* = OT_DOMAIN of trainer/grad/grad.h */

#endif
