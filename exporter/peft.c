/* peft.c — PEFT LoRA adapter directories: writing (ot_export_peft) and reading (ot_peft_read).
 *
 * Owns the on-disk contract with Hugging Face PEFT: adapter_model.safetensors holding
 * "base_model.model.<module>.lora_A.weight" [r, in] and "...lora_B.weight" [out, r], and
 * adapter_config.json (keys sorted, as PEFT's save_pretrained writes them). Reading accepts
 * what PEFT versions have written: keys with or without the "base_model.model." prefix and
 * with or without an adapter name (".lora_A.default.weight"); A/B in any float dtype,
 * converted to f32. Anything onnxtune cannot apply faithfully (DoRA, per-module ranks or
 * alphas, embedding adapters, biases) is refused naming the key, never skipped.
 *
 * Atomicity: a directory is assembled under "<dir>.tmp.<pid>" and renamed into place last.
 * An existing adapter directory is replaced only when it holds nothing but adapter files;
 * anything else in it makes the export fail rather than be deleted. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/npy.h"
#include "core/strmap.h"
#include "importer/mapped_file.h"
#include "onnxtune/export.h"

#define PEFT_PREFIX "base_model.model."
#define PEFT_WEIGHTS "adapter_model.safetensors"
#define PEFT_CONFIG "adapter_config.json"
#define MAX_CONFIG_BYTES (16u << 20)

/* Files PEFT puts in an adapter folder: the only ones an export may replace. */
static const char *const adapter_files[] = {PEFT_WEIGHTS, PEFT_CONFIG, "adapter_model.bin", "README.md"};

/* "<dir>/<name>" into buf; 0 when it fits. */
static int join(char *buf, size_t n, const char *dir, const char *name) {
    return (size_t)snprintf(buf, n, "%s/%s", dir, name) >= n ? -1 : 0;
}

/* ---- writing ---- */

/* The shortest decimal that reads back as `f`, as a double, so 0.05f is written "0.05" and
 * not 0.05000000074505806. */
