/* hf_load.c — ot_hf_load: a Hugging Face model directory (config.json + model.safetensors,
 * or model.safetensors.index.json naming shards) to a graph.
 *
 * Owns finding and opening the weight files (shard paths confined to the directory), running
 * the architecture's builder, and the all-or-nothing check that the files hold exactly the
 * tensors the architecture needs: one error lists every missing, mis-shaped and unused
 * tensor. Initializers view the mapped files, which the graph keeps open (ot_graph_keep), so
 * weights are never copied. Known non-parameter buffers some checkpoints carry (attention
 * bias masks, rotary inv_freq, position_ids) are ignored rather than called extra. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "importer/hf_internal.h"
#include "importer/mapped_file.h"
#include "onnxtune/importer.h"

static void weights_free(ot_hf_weights *w) {
    for (int i = 0; i < w->n_files; i++) {
        ot_safetensors_close(w->files[i]);
        free(w->file_names[i]);
        free(w->used[i]);
    }
    free(w->files);
    free(w->file_names);
    free(w->used);
    memset(w, 0, sizeof *w);
}

static ot_status add_file(ot_hf_weights *w, const char *path, const char *display) {
    int n = w->n_files + 1;
    ot_safetensors **f = realloc(w->files, (size_t)n * sizeof *f);
    if (f) w->files = f;
    char **names = realloc(w->file_names, (size_t)n * sizeof *names);
    if (names) w->file_names = names;
    unsigned char **used = realloc(w->used, (size_t)n * sizeof *used);
    if (used) w->used = used;
    if (!f || !names || !used) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_safetensors *st;
    OT_TRY(ot_safetensors_open(path, &st));
    w->files[w->n_files] = st;
    w->file_names[w->n_files] = strdup(display);
    w->used[w->n_files] = calloc((size_t)ot_safetensors_count(st) + 1, 1);
    w->n_files = n;
    if (!w->file_names[n - 1] || !w->used[n - 1]) return ot_errorf(OT_E_NOMEM, "out of memory");
    return OT_OK;
}

static void close_file(void *p) { ot_safetensors_close(p); }

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* model.safetensors.index.json: {"weight_map": {"tensor": "shard file", ...}}. Every shard
 * named is opened once; every tensor the map names must be in its shard. */
static ot_status open_sharded(const char *dir, const char *index_path, ot_hf_weights *w) {
    ot_mapped_file f;
    OT_TRY(ot_mapped_open(&f, index_path));
    cJSON *root = cJSON_ParseWithLength(f.data ? f.data : "", f.size);
    ot_mapped_close(&f);
    if (!root) return ot_errorf(OT_E_FORMAT, "'%s' is not valid JSON", index_path);
    ot_status st = OT_OK;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) st = ot_errorf(OT_E_FORMAT, "'%s': missing object \"weight_map\"", index_path);
    for (const cJSON *e = map ? map->child : NULL; st == OT_OK && e; e = e->next) {
        if (!cJSON_IsString(e)) {
            st = ot_errorf(OT_E_FORMAT, "'%s': weight_map[\"%s\"] must be a file name", index_path, e->string);
            break;
        }
        int have = -1;
        for (int i = 0; i < w->n_files; i++)
            if (strcmp(w->file_names[i], e->valuestring) == 0) have = i;
        if (have < 0) {
            char *path = NULL;
            char what[512];
            snprintf(what, sizeof what, "'%.300s' shard of tensor '%.150s'", index_path, e->string);
            char plain[4096];
            snprintf(plain, sizeof plain, "%s/%s", dir, e->valuestring);
            if (!file_exists(plain)) {
                st = ot_errorf(OT_E_IO, "'%s': shard '%s' (holding '%s') does not exist in '%s'", index_path,
                               e->valuestring, e->string, dir);
                break;
            }
            st = ot_confined_path(dir, e->valuestring, what, &path); /* no escaping the folder */
            if (st == OT_OK) st = add_file(w, path, e->valuestring);
            free(path);
            have = w->n_files - 1;
            if (st != OT_OK) break;
        }
        if (!ot_safetensors_find(w->files[have], e->string))
            st = ot_errorf(OT_E_FORMAT, "'%s': weight_map puts '%s' in '%s', which does not hold it", index_path, e->string,
                           e->valuestring);
    }
    if (st == OT_OK && w->n_files == 0) st = ot_errorf(OT_E_FORMAT, "'%s': weight_map is empty", index_path);
    cJSON_Delete(root);
    return st;
}

static ot_status open_weights(const char *dir, ot_hf_weights *w) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (file_exists(path)) return add_file(w, path, "model.safetensors");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (file_exists(path)) return open_sharded(dir, path, w);
    return ot_errorf(OT_E_IO, "'%s' has neither model.safetensors nor model.safetensors.index.json", dir);
}

