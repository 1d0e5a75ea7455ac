/* train.c — the training loop: batches from the data cursor, forward+backward through the
 * session, gradient accumulation, clipping, AdamW, logging, checkpoints and resume.
 *
 * Determinism: everything a step computes is a function of (config, step, cursor, weights,
 * optimizer state), and dropout seeds derive from (seed, step, micro-step); so a run
 * resumed from the checkpoint of step k reproduces an uninterrupted run bit for bit on the
 * same machine and thread count. Evaluation on --eval-data (at every checkpoint and at the
 * end, logged before the checkpoint is written) reuses the training plan but changes nothing
 * a later step reads, so it leaves the training losses bit for bit as they were. */
#include "trainer/train.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnxtune/runtime.h"
#include "trainer/adamw.h"
#include "core/lowp.h"
#include "trainer/checkpoint.h"
#include "trainer/loss_scaler.h"
#include "trainer/data.h"
#include "trainer/rng.h"
#include "trainer/session.h"

double ot_lr_at(const ot_train_config *c, int64_t step, int64_t total) {
    if (step < c->warmup_steps) return c->lr * (double)step / (double)(c->warmup_steps > 0 ? c->warmup_steps : 1);
    if (!strcmp(c->lr_schedule, "constant")) return c->lr;
    double span = (double)(total - c->warmup_steps);
    if (span <= 0) return c->lr;
    double progress = (double)(step - c->warmup_steps) / span;
    if (!strcmp(c->lr_schedule, "linear")) return c->lr * fmax(0.0, 1.0 - progress);
    return c->lr * fmax(0.0, 0.5 * (1.0 + cos(M_PI * progress))); /* cosine, half a period */
}

typedef struct {
    FILE *log;
    int tty;
    double t0;
} reporter;

/* acc: the step's mean token accuracy, NaN when the loss has none (mse: the key is left out).
 * scale: the loss scale the step ran with (1 unless fp16); skipped: the step's fp16 gradients
 * overflowed and the update was skipped (its grad_norm, not finite, is logged as null); with
 * dynamic scaling, the scaler's counters after the step: good steps since the scale last
 * changed, and steps skipped in the whole run. */
static void report(reporter *r, int64_t step, int64_t total, double loss, double acc, double lr, double norm,
                   double tokens, double tok_s, double elapsed, double scale, int skipped, const ot_loss_scaler *ls) {
    if (r->log) {
        char acc_s[64] = "", norm_s[32] = "null", ls_s[96] = "";
        if (!isnan(acc)) snprintf(acc_s, sizeof acc_s, ", \"train_mean_token_accuracy\": %.9g", acc);
        if (isfinite(norm)) snprintf(norm_s, sizeof norm_s, "%.9g", norm);
        if (ls->dynamic)
            snprintf(ls_s, sizeof ls_s, ", \"good_steps\": %lld, \"skipped_steps\": %lld", (long long)ls->good_steps,
                     (long long)ls->skipped);
        fprintf(r->log,
                "{\"step\": %lld, \"total_steps\": %lld, \"loss\": %.9g%s, \"lr\": %.9g, \"grad_norm\": %s, "
                "\"loss_scale\": %.9g, \"skipped\": %s%s, \"tokens\": %.0f, \"tokens_per_s\": %.1f, "
                "\"elapsed_s\": %.3f}\n",
                (long long)step, (long long)total, loss, acc_s, lr, norm_s, scale, skipped ? "true" : "false", ls_s,
                tokens, tok_s, elapsed);
        fflush(r->log);
    }
    double eta = step ? elapsed / (double)step * (double)(total - step) : 0;
    if (r->tty) {
        int width = 24, fill = total ? (int)(width * step / total) : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[width] = '\0';
        fprintf(stderr, "\rstep %lld/%lld [%s] loss %.4f  %.0f tok/s  ETA %02d:%02d ", (long long)step,
                (long long)total, bar, loss, tok_s, (int)(eta / 60), (int)fmod(eta, 60));
        if (step == total) fputc('\n', stderr);
    } else if (step == 1 || step == total || step % (total / 20 > 0 ? total / 20 : 1) == 0) {
        fprintf(stderr, "step %lld/%lld loss %.4f lr %.3g grad_norm %.3g %.0f tok/s\n", (long long)step,
                (long long)total, loss, lr, norm, tok_s);
    }
}

