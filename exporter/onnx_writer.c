/* onnx_writer.c — rewrites an ONNX file with some initializers replaced (ot_export_onnx).
 *
 * Owns the round trip source .onnx -> ModelProto (protobuf-c, our onnx.proto) -> destination.
 * Only the payload fields of tensors are touched: an updated initializer gets raw_data in its
 * original dtype (typed fields cleared); a tensor that is external in the source (anywhere:
 * initializers, Constant attributes, subgraphs, functions) stays external, relocated into
 * "<dst basename>.data" beside dst at a 64-byte aligned offset; when the model would pack
 * to more than 2 GB, every initializer of 1 KB or more moves there too. Everything else —
 * nodes, attributes, metadata, opsets, unknown fields, other initializers' encodings — is
 * carried over as parsed.
 *
 * Invariants: the parsed proto is modified only through `save_tensor` and restored field for
 * field before it is freed, so payloads are borrowed (from updates, the parsed source or
 * mmapped source data), never copied except where a dtype conversion needs it. Nothing is
 * written into a source file: the outputs are built under temporary names, fsynced and
 * renamed (data file first, then the model; onnx_write_util.c, shared with the graph
 * writer), and a destination that would replace one of the source's external data files is
 * refused. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strmap.h"
#include "exporter/onnx_write_util.h"
#include "exporter/onnx_writer.h"
#include "importer/onnx_model.h"

typedef struct update {
    const char *name;
    Onnx__TensorProto *tp; /* the top-level initializer it replaces */
    const void *data;      /* in tp's dtype: the caller's tensor or `converted` */
    size_t nbytes;
    void *converted;
} update;

typedef struct saved_tensor {
    Onnx__TensorProto *tp;
    Onnx__TensorProto orig; /* shallow copy taken before the first change */
} saved_tensor;

typedef struct writer {
    const char *src, *dst;
    ot_onnx_model *m; /* parsed source; its folder confines external data */
    update *upd;
    int n_upd;
    ot_strmap *upd_index; /* update name -> index */
    saved_tensor *saved;
    int n_saved, cap_saved;
    ot_onnx_ext_file ext; /* "<dst>.data" and the tensors going there */
} writer;

typedef ot_status (*tensor_fn)(writer *w, Onnx__TensorProto *tp, int is_initializer);

/* ---- walking every TensorProto of a model ---- */

static ot_status walk_graph(writer *w, Onnx__GraphProto *g, tensor_fn fn);

static ot_status walk_sparse(writer *w, Onnx__SparseTensorProto *s, tensor_fn fn) {
    if (!s) return OT_OK;
    if (s->values) OT_TRY(fn(w, s->values, 0));
    if (s->indices) OT_TRY(fn(w, s->indices, 0));
    return OT_OK;
}

static ot_status walk_nodes(writer *w, Onnx__NodeProto **nodes, size_t n, tensor_fn fn) {
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < nodes[i]->n_attribute; j++) {
            Onnx__AttributeProto *a = nodes[i]->attribute[j];
            if (a->t) OT_TRY(fn(w, a->t, 0));
            for (size_t k = 0; k < a->n_tensors; k++) OT_TRY(fn(w, a->tensors[k], 0));
            if (a->g) OT_TRY(walk_graph(w, a->g, fn));
            for (size_t k = 0; k < a->n_graphs; k++) OT_TRY(walk_graph(w, a->graphs[k], fn));
            OT_TRY(walk_sparse(w, a->sparse_tensor, fn));
            for (size_t k = 0; k < a->n_sparse_tensors; k++) OT_TRY(walk_sparse(w, a->sparse_tensors[k], fn));
        }
    }
    return OT_OK;
}

static ot_status walk_graph(writer *w, Onnx__GraphProto *g, tensor_fn fn) {
    if (!g) return OT_OK;
    for (size_t i = 0; i < g->n_initializer; i++) OT_TRY(fn(w, g->initializer[i], 1));
    for (size_t i = 0; i < g->n_sparse_initializer; i++) OT_TRY(walk_sparse(w, g->sparse_initializer[i], fn));
    return walk_nodes(w, g->node, g->n_node, fn);
}

static ot_status walk_model(writer *w, tensor_fn fn) {
    Onnx__ModelProto *mp = w->m->proto;
    OT_TRY(walk_graph(w, mp->graph, fn));
    for (size_t i = 0; i < mp->n_training_info; i++) {
        OT_TRY(walk_graph(w, mp->training_info[i]->initialization, fn));
        OT_TRY(walk_graph(w, mp->training_info[i]->algorithm, fn));
    }
    for (size_t i = 0; i < mp->n_functions; i++) OT_TRY(walk_nodes(w, mp->functions[i]->node, mp->functions[i]->n_node, fn));
    return OT_OK;
}

