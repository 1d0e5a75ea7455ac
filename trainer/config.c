/* config.c — the option table and its parsers; see config.h. */
#include "trainer/config.h"

#include "core/cpu.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_STR, T_INT, T_FLOAT, T_BOOL, T_LIST } opt_type;

typedef struct {
    const char *name; /* canonical, snake_case */
    opt_type type;
    size_t off;
    const char *dflt; /* textual default, NULL = unset */
    const char *help;
    double min, max;  /* numeric range */
} opt;

#define F(field) offsetof(ot_train_config, field)
static const opt options[] = {
    {"model", T_STR, F(model), NULL, "base model: an .onnx file, a Hugging Face directory (config.json + safetensors), or an http(s):// or hf:// URL", 0, 0},
    {"weights", T_STR, F(weights), NULL, "safetensors file whose tensors replace the model's weights (by module name)", 0, 0},
    {"data", T_STR, F(data), NULL, "training data: .jsonl, .npy tokens or .bin token shards", 0, 0},
    {"eval_data", T_STR, F(eval_data), NULL, "validation data in the training data's format; evaluated at every checkpoint and at the end", 0, 0},
    {"eval_batches", T_INT, F(eval_batches), "0", "micro-batches of --eval-data per evaluation; 0 = the whole validation set", 0, 1e12},
    {"out", T_STR, F(out), NULL, "output directory (checkpoints, exports, logs)", 0, 0},
    {"steps", T_INT, F(steps), "0", "optimizer steps; 0 = run --epochs over the data", 0, 1e12},
    {"epochs", T_INT, F(epochs), "1", "passes over the data when --steps is 0", 1, 1e9},
    {"batch_size", T_INT, F(batch_size), "8", "global batch: samples per optimizer step, over all ranks and accumulation steps", 1, 1e9},
    {"micro_batch_size", T_INT, F(micro_batch_size), "0", "samples per rank per forward pass; 0 = batch_size / (ranks * grad_accum)", 0, 1e9},
    {"grad_accum", T_INT, F(grad_accum), "0", "accumulation steps; 0 = batch_size / (ranks * micro_batch_size)", 0, 1e9},
    {"seq_len", T_INT, F(seq_len), "512", "token data: sequence length (pad or truncate, or pack)", 1, 1e9},
    {"pack", T_BOOL, F(pack), "false", "token data: concatenate samples into seq_len rows instead of padding", 0, 0},
    {"lr", T_FLOAT, F(lr), "1e-4", "peak learning rate", 0, 1e3},
    {"lr_schedule", T_STR, F(lr_schedule), "linear", "constant | linear | cosine (after warmup, decaying to 0)", 0, 0},
    {"warmup_steps", T_INT, F(warmup_steps), "0", "linear warmup from 0 over this many steps", 0, 1e12},
    {"weight_decay", T_FLOAT, F(weight_decay), "0", "AdamW decoupled weight decay", 0, 1e3},
    {"adam_beta1", T_FLOAT, F(adam_beta1), "0.9", "AdamW beta1", 0, 1},
    {"adam_beta2", T_FLOAT, F(adam_beta2), "0.999", "AdamW beta2", 0, 1},
    {"adam_eps", T_FLOAT, F(adam_eps), "1e-8", "AdamW epsilon", 0, 1},
    {"max_grad_norm", T_FLOAT, F(max_grad_norm), "1.0", "clip gradients to this global norm; 0 = no clipping", 0, 1e12},
    {"seed", T_INT, F(seed), "42", "seed of LoRA init, data order and dropout", 0, 9.2e18},
    {"shuffle", T_BOOL, F(shuffle), "true", "shuffle samples each epoch (--no-shuffle to keep file order)", 0, 0},
    {"full", T_BOOL, F(full), "false", "full fine-tuning: train every floating-point weight instead of LoRA", 0, 0},
    {"freeze", T_LIST, F(freeze), NULL, "full fine-tuning: module/weight names (suffixes) kept frozen", 0, 0},
    {"lora_r", T_INT, F(lora_r), "8", "LoRA rank", 1, 65536},
    {"lora_alpha", T_FLOAT, F(lora_alpha), "16", "LoRA alpha (scale = alpha / r)", 0, 1e9},
    {"lora_dropout", T_FLOAT, F(lora_dropout), "0", "dropout on the LoRA branch input", 0, 0.999},
    {"lora_targets", T_LIST, F(lora_targets), "all-linear", "module names or suffixes to adapt, comma separated; all-linear = every linear but the head", 0, 0},
    {"lora_rslora", T_BOOL, F(lora_rslora), "false", "rank-stabilised scale alpha / sqrt(r)", 0, 0},
    {"lora_init", T_STR, F(lora_init), "kaiming", "kaiming | gaussian | a PEFT adapter directory to start from", 0, 0},
    {"loss", T_STR, F(loss), "causal-lm", "causal-lm | cross-entropy | mse", 0, 0},
    {"loss_output", T_STR, F(loss_output), NULL, "model output the loss applies to (default: the first)", 0, 0},
    {"save_every", T_INT, F(save_every), "0", "checkpoint every N steps (0: only at the end)", 0, 1e12},
    {"resume", T_STR, F(resume), NULL, "checkpoint (or output directory) to resume from", 0, 0},
    {"log_json", T_STR, F(log_json), NULL, "append one JSON line per step to this file", 0, 0},
    {"threads", T_INT, F(threads), "0", "CPU threads (0 = all cores)", 0, 4096},
    {"export", T_LIST, F(export_formats), "onnx", "run: export formats after training (onnx, safetensors, peft)", 0, 0},
    {"export_dtype", T_STR, F(export_dtype), "as-source", "dtype of exported weights: as-source (the model's own) | fp32 | bf16 | fp16", 0, 0},
    {"precision", T_STR, F(precision), "auto", "fp32 | bf16 | fp16 compute and activations (FP32 master weights and optimizer state always); auto = bf16 where the CPU has bf16 instructions, else fp32", 0, 0},
    {"loss_scale", T_STR, F(loss_scale), "dynamic", "fp16 only: dynamic loss scaling, or a fixed scale (1 = no scaling)", 0, 0},
    {"loss_scale_init", T_FLOAT, F(loss_scale_init), "65536", "fp16: initial dynamic loss scale", 1e-30, 1e30},
    {"loss_scale_window", T_INT, F(loss_scale_window), "2000", "fp16: double the scale after this many steps without overflow", 1, 1e12},
    {"loss_scale_min", T_FLOAT, F(loss_scale_min), "1", "fp16: the scale never drops below this", 1e-30, 1e30},
    {"loss_scale_max", T_FLOAT, F(loss_scale_max), "16777216", "fp16: the scale never grows above this", 1e-30, 1e30},
    {"checkpoint_activations", T_BOOL, F(checkpoint_activations), "false", "keep only each transformer block's input and recompute the block in backward (less memory, ~1/3 more compute)", 0, 0},
};
#define N_OPTIONS (int)(sizeof options / sizeof options[0])