static ot_status ensure_dir(const char *dir) {
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && access(dir, W_OK) == 0) return OT_OK;
        return ot_errorf(OT_E_IO, "output directory '%s' is not a writable directory", dir);
    }
    return ot_errorf(OT_E_IO, "cannot create output directory '%s': %s", dir, strerror(errno));
}

typedef struct {
    ot_session s;
    ot_adamw opt;
    ot_loss_scaler scaler;
    float **acc;        /* grad_accum > 1: the f32 sum of the micro-batches' gradients */
    ot_grad_ref *grads; /* what clipping and the optimizer read: the session's gradients or acc */
    float **params;     /* FP32 masters */
    int64_t *sizes;
} trainer;

/* acc ← g (first micro-batch) or acc ← acc + g, g in the compute dtype. */
static void accumulate(float *acc, const ot_tensor *g, int64_t n, int first) {
    if (first) {
        ot_lowp_to_f32_n(acc, g->data, g->dtype, (size_t)n);
        return;
    }
    float buf[4096];
    for (int64_t k0 = 0; k0 < n; k0 += 4096) {
        int64_t m = n - k0 < 4096 ? n - k0 : 4096;
        const float *src = buf;
        if (g->dtype == OT_F32) src = (const float *)g->data + k0;
        else ot_lowp_to_f32_n(buf, (const uint16_t *)g->data + k0, g->dtype, (size_t)m);
        for (int64_t k = 0; k < m; k++) acc[k0 + k] += src[k];
    }
}

/* The bytes this run holds, by kind, logged once as {"memory": {...}} so `onnxtune estimate`
 * can be checked against it: weights (every initializer, in its stored dtype), gradients (the
 * parameter gradients the plan outputs), master (FP32 copies of 16-bit parameters), optimizer
 * (AdamW m and v), activations (the plan's arena without the gradients), the f32
 * accumulation buffer of grad_accum > 1. */
static void log_memory(FILE *log, const trainer *t, const ot_train_config *cfg) {
    const ot_session *s = &t->s;
    double weights = 0, grads = 0, master = 0, trainable = 0;
    for (int v = 0; v < s->g->n_values; v++)
        if (s->g->values[v].init) weights += (double)ot_tensor_nbytes(s->g->values[v].init);
    for (int i = 0; i < s->n_params; i++) {
        trainable += (double)s->params[i].numel;
        grads += (double)s->params[i].numel * (double)ot_dtype_size(s->compute);
    }
    if (s->compute != OT_F32) master = 4 * trainable;
    ot_plan_stats ps;
    ot_plan_get_stats(s->plan, &ps);
    double activations = (double)ps.arena_bytes - grads, opt = 8 * trainable;
    double acc = cfg->grad_accum > 1 ? 4 * trainable : 0;
    fprintf(log,
            "{\"memory\": {\"weights\": %.0f, \"gradients\": %.0f, \"master\": %.0f, \"optimizer\": %.0f, "
            "\"activations\": %.0f, \"grad_accum_buffer\": %.0f, \"total\": %.0f}, \"precision\": \"%s\", "
            "\"checkpoint_activations\": %s}\n",
            weights, grads, master, opt, activations, acc, weights + grads + master + opt + activations + acc,
            cfg->precision, cfg->checkpoint_activations ? "true" : "false");
    fflush(log);
}