/* Buffers transformers saved in some checkpoints that are not parameters of the math. */
static int ignorable(const char *name) {
    static const char *suffixes[] = {".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq", "embeddings.position_ids"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && strcmp(name + n - k, suffixes[i]) == 0) return 1;
    }
    return 0;
}

static const char *arch_name(ot_hf_arch a) {
    return a == OT_HF_GPT2 ? "gpt2" : a == OT_HF_LLAMA ? "llama" : "bert";
}

/* One error naming every weight problem and every unused tensor. */
static ot_status check_weights(const ot_hf_builder *b, const char *dir) {
    char extra[2048];
    size_t k = 0;
    int n_extra = 0;
    extra[0] = 0;
    for (int f = 0; f < b->w->n_files; f++)
        for (int i = 0; i < ot_safetensors_count(b->w->files[f]); i++) {
            const char *name = ot_safetensors_name(b->w->files[f], i);
            if (b->w->used[f][i] || ignorable(name)) continue;
            if (k + 300 < sizeof extra)
                k += (size_t)snprintf(extra + k, sizeof extra - k, "%s%s", n_extra ? ", " : "", name);
            else if (k + 8 < sizeof extra && !strstr(extra, ", ..."))
                k += (size_t)snprintf(extra + k, sizeof extra - k, ", ...");
            n_extra++;
        }
    if (!b->n_problems && !n_extra) return OT_OK;
    const char *problems = b->problems ? b->problems : "";
    return ot_errorf(OT_E_SHAPE, "'%s': the weights do not fit the %s architecture of config.json: %d missing or mis-shaped%s%.3000s; %d extra%s%s",
                     dir, arch_name(b->cfg->arch), b->n_problems, b->n_problems ? ": " : "", problems, n_extra,
                     n_extra ? ": " : "", extra);
}

static ot_status build(const ot_hf_config *cfg, ot_hf_weights *w, const char *dir, ot_graph *g) {
    ot_hf_builder b = {0};
    b.g = g;
    b.cfg = cfg;
    b.w = w;
    OT_TRY(ot_graph_add_opset(g, "", 17));
    g->ir_version = 8;
    b.ids = ot_hf_input_ids(&b, "input_ids");
    b.bs = ot_hf_op1(&b, "Shape", b.ids);
    const int64_t one = 1, two = 2, minus1 = -1;
    int sl[3] = {b.bs, ot_hf_const_i64(&b, 1, &one), ot_hf_const_i64(&b, 1, &two)};
    b.seq = ot_hf_op(&b, "Slice", sl, 3);
    int cat[2] = {b.bs, ot_hf_const_i64(&b, 1, &minus1)};
    b.bsd = ot_hf_op(&b, "Concat", cat, 2);
    ot_hf_attr_int(&b, b.bsd, "axis", 0);
    switch (cfg->arch) {
    case OT_HF_GPT2: ot_hf_build_gpt2(&b); break;
    case OT_HF_LLAMA: ot_hf_build_llama(&b); break;
    case OT_HF_BERT: ot_hf_build_bert(&b); break;
    }
    ot_status st = b.st;
    if (st == OT_OK) st = check_weights(&b, dir);
    free(b.problems);
    return st;
}

ot_status ot_hf_load(const char *path, ot_graph **out) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return ot_errorf(OT_E_IO, "'%s' does not exist", path);
    /* a directory, or the config.json inside one */
    char *dir = S_ISDIR(sb.st_mode) ? strdup(path) : ot_dirname_dup(path);
    if (!dir) return ot_errorf(OT_E_NOMEM, "out of memory");
    char cfg_path[4096];
    if (S_ISDIR(sb.st_mode))
        snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    else
        snprintf(cfg_path, sizeof cfg_path, "%s", path);
    ot_hf_config cfg;
    ot_hf_weights w = {0};
    ot_graph *g = NULL;
    ot_status st = file_exists(cfg_path) ? OT_OK : ot_errorf(OT_E_IO, "'%s' has no config.json", dir);
    if (st == OT_OK) st = ot_hf_config_read(cfg_path, &cfg);
    if (st == OT_OK) st = open_weights(dir, &w);
    if (st == OT_OK) st = ot_graph_new(&g);
    if (st == OT_OK && !(g->name = strdup(cfg.architecture[0] ? cfg.architecture : cfg.model_type)))
        st = ot_errorf(OT_E_NOMEM, "out of memory");
    if (st == OT_OK) st = build(&cfg, &w, dir, g);
    /* from here the graph owns the mapped files */
    for (int i = 0; st == OT_OK && i < w.n_files; i++) {
        st = ot_graph_keep(g, w.files[i], close_file);
        if (st == OT_OK) w.files[i] = NULL;
    }
    if (st == OT_OK) st = ot_graph_toposort(g);
    weights_free(&w);
    if (st != OT_OK) {
        ot_graph_free(g);
        free(dir);
        return st;
    }
    free(dir);
    *out = g;
    return OT_OK;
}
