/* grad_train.c — gradient builders for the training-only ops the trainer inserts. */
#include "trainer/grad/grad.h"

/* dX = TrainingDropout(dY, seed) with the forward's ratio and stream: the mask is recomputed
 * from the same (seed, stream, index), so dX = dY ⊙ m / (1 − p). */
static ot_status grad_training_dropout(ot_grad_ctx *c) {
    int in[2] = {ot_gb_dy(c, 0), ot_gb_in(c, 1)}, dx, idx;
    OT_TRY(ot_gb_op1(c, "TrainingDropout", OT_DOMAIN, "dx", in, 2, &dx, &idx));
    OT_TRY(ot_gb_copy_attrs(c, idx));
    ot_gb_set_dx(c, 0, dx);
    return OT_OK;
}

const ot_grad_def ot_grads_train[] = {
    {OT_DOMAIN, "TrainingDropout", 1, 1, grad_training_dropout, 0},
};
const int ot_grads_train_count = (int)(sizeof ot_grads_train / sizeof ot_grads_train[0]);
