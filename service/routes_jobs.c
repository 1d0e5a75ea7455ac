/* routes_jobs.c — /v1/fine_tuning/jobs: create (validation of the OpenAI-shaped request
 * plus the "onnxtune" object, Idempotency-Key), list, retrieve, cancel, events (a page, or
 * ?stream=true as server-sent events that end when the job reaches a terminal state),
 * checkpoints and artifact download with single byte ranges.
 *
 * Invariants: a job id, event id, checkpoint id or artifact name from a URL is checked
 * (ot_id_valid; artifact names by segment, then realpath confinement to the job's export
 * directory) before the store or the file system sees it. A local `model` path must
 * resolve (realpath) inside one of the --model-root directories; the stored request carries
 * the resolved path. Nothing here changes a job except through the store or the runner. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "service/job_config.h"
#include "service/server.h"

/* ---- the job object ------------------------------------------------------------------ */

static void add_json_text(cJSON *o, const char *key, const char *text, int null_if_missing) {
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    if (v) cJSON_AddItemToObject(o, key, v);
    else if (null_if_missing) cJSON_AddNullToObject(o, key);
}

static void add_str_or_null(cJSON *o, const char *key, const char *s) {
    if (s) cJSON_AddStringToObject(o, key, s);
    else cJSON_AddNullToObject(o, key);
}

static void add_time_or_null(cJSON *o, const char *key, int64_t t) {
    if (t) cJSON_AddNumberToObject(o, key, (double)t);
    else cJSON_AddNullToObject(o, key);
}

static cJSON *job_json(const ot_job_rec *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "fine_tuning.job");
    add_str_or_null(o, "model", j->model);
    cJSON_AddNumberToObject(o, "created_at", (double)j->created_at);
    add_time_or_null(o, "finished_at", j->finished_at);
    add_str_or_null(o, "fine_tuned_model", j->fine_tuned_model);
    cJSON_AddStringToObject(o, "organization_id", "org-local");
    cJSON *rf = j->result_files ? cJSON_Parse(j->result_files) : NULL;
    cJSON_AddItemToObject(o, "result_files", rf ? rf : cJSON_CreateArray());
    cJSON_AddStringToObject(o, "status", ot_job_status_name(j->status));
    add_str_or_null(o, "validation_file", j->validation_file);
    add_str_or_null(o, "training_file", j->training_file);
    cJSON *hp = j->hyperparameters ? cJSON_Parse(j->hyperparameters) : NULL;
    if (!hp) hp = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "hyperparameters", hp);
    cJSON_AddNumberToObject(o, "trained_tokens", (double)j->trained_tokens);
    add_json_text(o, "error", j->error, 1);
    if (j->has_seed) cJSON_AddNumberToObject(o, "seed", (double)j->seed);
    else cJSON_AddNullToObject(o, "seed");
    add_time_or_null(o, "estimated_finish", j->estimated_finish);
    add_json_text(o, "metadata", j->metadata, 1);
    add_str_or_null(o, "user_provided_suffix", j->suffix);
    cJSON *method = cJSON_AddObjectToObject(o, "method");
    cJSON_AddStringToObject(method, "type", "supervised");
    cJSON *sup = cJSON_AddObjectToObject(method, "supervised");
    cJSON_AddItemToObject(sup, "hyperparameters", cJSON_Duplicate(hp, 1));
    cJSON_AddItemToObject(o, "integrations", cJSON_CreateArray());
    cJSON *req = j->request ? cJSON_Parse(j->request) : NULL;
    cJSON *ot = req ? cJSON_DetachItemFromObjectCaseSensitive(req, "onnxtune") : NULL;
    if (ot) cJSON_AddItemToObject(o, "onnxtune", ot);
    cJSON_Delete(req);
    return o;
}

/* ---- create: validation -------------------------------------------------------------- */

typedef struct {
    unsigned status;
    const char *param, *code;
    char msg[768];
    char pbuf[192]; /* storage for a composed param name */
} verr;

static int fail(verr *e, const char *param, const char *code, const char *fmt, ...) OT_PRINTF(4, 5);
static int fail(verr *e, const char *param, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->status = 400;
    e->param = param;
    e->code = code;
    return 0;
}

static int only_keys(const cJSON *o, const char *const *allowed, const char *where, verr *e) {
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        int ok = 0;
        for (int i = 0; allowed[i]; i++) ok |= !strcmp(it->string, allowed[i]);
        if (!ok) {
            snprintf(e->pbuf, sizeof e->pbuf, "%s%s%s", where ? where : "", where ? "." : "", it->string);
            fail(e, NULL, "unknown_parameter", "unknown field '%s'", e->pbuf);
            e->param = e->pbuf;
            return 0;
        }
    }
    return 1;
}

