/* safetensors_writer.c — ot_safetensors_write; see onnxtune/safetensors.h.
 *
 * Owns: turning named tensors into one safetensors file. Invariants of every file written:
 * tensors sorted by name (strcmp, i.e. bytewise UTF-8) with their data laid out in that
 * order from offset 0; metadata keys sorted; the JSON header is compact and escaped as
 * serde_json escapes it, so a single-dtype file is byte-identical to what the reference
 * writer produces; the header is padded with spaces to a multiple of 8 bytes, so the data
 * buffer starts 8-byte aligned in the file; the same input gives the same bytes.
 * Atomicity: data is streamed to "<path>.tmp.<pid>", flushed, fsynced and renamed over
 * `path`, then the folder is fsynced; any failure removes the temporary and leaves `path`
 * as it was. Nothing is read back and no tensor is copied. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "importer/mapped_file.h"
#include "importer/safetensors_internal.h"
#include "onnxtune/safetensors.h"

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string literal, escaped the way serde_json does (short forms for \b \f \n \r \t,
 * \u00xx for other control bytes, everything else raw UTF-8). */
static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                sb_str(b, esc);
            } else {
                sb_put(b, (const char *)p, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_u64(sbuf *b, uint64_t v) {
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    sb_str(b, num);
}

/* Valid UTF-8 (the reader, and the reference, refuse anything else in the header): the
 * reader's own check, so a file this writes always loads. */
static int utf8_ok(const char *str) {
    size_t n = strlen(str);
    return ot_utf8_bad_offset(str, n) == n;
}

static int cmp_named(const void *a, const void *b) {
    return strcmp((*(const ot_named_tensor *const *)a)->name, (*(const ot_named_tensor *const *)b)->name);
}

static int cmp_meta(const void *a, const void *b) {
    return strcmp(**(const char *const *const *)a, **(const char *const *const *)b);
}

/* Checks the input and fills `order` (tensors sorted by name) and `mord` (pointers to the
 * key of each metadata pair, sorted by key). */
static ot_status check_input(const char *path, const ot_named_tensor *tensors, int n, const char *const *meta,
                             int n_meta, const ot_named_tensor **order, const char *const **mord, uint64_t *total) {
    *total = 0;
    for (int i = 0; i < n; i++) {
        const ot_named_tensor *nt = &tensors[i];
        if (!nt->name || !nt->t)
            return ot_errorf(OT_E_INVALID, "writing '%s': tensor #%d has no %s", path, i, nt->name ? "tensor" : "name");
        const ot_tensor *t = nt->t;
        if (!utf8_ok(nt->name)) return ot_errorf(OT_E_INVALID, "writing '%s': tensor #%d: name is not valid UTF-8", path, i);
        if (strcmp(nt->name, "__metadata__") == 0)
            return ot_errorf(OT_E_INVALID, "writing '%s': '__metadata__' is reserved and cannot name a tensor", path);
        if (!ot_safetensors_dtype_name(t->dtype))
            return ot_errorf(OT_E_UNSUPPORTED, "writing '%s': tensor '%s': dtype %s has no safetensors equivalent", path,
                             nt->name, ot_dtype_name(t->dtype));
        if (t->ndim < 0 || t->ndim > OT_MAX_DIMS)
            return ot_errorf(OT_E_INVALID, "writing '%s': tensor '%s': rank %d out of range", path, nt->name, t->ndim);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->dims[d] < 0)
                return ot_errorf(OT_E_INVALID, "writing '%s': tensor '%s': negative dimension %lld", path, nt->name,
                                 (long long)t->dims[d]);
            if (t->dims[d] && numel > (UINT64_MAX >> 4) / (uint64_t)t->dims[d])
                return ot_errorf(OT_E_INVALID, "writing '%s': tensor '%s': too large", path, nt->name);
            numel *= (uint64_t)t->dims[d];
        }
        uint64_t bytes = numel * ot_dtype_size(t->dtype);
        if (bytes && !t->data)
            return ot_errorf(OT_E_INVALID, "writing '%s': tensor '%s' has no data", path, nt->name);
        if (*total > UINT64_MAX - bytes) return ot_errorf(OT_E_INVALID, "writing '%s': total size overflows", path);
        *total += bytes;
        order[i] = nt;
    }
    qsort(order, (size_t)n, sizeof *order, cmp_named);
    for (int i = 1; i < n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            return ot_errorf(OT_E_INVALID, "writing '%s': tensor name '%s' appears twice", path, order[i]->name);

    for (int i = 0; i < n_meta; i++) {
        const char *k = meta[2 * i], *v = meta[2 * i + 1];
        if (!k || !v) return ot_errorf(OT_E_INVALID, "writing '%s': metadata pair #%d has a NULL %s", path, i, k ? "value" : "key");
        if (!utf8_ok(k) || !utf8_ok(v))
            return ot_errorf(OT_E_INVALID, "writing '%s': metadata '%s' is not valid UTF-8", path, utf8_ok(k) ? k : "(key)");
        mord[i] = &meta[2 * i];
    }
    qsort(mord, (size_t)n_meta, sizeof *mord, cmp_meta);
    for (int i = 1; i < n_meta; i++)
        if (strcmp(*mord[i - 1], *mord[i]) == 0)
            return ot_errorf(OT_E_INVALID, "writing '%s': metadata key '%s' appears twice", path, *mord[i]);
    return OT_OK;
}

/* The padded header JSON, for tensors in `order` and metadata in `mord`. */
static ot_status build_header(const char *path, const ot_named_tensor **order, int n, const char *const **mord,
                              int n_meta, sbuf *h) {
    sb_put(h, "{", 1);
    if (n_meta) {
        sb_str(h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_put(h, ",", 1);
            sb_json_string(h, mord[i][0]);
            sb_put(h, ":", 1);
            sb_json_string(h, mord[i][1]);
        }
        sb_str(h, n ? "}," : "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const ot_tensor *t = order[i]->t;
        if (i) sb_put(h, ",", 1);
        sb_json_string(h, order[i]->name);
        sb_str(h, ":{\"dtype\":");
        sb_json_string(h, ot_safetensors_dtype_name(t->dtype));
        sb_str(h, ",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_put(h, ",", 1);
            sb_u64(h, (uint64_t)t->dims[d]);
        }
        uint64_t bytes = (uint64_t)ot_tensor_nbytes(t);
        sb_str(h, "],\"data_offsets\":[");
        sb_u64(h, off);
        sb_put(h, ",", 1);
        sb_u64(h, off + bytes);
        sb_str(h, "]}");
        off += bytes;
    }
    sb_put(h, "}", 1);
    while (!h->oom && h->n % 8) sb_put(h, " ", 1); /* data starts 8-byte aligned: 8 + n is */
    if (h->oom) return ot_errorf(OT_E_NOMEM, "writing '%s': out of memory building the header", path);
    if (h->n > 100000000u)
        return ot_errorf(OT_E_INVALID, "writing '%s': header of %zu bytes exceeds the format's 100000000-byte limit", path,
                         h->n);
    return OT_OK;
}

/* fsyncs the folder holding `path` so the rename itself survives a crash. Filesystems that
 * cannot sync a folder (EINVAL) are tolerated. */
static ot_status sync_parent(const char *path) {
    char *dir = ot_dirname_dup(path);
    if (!dir) return ot_errorf(OT_E_NOMEM, "out of memory");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ot_status s = OT_OK;
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        s = ot_errorf(OT_E_IO, "cannot sync folder '%s' after writing '%s': %s", dir, path, strerror(errno));
    if (fd >= 0) close(fd);
    free(dir);
    return s;
}

static ot_status write_stream(const char *path, const char *tmp, const sbuf *h, const ot_named_tensor **order, int n) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ot_errorf(OT_E_IO, "cannot write '%s': cannot create '%s': %s", path, tmp, strerror(errno));
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        return ot_errorf(OT_E_IO, "cannot write '%s': %s", tmp, strerror(e));
    }
    unsigned char len[8];
    uint64_t hl = h->n;
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(hl >> (8 * i));
    int ok = fwrite(len, 1, 8, f) == 8 && fwrite(h->p, 1, h->n, f) == h->n;
    for (int i = 0; i < n && ok; i++) {
        size_t bytes = ot_tensor_nbytes(order[i]->t);
        ok = !bytes || fwrite(order[i]->t->data, 1, bytes, f) == bytes;
    }
    int e = errno;
    if (ok && fflush(f) != 0) ok = 0, e = errno;
    if (ok && fsync(fileno(f)) != 0) ok = 0, e = errno;
    if (fclose(f) != 0 && ok) ok = 0, e = errno;
    if (!ok) return ot_errorf(OT_E_IO, "cannot write '%s': %s", path, strerror(e ? e : EIO));
    if (rename(tmp, path) != 0) return ot_errorf(OT_E_IO, "cannot rename '%s' into '%s': %s", tmp, path, strerror(errno));
    return OT_OK;
}

