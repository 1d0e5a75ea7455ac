/* job_config.c — request -> `onnxtune run` job file (see job_config.h). Pure: reads the
 * request, writes a new cJSON object, touches no files. Validation of training options is
 * delegated to trainer/config.c (ot_config_apply_json + ot_config_finalize) so the service
 * accepts exactly what the CLI accepts. */
#include "service/job_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "trainer/config.h"

/* Reads hyperparameter `name`: absent/"auto" -> dflt; else a number in [lo, hi] (integral
 * when `integral`). */
static ot_status hp_value(const cJSON *hp, const char *name, double dflt, double lo, double hi, int integral,
                          double *out) {
    const cJSON *v = hp ? cJSON_GetObjectItemCaseSensitive(hp, name) : NULL;
    *out = dflt;
    if (!v || cJSON_IsNull(v) || (cJSON_IsString(v) && !strcmp(v->valuestring, "auto"))) return OT_OK;
    if (!cJSON_IsNumber(v))
        return ot_errorf(OT_E_INVALID, "method.supervised.hyperparameters.%s must be a number or \"auto\"", name);
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi || (integral && d != floor(d)))
        return ot_errorf(OT_E_INVALID, "method.supervised.hyperparameters.%s must be %s in [%g, %g], got %g", name,
                         integral ? "an integer" : "a number", lo, hi, d);
    if (!integral && d <= 0)
        return ot_errorf(OT_E_INVALID, "method.supervised.hyperparameters.%s must be > 0, got %g", name, d);
    *out = d;
    return OT_OK;
}

/* request.method.supervised.hyperparameters, or request.hyperparameters (the older OpenAI
 * shape), or NULL. A method of another type is an error. */
static ot_status find_hp(const cJSON *req, const cJSON **hp) {
    *hp = NULL;
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(req, "method");
    if (method && !cJSON_IsNull(method)) {
        if (!cJSON_IsObject(method)) return ot_errorf(OT_E_INVALID, "method must be an object");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(method, "type");
        if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "supervised")))
            return ot_errorf(OT_E_INVALID, "method.type must be \"supervised\"");
        const cJSON *sup = cJSON_GetObjectItemCaseSensitive(method, "supervised");
        if (sup && !cJSON_IsNull(sup)) {
            if (!cJSON_IsObject(sup)) return ot_errorf(OT_E_INVALID, "method.supervised must be an object");
            *hp = cJSON_GetObjectItemCaseSensitive(sup, "hyperparameters");
        }
    } else {
        *hp = cJSON_GetObjectItemCaseSensitive(req, "hyperparameters");
    }
    if (*hp && cJSON_IsNull(*hp)) *hp = NULL;
    if (*hp && !cJSON_IsObject(*hp)) return ot_errorf(OT_E_INVALID, "method.supervised.hyperparameters must be an object");
    return OT_OK;
}

ot_status ot_job_hyperparameters(const cJSON *request, cJSON **out) {
    *out = NULL;
    if (!cJSON_IsObject(request)) return ot_errorf(OT_E_INVALID, "request must be a JSON object");
    const cJSON *hp;
    OT_TRY(find_hp(request, &hp));
    double ep, bs, mult;
    OT_TRY(hp_value(hp, "n_epochs", OT_JOB_DEFAULT_EPOCHS, 1, 1000, 1, &ep));
    OT_TRY(hp_value(hp, "batch_size", OT_JOB_DEFAULT_BATCH, 1, 65536, 1, &bs));
    OT_TRY(hp_value(hp, "learning_rate_multiplier", OT_JOB_DEFAULT_LR_MULT, 0, 100, 0, &mult));
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "n_epochs", ep) || !cJSON_AddNumberToObject(o, "batch_size", bs) ||
        !cJSON_AddNumberToObject(o, "learning_rate_multiplier", mult)) {
        cJSON_Delete(o);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    *out = o;
    return OT_OK;
}

/* "--lora-r" / "lora-r" -> "lora_r" */
static void canon_key(const char *k, char *buf, size_t n) {
    while (*k == '-') k++;
    size_t i = 0;
    for (; k[i] && i + 1 < n; i++) buf[i] = k[i] == '-' ? '_' : k[i];
    buf[i] = '\0';
}

static int set_item(cJSON *o, const char *key, cJSON *v) {
    if (!v) return 0;
    if (cJSON_GetObjectItemCaseSensitive(o, key)) return cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
    return cJSON_AddItemToObject(o, key, v);
}