/* Resolves a local model path inside a --model-root; writes the real path to out. */
static int resolve_model(ot_server *s, const char *m, char *out, verr *e) {
    if (!s->n_model_roots)
        return fail(e, "model", "model_not_allowed",
                    "model '%s': local model paths are refused (start the server with --model-root DIR), use an "
                    "http(s):// or hf:// URL",
                    m);
    for (int i = 0; i < s->n_model_roots; i++) {
        char cand[PATH_MAX * 2];
        if (m[0] == '/') snprintf(cand, sizeof cand, "%s", m);
        else snprintf(cand, sizeof cand, "%s/%s", s->model_roots[i], m);
        char rp[PATH_MAX];
        if (!realpath(cand, rp)) continue;
        for (int k = 0; k < s->n_model_roots; k++) {
            size_t rl = strlen(s->model_roots[k]);
            if (!strncmp(rp, s->model_roots[k], rl) && (rl == 1 || rp[rl] == '/' || rp[rl] == 0)) {
                snprintf(out, PATH_MAX, "%s", rp);
                return 1;
            }
        }
        return fail(e, "model", "model_not_allowed", "model '%s' is outside every --model-root directory", m);
    }
    return fail(e, "model", "model_not_found", "model '%s' does not exist under any --model-root directory", m);
}

static int check_file(ot_server *s, const cJSON *v, const char *param, int required, verr *e) {
    if (!v || cJSON_IsNull(v)) return required ? fail(e, param, "missing_required_parameter", "missing '%s'", param) : 1;
    if (!cJSON_IsString(v)) return fail(e, param, "invalid_type", "'%s' must be a file id string", param);
    if (!ot_id_valid(v->valuestring, OT_ID_FILE))
        return fail(e, param, "invalid_value", "'%s': '%.80s' is not a file id", param, v->valuestring);
    ot_file_rec f = {0};
    int found = 0;
    if (ot_store_file_get(s->store, v->valuestring, &f, &found) != OT_OK) {
        e->status = 500;
        snprintf(e->msg, sizeof e->msg, "job store: %s", ot_last_error());
        e->param = NULL;
        e->code = NULL;
        return 0;
    }
    ot_file_rec_free(&f);
    if (!found) return fail(e, param, "file_not_found", "'%s': no such file %s", param, v->valuestring);
    return 1;
}

/* Picks the quoted option name out of a config error ("... option 'foo' ..."). */
static const char *config_param(const char *msg, const cJSON *ot, char *buf, size_t n) {
    const char *p = strstr(msg, "option '");
    if (!p) p = strstr(msg, "field '");
    if (p) {
        p = strchr(p, '\'') + 1;
        const char *q = strchr(p, '\'');
        if (q && (size_t)(q - p) < n - 10) {
            snprintf(buf, n, "onnxtune.%.*s", (int)(q - p), p);
            return buf;
        }
    }
    return ot ? "onnxtune" : NULL;
}

/* Validates `req` in place (model rewritten to its resolved path, top-level
 * hyperparameters moved under method). Fills *hp with the resolved hyperparameters. */
