/* adamw.h — AdamW over f32 parameters, PyTorch's torch.optim.AdamW formulation:
 *   p ← p · (1 − lr·wd)
 *   m ← β1·m + (1 − β1)·g ;  v ← β2·v + (1 − β2)·g²
 *   p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
 * with the operations in that order, so f32 trajectories track PyTorch's closely. The
 * optimizer owns m and v (one allocation, sliced per parameter) and updates parameters in
 * place. */
#ifndef OT_ADAMW_H
#define OT_ADAMW_H

#include <stdint.h>

#include "core/tensor.h"

typedef struct ot_adamw_hparams {
    float beta1, beta2, eps, weight_decay;
} ot_adamw_hparams;

typedef struct ot_adamw {
    ot_adamw_hparams h;
    int n;                /* parameters */
    int64_t *offset;      /* element offset of parameter i in m and v */
    int64_t total;        /* elements over all parameters */
    float *m, *v;
    int64_t step;         /* updates done (t of the bias corrections) */
} ot_adamw;

/* sizes[i]: element count of parameter i. */
ot_status ot_adamw_init(ot_adamw *o, const ot_adamw_hparams *h, const int64_t *sizes, int n);
void ot_adamw_free(ot_adamw *o);
/* One update of every parameter: params[i] (f32, in place) with grads[i] (f32) at `lr`.
 * Increments step first, as PyTorch does. */
void ot_adamw_step(ot_adamw *o, float *const *params, const float *const *grads, float lr);

/* A gradient as the graph produced it: f32, or 16-bit under bf16/fp16 (converted to f32 as it
 * is read, so no f32 copy is made). */
typedef struct ot_grad_ref {
    const void *data;
    ot_dtype dtype; /* OT_F32, OT_BF16 or OT_F16 */
} ot_grad_ref;

/* ot_adamw_step over gradients read as f32(g)·mul (mul folds the loss-scale removal and the
 * clipping factor into the read; mul = 1 reads g exactly). */
void ot_adamw_step_ref(ot_adamw *o, float *const *params, const ot_grad_ref *grads, float mul, float lr);
/* √(Σ (f32(g)·mul)²) over every gradient, accumulated in double: inf/NaN when any element is. */
double ot_grad_global_norm_ref(const ot_grad_ref *grads, const int64_t *sizes, int n, float mul);

/* √(Σ g²) over every gradient, accumulated in double. */
double ot_grad_global_norm(const float *const *grads, const int64_t *sizes, int n);
/* g ← g · s for every gradient. */
void ot_grads_scale(float *const *grads, const int64_t *sizes, int n, float s);

#endif