/* "--lora-r", "lora-r" and "lora_r" all name lora_r. */
static const opt *find(const char *name, int *negated) {
    char canon[128];
    *negated = 0;
    while (*name == '-') name++;
    if (strncmp(name, "no-", 3) == 0 || strncmp(name, "no_", 3) == 0) {
        *negated = 1;
        name += 3;
    }
    size_t n = strlen(name);
    if (n >= sizeof canon) return NULL;
    for (size_t i = 0; i <= n; i++) canon[i] = name[i] == '-' ? '_' : name[i];
    for (int i = 0; i < N_OPTIONS; i++)
        if (strcmp(options[i].name, canon) == 0) return (*negated && options[i].type != T_BOOL) ? NULL : &options[i];
    return NULL;
}

static void list_free(ot_strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    l->n = 0;
}

static ot_status list_set(ot_strlist *l, const char *value, const char *name) {
    list_free(l);
    const char *p = value;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && (*p == ' ')) p++, len--;
        while (len && p[len - 1] == ' ') len--;
        if (len) {
            if (l->n == OT_MAX_LIST) return ot_errorf(OT_E_INVALID, "option '%s': more than %d entries", name, OT_MAX_LIST);
            if (!(l->v[l->n++] = strndup(p, len))) return ot_errorf(OT_E_NOMEM, "out of memory");
        }
        if (!comma) break;
        p = comma + 1;
    }
    return OT_OK;
}