ot_status ot_safetensors_write(const char *path, const ot_named_tensor *tensors, int n, const char *const *meta,
                               int n_meta) {
    if (n < 0 || n_meta < 0 || (n && !tensors) || (n_meta && !meta))
        return ot_errorf(OT_E_INVALID, "writing '%s': bad tensor or metadata list", path);
    const ot_named_tensor **order = malloc((n ? (size_t)n : 1) * sizeof *order);
    const char *const **mord = malloc((n_meta ? (size_t)n_meta : 1) * sizeof *mord);
    sbuf h = {0};
    char tmp[4096];
    ot_status s = OT_OK;
    uint64_t total;
    if (!order || !mord) s = ot_errorf(OT_E_NOMEM, "writing '%s': out of memory", path);
    if (s == OT_OK) s = check_input(path, tensors, n, meta, n_meta, order, mord, &total);
    if (s == OT_OK) s = build_header(path, order, n, mord, n_meta, &h);
    if (s == OT_OK && (size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        s = ot_errorf(OT_E_INVALID, "path too long: '%s'", path);
    if (s == OT_OK) {
        s = write_stream(path, tmp, &h, order, n);
        if (s != OT_OK) unlink(tmp); /* may not exist: nothing to report */
    }
    if (s == OT_OK) s = sync_parent(path);
    free(h.p);
    free(order);
    free(mord);
    return s;
}
