/* job_config.h — translates a fine-tuning request (OpenAI shape plus the "onnxtune" object)
 * into the JSON job file `onnxtune run --config` reads, and resolves its hyperparameters.
 * The HTTP layer calls ot_job_config_build at create time to validate a request (with
 * placeholder paths); the runner calls it again with the real ones. Options are validated
 * by the one option table (trainer/config.c, ot_config_apply_json): nothing is re-listed.
 *
 * Defaults for "auto" (documented for users): n_epochs 3, batch_size 8,
 * learning_rate_multiplier 1.0; learning rate = multiplier x 1e-4. Export formats:
 * onnx, safetensors, peft for LoRA; onnx, safetensors for full fine-tuning ("full": true),
 * unless the onnxtune object sets "export". */
#ifndef OT_SERVICE_JOB_CONFIG_H
#define OT_SERVICE_JOB_CONFIG_H

#include <cJSON.h>

#include "core/status.h"

#define OT_JOB_DEFAULT_EPOCHS 3
#define OT_JOB_DEFAULT_BATCH 8
#define OT_JOB_DEFAULT_LR_MULT 1.0
#define OT_JOB_BASE_LR 1e-4

/* The resolved {"n_epochs": int, "batch_size": int, "learning_rate_multiplier": number}
 * for `request` ("auto" or absent -> defaults; an "onnxtune" epochs/batch_size/lr is NOT
 * consulted here). OT_E_INVALID naming the field for a wrong type or a value out of range
 * (n_epochs 1..1000, batch_size 1..65536, multiplier > 0 and <= 100). Caller frees *out. */
ot_status ot_job_hyperparameters(const cJSON *request, cJSON **out);

/* Builds the job file object: "model" from request.model, "data" = training_path,
 * "eval_data" = validation_path when not NULL (the job's validation_file, linked like the
 * training file; evaluated at every checkpoint and at the end),
 * "epochs"/"batch_size"/"lr" from the hyperparameters, "seed" when given, the "onnxtune"
 * object merged on top verbatim, then "out" = run_dir, "log_json" = run_dir/log.jsonl
 * (these two and "data"/"eval_data"/"model"/"resume" may not be set by the onnxtune object), and
 * "export" defaulted as above. The result is checked with ot_config_apply_json and
 * ot_config_finalize; errors name the offending field. Caller frees *out. */
ot_status ot_job_config_build(const cJSON *request, const char *training_path, const char *validation_path,
                              const char *run_dir, cJSON **out);

/* "ft:<basename of model without extension>:<suffix or job id>" into buf. */
void ot_job_fine_tuned_name(const char *model, const char *suffix, const char *job_id, char *buf, size_t n);

#endif