static double short_decimal(float f) {
    char buf[32];
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static ot_status config_json(const ot_peft_config *cfg, char **out) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return ot_errorf(OT_E_NOMEM, "out of memory");
    /* Alphabetical, as PEFT writes it (json.dumps(sort_keys=True)). */
    cJSON_AddItemToObject(o, "alpha_pattern", cJSON_CreateObject());
    if (cfg->base_model) cJSON_AddStringToObject(o, "base_model_name_or_path", cfg->base_model);
    else cJSON_AddNullToObject(o, "base_model_name_or_path");
    cJSON_AddStringToObject(o, "bias", "none");
    cJSON_AddFalseToObject(o, "fan_in_fan_out");
    cJSON_AddTrueToObject(o, "inference_mode");
    cJSON_AddTrueToObject(o, "init_lora_weights");
    cJSON_AddNullToObject(o, "layers_pattern");
    cJSON_AddNullToObject(o, "layers_to_transform");
    cJSON_AddNumberToObject(o, "lora_alpha", short_decimal(cfg->alpha));
    cJSON_AddNumberToObject(o, "lora_dropout", short_decimal(cfg->dropout));
    cJSON_AddNullToObject(o, "modules_to_save");
    cJSON_AddStringToObject(o, "peft_type", "LORA");
    cJSON_AddNumberToObject(o, "r", cfg->r);
    cJSON_AddItemToObject(o, "rank_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(o, "revision");
    if (cfg->n_targets == 1 && cfg->target_modules[0] && !strcmp(cfg->target_modules[0], "all-linear")) {
        cJSON_AddStringToObject(o, "target_modules", "all-linear"); /* PEFT's special value is a string */
    } else if (cfg->n_targets > 0) {
        cJSON *t = cJSON_AddArrayToObject(o, "target_modules");
        for (int i = 0; t && i < cfg->n_targets; i++) cJSON_AddItemToArray(t, cJSON_CreateString(cfg->target_modules[i]));
    } else {
        cJSON_AddNullToObject(o, "target_modules");
    }
    if (cfg->task_type) cJSON_AddStringToObject(o, "task_type", cfg->task_type);
    else cJSON_AddNullToObject(o, "task_type");
    cJSON_AddBoolToObject(o, "use_rslora", cfg->rslora != 0);
    *out = cJSON_Print(o); /* NULL if any allocation above failed: cJSON prints what it holds */
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(o, "target_modules");
    int complete = cJSON_GetArraySize(o) == 18 && (!cJSON_IsArray(tm) || cJSON_GetArraySize(tm) == cfg->n_targets);
    cJSON_Delete(o);
    if (!*out || !complete) {
        free(*out);
        *out = NULL;
        return ot_errorf(OT_E_NOMEM, "out of memory building %s", PEFT_CONFIG);
    }
    return OT_OK;
}

static ot_status check_adapters(const ot_peft_adapter *ad, int n, const ot_peft_config *cfg) {
    if (!cfg) return ot_errorf(OT_E_INVALID, "PEFT export: no config");
    if (cfg->r <= 0) return ot_errorf(OT_E_INVALID, "PEFT export: r must be positive (got %d)", cfg->r);
    if (n <= 0 || !ad) return ot_errorf(OT_E_INVALID, "PEFT export: no adapters to write");
    if (cfg->n_targets < 0 || (cfg->n_targets && !cfg->target_modules))
        return ot_errorf(OT_E_INVALID, "PEFT export: target_modules is missing (n_targets %d)", cfg->n_targets);
    for (int i = 0; i < cfg->n_targets; i++)
        if (!cfg->target_modules[i]) return ot_errorf(OT_E_INVALID, "PEFT export: target_modules[%d] is NULL", i);
    ot_strmap *seen = ot_strmap_new();
    if (!seen) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_status st = OT_OK;
    for (int i = 0; i < n && st == OT_OK; i++) {
        const char *m = ad[i].module;
        const ot_tensor *a = ad[i].a, *b = ad[i].b;
        int dummy;
        char sa[96], sb[96];
        if (!m || !m[0]) st = ot_errorf(OT_E_INVALID, "PEFT export: adapter #%d has no module path", i);
        else if (ot_strmap_get(seen, m, &dummy)) st = ot_errorf(OT_E_INVALID, "PEFT export: module '%s' appears twice", m);
        else if (!a || !b) st = ot_errorf(OT_E_INVALID, "PEFT export: module '%s' lacks lora_%s", m, a ? "B" : "A");
        else if (!ot_dtype_is_float(a->dtype) || !ot_dtype_is_float(b->dtype))
            st = ot_errorf(OT_E_INVALID, "PEFT export: module '%s': A (%s) and B (%s) must be float tensors", m,
                           ot_dtype_name(a->dtype), ot_dtype_name(b->dtype));
        else if (a->ndim != 2 || b->ndim != 2 || a->dims[0] != cfg->r || b->dims[1] != cfg->r)
            st = ot_errorf(OT_E_SHAPE, "PEFT export: module '%s': A %s and B %s must be [r, in] and [out, r] with r = %d", m,
                           ot_shape_str(sa, sizeof sa, a->ndim, a->dims), ot_shape_str(sb, sizeof sb, b->ndim, b->dims),
                           cfg->r);
        else st = ot_strmap_put(seen, m, i);
    }
    ot_strmap_free(seen);
    return st;
}

static ot_status write_weights(const char *path, const ot_peft_adapter *ad, int n) {
    ot_named_tensor *t = calloc(2 * (size_t)n, sizeof *t);
    char **names = calloc(2 * (size_t)n, sizeof *names);
    ot_status st = OT_OK;
    if (!t || !names) st = ot_errorf(OT_E_NOMEM, "out of memory");
    for (int i = 0; i < n && st == OT_OK; i++) {
        for (int k = 0; k < 2; k++) {
            size_t len = strlen(PEFT_PREFIX) + strlen(ad[i].module) + sizeof ".lora_A.weight";
            char *s = names[2 * i + k] = malloc(len);
            if (!s) {
                st = ot_errorf(OT_E_NOMEM, "out of memory");
                break;
            }
            snprintf(s, len, PEFT_PREFIX "%s.lora_%c.weight", ad[i].module, k ? 'B' : 'A');
            t[2 * i + k].name = s;
            t[2 * i + k].t = k ? ad[i].b : ad[i].a;
        }
    }
    static const char *const meta[] = {"format", "pt"}; /* what PEFT/transformers write */
    if (st == OT_OK) st = ot_safetensors_write(path, t, 2 * n, meta, 1);
    for (int i = 0; names && i < 2 * n; i++) free(names[i]);
    free(names);
    free(t);
    return st;
}

static void fsync_path(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: durability of a rename that already happened */
        close(fd);
    }
}

