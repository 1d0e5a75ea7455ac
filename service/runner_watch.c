/* runner_watch.c — progress of a running job into the store (see runner_watch.h).
 *
 * log.jsonl is appended by the trainer, across attempts; a line is consumed only once it
 * ends in '\n', so a half-written line is never parsed. A step already reported by an
 * earlier attempt (the resumed run replays steps after its last checkpoint, bit-exactly)
 * gets no second event. Checkpoint folders count only when named exactly step-<digits> and
 * holding manifest.json (the trainer renames a complete folder into place).
 * Checkpoint metrics: the trainer logs a checkpoint's eval line before it writes the
 * checkpoint, and each poll reads the log before listing checkpoints, so a checkpoint row
 * is recorded with its eval metrics already known; eval lines make no events. */
#include "service/runner_watch.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/path.h"

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

ot_status ot_watch_init(ot_watch *w, ot_store *st, const char *job_id, const char *job_dir) {
    memset(w, 0, sizeof *w);
    w->st = st;
    snprintf(w->job_id, sizeof w->job_id, "%s", job_id);
    w->first_step = -1;
    w->run_dir = ot_path_join(job_dir, "run");
    w->train_log = ot_path_join(job_dir, "train.log");
    w->log_json = w->run_dir ? ot_path_join(w->run_dir, "log.jsonl") : NULL;
    if (!w->run_dir || !w->train_log || !w->log_json) {
        ot_watch_free(w);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    /* the newest step event decides where reporting resumes */
    ot_event_rec *ev;
    int n, more;
    OT_TRY(ot_store_event_list(st, job_id, NULL, 200, 1, &ev, &n, &more));
    for (int i = 0; i < n && !w->last_event_step; i++) {
        cJSON *d = ev[i].data ? cJSON_Parse(ev[i].data) : NULL;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(d, "step");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "total_steps");
        if (cJSON_IsNumber(s)) w->last_event_step = (int64_t)s->valuedouble;
        if (cJSON_IsNumber(t)) w->total_steps = (int64_t)t->valuedouble;
        cJSON_Delete(d);
    }
    ot_event_recs_free(ev, n);
    return OT_OK;
}

void ot_watch_free(ot_watch *w) {
    free(w->run_dir), free(w->log_json), free(w->train_log), free(w->partial);
    free(w->losses), free(w->evals), free(w->ckpt_seen);
    memset(w, 0, sizeof *w);
}

/* "training N parameters in T tensors (LoRA), S steps of ..." in the child's stderr. */
static void find_total_steps(ot_watch *w) {
    FILE *f = fopen(w->train_log, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, " steps of ");
        if (!p || strncmp(line, "training ", 9)) continue;
        const char *q = p;
        while (q > line && q[-1] >= '0' && q[-1] <= '9') q--;
        if (q < p) w->total_steps = strtoll(q, NULL, 10);
    }
    if (f) fclose(f);
}

static double num(const cJSON *o, const char *k, int *ok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) {
        *ok = 0;
        return 0;
    }
    return v->valuedouble;
}

/* Grows an array of `size`-byte records to hold one more. */
static ot_status grow(void **arr, int n, int *cap, size_t size) {
    if (n < *cap) return OT_OK;
    int c = *cap ? 2 * *cap : 64;
    void *g = realloc(*arr, (size_t)c * size);
    if (!g) return ot_errorf(OT_E_NOMEM, "out of memory");
    *arr = g, *cap = c;
    return OT_OK;
}

/* {"step": N, "eval": true, "valid_loss": x, "valid_mean_token_accuracy"?: a, "full_set"?: b} */
static ot_status on_eval(ot_watch *w, const cJSON *j) {
    int ok = 1, oka = 1;
    int64_t step = (int64_t)num(j, "step", &ok);
    double loss = num(j, "valid_loss", &ok), acc = num(j, "valid_mean_token_accuracy", &oka);
    if (!ok) return OT_OK;
    OT_TRY(grow((void **)&w->evals, w->nevals, &w->capevals, sizeof *w->evals));
    w->evals[w->nevals].step = step, w->evals[w->nevals].loss = loss, w->evals[w->nevals].acc = acc;
    w->evals[w->nevals].has_acc = oka;
    w->evals[w->nevals].full = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "full_set"));
    w->nevals++;
    return OT_OK;
}

