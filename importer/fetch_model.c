/* fetch_model.c — ot_fetch_model: a model is more than one file. Builds, under the cache's
 * models/<key>/, the folder layout the loaders expect (an .onnx beside its external data;
 * a Hugging Face repository's config.json beside its safetensors and shards), each file a
 * hard link to its blob (fetch.c). The key is the sha256 of the model's URL (for hf://, of
 * the resolved "<hub>/ORG/NAME/resolve/REV/"). A folder is complete once its
 * ".onnxtune-complete" marker exists: later fetches of the same model then touch neither
 * the network nor the model file. Building a folder holds an flock() on locks/m-<key>.lock,
 * so concurrent fetches of one model build it once. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "importer/fetch_internal.h"
#include "importer/mapped_file.h"
#include "onnx.pb-c.h"

#define OT_FETCH_MARKER ".onnxtune-complete"
/* Deeper subgraph nesting than this is refused rather than risking the stack. */
#define OT_FETCH_MAX_DEPTH 64

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static void strlist_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Adds `s` unless present. */
static ot_status strlist_add(strlist *l, const char *s) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0) return OT_OK;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return ot_errorf(OT_E_NOMEM, "out of memory");
        l->v = v, l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return ot_errorf(OT_E_NOMEM, "out of memory");
    l->n++;
    return OT_OK;
}

/* ---- external data named by an ONNX file ---- */

static ot_status tensor_location(const Onnx__TensorProto *tp, strlist *out) {
    if (!tp || !tp->has_data_location || tp->data_location != ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) return OT_OK;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (e->key && strcmp(e->key, "location") == 0 && e->value) return strlist_add(out, e->value);
    }
    return ot_errorf(OT_E_FORMAT, "tensor '%s' is stored externally but names no location", tp->name ? tp->name : "");
}

static ot_status sparse_locations(const Onnx__SparseTensorProto *sp, strlist *out) {
    if (!sp) return OT_OK;
    OT_TRY(tensor_location(sp->values, out));
    return tensor_location(sp->indices, out);
}

static ot_status graph_locations(const Onnx__GraphProto *g, int depth, strlist *out) {
    if (!g) return OT_OK;
    if (depth > OT_FETCH_MAX_DEPTH) return ot_errorf(OT_E_FORMAT, "subgraphs nested deeper than %d", OT_FETCH_MAX_DEPTH);
    for (size_t i = 0; i < g->n_initializer; i++) OT_TRY(tensor_location(g->initializer[i], out));
    for (size_t i = 0; i < g->n_sparse_initializer; i++) OT_TRY(sparse_locations(g->sparse_initializer[i], out));
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        for (size_t j = 0; j < n->n_attribute; j++) {
            const Onnx__AttributeProto *a = n->attribute[j];
            OT_TRY(tensor_location(a->t, out));
            for (size_t k = 0; k < a->n_tensors; k++) OT_TRY(tensor_location(a->tensors[k], out));
            OT_TRY(sparse_locations(a->sparse_tensor, out));
            for (size_t k = 0; k < a->n_sparse_tensors; k++) OT_TRY(sparse_locations(a->sparse_tensors[k], out));
            OT_TRY(graph_locations(a->g, depth + 1, out));
            for (size_t k = 0; k < a->n_graphs; k++) OT_TRY(graph_locations(a->graphs[k], depth + 1, out));
        }
    }
    return OT_OK;
}

/* The external data files an .onnx file refers to, in first-use order. */
static ot_status onnx_external_locations(const char *path, const char *url, strlist *out) {
    ot_mapped_file f;
    OT_TRY(ot_mapped_open(&f, path));
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, f.size, f.data);
    ot_status st = OT_OK;
    if (!m) {
        st = ot_errorf(OT_E_FORMAT, "'%s' is not a valid ONNX model (protobuf parse failed)", url);
    } else {
        st = graph_locations(m->graph, 0, out);
        if (st != OT_OK) st = ot_error_wrap(st, "ONNX model '%s': ", url);
        onnx__model_proto__free_unpacked(m, NULL);
    }
    ot_mapped_close(&f);
    return st;
}

/* ---- model folders ---- */

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static ot_status mark_complete(const char *dir) {
    char *m = ot_fetch_join(dir, NULL, OT_FETCH_MARKER);
    if (!m) return ot_errorf(OT_E_NOMEM, "out of memory");
    FILE *f = fopen(m, "we");
    ot_status st = f && fclose(f) == 0 ? OT_OK : ot_errorf(OT_E_IO, "cannot create '%s'", m);
    free(m);
    return st;
}

