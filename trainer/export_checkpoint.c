/* export_checkpoint.c — from a checkpoint to deployable files. Rebuilds the run's
 * trainable graph from the configuration the checkpoint carries (same model, same weights
 * overlay, same LoRA rewrite, same parameter names), loads the trained tensors into it, and
 * hands merged weights to the exporter. An .onnx base model is rewritten with the new
 * weights (ot_export_onnx); a model built from a Hugging Face directory has no source file,
 * so its base graph is loaded again (without LoRA nodes) and written as a new ONNX model
 * (ot_export_graph_onnx). The original model files are re-read, never modified. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "importer/module_path.h"
#include "onnxtune/export.h"
#include "onnxtune/fetch.h"
#include "onnxtune/importer.h"
#include "trainer/checkpoint.h"
#include "trainer/session.h"
#include "trainer/train.h"

static ot_status transpose2d(const ot_tensor *w, ot_tensor **out);

/* --export-dtype: OT_UNDEFINED for as-source (the model's own dtypes). */
static ot_status export_dtype_of(const char *name, ot_dtype *dt) {
    *dt = OT_UNDEFINED;
    if (!name || !strcmp(name, "as-source")) return OT_OK;
    *dt = ot_precision_dtype(name);
    if (*dt == OT_UNDEFINED || !strcmp(name, "auto"))
        return ot_errorf(OT_E_INVALID, "--export-dtype must be as-source, fp32, bf16 or fp16, got '%s'", name);
    return OT_OK;
}

/* Replaces every float tensor of t[0..n) whose dtype is not dt by a converted copy (round to
 * nearest even), owned through *owned (grown by up to n). */
static ot_status convert_for_export(ot_named_tensor *t, int n, ot_dtype dt, ot_tensor **owned, int *n_owned) {
    for (int i = 0; i < n; i++) {
        const ot_tensor *w = t[i].t;
        if (dt == OT_UNDEFINED || !ot_dtype_is_float(w->dtype) || w->dtype == dt) continue;
        ot_tensor *c;
        OT_TRY(ot_tensor_new(&c, dt, w->ndim, w->dims));
        ot_convert(c->data, dt, w->data, w->dtype, (size_t)ot_tensor_numel(w));
        owned[(*n_owned)++] = c;
        t[i].t = c;
    }
    return OT_OK;
}