static ot_status set_value(ot_train_config *c, const opt *o, const char *value) {
    char *base = (char *)c;
    char *end;
    switch (o->type) {
    case T_STR: {
        char **dst = (char **)(base + o->off);
        free(*dst);
        *dst = value ? strdup(value) : NULL;
        if (value && !*dst) return ot_errorf(OT_E_NOMEM, "out of memory");
        return OT_OK;
    }
    case T_INT: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end || (double)v < o->min || (double)v > o->max)
            return ot_errorf(OT_E_INVALID, "option '%s' expects an integer in [%.0f, %.0f], got '%s'", o->name, o->min,
                             o->max, value);
        *(int64_t *)(base + o->off) = v;
        return OT_OK;
    }
    case T_FLOAT: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v) || v < o->min || v > o->max)
            return ot_errorf(OT_E_INVALID, "option '%s' expects a number in [%g, %g], got '%s'", o->name, o->min, o->max,
                             value);
        *(double *)(base + o->off) = v;
        return OT_OK;
    }
    case T_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes")) *(int *)(base + o->off) = 1;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no")) *(int *)(base + o->off) = 0;
        else return ot_errorf(OT_E_INVALID, "option '%s' expects true or false, got '%s'", o->name, value);
        return OT_OK;
    case T_LIST: return list_set((ot_strlist *)(base + o->off), value, o->name);
    }
    return OT_OK;
}

void ot_config_defaults(ot_train_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_OPTIONS; i++)
        if (options[i].dflt) set_value(c, &options[i], options[i].dflt); /* defaults are valid by construction */
}

void ot_config_free(ot_train_config *c) {
    char *base = (char *)c;
    for (int i = 0; i < N_OPTIONS; i++) {
        if (options[i].type == T_STR) free(*(char **)(base + options[i].off));
        if (options[i].type == T_LIST) list_free((ot_strlist *)(base + options[i].off));
    }
    memset(c, 0, sizeof *c);
}

ot_status ot_config_set(ot_train_config *c, const char *name, const char *value, int *consumed) {
    int negated;
    const opt *o = find(name, &negated);
    *consumed = 0;
    if (!o) return ot_errorf(OT_E_INVALID, "unknown option '%s'", name);
    if (o->type == T_BOOL) {
        /* --flag, --no-flag, or --flag true|false */
        if (value && (!strcmp(value, "true") || !strcmp(value, "false"))) {
            *consumed = 1;
            OT_TRY(set_value(c, o, value));
            if (negated) *(int *)((char *)c + o->off) ^= 1;
            return OT_OK;
        }
        *(int *)((char *)c + o->off) = !negated;
        return OT_OK;
    }
    if (!value) return ot_errorf(OT_E_INVALID, "option '%s' needs a value", o->name);
    *consumed = 1;
    return set_value(c, o, value);
}

ot_status ot_config_apply_json(ot_train_config *c, const cJSON *obj, const char *what) {
    if (!cJSON_IsObject(obj)) return ot_errorf(OT_E_INVALID, "%s: expected a JSON object of options", what);
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        int negated;
        const opt *o = find(item->string, &negated);
        if (!o || negated) return ot_errorf(OT_E_INVALID, "%s: unknown option '%s'", what, item->string);
        char buf[64];
        const char *text = NULL;
        if (o->type == T_LIST && cJSON_IsArray(item)) {
            ot_strlist *l = (ot_strlist *)((char *)c + o->off);
            list_free(l);
            const cJSON *e;
            cJSON_ArrayForEach(e, item) {
                if (!cJSON_IsString(e))
                    return ot_errorf(OT_E_INVALID, "%s: option '%s' must be a list of strings", what, o->name);
                if (l->n == OT_MAX_LIST) return ot_errorf(OT_E_INVALID, "%s: option '%s' has too many entries", what, o->name);
                if (!(l->v[l->n++] = strdup(e->valuestring))) return ot_errorf(OT_E_NOMEM, "out of memory");
            }
            continue;
        }
        if (cJSON_IsString(item) && (o->type == T_STR || o->type == T_LIST)) {
            text = item->valuestring;
        } else if (cJSON_IsNumber(item) && (o->type == T_INT || o->type == T_FLOAT)) {
            if (o->type == T_INT && item->valuedouble != floor(item->valuedouble))
                return ot_errorf(OT_E_INVALID, "%s: option '%s' must be an integer", what, o->name);
            snprintf(buf, sizeof buf, o->type == T_INT ? "%.0f" : "%.17g", item->valuedouble);
            text = buf;
        } else if (cJSON_IsBool(item) && o->type == T_BOOL) {
            text = cJSON_IsTrue(item) ? "true" : "false";
        } else if (cJSON_IsNull(item) && o->type == T_STR) {
            text = NULL;
        } else {
            static const char *names[] = {"a string", "an integer", "a number", "a boolean", "a list of strings"};
            return ot_errorf(OT_E_INVALID, "%s: option '%s' must be %s", what, o->name, names[o->type]);
        }
        ot_status st = set_value(c, o, text);
        if (st != OT_OK) return ot_error_wrap(st, "%s: ", what);
    }
    return OT_OK;
}

