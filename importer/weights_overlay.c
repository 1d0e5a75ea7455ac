/* weights_overlay.c — replaces a graph's initializers from a safetensors file
 * (ot_weights_overlay, `--weights FILE.safetensors`).
 *
 * The file names tensors by module path, as PyTorch does ("transformer.h.0.attn.c_attn.weight").
 * An initializer is found under its own name; a linear weight the ONNX exporter renamed
 * ("onnx::MatMul_12", stored transposed [in, out] for a MatMul) is found as "<module>.weight"
 * through its node's scope (importer/module_path.c, the same paths LoRA targets use) and is
 * transposed back from the file's nn.Linear layout [out, in]. A file name that is not a model
 * name may still match one model name by its last components (HF checkpoints of GPT2Model
 * say "h.0..." where GPT2LMHeadModel's export says "transformer.h.0..."), when exactly one
 * does. A weight stored twice by the exporter for a tied output head (the transposed
 * embedding) follows the new embedding when the file has no tensor of its own for it.
 *
 * All or nothing: every check runs before the graph is touched. Errors list up to 20 names
 * each of the file's tensors that match nothing (extra), the model's float weights with
 * module-path names the file lacks (missing), and shape or dtype mismatches. On success the
 * graph keeps the file mapped (ot_graph_keep); a replacement in the initializer's dtype and
 * layout views the mapped bytes, one needing a conversion or a transpose is an owned copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strmap.h"
#include "importer/module_path.h"
#include "onnxtune/importer.h"
#include "onnxtune/safetensors.h"

#define MAX_LISTED 20

/* A name under which the file may hold an initializer. */
typedef struct target {
    int value;
    char *name;     /* owned */
    int transposed; /* the file holds the 2-D transpose of the stored weight */
    int required;   /* a module-path weight the file must provide */
} target;

typedef struct overlay {
    ot_graph *g;
    const char *path;
    ot_safetensors *st;
    target *t;
    int n_t, cap_t;
    ot_strmap *by_name; /* target name -> index */
    int *file_target;   /* per file tensor: matched target, or -1 */
    int *value_file;    /* per value: matched file tensor, or -1 */
    int *value_tied;    /* per value: the value whose new data it follows transposed, or -1 */
} overlay;

/* ---- a growing message listing names ---- */

typedef struct name_list {
    char buf[8192];
    size_t len;
    int n;
} name_list;

static void list_add(name_list *l, const char *fmt, const char *a, const char *b, const char *c) {
    l->n++;
    if (l->n > MAX_LISTED || l->len + 1 >= sizeof l->buf) return;
    l->len += (size_t)snprintf(l->buf + l->len, sizeof l->buf - l->len, "%s", l->n > 1 ? ", " : "");
    if (l->len + 1 < sizeof l->buf) l->len += (size_t)snprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, a, b, c);
    if (l->len >= sizeof l->buf) l->len = sizeof l->buf - 1;
}

static void list_emit(char *out, size_t n, size_t *used, const name_list *l, const char *what) {
    if (!l->n || *used + 1 >= n) return;
    *used += (size_t)snprintf(out + *used, n - *used, "%s%d %s: %s%s", *used ? "; " : "", l->n, what, l->buf,
                              l->n > MAX_LISTED ? ", ..." : "");
    if (*used >= n) *used = n - 1;
}

/* ---- targets ---- */