static int validate_create(ot_server *s, cJSON *req, cJSON **hp, verr *e) {
    static const char *const top[] = {"model", "training_file", "validation_file", "suffix", "seed", "metadata",
                                      "method", "hyperparameters", "onnxtune", "integrations", NULL};
    if (!only_keys(req, top, NULL, e)) return 0;
    /* model */
    cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
    if (!model) return fail(e, "model", "missing_required_parameter", "missing 'model'");
    if (!cJSON_IsString(model) || !*model->valuestring) return fail(e, "model", "invalid_type", "'model' must be a non-empty string");
    const char *m = model->valuestring;
    if (strlen(m) > 2048) return fail(e, "model", "invalid_value", "'model' is longer than 2048 characters");
    for (const char *p = m; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) return fail(e, "model", "invalid_value", "'model' contains control characters");
    if (!strncmp(m, "http://", 7) || !strncmp(m, "https://", 8) || !strncmp(m, "hf://", 5)) {
        const char *rest = strstr(m, "://") + 3;
        if (!*rest || strchr(m, ' ')) return fail(e, "model", "invalid_value", "model URL '%s' is malformed", m);
    } else if (strstr(m, "://") || !strncasecmp(m, "file:", 5)) {
        return fail(e, "model", "invalid_value", "model '%.200s': only http://, https:// and hf:// URLs are allowed", m);
    } else {
        char rp[PATH_MAX];
        if (!resolve_model(s, m, rp, e)) return 0;
        cJSON_ReplaceItemInObjectCaseSensitive(req, "model", cJSON_CreateString(rp));
    }
    /* files */
    if (!check_file(s, cJSON_GetObjectItemCaseSensitive(req, "training_file"), "training_file", 1, e)) return 0;
    if (!check_file(s, cJSON_GetObjectItemCaseSensitive(req, "validation_file"), "validation_file", 0, e)) return 0;
    /* suffix */
    cJSON *suffix = cJSON_GetObjectItemCaseSensitive(req, "suffix");
    if (suffix && !cJSON_IsNull(suffix)) {
        if (!cJSON_IsString(suffix)) return fail(e, "suffix", "invalid_type", "'suffix' must be a string");
        size_t n = strlen(suffix->valuestring);
        if (n < 1 || n > 64) return fail(e, "suffix", "invalid_value", "'suffix' must be 1 to 64 characters");
        for (const char *p = suffix->valuestring; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
                return fail(e, "suffix", "invalid_value", "'suffix' may hold letters, digits, '-', '_' and '.' only");
    }
    /* seed */
    cJSON *seed = cJSON_GetObjectItemCaseSensitive(req, "seed");
    if (seed && !cJSON_IsNull(seed)) {
        double d = seed->valuedouble;
        if (!cJSON_IsNumber(seed) || d != (double)(int64_t)d || d < 0 || d > 9007199254740991.0)
            return fail(e, "seed", "invalid_type", "'seed' must be a non-negative integer");
    }
    /* metadata */
    cJSON *md = cJSON_GetObjectItemCaseSensitive(req, "metadata");
    if (md && !cJSON_IsNull(md)) {
        if (!cJSON_IsObject(md)) return fail(e, "metadata", "invalid_type", "'metadata' must be an object of strings");
        int n = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, md) {
            if (++n > 16) return fail(e, "metadata", "invalid_value", "'metadata' holds at most 16 keys");
            if (strlen(it->string) > 64) return fail(e, "metadata", "invalid_value", "metadata keys are at most 64 characters");
            if (!cJSON_IsString(it) || strlen(it->valuestring) > 512)
                return fail(e, "metadata", "invalid_type", "metadata '%s' must be a string of at most 512 characters", it->string);
        }
    }
    /* integrations */
    cJSON *integ = cJSON_GetObjectItemCaseSensitive(req, "integrations");
    if (integ && !cJSON_IsNull(integ) && !(cJSON_IsArray(integ) && cJSON_GetArraySize(integ) == 0))
        return fail(e, "integrations", "invalid_value", "integrations are not supported");
    /* method and hyperparameters */
    cJSON *top_hp = cJSON_GetObjectItemCaseSensitive(req, "hyperparameters");
    cJSON *method = cJSON_GetObjectItemCaseSensitive(req, "method");
    if (top_hp && !cJSON_IsNull(top_hp) && method && !cJSON_IsNull(method))
        return fail(e, "hyperparameters", "invalid_value", "give hyperparameters under method.supervised, not both places");
    if (top_hp && !cJSON_IsNull(top_hp)) {
        cJSON *moved = cJSON_DetachItemViaPointer(req, top_hp);
        method = cJSON_CreateObject();
        cJSON_AddStringToObject(method, "type", "supervised");
        cJSON_AddItemToObject(cJSON_AddObjectToObject(method, "supervised"), "hyperparameters", moved);
        cJSON_AddItemToObject(req, "method", method);
    } else if (top_hp) {
        cJSON_DeleteItemFromObjectCaseSensitive(req, "hyperparameters");
    }
    if (method && !cJSON_IsNull(method)) {
        static const char *const mk[] = {"type", "supervised", NULL}, *const sk[] = {"hyperparameters", NULL},
                                 *const hk[] = {"n_epochs", "batch_size", "learning_rate_multiplier", NULL};
        if (!cJSON_IsObject(method)) return fail(e, "method", "invalid_type", "'method' must be an object");
        if (!only_keys(method, mk, "method", e)) return 0;
        cJSON *type = cJSON_GetObjectItemCaseSensitive(method, "type");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "supervised"))
            return fail(e, "method.type", "invalid_value", "method.type must be \"supervised\"");
        cJSON *sup = cJSON_GetObjectItemCaseSensitive(method, "supervised");
        if (sup && !cJSON_IsNull(sup)) {
            if (!cJSON_IsObject(sup)) return fail(e, "method.supervised", "invalid_type", "method.supervised must be an object");
            if (!only_keys(sup, sk, "method.supervised", e)) return 0;
            cJSON *h = cJSON_GetObjectItemCaseSensitive(sup, "hyperparameters");
            if (h && !cJSON_IsNull(h)) {
                if (!cJSON_IsObject(h))
                    return fail(e, "method.supervised.hyperparameters", "invalid_type", "hyperparameters must be an object");
                if (!only_keys(h, hk, "method.supervised.hyperparameters", e)) return 0;
                const cJSON *it;
                cJSON_ArrayForEach(it, h) {
                    if (!cJSON_IsNumber(it) && !(cJSON_IsString(it) && !strcmp(it->valuestring, "auto")))
                        return fail(e, "method.supervised.hyperparameters", "invalid_type",
                                    "hyperparameter '%s' must be a number or \"auto\"", it->string);
                }
            }
        }
    } else if (method) {
        cJSON_DeleteItemFromObjectCaseSensitive(req, "method");
    }
    if (ot_job_hyperparameters(req, hp) != OT_OK)
        return fail(e, "method.supervised.hyperparameters", "invalid_value", "%s", ot_last_error());
    /* the onnxtune object: the same options as the CLI job file */
    cJSON *ot = cJSON_GetObjectItemCaseSensitive(req, "onnxtune");
    if (ot && !cJSON_IsObject(ot)) return fail(e, "onnxtune", "invalid_type", "'onnxtune' must be an object of options");
    cJSON *cfg = NULL;
    if (ot_job_config_build(req, "/nonexistent/train.jsonl",
                            cJSON_IsString(cJSON_GetObjectItemCaseSensitive(req, "validation_file"))
                                ? "/nonexistent/valid.jsonl"
                                : NULL,
                            "/nonexistent/run", &cfg) != OT_OK) {
        const char *msg = ot_last_error();
        fail(e, NULL, "invalid_value", "%s", msg);
        e->param = config_param(msg, ot, e->pbuf, sizeof e->pbuf);
        cJSON_Delete(*hp);
        *hp = NULL;
        return 0;
    }
    cJSON_Delete(cfg);
    return 1;
}