/* ---- changing tensors (restorably) ---- */

static ot_status save_tensor(writer *w, Onnx__TensorProto *tp) {
    for (int i = 0; i < w->n_saved; i++)
        if (w->saved[i].tp == tp) return OT_OK;
    if (w->n_saved == w->cap_saved) {
        int cap = w->cap_saved ? 2 * w->cap_saved : 64;
        saved_tensor *s = realloc(w->saved, (size_t)cap * sizeof *s);
        if (!s) return ot_errorf(OT_E_NOMEM, "out of memory");
        w->saved = s;
        w->cap_saved = cap;
    }
    w->saved[w->n_saved].tp = tp;
    w->saved[w->n_saved].orig = *tp;
    w->n_saved++;
    return OT_OK;
}

static const Onnx__TensorProto *original(const writer *w, const Onnx__TensorProto *tp) {
    for (int i = 0; i < w->n_saved; i++)
        if (w->saved[i].tp == tp) return &w->saved[i].orig;
    return tp;
}

static int is_external(const Onnx__TensorProto *tp) {
    return tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
}

static const update *find_update(const writer *w, const Onnx__TensorProto *tp) {
    int i;
    if (!tp->name || !w->upd_index || !ot_strmap_get(w->upd_index, tp->name, &i)) return NULL;
    return w->upd[i].tp == tp ? &w->upd[i] : NULL; /* a same-named tensor in a subgraph is another tensor */
}

/* Points `tp` at `nbytes` of `data` in the new data file. Keys of the source's external_data
 * other than location/offset/length are kept (a checksum only when the bytes are unchanged). */
static ot_status add_slot(writer *w, Onnx__TensorProto *tp, const void *data, size_t nbytes, ot_tensor *view, int changed) {
    ot_status st = save_tensor(w, tp);
    if (st != OT_OK) {
        ot_tensor_free(view);
        return st;
    }
    const Onnx__TensorProto *o = original(w, tp);
    OT_TRY(ot_onnx_ext_add(&w->ext, tp, data, nbytes, view, o->n_external_data, NULL));
    for (size_t i = 0; i < o->n_external_data; i++) {
        const char *k = o->external_data[i]->key ? o->external_data[i]->key : "";
        if (!strcmp(k, "location") || !strcmp(k, "offset") || !strcmp(k, "length")) continue;
        if (changed && !strcmp(k, "checksum")) continue;
        tp->external_data[tp->n_external_data++] = o->external_data[i];
    }
    return OT_OK;
}

static void describe(char *buf, size_t n, const Onnx__TensorProto *tp, int is_initializer) {
    snprintf(buf, n, "%s '%s'", is_initializer ? "initializer" : "tensor", tp->name ? tp->name : "");
}

/* Pass 1: every tensor external in the source moves to the new data file. */
static ot_status relocate_external(writer *w, Onnx__TensorProto *tp, int is_initializer) {
    if (!is_external(tp)) return OT_OK;
    char what[512];
    describe(what, sizeof what, tp, is_initializer);
    ot_tensor *view;
    OT_TRY(ot_onnx_tensor(w->m, tp, what, &view)); /* validates, and maps the source file even when replaced */
    const update *u = find_update(w, tp);
    if (u) {
        ot_tensor_free(view);
        return add_slot(w, tp, u->data, u->nbytes, NULL, 1);
    }
    return add_slot(w, tp, view->data, ot_tensor_nbytes(view), view, 0);
}

/* Pass 2 (model over the limit): inline initializers of 1 KB or more go external too. */
static ot_status externalize_large(writer *w, Onnx__TensorProto *tp, int is_initializer) {
    if (!is_initializer || is_external(tp)) return OT_OK;
    size_t esize = ot_dtype_size((ot_dtype)(tp->has_data_type ? tp->data_type : 0));
    if (esize == 0 || tp->segment) return OT_OK; /* strings and exotic types stay inline */
    const update *u = find_update(w, tp);
    if (u) return u->nbytes >= OT_ONNX_EXTERNAL_MIN_BYTES ? add_slot(w, tp, u->data, u->nbytes, NULL, 1) : OT_OK;
    if (tp->has_raw_data)
        return tp->raw_data.len >= OT_ONNX_EXTERNAL_MIN_BYTES ? add_slot(w, tp, tp->raw_data.data, tp->raw_data.len, NULL, 0)
                                                               : OT_OK;
    char what[512];
    describe(what, sizeof what, tp, is_initializer);
    ot_tensor *t;
    OT_TRY(ot_onnx_tensor(w->m, tp, what, &t)); /* typed fields -> raw little-endian bytes */
    if (ot_tensor_nbytes(t) < OT_ONNX_EXTERNAL_MIN_BYTES) {
        ot_tensor_free(t);
        return OT_OK;
    }
    return add_slot(w, tp, t->data, ot_tensor_nbytes(t), t, 0);
}

