/* onnx_write_util.c — external data slots and the atomic model + data write shared by the
 * ONNX writers; see onnx_write_util.h. Owns no model: it borrows the ModelProto and every
 * payload it writes, and frees only the slots it made. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exporter/onnx_write_util.h"
#include "importer/mapped_file.h"

#define WRITE_CHUNK (1u << 20)

ot_status ot_onnx_ext_init(ot_onnx_ext_file *f, const char *dst) {
    memset(f, 0, sizeof *f);
    size_t dl = strlen(dst);
    if (!(f->path = malloc(dl + 6))) return ot_errorf(OT_E_NOMEM, "out of memory");
    memcpy(f->path, dst, dl);
    memcpy(f->path + dl, ".data", 6);
    const char *slash = strrchr(f->path, '/');
    f->name = slash ? slash + 1 : f->path;
    return OT_OK;
}

void ot_onnx_ext_free(ot_onnx_ext_file *f) {
    for (int i = 0; i < f->n; i++) {
        ot_tensor_free(f->slots[i]->view);
        free(f->slots[i]->entries);
        free(f->slots[i]);
    }
    free(f->slots);
    free(f->path);
    memset(f, 0, sizeof *f);
}

void ot_onnx_clear_payload(Onnx__TensorProto *tp) {
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

ot_status ot_onnx_ext_add(ot_onnx_ext_file *f, Onnx__TensorProto *tp, const void *data, size_t nbytes, ot_tensor *view,
                          size_t n_extra, ot_onnx_ext_slot **out) {
    ot_onnx_ext_slot *s = calloc(1, sizeof *s);
    if (!s) {
        ot_tensor_free(view);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    s->view = view;
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 64;
        ot_onnx_ext_slot **e = realloc(f->slots, (size_t)cap * sizeof *e);
        if (!e) {
            ot_tensor_free(view);
            free(s);
            return ot_errorf(OT_E_NOMEM, "out of memory");
        }
        f->slots = e;
        f->cap = cap;
    }
    f->slots[f->n++] = s; /* owned by the file from here on */
    s->tp = tp;
    s->data = data;
    s->nbytes = nbytes;
    s->offset = (f->end + OT_ONNX_EXT_ALIGN - 1) / OT_ONNX_EXT_ALIGN * OT_ONNX_EXT_ALIGN;
    f->end = s->offset + nbytes;
    snprintf(s->offset_s, sizeof s->offset_s, "%" PRIu64, s->offset);
    snprintf(s->length_s, sizeof s->length_s, "%zu", nbytes);
    if (!(s->entries = calloc(3 + n_extra, sizeof *s->entries))) return ot_errorf(OT_E_NOMEM, "out of memory");
    const char *keys[3] = {"location", "offset", "length"};
    char *values[3] = {(char *)f->name, s->offset_s, s->length_s};
    for (int i = 0; i < 3; i++) {
        onnx__string_string_entry_proto__init(&s->ent[i]);
        s->ent[i].key = (char *)keys[i];
        s->ent[i].value = values[i];
        s->entries[i] = &s->ent[i];
    }
    ot_onnx_clear_payload(tp);
    tp->has_data_location = 1;
    tp->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    tp->n_external_data = 3;
    tp->external_data = s->entries;
    if (out) *out = s;
    return OT_OK;
}

/* ---- files ---- */

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
    if ((size_t)snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid()) >= n) {
        tmp[0] = 0;
        return ot_errorf(OT_E_INVALID, "path too long: '%s'", path);
    }
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

static ot_status write_data_file(const ot_onnx_ext_file *e, char *tmp, size_t n) {
    int fd;
    OT_TRY(open_tmp(e->path, tmp, n, &fd));
    static const unsigned char zeros[OT_ONNX_EXT_ALIGN];
    uint64_t pos = 0;
    int err = 0;
    for (int i = 0; i < e->n && !err; i++) {
        const ot_onnx_ext_slot *s = e->slots[i];
        if (s->offset > pos) err = write_all(fd, zeros, (size_t)(s->offset - pos));
        if (!err && s->nbytes) err = write_all(fd, s->data, s->nbytes);
        pos = s->offset + s->nbytes;
    }
    return close_tmp(fd, e->path, err);
}

static ot_status write_model_file(const ProtobufCMessage *model, size_t expect, const char *dst, char *tmp, size_t n) {
    int fd;
    OT_TRY(open_tmp(dst, tmp, n, &fd));
    fd_buffer f = {.base = {.append = fd_append}, .fd = fd};
    f.buf = malloc(WRITE_CHUNK);
    if (!f.buf) {
        close(fd);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    protobuf_c_message_pack_to_buffer(model, &f.base);
    fd_flush(&f);
    free(f.buf);
    if (!f.err && f.total != expect) f.err = EIO;
    return close_tmp(fd, dst, f.err);
}

int ot_onnx_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
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

ot_status ot_onnx_write_files(const ProtobufCMessage *model, size_t size, const char *dst, const ot_onnx_ext_file *ext) {
    int has_data = ext && ext->n > 0;
    char data_tmp[4096] = "", model_tmp[4096] = "";
    ot_status st = OT_OK;
    if (has_data) st = write_data_file(ext, data_tmp, sizeof data_tmp);
    if (st == OT_OK) st = write_model_file(model, size, dst, model_tmp, sizeof model_tmp);
    if (st == OT_OK && has_data && rename(data_tmp, ext->path) != 0)
        st = ot_errorf(OT_E_IO, "cannot rename into '%s': %s", ext->path, strerror(errno));
    if (st == OT_OK) data_tmp[0] = 0;
    if (st == OT_OK && rename(model_tmp, dst) != 0) st = ot_errorf(OT_E_IO, "cannot rename into '%s': %s", dst, strerror(errno));
    if (st == OT_OK) model_tmp[0] = 0;
    if (data_tmp[0]) unlink(data_tmp);
    if (model_tmp[0]) unlink(model_tmp);
    if (st == OT_OK) fsync_dir_of(dst);
    return st;
}
