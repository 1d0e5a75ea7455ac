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
 * renamed (data file first, then the model), and a destination that would replace one of
 * the source's external data files is refused. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/strmap.h"
#include "exporter/onnx_writer.h"
#include "importer/onnx_model.h"

#define EXT_ALIGN 64
#define WRITE_CHUNK (1u << 20)

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

typedef struct ext_slot { /* one tensor whose bytes go to the new data file */
    Onnx__TensorProto *tp;
    const void *data;
    size_t nbytes;
    uint64_t offset;
    ot_tensor *view; /* decoded source tensor that `data` points into, or NULL */
    char offset_s[24], length_s[24];
    Onnx__StringStringEntryProto ent[3];   /* location, offset, length */
    Onnx__StringStringEntryProto **entries; /* ent + other keys the source had */
} ext_slot;

typedef struct writer {
    const char *src, *dst;
    ot_onnx_model *m; /* parsed source; its folder confines external data */
    update *upd;
    int n_upd;
    ot_strmap *upd_index; /* update name -> index */
    saved_tensor *saved;
    int n_saved, cap_saved;
    ext_slot **ext;
    int n_ext, cap_ext;
    uint64_t data_end;
    char *data_path;       /* dst + ".data" */
    const char *data_name; /* its basename: the location written into the model */
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

static void clear_payload(Onnx__TensorProto *tp) {
    tp->has_raw_data = 0;
    tp->raw_data.len = 0;
    tp->raw_data.data = NULL;
    tp->n_float_data = tp->n_int32_data = tp->n_string_data = tp->n_int64_data = 0;
    tp->n_double_data = tp->n_uint64_data = 0;
    tp->has_data_location = 0;
    tp->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__DEFAULT;
    tp->n_external_data = 0;
    tp->external_data = NULL;
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
    ext_slot *s = calloc(1, sizeof *s);
    if (!s) {
        ot_tensor_free(view);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    s->tp = tp;
    s->data = data;
    s->nbytes = nbytes;
    s->view = view;
    if (w->n_ext == w->cap_ext) {
        int cap = w->cap_ext ? 2 * w->cap_ext : 64;
        ext_slot **e = realloc(w->ext, (size_t)cap * sizeof *e);
        if (!e) {
            ot_tensor_free(view);
            free(s);
            return ot_errorf(OT_E_NOMEM, "out of memory");
        }
        w->ext = e;
        w->cap_ext = cap;
    }
    w->ext[w->n_ext++] = s; /* owned by the writer from here on */

    OT_TRY(save_tensor(w, tp));
    const Onnx__TensorProto *o = original(w, tp);
    s->offset = (w->data_end + EXT_ALIGN - 1) / EXT_ALIGN * EXT_ALIGN;
    w->data_end = s->offset + nbytes;
    snprintf(s->offset_s, sizeof s->offset_s, "%" PRIu64, s->offset);
    snprintf(s->length_s, sizeof s->length_s, "%zu", nbytes);
    s->entries = calloc(3 + o->n_external_data, sizeof *s->entries);
    if (!s->entries) return ot_errorf(OT_E_NOMEM, "out of memory");
    const char *keys[3] = {"location", "offset", "length"};
    char *values[3] = {(char *)w->data_name, s->offset_s, s->length_s};
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        onnx__string_string_entry_proto__init(&s->ent[i]);
        s->ent[i].key = (char *)keys[i];
        s->ent[i].value = values[i];
        s->entries[n++] = &s->ent[i];
    }
    for (size_t i = 0; i < o->n_external_data; i++) {
        const char *k = o->external_data[i]->key ? o->external_data[i]->key : "";
        if (!strcmp(k, "location") || !strcmp(k, "offset") || !strcmp(k, "length")) continue;
        if (changed && !strcmp(k, "checksum")) continue;
        s->entries[n++] = o->external_data[i];
    }
    clear_payload(tp);
    tp->has_data_location = 1;
    tp->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    tp->n_external_data = n;
    tp->external_data = s->entries;
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
        clear_payload(tp);
        tp->has_raw_data = 1;
        tp->raw_data.len = w->upd[i].nbytes;
        tp->raw_data.data = (uint8_t *)w->upd[i].data; /* borrowed; restored before the proto is freed */
    }
    return OT_OK;
}

/* ---- output files ---- */

static int write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len) {
        ssize_t k = write(fd, p, len > WRITE_CHUNK * 64u ? WRITE_CHUNK * 64u : len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return k < 0 ? errno : ENOSPC;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* A ProtobufCBuffer that streams the packed model into a file, so the model is never held
 * twice in memory. protobuf-c's append cannot fail, so the first errno is kept. */
typedef struct fd_buffer {
    ProtobufCBuffer base;
    int fd, err;
    unsigned char *buf;
    size_t used;
    uint64_t total;
} fd_buffer;

static void fd_flush(fd_buffer *f) {
    if (!f->err && f->used) f->err = write_all(f->fd, f->buf, f->used);
    f->used = 0;
}

static void fd_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
    fd_buffer *f = (fd_buffer *)b;
    f->total += len;
    if (f->err) return;
    if (f->used + len > WRITE_CHUNK) fd_flush(f);
    if (len >= WRITE_CHUNK) {
        if (!f->err) f->err = write_all(f->fd, data, len);
        return;
    }
    memcpy(f->buf + f->used, data, len);
    f->used += len;
}

static ot_status open_tmp(const char *path, char *tmp, size_t n, int *fd) {
    if ((size_t)snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid()) >= n)
        return ot_errorf(OT_E_INVALID, "path too long: '%s'", path);
    *fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (*fd < 0) {
        tmp[0] = 0;
        return ot_errorf(OT_E_IO, "cannot create '%s': %s", path, strerror(errno));
    }
    return OT_OK;
}