/* Removes the adapter files of `dir` (and nothing else), then the folder if it is empty. */
static void remove_adapter_dir(const char *dir) {
    char p[4096];
    for (size_t i = 0; i < sizeof adapter_files / sizeof adapter_files[0]; i++) {
        if (join(p, sizeof p, dir, adapter_files[i]) == 0) unlink(p);
    }
    rmdir(dir);
}

/* 1 when `name` is one of the files an adapter folder may hold. */
static int is_adapter_file(const char *name) {
    for (size_t i = 0; i < sizeof adapter_files / sizeof adapter_files[0]; i++)
        if (!strcmp(name, adapter_files[i])) return 1;
    return 0;
}

/* Moves the assembled `tmp` to `dir`. A previous adapter folder there is swapped out and
 * deleted; a folder holding anything else is left alone and the export fails. */
static ot_status place_dir(const char *tmp, const char *dir) {
    struct stat sb;
    if (lstat(dir, &sb) != 0) {
        if (errno != ENOENT) return ot_errorf(OT_E_IO, "cannot inspect '%s': %s", dir, strerror(errno));
        if (rename(tmp, dir) != 0) return ot_errorf(OT_E_IO, "cannot rename into '%s': %s", dir, strerror(errno));
        return OT_OK;
    }
    if (!S_ISDIR(sb.st_mode)) return ot_errorf(OT_E_IO, "'%s' exists and is not a directory", dir);
    DIR *d = opendir(dir);
    if (!d) return ot_errorf(OT_E_IO, "cannot read '%s': %s", dir, strerror(errno));
    struct dirent *e;
    char foreign[256] = "";
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || is_adapter_file(e->d_name)) continue;
        snprintf(foreign, sizeof foreign, "%s", e->d_name);
        break;
    }
    closedir(d);
    if (foreign[0])
        return ot_errorf(OT_E_IO, "'%s' exists and holds '%s', which is not part of a PEFT adapter; remove it or choose another path",
                         dir, foreign);
    char old[4096];
    if ((size_t)snprintf(old, sizeof old, "%s.old.%ld", dir, (long)getpid()) >= sizeof old)
        return ot_errorf(OT_E_INVALID, "path too long: '%s'", dir);
    if (rename(dir, old) != 0) return ot_errorf(OT_E_IO, "cannot move the previous '%s' aside: %s", dir, strerror(errno));
    if (rename(tmp, dir) != 0) {
        int err = errno;
        rename(old, dir); /* put the previous adapter back */
        return ot_errorf(OT_E_IO, "cannot rename into '%s': %s", dir, strerror(err));
    }
    remove_adapter_dir(old);
    return OT_OK;
}