ot_status ot_config_load_file(ot_train_config *c, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return ot_errorf(OT_E_IO, "cannot open config '%s': %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (64u << 20)) {
                free(buf);
                fclose(f);
                return ot_errorf(OT_E_INVALID, "config '%s' is larger than 64 MB", path);
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return ot_errorf(OT_E_NOMEM, "out of memory");
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    buf[len] = '\0';
    const char *err_at = NULL;
    cJSON *obj = cJSON_ParseWithOpts(buf, &err_at, 1);
    ot_status st;
    if (!obj) {
        size_t off = err_at ? (size_t)(err_at - buf) : 0;
        st = ot_errorf(OT_E_INVALID, "config '%s': invalid JSON at byte %zu", path, off);
    } else {
        char what[1024];
        snprintf(what, sizeof what, "config '%s'", path);
        st = ot_config_apply_json(c, obj, what);
    }
    cJSON_Delete(obj);
    free(buf);
    return st;
}

static int in_set(const char *v, const char *const *set, int n) {
    for (int i = 0; v && i < n; i++)
        if (!strcmp(v, set[i])) return 1;
    return 0;
}

ot_status ot_config_finalize(ot_train_config *c, int ranks) {
    if (!c->model) return ot_errorf(OT_E_INVALID, "missing --model");
    if (!c->data) return ot_errorf(OT_E_INVALID, "missing --data");
    if (!c->out) return ot_errorf(OT_E_INVALID, "missing --out");
    static const char *schedules[] = {"constant", "linear", "cosine"}, *losses[] = {"causal-lm", "cross-entropy", "mse"},
                      *formats[] = {"onnx", "safetensors", "peft"};
    if (!in_set(c->lr_schedule, schedules, 3))
        return ot_errorf(OT_E_INVALID, "--lr-schedule must be constant, linear or cosine, got '%s'", c->lr_schedule);
    if (!in_set(c->loss, losses, 3))
        return ot_errorf(OT_E_INVALID, "--loss must be causal-lm, cross-entropy or mse, got '%s'", c->loss);
    for (int i = 0; i < c->export_formats.n; i++)
        if (!in_set(c->export_formats.v[i], formats, 3))
            return ot_errorf(OT_E_INVALID, "--export: unknown format '%s' (onnx, safetensors, peft)", c->export_formats.v[i]);
    if (c->full && c->export_formats.n && in_set("peft", (const char *const *)c->export_formats.v, c->export_formats.n))
        return ot_errorf(OT_E_INVALID, "--export peft needs LoRA training, not --full");
    if (!c->full && c->lora_targets.n == 0) return ot_errorf(OT_E_INVALID, "--lora-targets is empty");
    static const char *precisions[] = {"auto", "fp32", "bf16", "fp16"}, *export_dtypes[] = {"as-source", "fp32", "bf16", "fp16"};
    if (!in_set(c->precision, precisions, 4))
        return ot_errorf(OT_E_INVALID, "--precision must be auto, fp32, bf16 or fp16, got '%s'", c->precision);
    if (!in_set(c->export_dtype, export_dtypes, 4))
        return ot_errorf(OT_E_INVALID, "--export-dtype must be as-source, fp32, bf16 or fp16, got '%s'", c->export_dtype);
    if (!strcmp(c->precision, "auto")) {
        free(c->precision);
        c->precision = strdup(ot_cpu_has_bf16() ? "bf16" : "fp32");
        if (!c->precision) return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    if (strcmp(c->loss_scale, "dynamic") != 0) {
        char *end;
        double v = strtod(c->loss_scale, &end);
        if (end == c->loss_scale || *end || !(v > 0) || !isfinite(v))
            return ot_errorf(OT_E_INVALID, "--loss-scale must be 'dynamic' or a positive number, got '%s'", c->loss_scale);
    }
    if (c->loss_scale_min > c->loss_scale_max || c->loss_scale_init < c->loss_scale_min ||
        c->loss_scale_init > c->loss_scale_max)
        return ot_errorf(OT_E_INVALID, "--loss-scale-init %g must lie in [--loss-scale-min %g, --loss-scale-max %g]",
                         c->loss_scale_init, c->loss_scale_min, c->loss_scale_max);
    /* batch = ranks · micro · accum */
    int64_t per_rank = c->batch_size / ranks;
    if (c->batch_size % ranks)
        return ot_errorf(OT_E_INVALID, "--batch-size %lld is not divisible by %d ranks", (long long)c->batch_size, ranks);
    if (c->micro_batch_size && c->grad_accum) {
        if (c->micro_batch_size * c->grad_accum != per_rank)
            return ot_errorf(OT_E_INVALID, "--batch-size %lld != ranks %d x --micro-batch-size %lld x --grad-accum %lld",
                             (long long)c->batch_size, ranks, (long long)c->micro_batch_size, (long long)c->grad_accum);
    } else if (c->micro_batch_size) {
        if (per_rank % c->micro_batch_size)
            return ot_errorf(OT_E_INVALID, "--batch-size %lld is not a multiple of ranks %d x --micro-batch-size %lld",
                             (long long)c->batch_size, ranks, (long long)c->micro_batch_size);
        c->grad_accum = per_rank / c->micro_batch_size;
    } else if (c->grad_accum) {
        if (per_rank % c->grad_accum)
            return ot_errorf(OT_E_INVALID, "--batch-size %lld is not a multiple of ranks %d x --grad-accum %lld",
                             (long long)c->batch_size, ranks, (long long)c->grad_accum);
        c->micro_batch_size = per_rank / c->grad_accum;
    } else {
        c->micro_batch_size = per_rank;
        c->grad_accum = 1;
    }
    if (c->warmup_steps && c->steps && c->warmup_steps > c->steps)
        return ot_errorf(OT_E_INVALID, "--warmup-steps %lld exceeds --steps %lld", (long long)c->warmup_steps,
                         (long long)c->steps);
    return OT_OK;
}

cJSON *ot_config_to_json(const ot_train_config *c) {
    cJSON *o = cJSON_CreateObject();
    const char *base = (const char *)c;
    for (int i = 0; o && i < N_OPTIONS; i++) {
        const opt *p = &options[i];
        switch (p->type) {
        case T_STR: {
            const char *s = *(char *const *)(base + p->off);
            if (s) cJSON_AddStringToObject(o, p->name, s);
            else cJSON_AddNullToObject(o, p->name);
            break;
        }
        case T_INT: cJSON_AddNumberToObject(o, p->name, (double)*(const int64_t *)(base + p->off)); break;
        case T_FLOAT: cJSON_AddNumberToObject(o, p->name, *(const double *)(base + p->off)); break;
        case T_BOOL: cJSON_AddBoolToObject(o, p->name, *(const int *)(base + p->off)); break;
        case T_LIST: {
            const ot_strlist *l = (const ot_strlist *)(base + p->off);
            cJSON *a = cJSON_AddArrayToObject(o, p->name);
            for (int k = 0; k < l->n; k++) cJSON_AddItemToArray(a, cJSON_CreateString(l->v[k]));
            break;
        }
        }
    }
    return o;
}

void ot_config_print_help(FILE *f) {
    for (int i = 0; i < N_OPTIONS; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", options[i].name);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_') *p = '-';
        const char *arg = options[i].type == T_BOOL ? "" : options[i].type == T_LIST ? " A,B" : " V";
        char left[96];
        snprintf(left, sizeof left, "%s%s", flag, arg);
        fprintf(f, "  %-26s %s", left, options[i].help);
        if (options[i].dflt) fprintf(f, " (default: %s)", options[i].dflt);
        fputc('\n', f);
    }
}
