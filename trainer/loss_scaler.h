/* loss_scaler.h — dynamic loss scaling for fp16 training (PyTorch GradScaler's policy).
 *
 * fp16's smallest subnormal is 5.96e-8: small gradients flush to zero in backward unless the
 * loss (its gradient seed) is scaled up first. The gradients are unscaled in f32 before
 * clipping and the update. When any of them is inf/NaN the step is skipped and the scale
 * halved; after `window` good steps in a row it doubles; it stays within [min, max].
 * A fixed scale (--loss-scale N) never changes and treats inf/NaN as an error, like fp32. */
#ifndef OT_LOSS_SCALER_H
#define OT_LOSS_SCALER_H

#include <cJSON.h>
#include <stdint.h>

#include "core/status.h"
#include "trainer/config.h"

typedef struct ot_loss_scaler {
    int dynamic;          /* 0: fixed scale (also bf16/fp32, where it is 1) */
    double scale;
    double min, max;
    int64_t window;
    int64_t good_steps;   /* finite steps since the last change */
    int64_t skipped;      /* steps skipped over the whole run */
} ot_loss_scaler;

/* From the configuration: dynamic only for fp16 with --loss-scale dynamic. */
void ot_loss_scaler_init(ot_loss_scaler *s, const ot_train_config *cfg);
/* After a step's gradients were checked: finite = 1 keeps the step (and may double the
 * scale), 0 skips it (halves the scale). Returns 1 when the step must be skipped. */
int ot_loss_scaler_update(ot_loss_scaler *s, int finite);
/* Checkpoint state {"scale", "good_steps", "skipped"} and its restore (errors name the key). */
cJSON *ot_loss_scaler_to_json(const ot_loss_scaler *s);
ot_status ot_loss_scaler_from_json(ot_loss_scaler *s, const cJSON *o);

#endif