static ot_status save(trainer *t, const ot_train_config *cfg, int64_t step, int64_t cursor, double tokens) {
    int n = t->s.n_params;
    ot_named_tensor *w = calloc((size_t)n * 3, sizeof *w);
    ot_tensor *views = calloc((size_t)n * 2, sizeof *views);
    if (!w || !views) {
        free(w), free(views);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    ot_tensor *masters = calloc((size_t)n + 1, sizeof *masters);
    if (!masters) {
        free(w), free(views);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        const ot_tensor *p = t->s.g->values[t->s.params[i].value].init; /* for the shape */
        masters[i] = *p, masters[i].dtype = OT_F32, masters[i].data = t->params[i], masters[i].owned = 0;
        p = &masters[i];
        w[i].name = t->s.params[i].name;
        w[i].t = p;
        views[2 * i] = *p, views[2 * i].data = t->opt.m + t->opt.offset[i], views[2 * i].owned = 0;
        views[2 * i + 1] = *p, views[2 * i + 1].data = t->opt.v + t->opt.offset[i], views[2 * i + 1].owned = 0;
        w[n + i].name = w[2 * n + i].name = t->s.params[i].name;
        w[n + i].t = &views[2 * i];
        w[2 * n + i].t = &views[2 * i + 1];
    }
    ot_ckpt_group groups[3] = {{"trainable", w, n}, {"adam_m", w + n, n}, {"adam_v", w + 2 * n, n}};
    cJSON *state = cJSON_CreateObject();
    cJSON_AddItemToObject(state, "config", ot_config_to_json(cfg));
    cJSON_AddNumberToObject(state, "step", (double)step);
    cJSON_AddNumberToObject(state, "cursor", (double)cursor);
    cJSON_AddNumberToObject(state, "optimizer_step", (double)t->opt.step);
    cJSON_AddNumberToObject(state, "tokens", tokens);
    cJSON_AddStringToObject(state, "precision", cfg->precision);
    cJSON_AddItemToObject(state, "loss_scaler", ot_loss_scaler_to_json(&t->scaler));
    ot_status st = ot_checkpoint_save(cfg->out, step, state, groups, 3, NULL);
    cJSON_Delete(state);
    free(w), free(views), free(masters);
    return st;
}

/* Options that must agree between a checkpoint and the run resuming it. */
static ot_status check_resumable(const cJSON *saved, const ot_train_config *cfg) {
    static const char *keys[] = {"full", "lora_r", "lora_alpha", "lora_targets", "lora_rslora", "loss", "seq_len",
                                 "batch_size", "micro_batch_size", "grad_accum", "seed", "shuffle", "pack"};
    cJSON *now = ot_config_to_json(cfg);
    ot_status st = OT_OK;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && st == OT_OK; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(saved, keys[i]), *b = cJSON_GetObjectItemCaseSensitive(now, keys[i]);
        if (!a || !cJSON_Compare(a, b, 1))
            st = ot_errorf(OT_E_INVALID, "--resume: option '%s' differs from the checkpoint's", keys[i]);
    }
    cJSON_Delete(now);
    return st;
}

static ot_status restore(trainer *t, const ot_train_config *cfg, int64_t *step, int64_t *cursor, double *tokens) {
    ot_checkpoint *ck;
    OT_TRY(ot_checkpoint_open(cfg->resume, &ck));
    const cJSON *state = ot_checkpoint_state(ck);
    const cJSON *saved = cJSON_GetObjectItemCaseSensitive(state, "config");
    ot_status st = check_resumable(saved, cfg);
    const char *groups[3] = {"trainable", "adam_m", "adam_v"};
    for (int i = 0; st == OT_OK && i < t->s.n_params; i++) {
        float *dst[3] = {t->params[i], t->opt.m + t->opt.offset[i], t->opt.v + t->opt.offset[i]};
        for (int k = 0; k < 3 && st == OT_OK; k++) {
            const ot_tensor *x = ot_checkpoint_tensor(ck, groups[k], t->s.params[i].name);
            if (!x || x->dtype != OT_F32 || ot_tensor_numel(x) != t->s.params[i].numel)
                st = ot_errorf(OT_E_INVALID, "checkpoint '%s': %s tensor '%s' is missing or has the wrong shape",
                               ot_checkpoint_dir(ck), groups[k], t->s.params[i].name);
            else
                memcpy(dst[k], x->data, (size_t)t->s.params[i].numel * sizeof(float));
        }
    }
    if (st == OT_OK) {
        *step = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(state, "step"));
        *cursor = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(state, "cursor"));
        *tokens = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(state, "tokens"));
        t->opt.step = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(state, "optimizer_step"));
        /* a checkpoint of another precision has no (or a meaningless) scaler: start afresh */
        const cJSON *prec = cJSON_GetObjectItemCaseSensitive(state, "precision");
        const cJSON *ls = cJSON_GetObjectItemCaseSensitive(state, "loss_scaler");
        if (t->scaler.dynamic && ls && cJSON_IsString(prec) && !strcmp(prec->valuestring, cfg->precision))
            st = ot_loss_scaler_from_json(&t->scaler, ls);
        ot_session_sync_params(&t->s);
    }
    if (st == OT_OK) {
        fprintf(stderr, "resumed from %s at step %lld\n", ot_checkpoint_dir(ck), (long long)*step);
    }
    ot_checkpoint_close(ck);
    return st;
}

