/* checkpoint.c — resumable training checkpoints; see checkpoint.h for the layout.
 *
 * Owns: the checkpoints/ folder of a run (step directories, their temporaries, `latest`).
 * Save protocol, in order, so that a crash at any point leaves `latest` naming a complete
 * checkpoint:
 *   1. create checkpoints/step-XXXXXXXX.tmp.<pid> (a stale one of ours is emptied first);
 *   2. write each group's safetensors file inside it (each fsynced by the writer), then
 *      CRC32 it as it lies on disk; write manifest.json (fsynced); fsync the folder;
 *   3. rename the folder to step-XXXXXXXX (if that exists — a step re-saved after resuming
 *      from an earlier one — exchange the two atomically and delete the old one); fsync
 *      checkpoints/;
 *   4. replace `latest` atomically (temporary, fsync, rename); fsync checkpoints/.
 * On failure the temporary folder is removed. Folders of other processes' crashed saves
 * (".tmp.<pid>") are never touched: nothing but `latest` leads to them, so they are inert.
 * Open trusts nothing: `latest` must name a plain sibling folder, the manifest must parse
 * and carry the expected format and version, and every file's size and CRC32 must match
 * before any tensor is parsed. The maps stay open for the life of the handle, so tensors are
 * zero-copy views. */
#include "core/path.h"
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/npy.h"
#include "importer/mapped_file.h"

#define CKPT_FORMAT "onnxtune-checkpoint"
#define CKPT_VERSION 1
#define CKPT_SUFFIX ".safetensors"
#define MANIFEST_MAX (64u << 20)
#define JSON_MAX_INT 9007199254740992.0 /* 2^53: integers above are not exact in cJSON */

typedef struct {
    char *name; /* group stem */
    ot_mapped_file map;
    ot_safetensors *st;
} ckpt_group;

struct ot_checkpoint {
    char *dir;
    int64_t step;
    cJSON *manifest;
    const cJSON *state;
    int n;
    ckpt_group *groups;
};

/* ---- small file-system helpers ---- */

/* fsyncs a folder so the entries just created or renamed in it are durable. */
static ot_status sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ot_errorf(OT_E_IO, "cannot open folder '%s' to sync it: %s", dir, strerror(errno));
    int rc = fsync(fd), e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL) return ot_errorf(OT_E_IO, "cannot sync folder '%s': %s", dir, strerror(e));
    return OT_OK;
}

/* mkdir -p; errors name the component that could not be created. */
static ot_status make_dirs(const char *path) {
    char *p = strdup(path);
    if (!p) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_status s = OT_OK;
    for (char *q = p + 1;; q++) {
        if (*q != '/' && *q != '\0') continue;
        char c = *q;
        *q = '\0';
        struct stat sb;
        if (mkdir(p, 0755) != 0 && !(errno == EEXIST && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))) {
            int e = errno == EEXIST ? ENOTDIR : errno;
            s = ot_errorf(OT_E_IO, "cannot create checkpoint folder '%s': %s", p, strerror(e));
            break;
        }
        *q = c;
        if (!c) break;
    }
    free(p);
    return s;
}

/* Removes a folder holding only plain files (a checkpoint or its temporary). Best effort:
 * what it cannot remove is inert (see the protocol above). */
static void remove_flat_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char *p = ot_path_join(dir, e->d_name);
            if (p) unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static uint32_t crc_of(const void *data, size_t n) {
    uLong crc = crc32(0L, Z_NULL, 0);
    const Bytef *p = data;
    while (n) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n; /* crc32 takes a 32-bit length */
        crc = crc32(crc, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)crc;
}

/* Group stems become file names: a conservative character set, no leading dot. */
static int valid_stem(const char *s) {
    if (!s || !s[0] || s[0] == '.' || strlen(s) > 200) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p == '.'))
            return 0;
    return 1;
}

/* ---- save ---- */