ot_status ot_export_peft(const char *dir, const ot_peft_adapter *adapters, int n, const ot_peft_config *cfg) {
    if (!dir || !dir[0]) return ot_errorf(OT_E_INVALID, "PEFT export: no output directory");
    OT_TRY(check_adapters(adapters, n, cfg));
    char tmp[4096], path[4200];
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--; /* "out/" and "out" name the same folder */
    if ((size_t)snprintf(tmp, sizeof tmp, "%.*s.tmp.%ld", (int)dl, dir, (long)getpid()) >= sizeof tmp)
        return ot_errorf(OT_E_INVALID, "path too long: '%s'", dir);
    remove_adapter_dir(tmp); /* leftovers of an earlier run with our pid */
    if (mkdir(tmp, 0755) != 0) return ot_errorf(OT_E_IO, "cannot create '%s': %s", tmp, strerror(errno));

    char *json = NULL;
    ot_status st = OT_OK;
    if (join(path, sizeof path, tmp, PEFT_WEIGHTS) != 0) st = ot_errorf(OT_E_INVALID, "path too long: '%s'", dir);
    if (st == OT_OK) st = write_weights(path, adapters, n);
    if (st == OT_OK) st = config_json(cfg, &json);
    if (st == OT_OK && join(path, sizeof path, tmp, PEFT_CONFIG) != 0) st = ot_errorf(OT_E_INVALID, "path too long: '%s'", dir);
    if (st == OT_OK) st = ot_write_file_atomic(path, json, strlen(json));
    free(json);
    if (st == OT_OK) {
        fsync_path(tmp);
        char target[4096];
        snprintf(target, sizeof target, "%.*s", (int)dl, dir);
        st = place_dir(tmp, target);
        if (st == OT_OK) {
            char *parent = ot_dirname_dup(target);
            if (parent) fsync_path(parent);
            free(parent);
        }
    }
    if (st != OT_OK) {
        remove_adapter_dir(tmp);
        ot_error_wrap(st, "writing PEFT adapter '%s': ", dir);
    }
    return st;
}

/* ---- reading ---- */

void ot_peft_free(ot_peft *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        free((char *)p->adapters[i].module);
        ot_tensor_free((ot_tensor *)p->adapters[i].a);
        ot_tensor_free((ot_tensor *)p->adapters[i].b);
    }
    free(p->adapters);
    free(p);
}

static ot_status read_config(const char *dir, ot_peft *p) {
    char path[4200];
    if (join(path, sizeof path, dir, PEFT_CONFIG) != 0) return ot_errorf(OT_E_INVALID, "path too long: '%s'", dir);
    ot_mapped_file f;
    OT_TRY(ot_mapped_open(&f, path));
    if (f.size > MAX_CONFIG_BYTES) {
        ot_mapped_close(&f);
        return ot_errorf(OT_E_FORMAT, "'%s' is %zu bytes; a PEFT config is small", path, f.size);
    }
    cJSON *o = f.size ? cJSON_ParseWithLength(f.data, f.size) : NULL;
    ot_mapped_close(&f);
    ot_status st = OT_OK;
    if (!cJSON_IsObject(o)) {
        st = ot_errorf(OT_E_FORMAT, "'%s' is not a JSON object", path);
        goto done;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "peft_type");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "r");
    const cJSON *alpha = cJSON_GetObjectItemCaseSensitive(o, "lora_alpha");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "use_rslora");
    if (type && !(cJSON_IsString(type) && !strcmp(type->valuestring, "LORA"))) {
        st = ot_errorf(OT_E_UNSUPPORTED, "'%s': peft_type is %s; onnxtune reads LORA adapters", path,
                       cJSON_IsString(type) ? type->valuestring : "not a string");
        goto done;
    }
    if (!cJSON_IsNumber(r) || r->valuedouble < 1 || r->valuedouble > 1e9 || r->valuedouble != (double)(int)r->valuedouble) {
        st = ot_errorf(OT_E_FORMAT, "'%s': field 'r' must be a positive integer", path);
        goto done;
    }
    if (alpha && !cJSON_IsNumber(alpha)) {
        st = ot_errorf(OT_E_FORMAT, "'%s': field 'lora_alpha' must be a number", path);
        goto done;
    }
    if (rs && !cJSON_IsBool(rs) && !cJSON_IsNull(rs)) {
        st = ot_errorf(OT_E_FORMAT, "'%s': field 'use_rslora' must be true or false", path);
        goto done;
    }
    /* Options that change the math per module: applying the adapter without them would be wrong. */
    static const char *const per_module[] = {"rank_pattern", "alpha_pattern"};
    for (int i = 0; i < 2; i++) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, per_module[i]);
        if (cJSON_IsObject(pat) && pat->child) {
            st = ot_errorf(OT_E_UNSUPPORTED, "'%s': '%s' (per-module %s) is not supported", path, per_module[i],
                           i ? "alphas" : "ranks");
            goto done;
        }
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "use_dora"))) {
        st = ot_errorf(OT_E_UNSUPPORTED, "'%s': DoRA adapters (use_dora) are not supported", path);
        goto done;
    }
    p->r = (int)r->valuedouble;
    p->alpha = alpha ? (float)alpha->valuedouble : 8.0f; /* PEFT's default lora_alpha */
    p->rslora = cJSON_IsTrue(rs);