static enum MHD_Result create_job(ot_http_req *r) {
    ot_server *s = r->srv;
    enum MHD_Result ret = MHD_YES;
    cJSON *req = NULL, *hp = NULL;
    if (!ot_http_parse_body(r, &req, &ret)) return ret;
    const char *ikey = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (ikey) {
        size_t n = strlen(ikey);
        int ok = n >= 1 && n <= 255;
        for (size_t i = 0; ok && i < n; i++) ok = ikey[i] > 0x20 && ikey[i] < 0x7f;
        if (!ok) {
            cJSON_Delete(req);
            return ot_http_error(r, 400, NULL, "Idempotency-Key", "invalid_value",
                                 "Idempotency-Key must be 1 to 255 printable characters without spaces");
        }
    }
    verr e = {0};
    if (!validate_create(s, req, &hp, &e)) {
        cJSON_Delete(req);
        cJSON_Delete(hp);
        return ot_http_error(r, e.status ? e.status : 400, NULL, e.param, e.code, "%s", e.msg);
    }
    char *req_text = cJSON_PrintUnformatted(req), *hp_text = cJSON_PrintUnformatted(hp), *md_text = NULL;
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(req, "metadata"), *seed = cJSON_GetObjectItemCaseSensitive(req, "seed");
    const cJSON *vf = cJSON_GetObjectItemCaseSensitive(req, "validation_file"), *sf = cJSON_GetObjectItemCaseSensitive(req, "suffix");
    if (cJSON_IsObject(md)) md_text = cJSON_PrintUnformatted(md);
    ot_job_new in = {
        .model = cJSON_GetObjectItemCaseSensitive(req, "model")->valuestring,
        .training_file = cJSON_GetObjectItemCaseSensitive(req, "training_file")->valuestring,
        .validation_file = cJSON_IsString(vf) ? vf->valuestring : NULL,
        .suffix = cJSON_IsString(sf) ? sf->valuestring : NULL,
        .has_seed = cJSON_IsNumber(seed),
        .seed = cJSON_IsNumber(seed) ? (int64_t)seed->valuedouble : 0,
        .metadata = md_text,
        .request = req_text,
        .hyperparameters = hp_text,
        .idempotency_key = ikey,
        .initial = OT_JOB_QUEUED,
    };
    ot_job_rec job = {0};
    int existed = 0;
    ot_status st = req_text && hp_text ? ot_store_job_create(s->store, &in, &job, &existed)
                                       : ot_errorf(OT_E_NOMEM, "out of memory");
    if (st) {
        ret = ot_http_error(r, 500, NULL, NULL, NULL, "job store: %s", ot_last_error());
    } else if (existed && (!job.request || strcmp(job.request, req_text))) {
        ret = ot_http_error(r, 409, NULL, "Idempotency-Key", "idempotency_key_reused",
                            "Idempotency-Key '%s' was used for a different request (job %s)", ikey, job.id);
    } else {
        if (!existed) {
            ot_store_event_add(s->store, job.id, "info", "Validated the request; the job is queued", NULL, NULL);
            ot_runner_notify(s->runner);
        }
        ret = ot_http_json(r, 200, job_json(&job));
    }
    if (!st) ot_job_rec_free(&job);
    free(req_text);
    free(hp_text);
    free(md_text);
    cJSON_Delete(req);
    cJSON_Delete(hp);
    return ret;
}