static ot_status add_target(overlay *o, int value, char *name, int transposed, int required) {
    if (!name) return ot_errorf(OT_E_NOMEM, "out of memory");
    int prev;
    if (ot_strmap_get(o->by_name, name, &prev)) { /* two weights claim one module name: keep the first */
        free(name);
        return OT_OK;
    }
    if (o->n_t == o->cap_t) {
        int cap = o->cap_t ? 2 * o->cap_t : 64;
        target *t = realloc(o->t, (size_t)cap * sizeof *t);
        if (!t) {
            free(name);
            return ot_errorf(OT_E_NOMEM, "out of memory");
        }
        o->t = t;
        o->cap_t = cap;
    }
    o->t[o->n_t] = (target){value, name, transposed, required};
    OT_TRY(ot_strmap_put(o->by_name, name, o->n_t));
    o->n_t++;
    return OT_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Weights a module-path file must hold: float tensors named like module parameters. Buffers
 * (a boolean causal mask) and exporter constants ("onnx::...", "/...") are optional. */
static int module_param_name(const ot_value *v) {
    return ot_dtype_is_float(v->init->dtype) && strncmp(v->name, "onnx::", 6) != 0 && v->name[0] != '/' &&
           (ends_with(v->name, ".weight") || ends_with(v->name, ".bias"));
}

static ot_status collect_targets(overlay *o) {
    ot_graph *g = o->g;
    /* Renamed linear weights first, under "<module>.weight" (required) */
    for (int i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        int is_gemm = !strcmp(n->op_type, "Gemm");
        if (n->domain[0] || (!is_gemm && strcmp(n->op_type, "MatMul")) || n->n_in < 2 || n->in[1] < 0) continue;
        const ot_value *w = &g->values[n->in[1]];
        if (!w->init || w->init->ndim != 2 || !ot_dtype_is_float(w->init->dtype)) continue;
        char *own = ot_module_from_weight(w->name);
        free(own);
        if (own) continue; /* already a module-path name: found under it */
        int64_t trans_a = 0, trans_b = 0;
        if (is_gemm) {
            OT_TRY(ot_attr_int(n, "transA", 0, &trans_a));
            OT_TRY(ot_attr_int(n, "transB", 0, &trans_b));
            if (trans_a) continue;
        }
        char *module = ot_module_from_scope(n->name), *name = NULL;
        if (!module) continue; /* no scope ("/MatMul"): only its own name or a tie can reach it */
        if (asprintf(&name, "%s.weight", module) < 0) name = NULL;
        free(module);
        OT_TRY(add_target(o, n->in[1], name, !trans_b, 1));
    }
    /* Every initializer under its own name, as stored */
    for (int v = 0; v < g->n_values; v++) {
        const ot_value *val = &g->values[v];
        if (!val->init) continue;
        int renamed_linear = 0;
        for (int k = 0; k < o->n_t && !renamed_linear; k++) renamed_linear = o->t[k].value == v;
        OT_TRY(add_target(o, v, strdup(val->name), 0, !renamed_linear && module_param_name(val)));
    }
    return OT_OK;
}

/* ---- matching ---- */

/* The target a file name refers to: exact, else the one model name ending in ".<name>". */
static int find_target(const overlay *o, const char *name, int *ambiguous) {
    int idx;
    *ambiguous = 0;
    if (ot_strmap_get(o->by_name, name, &idx)) return idx;
    size_t k = strlen(name);
    int hit = -1;
    for (int i = 0; i < o->n_t; i++) {
        const char *t = o->t[i].name;
        size_t n = strlen(t);
        if (n > k && t[n - k - 1] == '.' && !strcmp(t + n - k, name)) {
            if (hit >= 0) *ambiguous = 1;
            hit = i;
        }
    }
    return *ambiguous ? -1 : hit;
}

static void expected_dims(const overlay *o, const target *t, int64_t *dims, int *ndim) {
    const ot_tensor *init = o->g->values[t->value].init;
    *ndim = init->ndim;
    for (int d = 0; d < init->ndim; d++) dims[d] = t->transposed ? init->dims[init->ndim - 1 - d] : init->dims[d];
}

/* 1 when b (2-D) is the transpose of a (2-D), element for element. */
static int is_transpose_of(const ot_tensor *a, const ot_tensor *b) {
    if (a->ndim != 2 || b->ndim != 2 || a->dtype != b->dtype || a->dims[0] != b->dims[1] || a->dims[1] != b->dims[0])
        return 0;
    size_t es = ot_dtype_size(a->dtype);
    const char *pa = a->data, *pb = b->data;
    for (int64_t r = 0; r < a->dims[0]; r++)
        for (int64_t c = 0; c < a->dims[1]; c++)
            if (memcmp(pa + (size_t)(r * a->dims[1] + c) * es, pb + (size_t)(c * a->dims[0] + r) * es, es)) return 0;
    return 1;
}

/* An unmatched 2-D weight equal to the transpose of a weight the file replaces is its tied copy. */
static int find_tie(const overlay *o, int v) {
    const ot_graph *g = o->g;
    const ot_tensor *w = g->values[v].init;
    if (w->ndim != 2 || !ot_dtype_is_float(w->dtype)) return -1;
    for (int e = 0; e < g->n_values; e++)
        if (e != v && o->value_file[e] >= 0 && g->values[e].init && is_transpose_of(g->values[e].init, w)) return e;
    return -1;
}

static ot_status match(overlay *o) {
    const ot_graph *g = o->g;
    int nf = ot_safetensors_count(o->st);
    o->file_target = malloc(((size_t)nf + 1) * sizeof *o->file_target);
    o->value_file = malloc(((size_t)g->n_values + 1) * sizeof *o->value_file);
    o->value_tied = malloc(((size_t)g->n_values + 1) * sizeof *o->value_tied);
    if (!o->file_target || !o->value_file || !o->value_tied) return ot_errorf(OT_E_NOMEM, "out of memory");
    for (int v = 0; v < g->n_values; v++) o->value_file[v] = o->value_tied[v] = -1;
    name_list extra = {0}, missing = {0}, mismatch = {0};
    for (int i = 0; i < nf; i++) {
        const char *name = ot_safetensors_name(o->st, i);
        const ot_tensor *ft = ot_safetensors_tensor(o->st, i);
        int ambiguous;
        int ti = find_target(o, name, &ambiguous);
        o->file_target[i] = -1;
        if (ti < 0) {
            list_add(&extra, "%s%s%s", name, ambiguous ? " (matches several)" : "", "");
            continue;
        }
        const target *t = &o->t[ti];
        if (o->value_file[t->value] >= 0) {
            list_add(&extra, "%s (also given as %s%s)", name, ot_safetensors_name(o->st, o->value_file[t->value]), "");
            continue;
        }
        const ot_tensor *init = g->values[t->value].init;
        int64_t dims[OT_MAX_DIMS];
        int ndim;
        expected_dims(o, t, dims, &ndim);
        char have[256], want[256], msg[600];
        if (!ot_shape_equal(ft->ndim, ft->dims, ndim, dims)) {
            snprintf(msg, sizeof msg, "file %s, model %s%s", ot_shape_str(have, sizeof have, ft->ndim, ft->dims),
                     ot_shape_str(want, sizeof want, ndim, dims), t->transposed ? " (nn.Linear [out, in])" : "");
            list_add(&mismatch, "%s (%s%s)", name, msg, "");
            continue;
        }
        if (ft->dtype != init->dtype && !(ot_dtype_is_float(ft->dtype) && ot_dtype_is_float(init->dtype))) {
            snprintf(msg, sizeof msg, "file %s, model %s", ot_dtype_name(ft->dtype), ot_dtype_name(init->dtype));
            list_add(&mismatch, "%s (%s%s)", name, msg, "");
            continue;
        }
        o->file_target[i] = ti;
        o->value_file[t->value] = i;
    }
    for (int k = 0; k < o->n_t; k++) {
        const target *t = &o->t[k];
        if (o->value_file[t->value] >= 0 || o->value_tied[t->value] >= 0) continue;
        int e = find_tie(o, t->value);
        if (e >= 0) {
            o->value_tied[t->value] = e;
            continue;
        }
        if (t->required) list_add(&missing, "%s%s%s", t->name, "", "");
    }
    if (!extra.n && !missing.n && !mismatch.n) return OT_OK;
    char msg[3 * sizeof extra.buf + 512];
    size_t used = 0;
    msg[0] = 0;
    list_emit(msg, sizeof msg, &used, &extra, "tensor(s) in the file match no initializer of the model");
    list_emit(msg, sizeof msg, &used, &missing, "weight(s) of the model are missing from the file");
    list_emit(msg, sizeof msg, &used, &mismatch, "tensor(s) have the wrong shape or dtype");
    return ot_errorf(OT_E_SHAPE, "%s", msg);
}

/* ---- applying ---- */

/* The file tensor in the initializer's dtype, transposed back when the target says so. */
static ot_status replacement(const ot_tensor *ft, const ot_tensor *init, int transposed, ot_tensor **out) {
    if (!transposed && ft->dtype == init->dtype) { /* a view of the mapped file */
        ot_tensor *t = malloc(sizeof *t);
        if (!t) return ot_errorf(OT_E_NOMEM, "out of memory");
        *t = *ft;
        t->owned = 0;
        *out = t;
        return OT_OK;
    }
    OT_TRY(ot_tensor_new(out, init->dtype, init->ndim, init->dims));
    size_t n = (size_t)ot_tensor_numel(ft), es = ot_dtype_size(init->dtype);
    if (!transposed) {
        ot_convert((*out)->data, init->dtype, ft->data, ft->dtype, n);
        return OT_OK;
    }
    const void *src = ft->data;
    void *conv = NULL;
    if (ft->dtype != init->dtype) {
        if (!(conv = malloc(n * es + 1))) {
            ot_tensor_free(*out);
            *out = NULL;
            return ot_errorf(OT_E_NOMEM, "out of memory");
        }
        ot_convert(conv, init->dtype, ft->data, ft->dtype, n);
        src = conv;
    }
    int64_t rows = ft->dims[0], cols = ft->dims[1]; /* file [out, in] -> stored [in, out] */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            memcpy((char *)(*out)->data + (size_t)(c * rows + r) * es, (const char *)src + (size_t)(r * cols + c) * es, es);
    free(conv);
    return OT_OK;
}

static ot_status apply(overlay *o) {
    ot_graph *g = o->g;
    ot_tensor **fresh = calloc((size_t)g->n_values + 1, sizeof *fresh);
    if (!fresh) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_status st = OT_OK;
    for (int v = 0; st == OT_OK && v < g->n_values; v++) {
        int i = o->value_file[v];
        if (i < 0) continue;
        const target *t = &o->t[o->file_target[i]];
        st = replacement(ot_safetensors_tensor(o->st, i), g->values[v].init, t->transposed, &fresh[v]);
    }
    for (int v = 0; st == OT_OK && v < g->n_values; v++) {
        int e = o->value_tied[v];
        if (e < 0) continue;
        st = replacement(fresh[e], g->values[v].init, 1, &fresh[v]); /* v = eᵀ, as it was */
    }
    for (int v = 0; v < g->n_values; v++) {
        if (!fresh[v]) continue;
        if (st == OT_OK) {
            ot_tensor_free(g->values[v].init);
            g->values[v].init = fresh[v];
        } else {
            ot_tensor_free(fresh[v]);
        }
    }
    free(fresh);
    return st;
}

static void overlay_free(overlay *o) {
    for (int i = 0; i < o->n_t; i++) free(o->t[i].name);
    free(o->t);
    ot_strmap_free(o->by_name);
    free(o->file_target);
    free(o->value_file);
    free(o->value_tied);
}

static void close_file(void *st) { ot_safetensors_close(st); }

ot_status ot_weights_overlay(ot_graph *g, const char *safetensors_path) {
    if (!g || !safetensors_path) return ot_errorf(OT_E_INVALID, "weights overlay: graph and file are required");
    overlay o = {.g = g, .path = safetensors_path};
    OT_TRY(ot_safetensors_open(safetensors_path, &o.st));
    ot_status st = (o.by_name = ot_strmap_new()) ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
    if (st == OT_OK) st = collect_targets(&o);
    if (st == OT_OK) st = match(&o);
    if (st == OT_OK) st = ot_graph_keep(g, o.st, close_file);
    if (st == OT_OK)
        st = apply(&o); /* the graph owns the mapping now; on failure it is simply freed with the graph */
    else
        ot_safetensors_close(o.st);
    overlay_free(&o);
    if (st != OT_OK) ot_error_wrap(st, "weights overlay '%s': ", safetensors_path);
    return st;
}
