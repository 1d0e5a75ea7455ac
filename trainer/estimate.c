/* estimate.c — the estimator's arithmetic (bytes per category, ZeRO shards) and its two
 * renderings, the table and the JSON object; see estimate.h for the byte counts. The model
 * side (counting parameters, planning activations) is estimate_plan.c. */
#include "trainer/estimate.h"

#include <inttypes.h>
#include <string.h>

/* Above this many parameters 16 B/param and the JSON's exact integers stop being safe. */
#define OT_MAX_PARAMS ((int64_t)1e15)

static int64_t shard(int64_t n, int on, int ranks) { return on ? (n + ranks - 1) / ranks : n; }

/* Per rank at ZeRO stage z (z = 0 with ranks = 1 is the unsharded column). */
static void per_rank(const ot_estimate *e, int z, int ranks, ot_mem *m) {
    int lowp = strcmp(e->precision, "fp32") != 0;
    int64_t wb = lowp ? 2 : 4, mb = lowp ? 4 : 0, t = e->trainable;
    memset(m, 0, sizeof *m);
    m->weights = shard(t + e->frozen, z >= 3, ranks) * wb + e->const_bytes;
    m->gradients = shard(t, z >= 2, ranks) * wb;
    m->master = shard(t, z >= 1, ranks) * mb;
    m->optimizer = shard(t, z >= 1, ranks) * 8;
    m->model_states = m->weights + m->gradients + m->master + m->optimizer;
    m->grad_accum_buffer = e->grad_accum > 1 ? shard(t, z >= 2, ranks) * 4 : 0;
    m->activations = e->activations[e->checkpoint ? 1 : 0];
    m->total = m->model_states + m->grad_accum_buffer + (m->activations > 0 ? m->activations : 0);
}

ot_status ot_estimate_compute(ot_estimate *e) {
    if (strcmp(e->precision, "fp32") && strcmp(e->precision, "bf16") && strcmp(e->precision, "fp16"))
        return ot_errorf(OT_E_INVALID, "precision must be fp32, bf16 or fp16, got '%s'", e->precision);
    if (e->zero < 0 || e->zero > 3) return ot_errorf(OT_E_INVALID, "--zero must be 0, 1, 2 or 3, got %d", e->zero);
    if (e->ranks < 1) return ot_errorf(OT_E_INVALID, "--ranks must be at least 1, got %d", e->ranks);
    if (e->trainable < 0 || e->frozen < 0 || e->const_bytes < 0 || e->trainable + e->frozen > OT_MAX_PARAMS)
        return ot_errorf(OT_E_INVALID, "parameter counts must lie in [0, 1e15], got %" PRId64 " trainable and %" PRId64
                         " frozen", e->trainable, e->frozen);
    per_rank(e, e->zero, e->ranks, &e->per_rank);
    per_rank(e, 0, 1, &e->unsharded);
    for (int z = 0; z < 4; z++) {
        ot_mem m;
        per_rank(e, z, e->ranks, &m);
        e->model_states_by_zero[z] = m.model_states;
    }
    return OT_OK;
}

/* ---- table ---- */

static void row(FILE *f, const char *label, int64_t rank, int64_t all) {
    if (rank < 0) {
        fprintf(f, "%-30s %18s %10s %18s %10s\n", label, "n/a", "n/a", "n/a", "n/a");
        return;
    }
    fprintf(f, "%-30s %18" PRId64 " %10.2f %18" PRId64 " %10.2f\n", label, rank, (double)rank / 1e9, all,
            (double)all / 1e9);
}

static const char *mode_str(char *buf, size_t n, const ot_estimate *e) {
    if (e->full) snprintf(buf, n, "full fine-tuning");
    else if (e->lora_r > 0) snprintf(buf, n, "LoRA r=%" PRId64, e->lora_r);
    else snprintf(buf, n, "LoRA");
    return buf;
}