/* ---- list / get / cancel ------------------------------------------------------------- */

static enum MHD_Result list_jobs(ot_http_req *r) {
    enum MHD_Result ret = MHD_YES;
    long limit;
    if (!ot_http_query_int(r, "limit", 20, 1, 100, &limit, &ret)) return ret;
    const char *after = ot_http_query(r, "after");
    if (after && !ot_id_valid(after, OT_ID_JOB)) return ot_http_error(r, 400, NULL, "after", "invalid_value", "'after' is not a job id");
    ot_job_rec *v = NULL;
    int n = 0, more = 0;
    ot_status st = ot_store_job_list(r->srv->store, after, (int)limit, &v, &n, &more);
    if (st == OT_E_INVALID) return ot_http_error(r, 400, NULL, "after", "invalid_value", "%s", ot_last_error());
    if (st) return ot_http_error(r, 500, NULL, NULL, NULL, "job store: %s", ot_last_error());
    cJSON *o = cJSON_CreateObject(), *data = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "object", "list");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(data, job_json(&v[i]));
    cJSON_AddItemToObject(o, "data", data);
    cJSON_AddBoolToObject(o, "has_more", more);
    ot_job_recs_free(v, n);
    return ot_http_json(r, 200, o);
}

static enum MHD_Result cancel_job(ot_http_req *r, ot_job_rec *job) {
    int changed = 0;
    if (ot_runner_cancel(r->srv->runner, job->id, &changed) != OT_OK)
        return ot_http_error(r, 500, NULL, NULL, NULL, "cancel: %s", ot_last_error());
    ot_job_rec now = {0};
    int found = 0;
    if (ot_store_job_get(r->srv->store, job->id, &now, &found) != OT_OK || !found)
        return ot_http_error(r, 500, NULL, NULL, NULL, "job store: %s", ot_last_error());
    enum MHD_Result ret;
    if (!changed && now.status != OT_JOB_CANCELLED)
        ret = ot_http_error(r, 409, NULL, NULL, "job_not_cancellable", "job %s has already %s", now.id, ot_job_status_name(now.status));
    else
        ret = ot_http_json(r, 200, job_json(&now));
    ot_job_rec_free(&now);
    return ret;
}

/* ---- events -------------------------------------------------------------------------- */

static cJSON *event_json(const ot_event_rec *ev) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", ev->id);
    cJSON_AddStringToObject(o, "object", "fine_tuning.job.event");
    cJSON_AddNumberToObject(o, "created_at", (double)ev->created_at);
    cJSON_AddStringToObject(o, "level", ev->level ? ev->level : "info");
    cJSON_AddStringToObject(o, "message", ev->message ? ev->message : "");
    cJSON *d = ev->data ? cJSON_Parse(ev->data) : NULL;
    cJSON_AddStringToObject(o, "type", d && cJSON_GetObjectItemCaseSensitive(d, "step") ? "metrics" : "message");
    if (d) cJSON_AddItemToObject(o, "data", d);
    else cJSON_AddNullToObject(o, "data");
    return o;
}

typedef struct sse_state {
    ot_server *s;
    struct MHD_Connection *conn;
    char job_id[OT_ID_MAX];
    char after[OT_ID_MAX];
    char *pend;
    size_t pend_len, pend_off;
    int done;
    double last_send;
} sse_state;

