/* train.h — the training loop and exporting a run's checkpoint. */
#ifndef OT_TRAIN_H
#define OT_TRAIN_H

#include "trainer/config.h"

/* Trains per `cfg` (finalized): data, session, AdamW with schedule, clipping and
 * accumulation, JSON-line logs, progress, checkpoints every save_every steps and at the
 * end, resume from cfg->resume. */
ot_status ot_train(const ot_train_config *cfg);

/* Learning rate at optimizer step `step` (0-based) of `total`, as Hugging Face's
 * get_{constant,linear,cosine}_schedule_with_warmup. */
double ot_lr_at(const ot_train_config *cfg, int64_t step, int64_t total);

/* Exports a checkpoint (a step directory or a run directory) as "onnx" (the original graph
 * with merged weights), "safetensors" (merged weights by module name) or "peft" (the
 * adapter directory) to `out`. */
ot_status ot_export_checkpoint(const char *checkpoint, const char *format, const char *dtype, const char *out);

#endif
