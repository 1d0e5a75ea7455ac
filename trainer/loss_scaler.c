/* loss_scaler.c — see loss_scaler.h. */
#include "trainer/loss_scaler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ot_loss_scaler_init(ot_loss_scaler *s, const ot_train_config *cfg) {
    memset(s, 0, sizeof *s);
    s->scale = 1;
    s->min = cfg->loss_scale_min;
    s->max = cfg->loss_scale_max;
    s->window = cfg->loss_scale_window;
    if (!cfg->precision || strcmp(cfg->precision, "fp16") != 0) return;
    s->dynamic = !strcmp(cfg->loss_scale, "dynamic");
    s->scale = s->dynamic ? cfg->loss_scale_init : strtod(cfg->loss_scale, NULL);
}

int ot_loss_scaler_update(ot_loss_scaler *s, int finite) {
    if (!s->dynamic) return !finite;
    if (!finite) {
        s->scale = fmax(s->scale * 0.5, s->min);
        s->good_steps = 0;
        s->skipped++;
        return 1;
    }
    if (++s->good_steps >= s->window) {
        s->scale = fmin(s->scale * 2, s->max);
        s->good_steps = 0;
    }
    return 0;
}

cJSON *ot_loss_scaler_to_json(const ot_loss_scaler *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "scale", s->scale);
    cJSON_AddNumberToObject(o, "good_steps", (double)s->good_steps);
    cJSON_AddNumberToObject(o, "skipped", (double)s->skipped);
    return o;
}

ot_status ot_loss_scaler_from_json(ot_loss_scaler *s, const cJSON *o) {
    static const char *keys[] = {"scale", "good_steps", "skipped"};
    for (int i = 0; i < 3; i++)
        if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, keys[i])))
            return ot_errorf(OT_E_INVALID, "checkpoint: loss_scaler.%s is missing or not a number", keys[i]);
    s->scale = cJSON_GetObjectItemCaseSensitive(o, "scale")->valuedouble;
    s->good_steps = (int64_t)cJSON_GetObjectItemCaseSensitive(o, "good_steps")->valuedouble;
    s->skipped = (int64_t)cJSON_GetObjectItemCaseSensitive(o, "skipped")->valuedouble;
    if (!(s->scale > 0) || !isfinite(s->scale))
        return ot_errorf(OT_E_INVALID, "checkpoint: loss_scaler.scale %g is not a positive number", s->scale);
    return OT_OK;
}