static ot_status on_line(ot_watch *w, const char *line) {
    cJSON *j = cJSON_Parse(line);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return OT_OK; /* not ours to judge; the child's exit status decides */
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "eval"))) {
        ot_status s = on_eval(w, j);
        cJSON_Delete(j);
        return s;
    }
    int ok = 1, oka = 1;
    double acc = num(j, "train_mean_token_accuracy", &oka);
    int64_t step = (int64_t)num(j, "step", &ok);
    double loss = num(j, "loss", &ok);
    int ok2 = 1;
    int okg = 1; /* grad_norm is null on a step fp16 skipped for overflowing gradients */
    double lr = num(j, "lr", &ok2), gn = num(j, "grad_norm", &okg), tokens = num(j, "tokens", &ok2),
           tps = num(j, "tokens_per_s", &ok2), el = num(j, "elapsed_s", &ok2);
    int skipped = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "skipped"));
    int okt = 1;
    double tot = num(j, "total_steps", &okt);
    cJSON_Delete(j);
    if (!ok) return OT_OK;
    if (okt && tot > 0) w->total_steps = (int64_t)tot;
    if (!w->total_steps) find_total_steps(w);
    OT_TRY(grow((void **)&w->losses, w->nlosses, &w->caplosses, sizeof *w->losses));
    w->losses[w->nlosses].step = step, w->losses[w->nlosses].loss = loss;
    w->losses[w->nlosses].acc = acc, w->losses[w->nlosses].has_acc = oka;
    w->nlosses++;
    if (w->first_step < 0) w->first_step = step, w->first_elapsed = el;
    if (step <= w->last_event_step) return OT_OK;
    w->last_event_step = step;
    char msg[160], data[512];
    if (w->total_steps)
        snprintf(msg, sizeof msg, "Step %lld/%lld: training loss=%.4f", (long long)step, (long long)w->total_steps, loss);
    else
        snprintf(msg, sizeof msg, "Step %lld: training loss=%.4f", (long long)step, loss);
    int n = snprintf(data, sizeof data, "{\"step\":%lld,\"train_loss\":%.9g", (long long)step, loss);
    if (ok2) {
        char gn_s[32] = "null";
        if (okg) snprintf(gn_s, sizeof gn_s, "%.9g", gn);
        n += snprintf(data + n, sizeof data - (size_t)n,
                      ",\"lr\":%.9g,\"grad_norm\":%s,\"tokens\":%.0f,\"tokens_per_s\":%.1f,\"elapsed_s\":%.3f", lr, gn_s,
                      tokens, tps, el);
    }
    if (skipped) n += snprintf(data + n, sizeof data - (size_t)n, ",\"skipped\":true");
    if (w->total_steps) n += snprintf(data + n, sizeof data - (size_t)n, ",\"total_steps\":%lld", (long long)w->total_steps);
    snprintf(data + n, sizeof data - (size_t)n, "}");
    OT_TRY(ot_store_event_add(w->st, w->job_id, "info", msg, data, NULL));
    if (ok2) {
        int64_t eta = 0;
        if (w->total_steps && step > w->first_step && el > w->first_elapsed)
            eta = (int64_t)time(NULL) +
                  (int64_t)((el - w->first_elapsed) / (double)(step - w->first_step) * (double)(w->total_steps - step));
        OT_TRY(ot_store_job_set_progress(w->st, w->job_id, (int64_t)tokens, eta));
    }
    return OT_OK;
}

static ot_status poll_log(ot_watch *w) {
    FILE *f = fopen(w->log_json, "r");
    if (!f) return OT_OK; /* not written yet */
    ot_status s = OT_OK;
    if (fseek(f, w->offset, SEEK_SET) == 0) {
        char buf[8192];
        size_t got;
        while (s == OT_OK && (got = fread(buf, 1, sizeof buf, f)) > 0) {
            w->offset += (long)got;
            size_t plen = w->partial ? strlen(w->partial) : 0;
            char *all = malloc(plen + got + 1);
            if (!all) {
                s = ot_errorf(OT_E_NOMEM, "out of memory");
                break;
            }
            if (plen) memcpy(all, w->partial, plen);
            memcpy(all + plen, buf, got);
            all[plen + got] = '\0';
            free(w->partial);
            w->partial = NULL;
            char *p = all, *nl;
            while (s == OT_OK && (nl = strchr(p, '\n'))) {
                *nl = '\0';
                s = on_line(w, p);
                p = nl + 1;
            }
            if (*p) w->partial = strdup(p);
            free(all);
        }
    }
    fclose(f);
    return s;
}