static int is_complete(const char *dir) {
    char *m = ot_fetch_join(dir, NULL, OT_FETCH_MARKER);
    int ok = m && exists(m);
    free(m);
    return ok;
}

/* Fetches `t` and places it at dir/rel. */
static ot_status fetch_into(const ot_fetch_target *t, const ot_fetch_opts *opts, const char *dir, const char *rel,
                            int *not_found) {
    char *blob = NULL;
    OT_TRY(ot_fetch_target_file(t, opts, &blob, not_found));
    char *dest = ot_fetch_join(dir, NULL, rel);
    ot_status st = dest ? ot_fetch_place(blob, dest) : ot_errorf(OT_E_NOMEM, "out of memory");
    free(dest);
    free(blob);
    return st;
}

/* models/<key> for `key_url`, and the model lock held while it is built. */
static ot_status model_dir(const ot_fetch_opts *opts, const char *key_url, char **root, char **dir, char key[65]) {
    *dir = NULL;
    OT_TRY(ot_fetch_cache_root(opts, root));
    OT_TRY(ot_fetch_url_key(key_url, key));
    char *models = ot_fetch_join(*root, "models", NULL);
    *dir = models ? ot_fetch_join(models, NULL, key) : NULL;
    free(models);
    return *dir ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
}

/* A plain file URL (or hf://ORG/NAME/FILE): models/<key>/<basename>, plus an .onnx's
 * external data fetched from beside it into the same folder. */
static ot_status file_model(const char *url, const ot_fetch_opts *opts, char **path) {
    ot_fetch_target t;
    char *base = NULL, *root = NULL, *dir = NULL, *final = NULL;
    strlist locs = {0};
    int lock = -1;
    char key[OT_SHA256_HEX_LEN + 1], lname[OT_SHA256_HEX_LEN + 3];
    ot_status st = ot_fetch_resolve(url, opts, &t);
    if (st == OT_OK) st = ot_fetch_url_basename(t.url, &base);
    if (st == OT_OK) st = model_dir(opts, t.url, &root, &dir, key);
    if (st == OT_OK && !(final = ot_fetch_join(dir, NULL, base))) st = ot_errorf(OT_E_NOMEM, "out of memory");
    if (st != OT_OK) goto done;
    /* With a #sha256 the fetch below checks the digest (through the ref, no request). */
    if (!t.sha256[0] && is_complete(dir) && exists(final)) goto done;
    snprintf(lname, sizeof lname, "m-%s", key);
    if ((st = ot_fetch_lock(root, lname, &lock)) != OT_OK) goto done;
    if ((st = fetch_into(&t, opts, dir, base, NULL)) != OT_OK) goto done;
    size_t bl = strlen(base);
    if (bl > 5 && strcasecmp(base + bl - 5, ".onnx") == 0) {
        if ((st = onnx_external_locations(final, t.url, &locs)) != OT_OK) goto done;
        for (int i = 0; i < locs.n && st == OT_OK; i++) {
            ot_fetch_target ext = {.hub = t.hub};
            st = ot_fetch_check_relpath(locs.v[i], url);
            if (st == OT_OK) st = ot_fetch_url_sibling(t.url, locs.v[i], &ext.url);
            if (st == OT_OK) st = fetch_into(&ext, opts, dir, locs.v[i], NULL);
            if (st != OT_OK) st = ot_error_wrap(st, "external data of '%s': ", url);
            ot_fetch_target_free(&ext);
        }
        if (st != OT_OK) goto done;
    }
    st = mark_complete(dir);
done:
    if (lock >= 0) close(lock);
    if (st == OT_OK) {
        *path = final;
        final = NULL;
    }
    strlist_free(&locs);
    ot_fetch_target_free(&t);
    free(base);
    free(root);
    free(dir);
    free(final);
    return st;
}