static int sse_fill(sse_state *ss) {
    ot_event_rec *v = NULL;
    int n = 0, more = 0;
    if (ot_store_event_list(ss->s->store, ss->job_id, ss->after[0] ? ss->after : NULL, 100, 0, &v, &n, &more) != OT_OK)
        return -1;
    /* one "data: {event}\n\n" block per event */
    free(ss->pend);
    ss->pend = NULL;
    ss->pend_len = ss->pend_off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *o = event_json(&v[i]);
        char *js = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!js) break;
        size_t add = strlen(js) + 8;
        char *np = realloc(ss->pend, ss->pend_len + add + 1);
        if (!np) {
            free(js);
            break;
        }
        ss->pend = np;
        ss->pend_len += (size_t)sprintf(ss->pend + ss->pend_len, "data: %s\n\n", js);
        free(js);
        snprintf(ss->after, sizeof ss->after, "%s", v[i].id);
    }
    ot_event_recs_free(v, n);
    return n;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    sse_state *ss = cls;
    for (int round = 0; round < 4; round++) {
        if (ss->pend_off < ss->pend_len) {
            size_t k = ss->pend_len - ss->pend_off;
            if (k > max) k = max;
            memcpy(buf, ss->pend + ss->pend_off, k);
            ss->pend_off += k;
            ss->last_send = ot_http_now();
            return (ssize_t)k;
        }
        if (ss->done) return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&ss->s->sse_mu);
        int stopping = ss->s->stopping;
        pthread_mutex_unlock(&ss->s->sse_mu);
        if (stopping) return MHD_CONTENT_READER_END_OF_STREAM;
        int n = sse_fill(ss);
        if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (n > 0) continue;
        ot_job_rec j = {0};
        int found = 0;
        if (ot_store_job_get(ss->s->store, ss->job_id, &j, &found) != OT_OK || !found) return MHD_CONTENT_READER_END_OF_STREAM;
        int terminal = ot_job_status_terminal(j.status);
        ot_job_rec_free(&j);
        if (terminal) {
            /* events written before the final status change are visible now */
            n = sse_fill(ss);
            ss->done = 1;
            if (n > 0) continue;
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (ot_http_now() - ss->last_send > 10.0) {
            free(ss->pend);
            ss->pend = strdup(": keep-alive\n\n");
            ss->pend_len = ss->pend ? strlen(ss->pend) : 0;
            ss->pend_off = 0;
            continue;
        }
        return ot_server_sse_park(ss->s, ss->conn) ? 0 : MHD_CONTENT_READER_END_OF_STREAM;
    }
    return ot_server_sse_park(ss->s, ss->conn) ? 0 : MHD_CONTENT_READER_END_OF_STREAM;
}

static void sse_free(void *cls) {
    sse_state *ss = cls;
    pthread_mutex_lock(&ss->s->sse_mu);
    ss->s->sse_open--;
    pthread_mutex_unlock(&ss->s->sse_mu);
    free(ss->pend);
    free(ss);
}

static enum MHD_Result stream_events(ot_http_req *r, const ot_job_rec *job, const char *after) {
    sse_state *ss = calloc(1, sizeof *ss);
    if (!ss) return MHD_NO;
    ss->s = r->srv;
    ss->conn = r->conn;
    snprintf(ss->job_id, sizeof ss->job_id, "%s", job->id);
    if (after) snprintf(ss->after, sizeof ss->after, "%s", after);
    ss->last_send = ot_http_now();
    pthread_mutex_lock(&r->srv->sse_mu);
    r->srv->sse_open++;
    pthread_mutex_unlock(&r->srv->sse_mu);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, ss, sse_free);
    if (!resp) {
        sse_free(ss);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return ot_http_queue(r, 200, resp);
}

static enum MHD_Result list_events(ot_http_req *r, const ot_job_rec *job) {
    enum MHD_Result ret = MHD_YES;
    const char *after = ot_http_query(r, "after"), *stream = ot_http_query(r, "stream");
    if (after && !ot_id_valid(after, OT_ID_EVENT)) return ot_http_error(r, 400, NULL, "after", "invalid_value", "'after' is not an event id");
    if (stream && (!strcmp(stream, "true") || !strcmp(stream, "1"))) return stream_events(r, job, after);
    long limit;
    if (!ot_http_query_int(r, "limit", 20, 1, 10000, &limit, &ret)) return ret;
    ot_event_rec *v = NULL;
    int n = 0, more = 0;
    ot_status st = ot_store_event_list(r->srv->store, job->id, after, (int)limit, 1, &v, &n, &more);
    if (st == OT_E_INVALID) return ot_http_error(r, 400, NULL, "after", "invalid_value", "%s", ot_last_error());
    if (st) return ot_http_error(r, 500, NULL, NULL, NULL, "job store: %s", ot_last_error());
    cJSON *o = cJSON_CreateObject(), *data = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "object", "list");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(data, event_json(&v[i]));
    cJSON_AddItemToObject(o, "data", data);
    cJSON_AddBoolToObject(o, "has_more", more);
    ot_event_recs_free(v, n);
    return ot_http_json(r, 200, o);
}