/* Writes the group files and the manifest into `tmp`. */
static ot_status fill_tmp_dir(const char *tmp, int64_t step, const cJSON *state, const ot_ckpt_group *groups,
                              int n_groups) {
    cJSON *man = cJSON_CreateObject();
    cJSON *files = cJSON_CreateObject();
    if (!man || !files) {
        cJSON_Delete(man);
        cJSON_Delete(files);
        return ot_errorf(OT_E_NOMEM, "out of memory building a checkpoint manifest");
    }
    ot_status s = OT_OK;
    for (int g = 0; g < n_groups && s == OT_OK; g++) {
        char fname[256];
        snprintf(fname, sizeof fname, "%s" CKPT_SUFFIX, groups[g].name);
        char *path = ot_path_join(tmp, fname);
        if (!path) {
            s = ot_errorf(OT_E_NOMEM, "out of memory");
            break;
        }
        char meta_step[32];
        snprintf(meta_step, sizeof meta_step, "%" PRId64, step);
        const char *meta[] = {"format", CKPT_FORMAT, "step", meta_step};
        s = ot_safetensors_write(path, groups[g].tensors, groups[g].n, meta, 2);
        ot_mapped_file mf;
        if (s == OT_OK) s = ot_mapped_open(&mf, path);
        if (s == OT_OK) {
            /* CRC of the bytes as the file system returns them, not of what we meant to write. */
            uint32_t crc = crc_of(mf.data, mf.size);
            cJSON *ent = cJSON_CreateObject();
            if (!ent || !cJSON_AddNumberToObject(ent, "bytes", (double)mf.size) ||
                !cJSON_AddNumberToObject(ent, "crc32", (double)crc)) {
                cJSON_Delete(ent);
                s = ot_errorf(OT_E_NOMEM, "out of memory building a checkpoint manifest");
            } else {
                cJSON_AddItemToObject(files, fname, ent);
            }
            ot_mapped_close(&mf);
        }
        free(path);
    }
    cJSON *st = state ? cJSON_Duplicate(state, 1) : cJSON_CreateObject();
    if (s == OT_OK && (!st || !cJSON_AddStringToObject(man, "format", CKPT_FORMAT) ||
                       !cJSON_AddNumberToObject(man, "version", CKPT_VERSION) ||
                       !cJSON_AddNumberToObject(man, "step", (double)step))) {
        s = ot_errorf(OT_E_NOMEM, "out of memory building a checkpoint manifest");
    }
    if (s == OT_OK) {
        cJSON_AddItemToObject(man, "state", st);
        st = NULL;
        cJSON_AddItemToObject(man, "files", files);
        files = NULL;
        char *text = cJSON_Print(man);
        char *path = ot_path_join(tmp, "manifest.json");
        if (!text || !path) s = ot_errorf(OT_E_NOMEM, "out of memory writing a checkpoint manifest");
        else s = ot_write_file_atomic(path, text, strlen(text));
        cJSON_free(text);
        free(path);
    }
    cJSON_Delete(st);
    cJSON_Delete(files);
    cJSON_Delete(man);
    if (s == OT_OK) s = sync_dir(tmp);
    return s;
}

/* Moves the complete `tmp` to `final`. If `final` exists, the two are exchanged in one step
 * (so `latest` never names a missing folder) and the old one is deleted. */
static ot_status publish_dir(const char *tmp, const char *final) {
    if (rename(tmp, final) == 0) return OT_OK;
    if (errno != EEXIST && errno != ENOTEMPTY)
        return ot_errorf(OT_E_IO, "cannot rename checkpoint '%s' into '%s': %s", tmp, final, strerror(errno));
#ifdef RENAME_EXCHANGE
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
        remove_flat_dir(tmp); /* now holds the old checkpoint */
        return OT_OK;
    }
#endif
    /* No atomic exchange here: move the old one aside first (a crash in between leaves
     * `latest` possibly naming a missing folder, which open reports clearly). */
    size_t n = strlen(final) + 16;
    char *aside = malloc(n);
    if (!aside) return ot_errorf(OT_E_NOMEM, "out of memory");
    snprintf(aside, n, "%s.old.%ld", final, (long)getpid());
    ot_status s = OT_OK;
    if (rename(final, aside) != 0) {
        s = ot_errorf(OT_E_IO, "cannot replace checkpoint '%s': %s", final, strerror(errno));
    } else if (rename(tmp, final) != 0) {
        s = ot_errorf(OT_E_IO, "cannot rename checkpoint '%s' into '%s': %s", tmp, final, strerror(errno));
        rename(aside, final);
    } else {
        remove_flat_dir(aside);
    }
    free(aside);
    return s;
}