/* W' for every adapted weight (LoRA), or every trained weight (full; plus the tied copy). */
static ot_status weight_updates(const ot_session *s, ot_named_tensor **out, int *n_out, ot_tensor ***owned, int *n_owned) {
    const ot_graph *g = s->g;
    int cap = s->n_adapters + s->n_params + 1;
    ot_named_tensor *u = calloc((size_t)cap, sizeof *u);
    ot_tensor **own = calloc((size_t)cap, sizeof *own);
    if (!u || !own) {
        free(u), free(own);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    int n = 0, k = 0;
    ot_status st = OT_OK;
    if (!s->cfg->full) {
        for (int i = 0; st == OT_OK && i < s->n_adapters; i++) {
            const ot_lora_adapter *ad = &s->adapters[i];
            st = ot_lora_merge(g->values[ad->weight].init, ad->w_transposed, g->values[ad->a].init,
                               g->values[ad->b].init, ad->scale, &own[k]);
            if (st == OT_OK) u[n].name = g->values[ad->weight].name, u[n++].t = own[k++];
        }
    } else {
        for (int i = 0; i < s->n_params; i++) u[n].name = s->params[i].name, u[n++].t = g->values[s->params[i].value].init;
        if (s->tied_copy >= 0) { /* the transposed copy follows the trained embedding */
            st = transpose2d(g->values[s->tied_source].init, &own[k]);
            if (st == OT_OK) u[n].name = g->values[s->tied_copy].name, u[n++].t = own[k++];
        }
    }
    *out = u, *n_out = n, *owned = own, *n_owned = k;
    return st;
}

static ot_status export_peft(const ot_session *s, ot_dtype dt, const char *out) {
    int n = s->n_adapters;
    ot_peft_adapter *a = calloc((size_t)n + 1, sizeof *a);
    ot_named_tensor *ab = calloc(2 * (size_t)n + 1, sizeof *ab);
    ot_tensor **own = calloc(2 * (size_t)n + 1, sizeof *own);
    int n_own = 0;
    ot_status st = a && ab && own ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
    for (int i = 0; st == OT_OK && i < n; i++) {
        ab[2 * i].t = s->g->values[s->adapters[i].a].init;
        ab[2 * i + 1].t = s->g->values[s->adapters[i].b].init;
    }
    if (st == OT_OK) st = convert_for_export(ab, 2 * n, dt, own, &n_own);
    for (int i = 0; st == OT_OK && i < n; i++) {
        a[i].module = s->adapters[i].module;
        a[i].a = ab[2 * i].t;
        a[i].b = ab[2 * i + 1].t;
    }
    if (st != OT_OK) {
        for (int i = 0; i < n_own; i++) ot_tensor_free(own[i]);
        free(a), free(ab), free(own);
        return st;
    }
    const ot_train_config *c = s->cfg;
    ot_peft_config pc = {(int)c->lora_r, (float)c->lora_alpha, (float)c->lora_dropout, c->lora_rslora,
                         (const char *const *)c->lora_targets.v, c->lora_targets.n, c->model,
                         !strcmp(c->loss, "causal-lm") ? "CAUSAL_LM" : !strcmp(c->loss, "cross-entropy") ? "SEQ_CLS" : NULL};
    st = ot_export_peft(out, a, s->n_adapters, &pc);
    for (int i = 0; i < n_own; i++) ot_tensor_free(own[i]);
    free(a), free(ab), free(own);
    return st;
}

/* A new tensor holding the 2-D transpose of w (any dtype). */
static ot_status transpose2d(const ot_tensor *w, ot_tensor **out) {
    int64_t dims[2] = {w->dims[1], w->dims[0]};
    OT_TRY(ot_tensor_new(out, w->dtype, 2, dims));
    size_t es = ot_dtype_size(w->dtype);
    for (int64_t r = 0; r < w->dims[0]; r++)
        for (int64_t c = 0; c < w->dims[1]; c++)
            memcpy((char *)(*out)->data + (size_t)(c * w->dims[0] + r) * es,
                   (const char *)w->data + (size_t)(r * w->dims[1] + c) * es, es);
    return OT_OK;
}

/* Merged (LoRA) or trained (full) weights and every other model weight: linear layers
 * under "<module>.weight", the rest under their initializer names. A weight the ONNX exporter
 * renamed and stored [in, out] ("onnx::MatMul_12") is written in PyTorch's nn.Linear layout
 * [out, in]; one already named by its module keeps the layout its model stores (a Hugging
 * Face gpt2's Conv1D is [in, out], and HF loaders expect exactly that). */
static ot_status export_safetensors(const ot_session *s, const ot_named_tensor *u, int n_u, ot_dtype dt, const char *out) {
    const ot_graph *g = s->g;
    ot_linear *lin;
    int n_lin;
    OT_TRY(ot_find_linears(g, &lin, &n_lin));
    ot_named_tensor *t = calloc((size_t)g->n_values + 1, sizeof *t);
    char **names = calloc((size_t)g->n_values + 1, sizeof *names);
    ot_tensor **own = calloc((size_t)g->n_values + 1, sizeof *own);
    int n = 0;
    ot_status st = t && names && own ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
    for (int v = 0; st == OT_OK && v < g->n_values; v++) {
        const ot_value *val = &g->values[v];
        if (!val->init || v == s->tied_copy || !ot_safetensors_dtype_name(val->init->dtype)) continue;
        if ((val->is_param && !s->cfg->full) || !strncmp(val->name, "ot.", 3) || strstr(val->name, "/lora/") ||
            !strncmp(val->name, "hf.", 3))
            continue; /* LoRA factors are merged; the rest is onnxtune's own (hf.*: the HF builder's constants) */
        const ot_tensor *w = val->init;
        for (int i = 0; i < n_u; i++)
            if (!strcmp(u[i].name, val->name)) w = u[i].t;
        const ot_linear *li = NULL;
        for (int i = 0; i < n_lin; i++)
            if (lin[i].weight == v) li = &lin[i];
        if (li && asprintf(&names[n], "%s.weight", li->module) < 0) names[n] = NULL;
        if (!li) names[n] = strdup(val->name);
        if (!names[n]) st = ot_errorf(OT_E_NOMEM, "out of memory");
        char *named = li ? ot_module_from_weight(val->name) : NULL;
        int renamed = li && !named;
        free(named);
        if (st == OT_OK && renamed && !li->w_transposed) { /* exporter's [in, out] copy: write [out, in] */
            st = transpose2d(w, &own[n]);
            w = own[n];
        }
        t[n].name = names[n];
        t[n].t = w;
        n++;
    }
    const char *meta[4] = {"format", "pt", "base_model", s->cfg->model};
    ot_tensor **conv = calloc((size_t)n + 1, sizeof *conv);
    int n_conv = 0;
    if (st == OT_OK && !conv) st = ot_errorf(OT_E_NOMEM, "out of memory");
    if (st == OT_OK) st = convert_for_export(t, n, dt, conv, &n_conv);
    if (st == OT_OK) st = ot_safetensors_write(out, t, n, meta, 2);
    for (int i = 0; i < n_conv; i++) ot_tensor_free(conv[i]);
    for (int i = 0; i < n; i++) free(names[i]), ot_tensor_free(own[i]);
    free(conv), free(names), free(own), free(t);
    ot_linears_free(lin, n_lin);
    return st;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The local .onnx file the model was read from (malloc'd), or NULL when it was built from a
 * Hugging Face directory. A URL resolves to its cached download (no new transfer). */
static ot_status source_onnx(const char *model, char **onnx_path) {
    *onnx_path = NULL;
    char *local = NULL;
    if (ot_is_url(model)) OT_TRY(ot_fetch_model(model, NULL, &local));
    else if (!(local = strdup(model))) return ot_errorf(OT_E_NOMEM, "out of memory");
    struct stat sb;
    if (ends_with(local, ".onnx") && stat(local, &sb) == 0 && S_ISREG(sb.st_mode)) *onnx_path = local;
    else free(local);
    return OT_OK;
}

/* With a weights overlay, every base weight may differ from the source file: the updates
 * also carry each model initializer not already updated (LoRA factors and onnxtune's own
 * values excluded), so the rewritten .onnx holds the overlaid weights. *u grows. */
static ot_status overlay_updates(const ot_session *s, ot_named_tensor **u, int *n_u) {
    const ot_graph *g = s->g;
    ot_named_tensor *all = realloc(*u, ((size_t)*n_u + (size_t)g->n_values + 1) * sizeof *all);
    if (!all) return ot_errorf(OT_E_NOMEM, "out of memory");
    *u = all;
    int n = *n_u;
    for (int v = 0; v < g->n_values; v++) {
        const ot_value *val = &g->values[v];
        if (!val->init || (val->is_param && !s->cfg->full) || !strncmp(val->name, "ot.", 3) || strstr(val->name, "/lora/"))
            continue;
        int have = 0;
        for (int i = 0; i < *n_u && !have; i++) have = !strcmp(all[i].name, val->name);
        if (!have) all[n].name = val->name, all[n++].t = val->init;
    }
    *n_u = n;
    return OT_OK;
}

/* The ONNX export rewrites weights inside the model's own graph, whose ops and value types
 * are declared in the source dtype: another dtype would need the whole graph converted. */
static ot_status check_onnx_dtype(const ot_session *s, ot_dtype dt) {
    if (dt == OT_UNDEFINED) return OT_OK;
    const ot_graph *g = s->g;
    for (int v = 0; v < g->n_values; v++) {
        const ot_tensor *w = g->values[v].init;
        if (w && ot_dtype_is_float(w->dtype) && w->dtype != dt && strncmp(g->values[v].name, "ot.", 3) != 0)
            return ot_errorf(OT_E_UNSUPPORTED,
                             "--export-dtype %s: the ONNX export keeps the model's own dtypes (weight '%s' is %s); "
                             "use it with --export safetensors or peft, or export onnx with --export-dtype as-source",
                             ot_dtype_name(dt), g->values[v].name, ot_dtype_name(w->dtype));
    }
    return OT_OK;
}

static ot_status export_onnx(const ot_session *s, ot_named_tensor **u, int *n_u, ot_dtype dt, const char *out) {
    const ot_train_config *c = s->cfg;
    OT_TRY(check_onnx_dtype(s, dt));
    char *src = NULL;
    OT_TRY(source_onnx(c->model, &src));
    ot_status st = OT_OK;
    if (src) {
        if (c->weights) st = overlay_updates(s, u, n_u);
        if (st == OT_OK) st = ot_export_onnx(src, *u, *n_u, out);
        free(src);
        return st;
    }
    /* No source file: write the base graph (no LoRA nodes), overlaid as in training. */
    ot_graph *base = NULL;
    st = ot_model_load(c->model, &base);
    if (st == OT_OK && c->weights) st = ot_weights_overlay(base, c->weights);
    if (st == OT_OK) st = ot_export_graph_onnx(base, *u, *n_u, out);
    ot_graph_free(base);
    return st;
}

ot_status ot_export_checkpoint(const char *checkpoint, const char *format, const char *dtype, const char *out) {
    ot_checkpoint *ck;
    OT_TRY(ot_checkpoint_open(checkpoint, &ck));
    ot_train_config cfg;
    ot_config_defaults(&cfg);
    ot_session s;
    memset(&s, 0, sizeof s);
    ot_named_tensor *u = NULL;
    ot_tensor **own = NULL;
    int n_u = 0, n_own = 0;
    const cJSON *saved = cJSON_GetObjectItemCaseSensitive(ot_checkpoint_state(ck), "config");
    ot_status st = ot_config_apply_json(&cfg, saved, "checkpoint config");
    if (st == OT_OK && !cfg.model) st = ot_errorf(OT_E_INVALID, "checkpoint '%s' names no model", checkpoint);
    ot_dtype dt = OT_UNDEFINED;
    if (st == OT_OK) st = export_dtype_of(dtype ? dtype : cfg.export_dtype, &dt);
    if (st == OT_OK) st = ot_session_build_params(&s, &cfg);
    /* as-source for a Hugging Face checkpoint stored in bf16/fp16 (widened on import): that
     * dtype again for the merged safetensors; a new ONNX graph from such a model is written
     * f32, a PEFT adapter (never part of the source) in f32 */
    int as_source_lowp = st == OT_OK && dt == OT_UNDEFINED && s.g->weights_dtype != OT_UNDEFINED;
    for (int i = 0; st == OT_OK && i < s.n_params; i++) {
        const ot_tensor *x = ot_checkpoint_tensor(ck, "trainable", s.params[i].name);
        if (!x || x->dtype != OT_F32 || ot_tensor_numel(x) != s.params[i].numel)
            st = ot_errorf(OT_E_INVALID, "checkpoint '%s': trainable tensor '%s' is missing or has the wrong shape",
                           ot_checkpoint_dir(ck), s.params[i].name);
        else
            memcpy(s.params[i].data, x->data, (size_t)s.params[i].numel * sizeof(float));
    }
    if (st == OT_OK && !strcmp(format, "peft")) {
        st = cfg.full ? ot_errorf(OT_E_INVALID, "--format peft needs a LoRA checkpoint; this one is full fine-tuning")
                      : export_peft(&s, dt, out); /* adapters have no source dtype: FP32 masters unless asked */
    } else if (st == OT_OK && (!strcmp(format, "onnx") || !strcmp(format, "safetensors"))) {
        st = weight_updates(&s, &u, &n_u, &own, &n_own);
        if (st == OT_OK)
            st = !strcmp(format, "onnx") ? export_onnx(&s, &u, &n_u, dt, out)
                                         : export_safetensors(&s, u, n_u, as_source_lowp ? s.g->weights_dtype : dt, out);
    } else if (st == OT_OK) {
        st = ot_errorf(OT_E_INVALID, "unknown export format '%s' (onnx, safetensors, peft)", format);
    }
    for (int i = 0; i < n_own; i++) ot_tensor_free(own[i]);
    free(own), free(u);
    ot_session_free(&s);
    ot_config_free(&cfg);
    ot_checkpoint_close(ck);
    return st;
}