done:
    cJSON_Delete(o);
    return st;
}

/* Splits a stored key into module path, 'A'/'B' and adapter name ("" when absent). Returns
 * 0 when the key is not a lora_A/lora_B weight. */
static int split_key(const char *key, char *module, size_t mcap, char *which, char *adapter, size_t acap) {
    if (!strncmp(key, PEFT_PREFIX, strlen(PEFT_PREFIX))) key += strlen(PEFT_PREFIX);
    const char *hit = NULL;
    for (const char *s = strstr(key, ".lora_"); s; s = strstr(s + 1, ".lora_")) hit = s;
    if (!hit || (hit[6] != 'A' && hit[6] != 'B') || hit == key) return 0;
    const char *rest = hit + 7; /* ".weight" or ".<adapter>.weight" */
    const char *suffix = ".weight";
    size_t rl = strlen(rest), sl = strlen(suffix);
    if (rl < sl || strcmp(rest + rl - sl, suffix) != 0) return 0;
    size_t al = rl - sl; /* ".<adapter>" or "" */
    if (al == 1 || (al && (rest[0] != '.' || memchr(rest + 1, '.', al - 1)))) return 0;
    if ((size_t)(hit - key) >= mcap || al >= acap) return 0;
    memcpy(module, key, (size_t)(hit - key));
    module[hit - key] = 0;
    *which = hit[6];
    if (al) memcpy(adapter, rest + 1, al - 1);
    adapter[al ? al - 1 : 0] = 0;
    return 1;
}

static ot_status to_f32(const ot_tensor *t, const char *what, ot_tensor **out) {
    if (!ot_dtype_is_float(t->dtype))
        return ot_errorf(OT_E_FORMAT, "%s is %s, not a float tensor", what, ot_dtype_name(t->dtype));
    if (t->ndim != 2) {
        char s[96];
        return ot_errorf(OT_E_SHAPE, "%s has shape %s; LoRA weights are 2-D", what, ot_shape_str(s, sizeof s, t->ndim, t->dims));
    }
    OT_TRY(ot_tensor_new(out, OT_F32, 2, t->dims));
    ot_convert((*out)->data, OT_F32, t->data, t->dtype, (size_t)ot_tensor_numel(t));
    return OT_OK;
}