ot_status ot_checkpoint_save(const char *out, int64_t step, const cJSON *state, const ot_ckpt_group *groups,
                             int n_groups, char **dir) {
    if (dir) *dir = NULL;
    if (!out || !out[0]) return ot_errorf(OT_E_INVALID, "checkpoint: no output folder given");
    if (step < 0) return ot_errorf(OT_E_INVALID, "checkpoint: negative step %" PRId64, step);
    if (n_groups < 0 || (n_groups && !groups)) return ot_errorf(OT_E_INVALID, "checkpoint: bad group list");
    for (int g = 0; g < n_groups; g++) {
        if (!valid_stem(groups[g].name))
            return ot_errorf(OT_E_INVALID, "checkpoint: group name '%s' is not a plain file stem ([A-Za-z0-9_.-])",
                             groups[g].name ? groups[g].name : "(null)");
        for (int h = 0; h < g; h++)
            if (strcmp(groups[g].name, groups[h].name) == 0)
                return ot_errorf(OT_E_INVALID, "checkpoint: group '%s' given twice", groups[g].name);
    }

    char *ck = ot_path_join(out, "checkpoints");
    char name[64], tmpname[96];
    snprintf(name, sizeof name, "step-%08" PRId64, step);
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", name, (long)getpid());
    char *tmp = ck ? ot_path_join(ck, tmpname) : NULL;
    char *final = ck ? ot_path_join(ck, name) : NULL;
    char *latest = ck ? ot_path_join(ck, "latest") : NULL;
    ot_status s = (!ck || !tmp || !final || !latest) ? ot_errorf(OT_E_NOMEM, "out of memory") : OT_OK;
    int made_tmp = 0;
    if (s == OT_OK) s = make_dirs(ck);
    if (s == OT_OK) {
        remove_flat_dir(tmp); /* our own leftover from an earlier failed save of this step */
        if (mkdir(tmp, 0755) != 0) s = ot_errorf(OT_E_IO, "cannot create checkpoint folder '%s': %s", tmp, strerror(errno));
        else made_tmp = 1;
    }
    if (s == OT_OK) s = fill_tmp_dir(tmp, step, state, groups, n_groups);
    if (s == OT_OK) s = publish_dir(tmp, final);
    if (s == OT_OK) {
        made_tmp = 0;
        s = sync_dir(ck);
    }
    if (s == OT_OK) {
        char text[80];
        int len = snprintf(text, sizeof text, "%s\n", name);
        s = ot_write_file_atomic(latest, text, (size_t)len);
    }
    if (s == OT_OK) s = sync_dir(ck);
    if (made_tmp) remove_flat_dir(tmp);
    if (s == OT_OK && dir) {
        *dir = final;
        final = NULL;
    }
    if (s != OT_OK) s = ot_error_wrap(s, "saving checkpoint step %" PRId64 " under '%s': ", step, out);
    free(ck);
    free(tmp);
    free(final);
    free(latest);
    return s;
}

/* ---- open ---- */

static int is_file(const char *dir, const char *name) {
    char *p = ot_path_join(dir, name);
    struct stat sb;
    int r = p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
    free(p);
    return r;
}

/* Reads a whole small file into a NUL-terminated buffer; errors name it. */
static ot_status read_small(const char *path, size_t max, char **out, size_t *len) {
    *out = NULL;
    ot_mapped_file mf;
    OT_TRY(ot_mapped_open(&mf, path));
    if (mf.size > max) {
        ot_mapped_close(&mf);
        return ot_errorf(OT_E_FORMAT, "'%s' is %zu bytes, more than the %zu this file may hold", path, mf.size, max);
    }
    *out = malloc(mf.size + 1);
    if (!*out) {
        ot_mapped_close(&mf);
        return ot_errorf(OT_E_NOMEM, "out of memory reading '%s'", path);
    }
    if (mf.size) memcpy(*out, mf.data, mf.size);
    (*out)[mf.size] = '\0';
    *len = mf.size;
    ot_mapped_close(&mf);
    return OT_OK;
}

/* Follows <ck>/latest to a step folder (malloc'd path). */
static ot_status follow_latest(const char *ck, char **out) {
    *out = NULL;
    char *lp = ot_path_join(ck, "latest");
    if (!lp) return ot_errorf(OT_E_NOMEM, "out of memory");
    char *text;
    size_t len;
    ot_status s = read_small(lp, 4096, &text, &len);
    if (s != OT_OK) {
        free(lp);
        return s;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) text[--len] = '\0';
    if (!len || strlen(text) != len || strchr(text, '/') || strcmp(text, ".") == 0 || strcmp(text, "..") == 0) {
        s = ot_errorf(OT_E_FORMAT, "'%s' does not name a checkpoint folder (expected a line like \"step-00000123\")", lp);
    } else {
        *out = ot_path_join(ck, text);
        struct stat sb;
        if (!*out) s = ot_errorf(OT_E_NOMEM, "out of memory");
        else if (stat(*out, &sb) != 0 || !S_ISDIR(sb.st_mode))
            s = ot_errorf(OT_E_IO, "'%s' names '%s', which is not a folder in '%s'", lp, text, ck);
    }
    if (s != OT_OK) {
        free(*out);
        *out = NULL;
    }
    free(text);
    free(lp);
    return s;
}

