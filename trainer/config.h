/* config.h — every training option, once: its name, type, default and help text live in
 * one table (config.c) that drives the CLI flags (--lora-r), the JSON job file and the
 * service's request object ("lora_r" or "lora-r"), `--help`, and the copy of the
 * configuration saved in checkpoints. */
#ifndef OT_CONFIG_H
#define OT_CONFIG_H

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

#define OT_MAX_LIST 64

typedef struct ot_strlist {
    int n;
    char *v[OT_MAX_LIST];
} ot_strlist;

typedef struct ot_train_config {
    /* what */
    char *model, *data, *out;
    char *eval_data;      /* validation data in the training data's format, or NULL */
    int64_t eval_batches; /* micro-batches evaluated per eval, 0 = the whole validation set */
    char *weights; /* safetensors overlay applied to the model after loading, or NULL */
    /* how long */
    int64_t steps, epochs;
    int64_t batch_size, micro_batch_size, grad_accum, seq_len;
    int pack;
    /* optimizer */
    double lr, weight_decay, adam_beta1, adam_beta2, adam_eps, max_grad_norm;
    char *lr_schedule;
    int64_t warmup_steps;
    int64_t seed;
    int shuffle;
    /* what trains */
    int full;
    ot_strlist freeze;
    int64_t lora_r;
    double lora_alpha, lora_dropout;
    ot_strlist lora_targets;
    int lora_rslora;
    char *lora_init;
    /* loss */
    char *loss, *loss_output;
    /* run */
    int64_t save_every;
    char *resume, *log_json;
    int64_t threads;
    ot_strlist export_formats;
    char *export_dtype;   /* as-source | fp32 | bf16 | fp16: dtype of exported weights */
    /* precision (trainer/precision.h) */
    char *precision;      /* auto | fp32 | bf16 | fp16; finalize resolves auto */
    char *loss_scale;     /* fp16: "dynamic" or a fixed scale ("1" = none) */
    double loss_scale_init, loss_scale_min, loss_scale_max;
    int64_t loss_scale_window;
    int checkpoint_activations; /* recompute each transformer block in backward */
} ot_train_config;

/* Fills defaults. */
void ot_config_defaults(ot_train_config *c);
void ot_config_free(ot_train_config *c);

/* Applies one option by name ("lora-r", "lora_r" or "--lora-r") and textual value; errors
 * name the option. `*consumed_value` says whether the value was used (booleans may stand
 * alone: "--shuffle", "--no-shuffle"). */
ot_status ot_config_set(ot_train_config *c, const char *name, const char *value, int *consumed_value);
/* Applies a JSON object of options (strings, numbers, booleans, string arrays); an unknown
 * key or a value of the wrong type is an error naming the key. `what` names the source. */
ot_status ot_config_apply_json(ot_train_config *c, const cJSON *obj, const char *what);
ot_status ot_config_load_file(ot_train_config *c, const char *path);
/* Checks consistency (required fields, batch/micro-batch/accumulation, ranges) and derives
 * grad_accum / micro_batch_size. `ranks` is the data-parallel world size. */
ot_status ot_config_finalize(ot_train_config *c, int ranks);
/* The configuration as a JSON object (every option, canonical snake_case keys). */
cJSON *ot_config_to_json(const ot_train_config *c);
/* Writes `--name VALUE  help (default: ...)` lines for every option. */
void ot_config_print_help(FILE *f);

#endif