/* step-<digits> exactly (not .tmp.<pid> or .old.<pid>); -1 otherwise. */
static int64_t ckpt_step(const char *name) {
    if (strncmp(name, "step-", 5) || !name[5]) return -1;
    for (const char *p = name + 5; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    return strtoll(name + 5, NULL, 10);
}

static int seen(const ot_watch *w, int64_t step) {
    for (int i = 0; i < w->nseen; i++)
        if (w->ckpt_seen[i] == step) return 1;
    return 0;
}

static ot_status poll_ckpts(ot_watch *w) {
    char *ck = ot_path_join(w->run_dir, "checkpoints");
    DIR *d = ck ? opendir(ck) : NULL;
    ot_status s = OT_OK;
    struct dirent *e;
    while (d && s == OT_OK && (e = readdir(d))) {
        int64_t step = ckpt_step(e->d_name);
        if (step < 0 || seen(w, step)) continue;
        char *dir = ot_path_join(ck, e->d_name), *man = dir ? ot_path_join(dir, "manifest.json") : NULL;
        if (man && is_file(man)) {
            char metrics[512];
            int n = snprintf(metrics, sizeof metrics, "{\"step\":%lld", (long long)step);
            for (int i = w->nlosses - 1; i >= 0; i--)
                if (w->losses[i].step == step) {
                    n += snprintf(metrics + n, sizeof metrics - (size_t)n, ",\"train_loss\":%.9g", w->losses[i].loss);
                    if (w->losses[i].has_acc)
                        n += snprintf(metrics + n, sizeof metrics - (size_t)n, ",\"train_mean_token_accuracy\":%.9g",
                                      w->losses[i].acc);
                    break;
                }
            for (int i = w->nevals - 1; i >= 0; i--) /* the newest eval of this step (a resumed run redoes it) */
                if (w->evals[i].step == step) {
                    for (int full = 0; full <= w->evals[i].full; full++) {
                        const char *pre = full ? "full_valid" : "valid";
                        n += snprintf(metrics + n, sizeof metrics - (size_t)n, ",\"%s_loss\":%.9g", pre,
                                      w->evals[i].loss);
                        if (w->evals[i].has_acc)
                            n += snprintf(metrics + n, sizeof metrics - (size_t)n, ",\"%s_mean_token_accuracy\":%.9g",
                                          pre, w->evals[i].acc);
                    }
                    break;
                }
            snprintf(metrics + n, sizeof metrics - (size_t)n, "}");
            s = ot_store_ckpt_add(w->st, w->job_id, step, metrics, dir, NULL);
            if (s == OT_OK && w->nseen == w->capseen) {
                int cap = w->capseen ? 2 * w->capseen : 16;
                int64_t *g = realloc(w->ckpt_seen, (size_t)cap * sizeof *g);
                if (!g) s = ot_errorf(OT_E_NOMEM, "out of memory");
                else w->ckpt_seen = g, w->capseen = cap;
            }
            if (s == OT_OK) w->ckpt_seen[w->nseen++] = step;
        }
        free(man), free(dir);
    }
    if (d) closedir(d);
    free(ck);
    return s;
}

ot_status ot_watch_poll(ot_watch *w) {
    OT_TRY(poll_log(w)); /* log first: a checkpoint's metrics come from its step's line */
    return poll_ckpts(w);
}

int64_t ot_watch_latest_ckpt(const char *run_dir) {
    char *ck = ot_path_join(run_dir, "checkpoints");
    DIR *d = ck ? opendir(ck) : NULL;
    int64_t best = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int64_t step = ckpt_step(e->d_name);
        if (step <= best) continue;
        char *dir = ot_path_join(ck, e->d_name), *man = dir ? ot_path_join(dir, "manifest.json") : NULL;
        if (man && is_file(man)) best = step;
        free(man), free(dir);
    }
    if (d) closedir(d);
    free(ck);
    return best;
}

char *ot_watch_result_files(const char *run_dir) {
    static const char *const names[] = {"model.onnx", "model.safetensors", "adapter/adapter_model.safetensors",
                                        "adapter/adapter_config.json"};
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < sizeof names / sizeof names[0]; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/export/%s", run_dir, names[i]);
        if (is_file(p)) cJSON_AddItemToArray(arr, cJSON_CreateString(names[i]));
    }
    char *text = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    return text;
}

char *ot_watch_tail_lines(const char *path, int n) {
    FILE *f = fopen(path, "rb");
    long size = 0;
    if (f && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    long start = size > 16384 ? size - 16384 : 0; /* 20 lines of a log fit in 16 KiB */
    char *buf = malloc(16385);
    size_t got = 0;
    if (f && buf && fseek(f, start, SEEK_SET) == 0) got = fread(buf, 1, 16384, f);
    if (f) fclose(f);
    if (!buf) return strdup("");
    buf[got] = '\0';
    while (got && buf[got - 1] == '\n') buf[--got] = '\0';
    /* progress bars use '\r': keep only what a terminal would show */
    for (size_t i = 0; i < got; i++)
        if (buf[i] == '\r') buf[i] = '\n';
    size_t i = got;
    int lines = 0;
    while (i > 0) {
        if (buf[i - 1] == '\n' && ++lines == n) break;
        i--;
    }
    char *out = strdup(buf + i);
    free(buf);
    return out ? out : strdup("");
}