/* Resolves any of the accepted forms of `path` to a step folder. */
static ot_status resolve_dir(const char *path, char **out) {
    *out = NULL;
    if (is_file(path, "manifest.json")) {
        *out = strdup(path);
        return *out ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
    }
    if (is_file(path, "latest")) return follow_latest(path, out);
    char *ck = ot_path_join(path, "checkpoints");
    if (!ck) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_status s;
    if (is_file(ck, "latest")) s = follow_latest(ck, out);
    else
        s = ot_errorf(OT_E_IO, "'%s' is not a checkpoint: it has no manifest.json, no latest and no checkpoints/latest",
                      path);
    free(ck);
    return s;
}

static int json_uint(const cJSON *v, double max, double *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d > max || d != (double)(uint64_t)d) return 0;
    *out = d;
    return 1;
}

/* Verifies one manifest entry's file and parses it into group `g`. */
static ot_status open_group(const char *dir, const cJSON *ent, ckpt_group *g) {
    const char *fname = ent->string;
    size_t fl = strlen(fname), sl = strlen(CKPT_SUFFIX);
    if (fl <= sl || strcmp(fname + fl - sl, CKPT_SUFFIX) != 0 || !valid_stem(fname))
        return ot_errorf(OT_E_FORMAT, "'%s/manifest.json': file entry '%s' is not a plain <group>.safetensors name", dir,
                         fname);
    double bytes, crc;
    if (!cJSON_IsObject(ent) || !json_uint(cJSON_GetObjectItemCaseSensitive(ent, "bytes"), JSON_MAX_INT, &bytes) ||
        !json_uint(cJSON_GetObjectItemCaseSensitive(ent, "crc32"), 4294967295.0, &crc))
        return ot_errorf(OT_E_FORMAT, "'%s/manifest.json': entry '%s' lacks integer \"bytes\" and \"crc32\"", dir, fname);
    g->name = strndup(fname, fl - sl);
    char *path = ot_path_join(dir, fname);
    ot_status s = (!g->name || !path) ? ot_errorf(OT_E_NOMEM, "out of memory") : OT_OK;
    if (s == OT_OK) s = ot_mapped_open(&g->map, path);
    if (s == OT_OK && g->map.size != (size_t)bytes)
        s = ot_errorf(OT_E_FORMAT, "checkpoint file '%s' is %zu bytes, the manifest says %.0f: truncated or replaced", path,
                      g->map.size, bytes);
    if (s == OT_OK) {
        uint32_t got = crc_of(g->map.data, g->map.size);
        if (got != (uint32_t)crc)
            s = ot_errorf(OT_E_FORMAT, "checkpoint file '%s' is corrupted: CRC32 0x%08x, the manifest says 0x%08x", path,
                          got, (uint32_t)crc);
    }
    if (s == OT_OK) s = ot_safetensors_parse(g->map.data, g->map.size, path, &g->st);
    free(path);
    return s;
}

void ot_checkpoint_close(ot_checkpoint *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        ot_safetensors_close(c->groups[i].st);
        ot_mapped_close(&c->groups[i].map);
        free(c->groups[i].name);
    }
    free(c->groups);
    cJSON_Delete(c->manifest);
    free(c->dir);
    free(c);
}