static ot_status read_weights(const char *dir, ot_peft *p) {
    char path[4200], bin[4200];
    if (join(path, sizeof path, dir, PEFT_WEIGHTS) != 0 || join(bin, sizeof bin, dir, "adapter_model.bin") != 0)
        return ot_errorf(OT_E_INVALID, "path too long: '%s'", dir);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (stat(bin, &sb) == 0)
            return ot_errorf(OT_E_UNSUPPORTED, "'%s' has only adapter_model.bin (a PyTorch pickle); save the adapter with "
                             "safe_serialization=True to get %s", dir, PEFT_WEIGHTS);
    }
    ot_safetensors *sf;
    OT_TRY(ot_safetensors_open(path, &sf));
    int count = ot_safetensors_count(sf);
    ot_strmap *index = ot_strmap_new();
    p->adapters = calloc((size_t)count + 1, sizeof *p->adapters);
    char adapter_name[256] = "", first_key[1024] = "";
    ot_status st = (!index || !p->adapters) ? ot_errorf(OT_E_NOMEM, "out of memory") : OT_OK;
    for (int i = 0; i < count && st == OT_OK; i++) {
        const char *key = ot_safetensors_name(sf, i);
        char module[1024], which, name[256], what[8192];
        if (!split_key(key, module, sizeof module, &which, name, sizeof name)) {
            st = ot_errorf(OT_E_UNSUPPORTED, "'%s': tensor '%s' is not a LoRA lora_A/lora_B weight (embedding adapters, "
                           "biases, DoRA magnitudes and modules_to_save are not supported)", path, key);
            break;
        }
        if (!first_key[0]) {
            snprintf(first_key, sizeof first_key, "%s", key);
            snprintf(adapter_name, sizeof adapter_name, "%s", name);
        } else if (strcmp(adapter_name, name) != 0) {
            st = ot_errorf(OT_E_UNSUPPORTED, "'%s' holds more than one adapter: '%s' and '%s'", path, first_key, key);
            break;
        }
        int idx;
        if (!ot_strmap_get(index, module, &idx)) {
            idx = p->n;
            if (!(p->adapters[idx].module = strdup(module))) {
                st = ot_errorf(OT_E_NOMEM, "out of memory");
                break;
            }
            p->n++;
            if ((st = ot_strmap_put(index, module, idx)) != OT_OK) break;
        }
        ot_peft_adapter *ad = &p->adapters[idx];
        const ot_tensor **slot = which == 'A' ? &ad->a : &ad->b;
        if ((size_t)snprintf(what, sizeof what, "'%s': tensor '%s'", path, key) >= sizeof what) what[sizeof what - 1] = 0;
        if (*slot) {
            st = ot_errorf(OT_E_FORMAT, "%s: module '%s' already has a lora_%c weight", what, module, which);
            break;
        }
        ot_tensor *t;
        if ((st = to_f32(ot_safetensors_tensor(sf, i), what, &t)) != OT_OK) break;
        *slot = t;
    }
    for (int i = 0; i < p->n && st == OT_OK; i++) {
        const ot_peft_adapter *ad = &p->adapters[i];
        char sa[96], sb2[96];
        if (!ad->a || !ad->b)
            st = ot_errorf(OT_E_FORMAT, "'%s': module '%s' has lora_%c but no lora_%c", path, ad->module, ad->a ? 'A' : 'B',
                           ad->a ? 'B' : 'A');
        else if (ad->a->dims[0] != ad->b->dims[1])
            st = ot_errorf(OT_E_SHAPE, "'%s': module '%s': lora_A %s and lora_B %s disagree on the rank", path, ad->module,
                           ot_shape_str(sa, sizeof sa, 2, ad->a->dims), ot_shape_str(sb2, sizeof sb2, 2, ad->b->dims));
        else if (ad->a->dims[0] != p->r)
            st = ot_errorf(OT_E_SHAPE, "'%s': module '%s' has rank %lld but %s says r = %d", path, ad->module,
                           (long long)ad->a->dims[0], PEFT_CONFIG, p->r);
    }
    if (st == OT_OK && p->n == 0) st = ot_errorf(OT_E_FORMAT, "'%s' holds no LoRA weights", path);
    ot_strmap_free(index);
    ot_safetensors_close(sf);
    return st;
}

ot_status ot_peft_read(const char *dir, ot_peft **out) {
    if (!out) return ot_errorf(OT_E_INVALID, "PEFT read: no output pointer");
    *out = NULL;
    if (!dir || !dir[0]) return ot_errorf(OT_E_INVALID, "PEFT read: no adapter directory");
    ot_peft *p = calloc(1, sizeof *p);
    if (!p) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_status st = read_config(dir, p);
    if (st == OT_OK) st = read_weights(dir, p);
    if (st != OT_OK) {
        ot_peft_free(p);
        return st;
    }
    *out = p;
    return OT_OK;
}