static int64_t dropout_seed(int64_t seed, int64_t step, int64_t micro) {
    uint64_t x = (uint64_t)seed ^ ((uint64_t)step << 20) ^ (uint64_t)micro;
    return (int64_t)(ot_splitmix64(&x) >> 1);
}

/* Evaluates --eval-data at `step`: forward (and, unavoidably, backward) through the training
 * plan on micro-batches of the validation set in file order (never shuffled), averaging the
 * per-batch loss and accuracy; logs {"step", "eval": true, "valid_loss",
 * "valid_mean_token_accuracy" (left out for mse), "eval_batches", "full_set" (true when
 * eval_batches is 0: the whole set)} and one stderr line. eval_batches = 0 runs ceil(len / mb)
 * batches: the whole set, the last partial batch wrapping around to the set's start (as the
 * training data does). It touches nothing training reads later: the gradient outputs it
 * overwrites are copied into the accumulation buffers at every step's first micro-batch,
 * the optimizer state, cursor and weights are not touched, and dropout seeds (LoRA dropout,
 * if configured, stays active in the training plan) are a pure function of (seed, batch). */
static ot_status evaluate(ot_session *s, const ot_train_config *cfg, ot_dataset *eds, reporter *rep, int64_t step) {
    int64_t mb = cfg->micro_batch_size, len = ot_dataset_len(eds);
    int64_t nb = cfg->eval_batches ? cfg->eval_batches : (len + mb - 1) / mb;
    double loss_sum = 0, acc_sum = 0;
    int has_acc = 1;
    ot_batch b = {0};
    ot_status st = OT_OK;
    for (int64_t i = 0; i < nb && st == OT_OK; i++) {
        double loss, acc = 0;
        st = ot_dataset_batch(eds, i * mb, (int)mb, &b);
        if (st == OT_OK) st = ot_session_step(s, &b, dropout_seed(cfg->seed, -1, i), &loss);
        if (st != OT_OK) break;
        has_acc = ot_session_accuracy(s, &acc);
        loss_sum += loss;
        acc_sum += acc;
    }
    ot_batch_free(&b);
    if (st != OT_OK) return ot_error_wrap(st, "--eval-data '%s': ", cfg->eval_data);
    double vl = nb ? loss_sum / (double)nb : 0, va = nb ? acc_sum / (double)nb : 0;
    if (rep->log) {
        fprintf(rep->log, "{\"step\": %lld, \"eval\": true, \"valid_loss\": %.9g", (long long)step, vl);
        if (has_acc) fprintf(rep->log, ", \"valid_mean_token_accuracy\": %.9g", va);
        fprintf(rep->log, ", \"eval_batches\": %lld, \"full_set\": %s}\n", (long long)nb,
                cfg->eval_batches ? "false" : "true");
        fflush(rep->log);
    }
    fprintf(stderr, "%seval step %lld: valid_loss %.4f", rep->tty ? "\n" : "", (long long)step, vl);
    if (has_acc) fprintf(stderr, " valid_mean_token_accuracy %.4f", va);
    fprintf(stderr, " (%lld batches of %lld)\n", (long long)nb, (long long)mb);
    return OT_OK;
}