/* ---- updates ---- */

static ot_status resolve_updates(writer *w, const ot_named_tensor *updates, int n) {
    Onnx__GraphProto *g = w->m->proto->graph;
    ot_strmap *inits = ot_strmap_new();
    w->upd_index = ot_strmap_new();
    w->upd = calloc((size_t)n + 1, sizeof *w->upd);
    ot_status st = OT_OK;
    if (!inits || !w->upd_index || !w->upd) {
        st = ot_errorf(OT_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < g->n_initializer && st == OT_OK; i++) {
        const char *name = g->initializer[i]->name;
        int prev;
        if (!name) continue;
        st = ot_strmap_put(inits, name, ot_strmap_get(inits, name, &prev) ? -1 : (int)i); /* -1: appears twice */
    }
    for (int k = 0; k < n && st == OT_OK; k++) {
        const char *name = updates[k].name;
        const ot_tensor *t = updates[k].t;
        int idx;
        if (!name || !t) {
            st = ot_errorf(OT_E_INVALID, "update #%d has no %s", k, name ? "tensor" : "name");
            break;
        }
        if (ot_strmap_get(w->upd_index, name, &idx)) {
            st = ot_errorf(OT_E_INVALID, "update '%s' is given twice", name);
            break;
        }
        if (!ot_strmap_get(inits, name, &idx)) {
            st = ot_errorf(OT_E_INVALID, "update '%s' names no initializer of the model (it has %zu)", name, g->n_initializer);
            break;
        }
        if (idx < 0) {
            st = ot_errorf(OT_E_FORMAT, "update '%s': the model has two initializers of that name", name);
            break;
        }
        Onnx__TensorProto *tp = g->initializer[idx];
        ot_dtype dt = (ot_dtype)(tp->has_data_type ? tp->data_type : 0);
        char have[256], want[256];
        ot_shape_str(have, sizeof have, t->ndim, t->dims);
        if (ot_dtype_size(dt) == 0 || tp->segment) {
            st = ot_errorf(OT_E_UNSUPPORTED, "update '%s': the initializer's dtype %s cannot be replaced", name, ot_dtype_name(dt));
            break;
        }
        int same_shape = (size_t)t->ndim == tp->n_dims;
        for (int d = 0; same_shape && d < t->ndim; d++) same_shape = t->dims[d] == tp->dims[d];
        if (!same_shape) {
            int64_t dims[OT_MAX_DIMS] = {0};
            int nd = tp->n_dims > OT_MAX_DIMS ? OT_MAX_DIMS : (int)tp->n_dims;
            for (int d = 0; d < nd; d++) dims[d] = tp->dims[d];
            ot_shape_str(want, sizeof want, nd, dims);
            st = ot_errorf(OT_E_SHAPE, "update '%s' has shape %s but the initializer has shape %s", name, have, want);
            break;
        }
        if (t->dtype != dt && !(ot_dtype_is_float(t->dtype) && ot_dtype_is_float(dt))) {
            st = ot_errorf(OT_E_SHAPE, "update '%s' is %s but the initializer is %s (only float types convert)", name,
                           ot_dtype_name(t->dtype), ot_dtype_name(dt));
            break;
        }
        update *u = &w->upd[w->n_upd];
        u->name = name;
        u->tp = tp;
        u->nbytes = (size_t)ot_tensor_numel(t) * ot_dtype_size(dt);
        if (u->nbytes && !t->data) {
            st = ot_errorf(OT_E_INVALID, "update '%s' has no data", name);
            break;
        }
        if (t->dtype == dt) {
            u->data = t->data;
        } else {
            u->converted = malloc(u->nbytes ? u->nbytes : 1);
            if (!u->converted) {
                st = ot_errorf(OT_E_NOMEM, "update '%s': out of memory converting to %s", name, ot_dtype_name(dt));
                break;
            }
            ot_convert(u->converted, dt, t->data, t->dtype, (size_t)ot_tensor_numel(t));
            u->data = u->converted;
        }
        w->n_upd++;
        st = ot_strmap_put(w->upd_index, name, k);
    }
done:
    ot_strmap_free(inits);
    return st;
}

/* Inline initializers take the new bytes as raw_data; external ones are handled by pass 1. */
static ot_status apply_inline_updates(writer *w) {
    for (int i = 0; i < w->n_upd; i++) {
        Onnx__TensorProto *tp = w->upd[i].tp;
        if (is_external(tp)) continue;
        OT_TRY(save_tensor(w, tp));
        ot_onnx_clear_payload(tp);
        tp->has_raw_data = 1;
        tp->raw_data.len = w->upd[i].nbytes;
        tp->raw_data.data = (uint8_t *)w->upd[i].data; /* borrowed; restored before the proto is freed */
    }
    return OT_OK;
}

/* ---- output files ---- */

/* Renaming over a file the source reads its weights from would break the source model. */
static ot_status check_not_source_data(const writer *w) {
    const char *data_path = w->ext.path;
    for (int i = 0; i < w->m->n_ext; i++) {
        const char *ext = w->m->ext[i].path;
        if (ot_onnx_same_file(w->dst, ext) || (w->ext.n && ot_onnx_same_file(data_path, ext)))
            return ot_errorf(OT_E_INVALID, "writing '%s' would replace '%s', the source's external data; choose another destination",
                             ot_onnx_same_file(w->dst, ext) ? w->dst : data_path, ext);
    }
    if (w->ext.n && ot_onnx_same_file(data_path, w->src))
        return ot_errorf(OT_E_INVALID, "the external data file '%s' would replace the source model", data_path);
    return OT_OK;
}

/* ---- driver ---- */

static ot_status load_source(writer *w) {
    ot_mapped_file f;
    OT_TRY(ot_mapped_open(&f, w->src));
    ot_onnx_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(w->src)) || !(m->dir = ot_dirname_dup(w->src))) {
        if (m) free(m->path);
        free(m);
        ot_mapped_close(&f);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    w->m = m;
    m->proto = f.size ? onnx__model_proto__unpack(NULL, f.size, f.data) : NULL; /* copies what it keeps */
    ot_mapped_close(&f);
    if (!m->proto) return ot_errorf(OT_E_FORMAT, "'%s' is not a valid ONNX model (protobuf parse failed)", w->src);
    if (!m->proto->graph) return ot_errorf(OT_E_FORMAT, "'%s' has no graph", w->src);
    return OT_OK;
}

