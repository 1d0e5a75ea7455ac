/* mapped_file.c — see mapped_file.h. */
#include "mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

ot_status ot_mapped_open(ot_mapped_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ot_errorf(OT_E_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ot_errorf(OT_E_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ot_errorf(OT_E_IO, "'%s' is not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size) {
        f->data = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (f->data == MAP_FAILED) {
            int e = errno;
            close(fd);
            f->data = NULL;
            return ot_errorf(OT_E_IO, "cannot map '%s' (%zu bytes): %s", path, f->size, strerror(e));
        }
    }
    close(fd);
    f->path = strdup(path);
    if (!f->path) {
        ot_mapped_close(f);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    return OT_OK;
}

void ot_mapped_close(ot_mapped_file *f) {
    if (f->data) munmap(f->data, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

char *ot_dirname_dup(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

ot_status ot_confined_path(const char *dir, const char *rel, const char *what, char **out) {
    *out = NULL;
    if (!rel[0]) return ot_errorf(OT_E_INVALID, "%s: empty external data location", what);
    if (rel[0] == '/' || strchr(rel, '\\'))
        return ot_errorf(OT_E_INVALID, "%s: external data location '%s' must be a relative path inside the model's folder",
                         what, rel);
    char real_dir[PATH_MAX], joined[PATH_MAX], real[PATH_MAX];
    if (!realpath(dir, real_dir)) return ot_errorf(OT_E_IO, "%s: cannot resolve folder '%s': %s", what, dir, strerror(errno));
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", real_dir, rel) >= sizeof joined)
        return ot_errorf(OT_E_INVALID, "%s: external data location '%s' is too long", what, rel);
    if (!realpath(joined, real))
        return ot_errorf(OT_E_IO, "%s: external data file '%s' (in '%s'): %s", what, rel, dir, strerror(errno));
    size_t n = strlen(real_dir);
    int inside = strncmp(real, real_dir, n) == 0 && (real[n] == '/' || (n == 1 && real_dir[0] == '/'));
    if (!inside)
        return ot_errorf(OT_E_INVALID, "%s: external data location '%s' escapes the model's folder '%s'", what, rel, dir);
    *out = strdup(real);
    return *out ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
}