/* The shard files a model.safetensors.index.json lists in its weight_map. */
static ot_status index_shards(const char *path, const char *url, strlist *out) {
    ot_mapped_file f;
    OT_TRY(ot_mapped_open(&f, path));
    cJSON *j = cJSON_ParseWithLength(f.data ? f.data : "", f.size);
    ot_mapped_close(&f);
    if (!j) return ot_errorf(OT_E_FORMAT, "'%s' is not valid JSON", url);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    ot_status st = OT_OK;
    if (!cJSON_IsObject(map)) st = ot_errorf(OT_E_FORMAT, "'%s': expected an object \"weight_map\"", url);
    for (const cJSON *e = map ? map->child : NULL; e && st == OT_OK; e = e->next) {
        if (!cJSON_IsString(e)) {
            st = ot_errorf(OT_E_FORMAT, "'%s': weight_map entry '%s' is not a file name", url, e->string ? e->string : "");
        } else {
            st = ot_fetch_check_relpath(e->valuestring, url);
            if (st == OT_OK) st = strlist_add(out, e->valuestring);
        }
    }
    if (st == OT_OK && out->n == 0) st = ot_errorf(OT_E_FORMAT, "'%s': weight_map lists no shards", url);
    cJSON_Delete(j);
    return st;
}

/* hf://ORG/NAME[@REV]: config.json and model.safetensors, or model.safetensors.index.json and
 * its shards, in models/<key>/. */
static ot_status hf_model(const char *url, const ot_hf_ref *r, const ot_fetch_opts *opts, char **path) {
    const char *hub = ot_fetch_hub(opts);
    char *base_url = NULL, *root = NULL, *dir = NULL, *blob = NULL;
    strlist shards = {0};
    int lock = -1;
    char key[OT_SHA256_HEX_LEN + 1], lname[OT_SHA256_HEX_LEN + 3];
    const char *file = "config.json";
    ot_fetch_target t = {.hub = 1};
    ot_status st = ot_hf_resolve(hub, r, NULL, &base_url);
    if (st == OT_OK) st = model_dir(opts, base_url, &root, &dir, key);
    if (st != OT_OK || is_complete(dir)) goto done;
    snprintf(lname, sizeof lname, "m-%s", key);
    if ((st = ot_fetch_lock(root, lname, &lock)) != OT_OK) goto done;
    if ((st = ot_hf_resolve(hub, r, file, &t.url)) != OT_OK) goto done;
    if ((st = fetch_into(&t, opts, dir, file, NULL)) != OT_OK) goto done;
    ot_fetch_target_free(&t);
    t.hub = 1;
    file = "model.safetensors";
    int not_found = 0;
    if ((st = ot_hf_resolve(hub, r, file, &t.url)) != OT_OK) goto done;
    st = fetch_into(&t, opts, dir, file, &not_found);
    if (st != OT_OK && not_found) {
        ot_fetch_target_free(&t);
        t.hub = 1;
        file = "model.safetensors.index.json";
        not_found = 0;
        if ((st = ot_hf_resolve(hub, r, file, &t.url)) != OT_OK) goto done;
        if ((st = ot_fetch_target_file(&t, opts, &blob, &not_found)) != OT_OK) {
            if (not_found)
                st = ot_errorf(OT_E_INVALID, "'%s' has neither model.safetensors nor model.safetensors.index.json (at %s)",
                               url, base_url);
            goto done;
        }
        char *dest = ot_fetch_join(dir, NULL, file);
        st = dest ? ot_fetch_place(blob, dest) : ot_errorf(OT_E_NOMEM, "out of memory");
        free(dest);
        if (st == OT_OK) st = index_shards(blob, t.url, &shards);
        for (int i = 0; i < shards.n && st == OT_OK; i++) {
            ot_fetch_target sh = {.hub = 1};
            st = ot_hf_resolve(hub, r, shards.v[i], &sh.url);
            if (st == OT_OK) st = fetch_into(&sh, opts, dir, shards.v[i], NULL);
            ot_fetch_target_free(&sh);
        }
    }
    if (st == OT_OK) st = mark_complete(dir);
done:
    if (lock >= 0) close(lock);
    if (st == OT_OK) {
        *path = dir;
        dir = NULL;
    }
    strlist_free(&shards);
    ot_fetch_target_free(&t);
    free(base_url);
    free(root);
    free(dir);
    free(blob);
    return st;
}

ot_status ot_fetch_model(const char *url, const ot_fetch_opts *opts, char **path) {
    *path = NULL;
    if (!url) return ot_errorf(OT_E_INVALID, "empty URL");
    if (ot_fetch_is_hf(url)) {
        ot_hf_ref r;
        OT_TRY(ot_hf_parse(url, &r));
        ot_status st = OT_OK;
        if (!r.file) {
            if (strchr(url, '#'))
                st = ot_errorf(OT_E_INVALID, "'%s': a #sha256 check applies to one file, not a repository", url);
            else
                st = hf_model(url, &r, opts, path);
            ot_hf_ref_free(&r);
            return st;
        }
        ot_hf_ref_free(&r);
    }
    return file_model(url, opts, path);
}