void ot_estimate_print(FILE *f, const ot_estimate *e, const char *what) {
    char mode[64];
    const char *lp = e->precision;
    fprintf(f, "onnxtune estimate: %s, %s, %s, ", what, mode_str(mode, sizeof mode, e), e->precision);
    if (e->activations[0] >= 0)
        fprintf(f, "micro-batch %" PRId64 " x seq-len %" PRId64 ", ", e->micro_batch, e->seq_len);
    fprintf(f, "ZeRO-%d over %d rank%s\n", e->zero, e->ranks, e->ranks == 1 ? "" : "s");
    fprintf(f, "parameters: %" PRId64 " trainable, %" PRId64 " frozen, %" PRId64 " in all", e->trainable, e->frozen,
            e->trainable + e->frozen);
    if (e->const_bytes) fprintf(f, "; other constants %" PRId64 " bytes (in weights)", e->const_bytes);
    fprintf(f, "; %" PRId64 " micro-batch%s per step\n\n", e->grad_accum, e->grad_accum == 1 ? "" : "es");
    fprintf(f, "%-30s %29s %29s\n", "", "per rank", "unsharded");
    fprintf(f, "%-30s %18s %10s %18s %10s\n", "category", "bytes", "GB", "bytes", "GB");
    char label[64];
    snprintf(label, sizeof label, "weights (%s)", lp);
    row(f, label, e->per_rank.weights, e->unsharded.weights);
    snprintf(label, sizeof label, "gradients (%s)", lp);
    row(f, label, e->per_rank.gradients, e->unsharded.gradients);
    row(f, "master weights (fp32)", e->per_rank.master, e->unsharded.master);
    row(f, "optimizer state (fp32 m, v)", e->per_rank.optimizer, e->unsharded.optimizer);
    row(f, "= model states", e->per_rank.model_states, e->unsharded.model_states);
    row(f, "grad accumulation (fp32)", e->per_rank.grad_accum_buffer, e->unsharded.grad_accum_buffer);
    row(f, e->checkpoint ? "activations (checkpointed)" : "activations", e->per_rank.activations,
        e->unsharded.activations);
    row(f, "total", e->per_rank.total, e->unsharded.total);
    fputc('\n', f);
    if (e->activations[0] >= 0 && e->activations[1] >= 0)
        fprintf(f, "activations per micro-batch: %" PRId64 " bytes (%.2f GB) without, %" PRId64
                   " bytes (%.2f GB) with --checkpoint-activations; the total uses %s\n",
                e->activations[0], (double)e->activations[0] / 1e9, e->activations[1], (double)e->activations[1] / 1e9,
                e->checkpoint ? "with" : "without");
    else if (e->activations[0] >= 0)
        fprintf(f, "activations per micro-batch: %" PRId64 " bytes (%.2f GB) without; with --checkpoint-activations "
                   "n/a: %s\n", e->activations[0], (double)e->activations[0] / 1e9, e->ckpt_error);
    else
        fprintf(f, "activations: n/a without a model (--model M plans the graph); the total leaves them out\n");
    fprintf(f, "model states per rank over %d rank%s: ZeRO-0 %.2f GB, ZeRO-1 %.2f GB, ZeRO-2 %.2f GB, ZeRO-3 %.2f GB "
               "(unsharded %.2f GB)\n",
            e->ranks, e->ranks == 1 ? "" : "s", (double)e->model_states_by_zero[0] / 1e9,
            (double)e->model_states_by_zero[1] / 1e9, (double)e->model_states_by_zero[2] / 1e9,
            (double)e->model_states_by_zero[3] / 1e9, (double)e->unsharded.model_states / 1e9);
}

/* ---- JSON ---- */

/* Bytes as exact integers (cJSON prints large doubles with an exponent). */
static void add_int(cJSON *o, const char *key, int64_t v) {
    char buf[32];
    if (v < 0) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    snprintf(buf, sizeof buf, "%" PRId64, v);
    cJSON_AddRawToObject(o, key, buf);
}

static cJSON *mem_json(const ot_mem *m) {
    cJSON *o = cJSON_CreateObject();
    add_int(o, "weights", m->weights);
    add_int(o, "gradients", m->gradients);
    add_int(o, "master", m->master);
    add_int(o, "optimizer", m->optimizer);
    add_int(o, "model_states", m->model_states);
    add_int(o, "grad_accum_buffer", m->grad_accum_buffer);
    add_int(o, "activations", m->activations);
    add_int(o, "total", m->total);
    return o;
}

cJSON *ot_estimate_to_json(const ot_estimate *e, const char *what) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "source", what);
    cJSON_AddStringToObject(o, "mode", e->full ? "full" : "lora");
    cJSON_AddStringToObject(o, "precision", e->precision);
    add_int(o, "zero", e->zero);
    add_int(o, "ranks", e->ranks);
    add_int(o, "trainable_params", e->trainable);
    add_int(o, "frozen_params", e->frozen);
    add_int(o, "grad_accum", e->grad_accum);
    if (e->activations[0] >= 0) {
        add_int(o, "micro_batch_size", e->micro_batch);
        add_int(o, "seq_len", e->seq_len);
    }
    cJSON_AddBoolToObject(o, "checkpoint_activations", e->checkpoint);
    cJSON_AddItemToObject(o, "per_rank", mem_json(&e->per_rank));
    cJSON_AddItemToObject(o, "unsharded", mem_json(&e->unsharded));
    cJSON *act = cJSON_AddObjectToObject(o, "activations");
    add_int(act, "without_checkpointing", e->activations[0]);
    add_int(act, "with_checkpointing", e->activations[1]);
    if (e->ckpt_error[0]) cJSON_AddStringToObject(act, "checkpointing_error", e->ckpt_error);
    cJSON *z = cJSON_AddObjectToObject(o, "model_states_per_rank_by_zero");
    for (int s = 0; s < 4; s++) {
        char key[8];
        snprintf(key, sizeof key, "%d", s);
        add_int(z, key, e->model_states_by_zero[s]);
    }
    return o;
}