ot_status ot_train(const ot_train_config *cfg) {
    ot_set_threads((int)cfg->threads);
    ot_data_opts dopts = {(int)cfg->seq_len, cfg->pack, cfg->shuffle, (uint64_t)cfg->seed, 0};
    ot_dataset *ds, *eds = NULL;
    OT_TRY(ot_dataset_open(cfg->data, &dopts, &ds));
    if (cfg->eval_data) {
        ot_data_opts eopts = dopts;
        eopts.shuffle = 0;
        ot_status est = ot_dataset_open(cfg->eval_data, &eopts, &eds);
        if (est == OT_OK && ot_dataset_len(eds) == 0)
            est = ot_errorf(OT_E_INVALID, "--eval-data '%s' holds no samples", cfg->eval_data);
        if (est != OT_OK) {
            ot_dataset_close(eds);
            ot_dataset_close(ds);
            return est;
        }
    }
    trainer t;
    memset(&t, 0, sizeof t);
    ot_batch batch = {0};
    reporter rep = {NULL, isatty(2), omp_get_wtime()};
    int64_t mb = cfg->micro_batch_size, accum = cfg->grad_accum;
    int64_t total = cfg->steps ? cfg->steps : (cfg->epochs * ot_dataset_len(ds) + cfg->batch_size - 1) / cfg->batch_size;
    int64_t step = 0, cursor = 0;
    double tokens_total = 0;
    ot_status st = ot_dataset_batch(ds, 0, (int)mb, &batch);
    if (st == OT_OK) st = ot_session_build(&t.s, cfg, &batch);
    /* Created only once the data and model are known good, so a bad run leaves nothing. */
    if (st == OT_OK) st = ensure_dir(cfg->out);
    int n = t.s.n_params;
    if (st == OT_OK) {
        t.grads = calloc((size_t)n + 1, sizeof *t.grads);
        t.acc = calloc((size_t)n + 1, sizeof *t.acc);
        t.params = calloc((size_t)n + 1, sizeof *t.params);
        t.sizes = calloc((size_t)n + 1, sizeof *t.sizes);
        if (!t.grads || !t.acc || !t.params || !t.sizes) st = ot_errorf(OT_E_NOMEM, "out of memory");
    }
    for (int i = 0; st == OT_OK && i < n; i++) {
        t.params[i] = t.s.params[i].data;
        t.sizes[i] = t.s.params[i].numel;
        if (accum > 1 && !(t.acc[i] = malloc((size_t)t.sizes[i] * sizeof(float))))
            st = ot_errorf(OT_E_NOMEM, "out of memory");
        t.grads[i].data = t.acc[i];
        t.grads[i].dtype = OT_F32;
    }
    ot_loss_scaler_init(&t.scaler, cfg);
    ot_adamw_hparams h = {(float)cfg->adam_beta1, (float)cfg->adam_beta2, (float)cfg->adam_eps, (float)cfg->weight_decay};
    if (st == OT_OK) st = ot_adamw_init(&t.opt, &h, t.sizes, n);
    if (st == OT_OK && cfg->resume) st = restore(&t, cfg, &step, &cursor, &tokens_total);
    if (st == OT_OK && cfg->log_json && !(rep.log = fopen(cfg->log_json, "a")))
        st = ot_errorf(OT_E_IO, "cannot open --log-json '%s': %s", cfg->log_json, strerror(errno));
    if (st == OT_OK && rep.log) log_memory(rep.log, &t, cfg);
    int64_t trainable = 0;
    for (int i = 0; t.sizes && i < n; i++) trainable += t.sizes[i];
    if (st == OT_OK)
        fprintf(stderr, "training %lld parameters in %d tensors (%s), %lld steps of %lld samples (%lld x %lld), %s\n",
                (long long)trainable, n, cfg->full ? "full" : "LoRA", (long long)total, (long long)cfg->batch_size,
                (long long)mb, (long long)accum, cfg->precision);
    if (st == OT_OK && cfg->checkpoint_activations)
        fprintf(stderr, "activation checkpointing: %d blocks recomputed in backward (%d nodes)\n", t.s.remat.n_blocks,
                t.s.remat.n_recomputed_nodes);
    if (st == OT_OK && t.s.compute != OT_F32)
        fprintf(stderr, "%s: %d weights stored in 16 bits (%.1f MB saved), %d nodes run on 16-bit tensors, %d in f32 "
                "between %d Casts\n", cfg->precision, t.s.autocast.n_weights, (double)t.s.autocast.weight_bytes_saved / 1e6,
                t.s.autocast.n_native, t.s.autocast.n_wrapped, t.s.autocast.n_casts);
    double t_start = omp_get_wtime(), tokens_run = 0;
    for (; st == OT_OK && step < total; step++) {
        double loss_sum = 0, acc_sum = 0, tokens = 0;
        int has_acc = 0;
        double scale = t.scaler.scale;
        t.s.loss_scale = (float)scale;
        for (int64_t micro = 0; micro < accum && st == OT_OK; micro++) {
            double loss, acc = 0;
            st = ot_dataset_batch(ds, cursor, (int)mb, &batch);
            if (st == OT_OK) st = ot_session_step(&t.s, &batch, dropout_seed(cfg->seed, step, micro), &loss);
            if (st != OT_OK) break;
            cursor += mb;
            loss_sum += loss;
            has_acc = ot_session_accuracy(&t.s, &acc);
            acc_sum += acc;
            tokens += (double)batch.tokens;
            for (int i = 0; i < n; i++) {
                const ot_tensor *g = ot_session_grad_tensor(&t.s, i);
                if (accum > 1) accumulate(t.acc[i], g, t.sizes[i], micro == 0);
                else t.grads[i].data = g->data, t.grads[i].dtype = g->dtype; /* read in place */
            }
        }
        if (st != OT_OK) break;
        if (accum > 1) ot_grads_scale(t.acc, t.sizes, n, 1.0f / (float)accum);
        /* the loss scale comes off as the gradients are read (exact for the dynamic scaler's
         * powers of 2; a fixed --loss-scale of another value costs one rounding) */
        double unscale = 1.0 / scale;
        double norm = ot_grad_global_norm_ref(t.grads, t.sizes, n, (float)unscale);
        int finite = isfinite(norm) && isfinite(loss_sum);
        int skipped = ot_loss_scaler_update(&t.scaler, finite);
        if (!finite && !t.scaler.dynamic) {
            st = ot_errorf(OT_E_INVALID, "step %lld: the loss or gradients are not finite (loss %g, grad norm %g); "
                           "lower --lr or check the data%s", (long long)step + 1, loss_sum / (double)accum, norm,
                           !strcmp(cfg->precision, "fp16") ? " (or use --loss-scale dynamic)" : "");
            break;
        }
        double lr = ot_lr_at(cfg, step, total);
        if (!skipped) {
            double mul = unscale;
            if (cfg->max_grad_norm > 0 && norm > cfg->max_grad_norm) /* torch.nn.utils.clip_grad_norm_ */
                mul = scale == 1 ? (double)(float)(cfg->max_grad_norm / (norm + 1e-6))
                                 : unscale * (cfg->max_grad_norm / (norm + 1e-6));
            ot_adamw_step_ref(&t.opt, t.params, t.grads, (float)mul, (float)lr);
            ot_session_sync_params(&t.s);
        } else {
            fprintf(stderr, "step %lld: fp16 gradients overflowed at loss scale %g; step skipped, scale now %g\n",
                    (long long)step + 1, scale, t.scaler.scale);
        }
        tokens_total += tokens;
        tokens_run += tokens; /* throughput counts this process's steps only */
        double elapsed = omp_get_wtime() - t_start;
        report(&rep, step + 1, total, loss_sum / (double)accum, has_acc ? acc_sum / (double)accum : NAN, lr, norm,
               tokens_total, elapsed > 0 ? tokens_run / elapsed : 0, omp_get_wtime() - rep.t0,
               scale, skipped, &t.scaler);
        /* the eval line is written before the checkpoint appears, so a watcher that sees the
         * checkpoint finds its eval line already logged */
        if (cfg->save_every && (step + 1) % cfg->save_every == 0 && step + 1 < total) {
            if (eds) st = evaluate(&t.s, cfg, eds, &rep, step + 1);
            if (st == OT_OK) st = save(&t, cfg, step + 1, cursor, tokens_total);
        }
    }
    if (st == OT_OK && eds) st = evaluate(&t.s, cfg, eds, &rep, step);
    if (st == OT_OK) st = save(&t, cfg, step, cursor, tokens_total);
    if (rep.log) fclose(rep.log);
    if (t.s.plan) ot_plan_print_profile(t.s.plan); /* OT_PROFILE=1: time per op type over the run */
    ot_batch_free(&batch);
    for (int i = 0; t.acc && i < n; i++) free(t.acc[i]);
    free(t.acc), free(t.grads), free(t.params), free(t.sizes);
    ot_adamw_free(&t.opt);
    ot_session_free(&t.s);
    ot_dataset_close(ds);
    ot_dataset_close(eds);
    return st;
}