/* Checks the manifest's fixed fields and the step against the folder name. */
static ot_status check_manifest(ot_checkpoint *c, const char *mp) {
    const cJSON *m = c->manifest;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m, "format");
    if (!cJSON_IsObject(m) || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, CKPT_FORMAT) != 0)
        return ot_errorf(OT_E_FORMAT, "'%s' is not an onnxtune checkpoint manifest (\"format\" is not \"" CKPT_FORMAT "\")",
                         mp);
    double v, step;
    if (!json_uint(cJSON_GetObjectItemCaseSensitive(m, "version"), JSON_MAX_INT, &v))
        return ot_errorf(OT_E_FORMAT, "'%s': \"version\" is missing or not an integer", mp);
    if (v != CKPT_VERSION)
        return ot_errorf(OT_E_UNSUPPORTED, "'%s': checkpoint version %.0f; this onnxtune reads version %d", mp, v,
                         CKPT_VERSION);
    if (!json_uint(cJSON_GetObjectItemCaseSensitive(m, "step"), JSON_MAX_INT, &step))
        return ot_errorf(OT_E_FORMAT, "'%s': \"step\" is missing or not a non-negative integer", mp);
    c->step = (int64_t)step;
    c->state = cJSON_GetObjectItemCaseSensitive(m, "state");
    if (!c->state) return ot_errorf(OT_E_FORMAT, "'%s': \"state\" is missing", mp);
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(m, "files")))
        return ot_errorf(OT_E_FORMAT, "'%s': \"files\" is missing or not an object", mp);

    /* A folder named step-N must hold step N: catches a manifest copied into the wrong place. */
    const char *base = strrchr(c->dir, '/');
    base = base ? base + 1 : c->dir;
    if (strncmp(base, "step-", 5) == 0 && base[5]) {
        char *end;
        errno = 0;
        long long n = strtoll(base + 5, &end, 10);
        if (!*end && !errno && base[5] >= '0' && base[5] <= '9' && n != c->step)
            return ot_errorf(OT_E_FORMAT, "'%s' says step %" PRId64 " but its folder is '%s'", mp, c->step, base);
    }
    return OT_OK;
}

ot_status ot_checkpoint_open(const char *path, ot_checkpoint **out) {
    *out = NULL;
    ot_checkpoint *c = calloc(1, sizeof *c);
    if (!c) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_status s = resolve_dir(path, &c->dir);
    /* Strip trailing slashes so the folder-name check and messages see the real name. */
    if (s == OT_OK)
        for (size_t l = strlen(c->dir); l > 1 && c->dir[l - 1] == '/'; l--) c->dir[l - 1] = '\0';
    char *mp = s == OT_OK ? ot_path_join(c->dir, "manifest.json") : NULL;
    if (s == OT_OK && !mp) s = ot_errorf(OT_E_NOMEM, "out of memory");
    char *text = NULL;
    size_t len = 0;
    if (s == OT_OK) s = read_small(mp, MANIFEST_MAX, &text, &len);
    if (s == OT_OK) {
        const char *end = NULL;
        c->manifest = cJSON_ParseWithLengthOpts(text, len, &end, 0);
        if (!c->manifest)
            s = ot_errorf(OT_E_FORMAT, "'%s' is not valid JSON (near byte %zu of %zu): truncated or corrupted?", mp,
                          end ? (size_t)(end - text) : 0, len);
    }
    if (s == OT_OK) s = check_manifest(c, mp);
    if (s == OT_OK) {
        const cJSON *files = cJSON_GetObjectItemCaseSensitive(c->manifest, "files");
        int n = cJSON_GetArraySize(files);
        c->groups = calloc(n ? (size_t)n : 1, sizeof *c->groups);
        if (!c->groups) s = ot_errorf(OT_E_NOMEM, "out of memory");
        for (const cJSON *e = files->child; e && s == OT_OK; e = e->next) {
            for (const cJSON *p = files->child; p != e && s == OT_OK; p = p->next)
                if (strcmp(p->string, e->string) == 0)
                    s = ot_errorf(OT_E_FORMAT, "'%s': file '%s' is listed twice", mp, e->string);
            if (s == OT_OK) s = open_group(c->dir, e, &c->groups[c->n++]);
        }
    }
    free(text);
    free(mp);
    if (s != OT_OK) {
        s = ot_error_wrap(s, "opening checkpoint '%s': ", path);
        ot_checkpoint_close(c);
        return s;
    }
    *out = c;
    return OT_OK;
}

int64_t ot_checkpoint_step(const ot_checkpoint *c) { return c->step; }
const char *ot_checkpoint_dir(const ot_checkpoint *c) { return c->dir; }
const cJSON *ot_checkpoint_state(const ot_checkpoint *c) { return c->state; }

const ot_safetensors *ot_checkpoint_group(const ot_checkpoint *c, const char *group) {
    for (int i = 0; i < c->n; i++)
        if (c->groups[i].name && strcmp(c->groups[i].name, group) == 0) return c->groups[i].st;
    return NULL;
}

const ot_tensor *ot_checkpoint_tensor(const ot_checkpoint *c, const char *group, const char *name) {
    const ot_safetensors *st = ot_checkpoint_group(c, group);
    return st ? ot_safetensors_find(st, name) : NULL;
}