static void writer_free(writer *w) {
    for (int i = w->n_saved - 1; i >= 0; i--) *w->saved[i].tp = w->saved[i].orig;
    free(w->saved);
    ot_onnx_ext_free(&w->ext);
    for (int i = 0; i < w->n_upd; i++) free(w->upd[i].converted);
    free(w->upd);
    ot_strmap_free(w->upd_index);
    if (w->m) ot_onnx_model_free(w->m); /* after the restore: the proto frees only its own memory */
}

static ot_status export_onnx(writer *w, const ot_named_tensor *updates, int n_updates, uint64_t inline_limit) {
    OT_TRY(ot_onnx_ext_init(&w->ext, w->dst));
    OT_TRY(load_source(w));
    OT_TRY(resolve_updates(w, updates, n_updates));
    OT_TRY(apply_inline_updates(w));
    OT_TRY(walk_model(w, relocate_external));
    size_t size = protobuf_c_message_get_packed_size(&w->m->proto->base);
    if (size > inline_limit) {
        OT_TRY(walk_model(w, externalize_large));
        size = protobuf_c_message_get_packed_size(&w->m->proto->base);
        if (size > inline_limit)
            return ot_errorf(OT_E_UNSUPPORTED,
                             "the model is %zu bytes even with every initializer of %d bytes or more in external data "
                             "(protobuf's limit is %" PRIu64 ")",
                             size, OT_ONNX_EXTERNAL_MIN_BYTES, inline_limit);
    }
    OT_TRY(check_not_source_data(w));

    return ot_onnx_write_files(&w->m->proto->base, size, w->dst, &w->ext);
}

ot_status ot_export_onnx_limit(const char *src, const ot_named_tensor *updates, int n_updates, const char *dst,
                               uint64_t inline_limit) {
    if (!src || !dst || !dst[0] || n_updates < 0 || (n_updates && !updates))
        return ot_errorf(OT_E_INVALID, "ONNX export: source, destination and updates are required");
    writer w = {.src = src, .dst = dst};
    ot_status st = export_onnx(&w, updates, n_updates, inline_limit);
    writer_free(&w);
    if (st != OT_OK) ot_error_wrap(st, "exporting '%s' to '%s': ", src, dst);
    return st;
}

ot_status ot_export_onnx(const char *src, const ot_named_tensor *updates, int n_updates, const char *dst) {
    return ot_export_onnx_limit(src, updates, n_updates, dst, OT_ONNX_INLINE_LIMIT);
}