/* ---- checkpoints ----------------------------------------------------------------------- */

static enum MHD_Result list_ckpts(ot_http_req *r, const ot_job_rec *job) {
    enum MHD_Result ret = MHD_YES;
    long limit;
    if (!ot_http_query_int(r, "limit", 10, 1, 1000, &limit, &ret)) return ret;
    const char *after = ot_http_query(r, "after");
    if (after && !ot_id_valid(after, OT_ID_CKPT)) return ot_http_error(r, 400, NULL, "after", "invalid_value", "'after' is not a checkpoint id");
    ot_ckpt_rec *v = NULL;
    int n = 0, more = 0;
    ot_status st = ot_store_ckpt_list(r->srv->store, job->id, after, (int)limit, &v, &n, &more);
    if (st == OT_E_INVALID) return ot_http_error(r, 400, NULL, "after", "invalid_value", "%s", ot_last_error());
    if (st) return ot_http_error(r, 500, NULL, NULL, NULL, "job store: %s", ot_last_error());
    char base[256];
    ot_job_fine_tuned_name(job->model ? job->model : "model", job->suffix, job->id, base, sizeof base);
    cJSON *o = cJSON_CreateObject(), *data = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "object", "list");
    for (int i = 0; i < n; i++) {
        cJSON *c = cJSON_CreateObject();
        char name[320];
        snprintf(name, sizeof name, "%s:ckpt-step-%lld", base, (long long)v[i].step);
        cJSON_AddStringToObject(c, "object", "fine_tuning.job.checkpoint");
        cJSON_AddStringToObject(c, "id", v[i].id);
        cJSON_AddNumberToObject(c, "created_at", (double)v[i].created_at);
        cJSON_AddStringToObject(c, "fine_tuned_model_checkpoint", name);
        cJSON_AddNumberToObject(c, "step_number", (double)v[i].step);
        cJSON *mt = v[i].metrics ? cJSON_Parse(v[i].metrics) : NULL;
        cJSON_AddItemToObject(c, "metrics", mt ? mt : cJSON_CreateObject());
        cJSON_AddStringToObject(c, "fine_tuning_job_id", job->id);
        cJSON_AddItemToArray(data, c);
    }
    cJSON_AddItemToObject(o, "data", data);
    cJSON_AddBoolToObject(o, "has_more", more);
    if (n) {
        cJSON_AddStringToObject(o, "first_id", v[0].id);
        cJSON_AddStringToObject(o, "last_id", v[n - 1].id);
    }
    ot_ckpt_recs_free(v, n);
    return ot_http_json(r, 200, o);
}

/* ---- artifacts ------------------------------------------------------------------------- */

static int valid_segment(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 128 || s[0] == '.') return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') return 0;
    return 1;
}