static ot_status close_tmp(int fd, const char *path, int err) {
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    return err ? ot_errorf(OT_E_IO, "cannot write '%s': %s", path, strerror(err)) : OT_OK;
}

static ot_status write_data_file(writer *w, char *tmp, size_t n) {
    int fd;
    OT_TRY(open_tmp(w->data_path, tmp, n, &fd));
    static const unsigned char zeros[EXT_ALIGN];
    uint64_t pos = 0;
    int err = 0;
    for (int i = 0; i < w->n_ext && !err; i++) {
        const ext_slot *s = w->ext[i];
        if (s->offset > pos) err = write_all(fd, zeros, (size_t)(s->offset - pos));
        if (!err) err = write_all(fd, s->data, s->nbytes);
        pos = s->offset + s->nbytes;
    }
    return close_tmp(fd, w->data_path, err);
}

static ot_status write_model_file(writer *w, size_t expect, char *tmp, size_t n) {
    int fd;
    OT_TRY(open_tmp(w->dst, tmp, n, &fd));
    fd_buffer f = {.base = {.append = fd_append}, .fd = fd};
    f.buf = malloc(WRITE_CHUNK);
    if (!f.buf) {
        close(fd);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    protobuf_c_message_pack_to_buffer(&w->m->proto->base, &f.base);
    fd_flush(&f);
    free(f.buf);
    if (!f.err && f.total != expect) f.err = EIO;
    return close_tmp(fd, w->dst, f.err);
}

static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Renaming over a file the source reads its weights from would break the source model. */
static ot_status check_not_source_data(const writer *w) {
    for (int i = 0; i < w->m->n_ext; i++) {
        const char *ext = w->m->ext[i].path;
        if (same_file(w->dst, ext) || (w->n_ext && same_file(w->data_path, ext)))
            return ot_errorf(OT_E_INVALID, "writing '%s' would replace '%s', the source's external data; choose another destination",
                             same_file(w->dst, ext) ? w->dst : w->data_path, ext);
    }
    if (w->n_ext && same_file(w->data_path, w->src))
        return ot_errorf(OT_E_INVALID, "the external data file '%s' would replace the source model", w->data_path);
    return OT_OK;
}

static void fsync_dir_of(const char *path) {
    char *dir = ot_dirname_dup(path);
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: the renames are already visible */
        close(fd);
    }
    free(dir);
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
    for (int i = 0; i < w->n_ext; i++) {
        ot_tensor_free(w->ext[i]->view);
        free(w->ext[i]->entries);
        free(w->ext[i]);
    }
    free(w->ext);
    for (int i = 0; i < w->n_upd; i++) free(w->upd[i].converted);
    free(w->upd);
    ot_strmap_free(w->upd_index);
    free(w->data_path);
    if (w->m) ot_onnx_model_free(w->m); /* after the restore: the proto frees only its own memory */
}

static ot_status export_onnx(writer *w, const ot_named_tensor *updates, int n_updates, uint64_t inline_limit) {
    size_t dl = strlen(w->dst);
    if (!(w->data_path = malloc(dl + 6))) return ot_errorf(OT_E_NOMEM, "out of memory");
    memcpy(w->data_path, w->dst, dl);
    memcpy(w->data_path + dl, ".data", 6);
    const char *slash = strrchr(w->data_path, '/');
    w->data_name = slash ? slash + 1 : w->data_path;

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

    char data_tmp[4096] = "", model_tmp[4096] = "";
    ot_status st = OT_OK;
    if (w->n_ext) st = write_data_file(w, data_tmp, sizeof data_tmp);
    if (st == OT_OK) st = write_model_file(w, size, model_tmp, sizeof model_tmp);
    if (st == OT_OK && w->n_ext && rename(data_tmp, w->data_path) != 0)
        st = ot_errorf(OT_E_IO, "cannot rename into '%s': %s", w->data_path, strerror(errno));
    if (st == OT_OK) data_tmp[0] = 0;
    if (st == OT_OK && rename(model_tmp, w->dst) != 0)
        st = ot_errorf(OT_E_IO, "cannot rename into '%s': %s", w->dst, strerror(errno));
    if (st == OT_OK) model_tmp[0] = 0;
    if (data_tmp[0]) unlink(data_tmp);
    if (model_tmp[0]) unlink(model_tmp);
    if (st == OT_OK) fsync_dir_of(w->dst);
    return st;
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