ot_status ot_job_config_build(const cJSON *request, const char *training_path, const char *validation_path,
                              const char *run_dir, cJSON **out) {
    *out = NULL;
    cJSON *hp = NULL;
    OT_TRY(ot_job_hyperparameters(request, &hp));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(request, "model");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(request, "seed");
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(request, "onnxtune");
    ot_status s = OT_OK;
    if (!cJSON_IsString(model) || !model->valuestring[0]) s = ot_errorf(OT_E_INVALID, "model must be a non-empty string");
    else if (seed && !cJSON_IsNull(seed) &&
             (!cJSON_IsNumber(seed) || seed->valuedouble < 0 || seed->valuedouble != floor(seed->valuedouble) ||
              seed->valuedouble > 9.2e18))
        s = ot_errorf(OT_E_INVALID, "seed must be a non-negative integer");
    else if (ext && !cJSON_IsNull(ext) && !cJSON_IsObject(ext))
        s = ot_errorf(OT_E_INVALID, "onnxtune must be an object");
    else if (!training_path || !run_dir)
        s = ot_errorf(OT_E_INVALID, "job config: missing training path or run dir");
    cJSON *cfg = s == OT_OK ? cJSON_CreateObject() : NULL;
    if (s == OT_OK && !cfg) s = ot_errorf(OT_E_NOMEM, "out of memory");
    if (s == OT_OK) {
        int ok = set_item(cfg, "model", cJSON_CreateString(model->valuestring)) &&
                 set_item(cfg, "data", cJSON_CreateString(training_path)) &&
                 set_item(cfg, "epochs", cJSON_CreateNumber(cJSON_GetObjectItem(hp, "n_epochs")->valuedouble)) &&
                 set_item(cfg, "batch_size", cJSON_CreateNumber(cJSON_GetObjectItem(hp, "batch_size")->valuedouble)) &&
                 set_item(cfg, "lr", cJSON_CreateNumber(
                                         OT_JOB_BASE_LR * cJSON_GetObjectItem(hp, "learning_rate_multiplier")->valuedouble));
        if (ok && cJSON_IsNumber(seed)) ok = set_item(cfg, "seed", cJSON_CreateNumber(seed->valuedouble));
        if (ok && validation_path) ok = set_item(cfg, "eval_data", cJSON_CreateString(validation_path));
        if (!ok) s = ot_errorf(OT_E_NOMEM, "out of memory");
    }
    /* the onnxtune object, verbatim, over the OpenAI-derived values */
    static const char *const reserved[] = {"model", "data", "eval_data", "out", "log_json", "resume", "config"};
    for (const cJSON *it = ext && cJSON_IsObject(ext) ? ext->child : NULL; s == OT_OK && it; it = it->next) {
        char key[128];
        canon_key(it->string, key, sizeof key);
        for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
            if (!strcmp(key, reserved[i]))
                s = ot_errorf(OT_E_INVALID, "onnxtune.%s is set by the service and may not be given", it->string);
        if (s == OT_OK && !set_item(cfg, key, cJSON_Duplicate(it, 1))) s = ot_errorf(OT_E_NOMEM, "out of memory");
    }
    char log[4200];
    if (s == OT_OK && (size_t)snprintf(log, sizeof log, "%s/log.jsonl", run_dir) >= sizeof log)
        s = ot_errorf(OT_E_INVALID, "run dir path is too long");
    if (s == OT_OK && !(set_item(cfg, "out", cJSON_CreateString(run_dir)) && set_item(cfg, "log_json", cJSON_CreateString(log))))
        s = ot_errorf(OT_E_NOMEM, "out of memory");
    if (s == OT_OK && !cJSON_GetObjectItemCaseSensitive(cfg, "export")) {
        const cJSON *full = cJSON_GetObjectItemCaseSensitive(cfg, "full");
        const char *lora[] = {"onnx", "safetensors", "peft"};
        cJSON *fmts = cJSON_CreateStringArray(lora, cJSON_IsTrue(full) ? 2 : 3);
        if (!set_item(cfg, "export", fmts)) s = ot_errorf(OT_E_NOMEM, "out of memory");
    }
    if (s == OT_OK) { /* the one option table decides what is valid */
        ot_train_config c;
        ot_config_defaults(&c);
        s = ot_config_apply_json(&c, cfg, "request");
        if (s == OT_OK) s = ot_config_finalize(&c, 1);
        ot_config_free(&c);
    }
    cJSON_Delete(hp);
    if (s != OT_OK) {
        cJSON_Delete(cfg);
        return s;
    }
    *out = cfg;
    return OT_OK;
}

void ot_job_fine_tuned_name(const char *model, const char *suffix, const char *job_id, char *buf, size_t n) {
    const char *m = model ? model : "";
    size_t len = strlen(m);
    while (len > 1 && m[len - 1] == '/') len--; /* "dir/" -> "dir" */
    size_t start = len;
    while (start > 0 && m[start - 1] != '/') start--;
    size_t end = len;
    for (size_t i = len; i > start; i--)
        if (m[i - 1] == '.') {
            if (i - 1 > start) end = i - 1;
            break;
        }
    snprintf(buf, n, "ft:%.*s:%s", (int)(end - start), m + start, suffix && *suffix ? suffix : job_id);
}