/* Parses a single "bytes=a-b" range against size. 0: none or ignorable, 1: ok, -1: unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *a, uint64_t *b) {
    if (!h || strncmp(h, "bytes=", 6) || strchr(h, ',')) return 0;
    const char *p = h + 6;
    char *end;
    if (*p == '-') {
        unsigned long long k = strtoull(p + 1, &end, 10);
        if (end == p + 1 || *end) return 0;
        if (k == 0 || size == 0) return -1;
        *a = k >= size ? 0 : size - k;
        *b = size - 1;
        return 1;
    }
    if (!isdigit((unsigned char)*p)) return 0;
    unsigned long long x = strtoull(p, &end, 10), y;
    if (*end != '-') return 0;
    p = end + 1;
    if (!*p) y = size ? size - 1 : 0;
    else {
        if (!isdigit((unsigned char)*p)) return 0;
        y = strtoull(p, &end, 10);
        if (*end) return 0;
        if (y < x) return 0;
    }
    if (x >= size) return -1;
    if (y >= size) y = size - 1;
    *a = x;
    *b = y;
    return 1;
}

static enum MHD_Result get_artifact(ot_http_req *r, const ot_job_rec *job, char **seg, int nseg) {
    char rel[1024] = "";
    size_t rl = 0;
    for (int i = 5; i < nseg; i++) {
        if (!valid_segment(seg[i]))
            return ot_http_error(r, 400, NULL, "name", "invalid_value",
                                 "artifact name segment '%.64s' is not allowed (letters, digits, '.', '_', '-'; no leading dot)", seg[i]);
        int k = snprintf(rel + rl, sizeof rel - rl, "%s%s", rl ? "/" : "", seg[i]);
        if (k < 0 || (size_t)k >= sizeof rel - rl) return ot_http_error(r, 400, NULL, "name", "invalid_value", "artifact name too long");
        rl += (size_t)k;
    }
    char jdir[PATH_MAX], base[PATH_MAX + 16], full[PATH_MAX * 2 + 32], rbase[PATH_MAX], rfull[PATH_MAX];
    if (ot_store_job_dir(r->srv->store, job->id, jdir, sizeof jdir) != OT_OK)
        return ot_http_error(r, 500, NULL, NULL, NULL, "%s", ot_last_error());
    snprintf(base, sizeof base, "%s/run/export", jdir);
    snprintf(full, sizeof full, "%s/%s", base, rel);
    size_t bl;
    struct stat sb;
    if (!realpath(base, rbase) || !realpath(full, rfull) || strncmp(rfull, rbase, (bl = strlen(rbase))) || rfull[bl] != '/' ||
        stat(rfull, &sb) != 0 || !S_ISREG(sb.st_mode))
        return ot_http_error(r, 404, NULL, "name", "artifact_not_found", "job %s has no artifact '%s' (status %s)", job->id, rel,
                             ot_job_status_name(job->status));
    int fd = open(rfull, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0) close(fd);
        return ot_http_error(r, 404, NULL, "name", "artifact_not_found", "artifact '%s' cannot be opened", rel);
    }
    uint64_t size = (uint64_t)sb.st_size, a = 0, b = size ? size - 1 : 0;
    int rr = parse_range(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Range"), size, &a, &b);
    char cr[96];
    if (rr < 0) {
        close(fd);
        cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
        cJSON_AddStringToObject(err, "message", "requested range not satisfiable");
        cJSON_AddStringToObject(err, "type", "invalid_request_error");
        cJSON_AddStringToObject(err, "param", "Range");
        cJSON_AddStringToObject(err, "code", "range_not_satisfiable");
        char *body = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        struct MHD_Response *resp = body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE) : NULL;
        if (!resp) {
            free(body);
            return MHD_NO;
        }
        snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
        MHD_add_response_header(resp, "Content-Range", cr);
        MHD_add_response_header(resp, "Content-Type", "application/json");
        return ot_http_queue(r, 416, resp);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(rr ? b - a + 1 : size, fd, rr ? a : 0);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    const char *slash = strrchr(rel, '/'), *fname = slash ? slash + 1 : rel, *dot = strrchr(fname, '.');
    MHD_add_response_header(resp, "Content-Type", dot && !strcmp(dot, ".json") ? "application/json" : "application/octet-stream");
    MHD_add_response_header(resp, "Accept-Ranges", "bytes");
    char cd[320];
    snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", fname);
    MHD_add_response_header(resp, "Content-Disposition", cd);
    if (rr) {
        snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)a, (unsigned long long)b, (unsigned long long)size);
        MHD_add_response_header(resp, "Content-Range", cr);
    }
    return ot_http_queue(r, rr ? 206 : 200, resp);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

enum MHD_Result ot_route_jobs(ot_http_req *r, char **seg, int nseg) {
    /* seg: v1 fine_tuning jobs [id [action [name...]]] */
    if (nseg == 3) return !strcmp(r->method, "POST") ? create_job(r) : list_jobs(r);
    const char *id = seg[3];
    if (!ot_id_valid(id, OT_ID_JOB))
        return ot_http_error(r, 404, NULL, "fine_tuning_job_id", "invalid_id", "no such job: '%.80s' is not a job id", id);
    ot_job_rec job = {0};
    int found = 0;
    if (ot_store_job_get(r->srv->store, id, &job, &found) != OT_OK)
        return ot_http_error(r, 500, NULL, NULL, NULL, "job store: %s", ot_last_error());
    if (!found) return ot_http_error(r, 404, NULL, "fine_tuning_job_id", "job_not_found", "no such job: %s", id);
    enum MHD_Result ret;
    const char *action = nseg > 4 ? seg[4] : "";
    if (nseg == 4) ret = ot_http_json(r, 200, job_json(&job));
    else if (!strcmp(action, "cancel")) ret = cancel_job(r, &job);
    else if (!strcmp(action, "events")) ret = list_events(r, &job);
    else if (!strcmp(action, "checkpoints")) ret = list_ckpts(r, &job);
    else ret = get_artifact(r, &job, seg, nseg);
    ot_job_rec_free(&job);
    return ret;
}
