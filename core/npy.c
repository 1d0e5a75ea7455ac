/* npy.c — see npy.h. Format: "\x93NUMPY", major, minor, header length (u16 for v1, u32 for
 * v2/v3), an ASCII Python dict literal {'descr': '<f4', 'fortran_order': False,
 * 'shape': (2, 3), } padded with spaces and '\n', then the raw data. */
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *descr;
    ot_dtype dt;
} descrs[] = {
    {"<f4", OT_F32}, {"<f8", OT_F64}, {"<f2", OT_F16}, {"<i8", OT_I64}, {"<i4", OT_I32}, {"<i2", OT_I16},
    {"|i1", OT_I8},  {"|u1", OT_U8},  {"<u2", OT_U16}, {"<u4", OT_U32}, {"<u8", OT_U64}, {"|b1", OT_BOOL},
};

/* Finds `'key':` in the header dict and returns the text after the colon. */
static const char *dict_value(const char *hdr, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

ot_status ot_npy_parse(const void *buf, size_t size, const char *name, ot_tensor **out) {
    const unsigned char *b = buf;
    *out = NULL;
    if (size < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return ot_errorf(OT_E_FORMAT, "'%s' is not a .npy file (bad magic)", name);
    unsigned major = b[6];
    size_t hlen, pre;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        pre = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return ot_errorf(OT_E_FORMAT, "'%s': truncated .npy header", name);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        pre = 12;
    } else {
        return ot_errorf(OT_E_FORMAT, "'%s': unsupported .npy version %u", name, major);
    }
    if (hlen > 65536 || pre + hlen > size) return ot_errorf(OT_E_FORMAT, "'%s': truncated .npy header", name);
    char hdr[65537];
    memcpy(hdr, b + pre, hlen);
    hdr[hlen] = '\0';
    if (strlen(hdr) != hlen) return ot_errorf(OT_E_FORMAT, "'%s': .npy header contains a NUL byte", name);

    const char *d = dict_value(hdr, "descr"), *fo = dict_value(hdr, "fortran_order"), *sh = dict_value(hdr, "shape");
    if (!d || !fo || !sh) return ot_errorf(OT_E_FORMAT, "'%s': .npy header lacks descr, fortran_order or shape", name);
    if (strncmp(fo, "False", 5) != 0) return ot_errorf(OT_E_UNSUPPORTED, "'%s': Fortran-order arrays are not supported", name);
    ot_dtype dt = OT_UNDEFINED;
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++) {
        size_t n = strlen(descrs[i].descr);
        /* '<f4' and '=f4'/'|f4' mean the same on a little-endian host. */
        if (d[0] == '\'' && strncmp(d + 2, descrs[i].descr + 1, n - 1) == 0 && d[n + 1] == '\'' &&
            (d[1] == descrs[i].descr[0] || d[1] == '=' || d[1] == '|' || d[1] == '<'))
            dt = descrs[i].dt;
    }
    if (dt == OT_UNDEFINED) {
        char shown[32];
        snprintf(shown, sizeof shown, "%.20s", d);
        return ot_errorf(OT_E_UNSUPPORTED, "'%s': unsupported .npy dtype %s", name, shown);
    }
    if (*sh != '(') return ot_errorf(OT_E_FORMAT, "'%s': malformed shape in .npy header", name);
    int64_t dims[OT_MAX_DIMS];
    int ndim = 0;
    const char *p = sh + 1;
    for (;;) {
        while (*p == ' ') p++;
        if (*p == ')') break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0) return ot_errorf(OT_E_FORMAT, "'%s': malformed shape in .npy header", name);
        if (ndim == OT_MAX_DIMS) return ot_errorf(OT_E_UNSUPPORTED, "'%s': rank above %d", name, OT_MAX_DIMS);
        dims[ndim++] = v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p != ')') return ot_errorf(OT_E_FORMAT, "'%s': malformed shape in .npy header", name);
    }
    ot_tensor *t;
    OT_TRY(ot_tensor_new(&t, dt, ndim, dims));
    size_t nbytes = ot_tensor_nbytes(t);
    if (size - pre - hlen != nbytes) {
        char s[160];
        ot_tensor_free(t);
        return ot_errorf(OT_E_FORMAT, "'%s': shape %s of %s needs %zu data bytes, file has %zu", name,
                         ot_shape_str(s, sizeof s, ndim, dims), ot_dtype_name(dt), nbytes, size - pre - hlen);
    }
    if (nbytes) memcpy(t->data, b + pre + hlen, nbytes);
    *out = t;
    return OT_OK;
}

ot_status ot_npy_read(const char *path, ot_tensor **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ot_errorf(OT_E_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ot_errorf(OT_E_IO, "'%s' is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    void *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return ot_errorf(OT_E_NOMEM, "out of memory reading '%s'", path);
    }
    size_t got = fread(buf, 1, size, f);
    fclose(f);
    ot_status s = got == size ? ot_npy_parse(buf, size, path, out) : ot_errorf(OT_E_IO, "short read on '%s'", path);
    free(buf);
    return s;
}

ot_status ot_write_file_atomic(const char *path, const void *data, size_t size) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return ot_errorf(OT_E_INVALID, "path too long: '%s'", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ot_errorf(OT_E_IO, "cannot create '%s': %s", path, strerror(errno));
    const char *p = data;
    size_t left = size;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            close(fd);
            unlink(tmp);
            return ot_errorf(OT_E_IO, "cannot write '%s': %s", path, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return ot_errorf(OT_E_IO, "cannot flush '%s': %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ot_errorf(OT_E_IO, "cannot rename into '%s': %s", path, strerror(e));
    }
    return OT_OK;
}

ot_status ot_npy_write(const char *path, const ot_tensor *t) {
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++)
        if (descrs[i].dt == t->dtype) descr = descrs[i].descr;
    if (!descr) return ot_errorf(OT_E_UNSUPPORTED, "cannot write %s tensors to .npy ('%s')", ot_dtype_name(t->dtype), path);
    char shape[512] = "(";
    size_t k = 1;
    for (int i = 0; i < t->ndim; i++)
        k += (size_t)snprintf(shape + k, sizeof shape - k, "%lld,%s", (long long)t->dims[i], i + 1 < t->ndim ? " " : "");
    snprintf(shape + k, sizeof shape - k, ")");
    char hdr[1024];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64; /* data starts 64-byte aligned, as NumPy writes it */
    size_t hlen = (size_t)n + pad + 1;
    size_t nbytes = ot_tensor_nbytes(t);
    unsigned char *buf = malloc(10 + hlen + nbytes);
    if (!buf) return ot_errorf(OT_E_NOMEM, "out of memory writing '%s'", path);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, hdr, (size_t)n);
    memset(buf + 10 + n, ' ', pad);
    buf[10 + hlen - 1] = '\n';
    if (nbytes) memcpy(buf + 10 + hlen, t->data, nbytes);
    ot_status s = ot_write_file_atomic(path, buf, 10 + hlen + nbytes);
    free(buf);
    return s;
}
