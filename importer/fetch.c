/* fetch.c — one file from an http(s) URL into the content-addressed cache (libcurl).
 *
 * Owns the cache's blobs/, refs/ and locks/ (layout in onnxtune/fetch.h). A download runs
 * under an exclusive flock() on locks/<url key>.lock, into blobs/.partial-<url key>; an
 * existing partial file is resumed with a Range request (If-Range when the first response
 * carried a validator), and the response must prove it honoured the range (206 with a
 * Content-Range starting where we asked); a 200 is the whole file and replaces the partial
 * one. When the transfer is complete the file is hashed, checked against the
 * expected sha256, fsynced and renamed to blobs/<sha256>; then refs/<url key> is written the
 * same way. So a path returned by this file always names a complete, verified file, and
 * a reader that finds a ref never sees half a blob. Only http and https are allowed, also
 * for redirects (at most 10). Transient failures (connect errors, timeouts, dropped
 * connections, 408, 429, 5xx) are retried with exponential backoff; everything else fails
 * at once with the URL and the reason. */
#include "importer/fetch_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OT_FETCH_MAX_REDIRS 10L
#define OT_FETCH_CONNECT_TIMEOUT_S 30L
/* A transfer slower than 1 KB/s for 60 s counts as stalled (and is retried, resuming). */
#define OT_FETCH_LOW_SPEED_BYTES 1024L
#define OT_FETCH_LOW_SPEED_S 60L
#define OT_FETCH_BACKOFF_MS 500
#define OT_FETCH_BACKOFF_MAX_MS 30000

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

ot_status ot_fetch_mkdirs(const char *dir) {
    char *p = strdup(dir);
    if (!p) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_status st = OT_OK;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            st = ot_errorf(OT_E_IO, "cannot create cache directory '%s': %s", p, strerror(errno));
            break;
        }
        *s = c;
        if (!c) break;
    }
    free(p);
    if (st == OT_OK) {
        struct stat sb;
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
            st = ot_errorf(OT_E_IO, "cache path '%s' is not a directory", dir);
    }
    return st;
}

/* Makes a rename inside `dir` durable. */
static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static void fsync_parent(const char *path) {
    char *d = strdup(path);
    if (!d) return;
    char *s = strrchr(d, '/');
    if (s) {
        *s = '\0';
        fsync_dir(s == d ? "/" : d);
    }
    free(d);
}

ot_status ot_fetch_lock(const char *root, const char *name, int *fd) {
    *fd = -1;
    char *dir = ot_fetch_join(root, "locks", NULL);
    char file[OT_SHA256_HEX_LEN + 16];
    snprintf(file, sizeof file, "%s.lock", name);
    char *path = dir ? ot_fetch_join(dir, NULL, file) : NULL;
    ot_status st = path ? ot_fetch_mkdirs(dir) : ot_errorf(OT_E_NOMEM, "out of memory");
    if (st == OT_OK) {
        int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (f < 0) {
            st = ot_errorf(OT_E_IO, "cannot open lock file '%s': %s", path, strerror(errno));
        } else {
            int r;
            while ((r = flock(f, LOCK_EX)) != 0 && errno == EINTR) {
            }
            if (r != 0) {
                st = ot_errorf(OT_E_IO, "cannot lock '%s': %s", path, strerror(errno));
                close(f);
            } else {
                *fd = f;
            }
        }
    }
    free(dir);
    free(path);
    return st;
}

/* Writes `len` bytes to a new file `tmp`, fsyncs it and renames it to `path`. */
static ot_status write_atomic(const char *path, const char *tmp, const char *data, size_t len) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ot_errorf(OT_E_IO, "cannot create '%s': %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) break;
        off += (size_t)w;
    }
    int e = off == len && fsync(fd) == 0 ? 0 : errno;
    close(fd);
    if (e || rename(tmp, path) != 0) {
        e = e ? e : errno;
        unlink(tmp);
        return ot_errorf(OT_E_IO, "cannot write '%s': %s", path, strerror(e));
    }
    fsync_parent(path);
    return OT_OK;
}

/* Copies `src` to a new file `dst` and fsyncs it (for ot_fetch_place across devices). */
static ot_status copy_file(const char *src, const char *dst) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return ot_errorf(OT_E_IO, "cannot open '%s': %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return ot_errorf(OT_E_IO, "cannot create '%s': %s", dst, strerror(e));
    }
    static _Thread_local char buf[1 << 16];
    int e = 0;
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            e = r < 0 ? errno : 0;
            break;
        }
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                e = errno;
                break;
            }
            off += w;
        }
        if (e) break;
    }
    if (!e && fsync(out) != 0) e = errno;
    close(in);
    close(out);
    if (e) {
        unlink(dst);
        return ot_errorf(OT_E_IO, "cannot copy '%s' to '%s': %s", src, dst, strerror(e));
    }
    return OT_OK;
}

ot_status ot_fetch_place(const char *blob, const char *dest) {
    struct stat a, b;
    if (stat(blob, &a) != 0) return ot_errorf(OT_E_IO, "cache blob '%s': %s", blob, strerror(errno));
    if (stat(dest, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) return OT_OK;
    char *parent = strdup(dest);
    if (!parent) return ot_errorf(OT_E_NOMEM, "out of memory");
    char *slash = strrchr(parent, '/');
    ot_status st = OT_OK;
    if (slash && slash != parent) {
        *slash = '\0';
        st = ot_fetch_mkdirs(parent);
    }
    free(parent);
    if (st != OT_OK) return st;
    size_t n = strlen(dest) + 32;
    char *tmp = malloc(n);
    if (!tmp) return ot_errorf(OT_E_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp-%ld", dest, (long)getpid());
    unlink(tmp);
    /* A hard link, not a symlink: the ONNX reader confines external data to the real path
     * of the model's folder, which a link into blobs/ would leave. */
    if (link(blob, tmp) != 0) st = copy_file(blob, tmp);
    if (st == OT_OK && rename(tmp, dest) != 0) {
        st = ot_errorf(OT_E_IO, "cannot place '%s': %s", dest, strerror(errno));
        unlink(tmp);
    }
    if (st == OT_OK) fsync_parent(dest);
    free(tmp);
    return st;
}

/* ---- one transfer ---- */

/* A fresh download records the response's validator (strong ETag, else Last-Modified)
 * beside the partial file, so a resume can send If-Range and get the whole new file, not
 * a splice of two versions, when the file changed on the server meanwhile. */
static void save_validator(const char *path, const char *v) {
    if (!v[0]) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "we");
    if (!f) return;
    fprintf(f, "%s\n", v);
    fclose(f);
}

static void load_validator(const char *path, char *buf, size_t n) {
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f) return;
    if (!fgets(buf, (int)n, f)) buf[0] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    fclose(f);
}

typedef struct xfer {
    int fd;
    int64_t offset;      /* bytes in the partial file */
    int64_t resume_from; /* the Range we asked for (0: none) */
    int64_t max_bytes;
    long status;         /* code of the last status line seen (redirects reset it) */
    int64_t range_start; /* from Content-Range, -1 when absent */
    long retry_after_s;  /* from Retry-After (seconds form), 0 when absent */
    int started;         /* the first body byte of the final response was seen */
    int oversize, bad_range, write_errno;
    char etag[160], last_modified[80]; /* validators of the final response */
    const char *validator_path; /* where a fresh download records them for If-Range */
    int progress;        /* draw a bar on stderr */
    const char *label;
    double last_draw;
    int drawn;
} xfer;

static size_t on_header(char *b, size_t size, size_t nitems, void *ud) {
    xfer *x = ud;
    size_t len = size * nitems;
    char line[256];
    size_t n = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, b, n);
    line[n] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = strchr(line, ' ');
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        x->range_start = -1;
        x->retry_after_s = 0;
        x->etag[0] = x->last_modified[0] = '\0';
    } else if (strncasecmp(line, "content-range:", 14) == 0) {
        const char *p = line + 14;
        while (*p == ' ' || *p == '\t') p++;
        if (strncasecmp(p, "bytes ", 6) == 0) {
            char *end;
            long long v = strtoll(p + 6, &end, 10);
            if (end != p + 6 && *end == '-') x->range_start = v;
        }
    } else if (strncasecmp(line, "retry-after:", 12) == 0) {
        x->retry_after_s = strtol(line + 12, NULL, 10);
    } else if (strncasecmp(line, "etag:", 5) == 0 || strncasecmp(line, "last-modified:", 14) == 0) {
        int is_etag = (line[0] | 0x20) == 'e';
        const char *p = line + (is_etag ? 5 : 14);
        while (*p == ' ' || *p == '\t') p++;
        char *dst = is_etag ? x->etag : x->last_modified;
        size_t cap = is_etag ? sizeof x->etag : sizeof x->last_modified;
        size_t k = strcspn(p, "\r\n");
        if (k < cap && (is_etag ? strncmp(p, "W/", 2) != 0 : 1)) { /* weak ETags cannot guard a range */
            memcpy(dst, p, k);
            dst[k] = '\0';
        }
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
    xfer *x = ud;
    size_t len = size * nmemb;
    if (!x->started) {
        x->started = 1;
        if (x->status == 206) {
            if (x->range_start != x->resume_from) {
                x->bad_range = 1;
                return 0;
            }
        } else {
            /* A fresh start, or the server ignored the Range (or If-Range found the file
             * changed) and sends the whole file: start over. */
            if (x->offset > 0 && (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) < 0)) {
                x->write_errno = errno;
                return 0;
            }
            x->offset = 0;
            save_validator(x->validator_path, x->etag[0] ? x->etag : x->last_modified);
        }
    }
    if (x->max_bytes > 0 && x->offset + (int64_t)len > x->max_bytes) {
        x->oversize = 1;
        return 0;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(x->fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            x->write_errno = errno;
            return 0;
        }
        off += (size_t)w;
    }
    x->offset += (int64_t)len;
    return len;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void human(char *buf, size_t n, double v) {
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (v >= 1000 && i < 4) v /= 1000, i++;
    snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)ultotal, (void)ulnow;
    xfer *x = ud;
    double t = now_s();
    if (!x->progress || t - x->last_draw < 0.2) return 0;
    x->last_draw = t;
    double done = (double)x->resume_from + (double)dlnow;
    double total = dltotal > 0 ? (double)x->resume_from + (double)dltotal : 0;
    char a[32], b[32], bar[31];
    human(a, sizeof a, done);
    if (total > 0) {
        int fill = (int)(30.0 * done / total);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '-';
        bar[30] = '\0';
        human(b, sizeof b, total);
        fprintf(stderr, "\r\033[K%.40s [%s] %3d%% %s / %s", x->label, bar, (int)(100.0 * done / total), a, b);
    } else {
        fprintf(stderr, "\r\033[K%.40s %s", x->label, a);
    }
    x->drawn = 1;
    return 0;
}

typedef enum { XFER_DONE, XFER_RETRY, XFER_FAIL } xfer_outcome;

/* One attempt at `url` into the open partial file `fd`. On XFER_FAIL the error is recorded
 * (and *http_code holds the HTTP status when the server sent an error); on XFER_RETRY the
 * reason is recorded too, for when the attempts run out. *discard asks the caller to
 * throw the partial file away. */
static xfer_outcome attempt(const char *url, const ot_fetch_opts *opts, const char *token,
                            int fd, const char *validator_path, const char *label, long *http_code, long *wait_ms, int *discard, ot_status *err) {
    *http_code = 0;
    *discard = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || lseek(fd, 0, SEEK_END) < 0) {
        *err = ot_errorf(OT_E_IO, "fetching '%s': cannot use the partial download: %s", url, strerror(errno));
        return XFER_FAIL;
    }
    xfer x = {.fd = fd, .offset = sb.st_size, .resume_from = sb.st_size, .range_start = -1,
              .max_bytes = opts ? opts->max_bytes : 0, .label = label,
              .validator_path = validator_path};
    x.progress = opts && opts->progress && isatty(STDERR_FILENO);
    CURL *c = curl_easy_init();
    if (!c) {
        *err = ot_errorf(OT_E_NOMEM, "fetching '%s': cannot create a libcurl handle", url);
        return XFER_FAIL;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, OT_FETCH_MAX_REDIRS);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, OT_FETCH_CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, OT_FETCH_LOW_SPEED_BYTES);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, OT_FETCH_LOW_SPEED_S);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "onnxtune/0.1");
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, x.progress ? 0L : 1L);
    if (x.max_bytes > 0) curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x.max_bytes);
    struct curl_slist *headers = NULL;
    if (x.resume_from > 0) {
        /* CURLOPT_RANGE rather than CURLOPT_RESUME_FROM_LARGE: the latter fails the
         * transfer when the server answers 200, where we want to take that whole file
         * (on_body starts over) instead of paying another request. */
        char range[32];
        snprintf(range, sizeof range, "%lld-", (long long)x.resume_from);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
        char v[200], h[220];
        load_validator(validator_path, v, sizeof v);
        if (v[0]) {
            snprintf(h, sizeof h, "If-Range: %s", v);
            headers = curl_slist_append(headers, h);
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        }
    }
    if (token && token[0]) {
        /* libcurl sends the bearer token only to the host we asked, not across redirects
         * to other hosts (the hub redirects large files to a CDN with signed URLs). */
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, token);
    }
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    if (x.drawn) fputs("\r\033[K", stderr);

    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_OK && x.status == 206 && !x.started && x.range_start != x.resume_from) x.bad_range = 1;
    if (x.write_errno) {
        *err = ot_errorf(OT_E_IO, "fetching '%s': cannot write the download: %s", url, strerror(x.write_errno));
        return XFER_FAIL;
    }
    if (x.oversize || rc == CURLE_FILESIZE_EXCEEDED) {
        *discard = 1;
        *err = ot_errorf(OT_E_INVALID, "fetching '%s': larger than the limit of %lld bytes", url, (long long)x.max_bytes);
        return XFER_FAIL;
    }
    if (x.bad_range) {
        *discard = 1;
        *err = ot_errorf(OT_E_IO, "fetching '%s': server answered a resume at byte %lld with range start %lld", url,
                  (long long)x.resume_from, (long long)x.range_start);
        return XFER_RETRY;
    }
    if (rc == CURLE_OK) {
        if (code == 200 && x.resume_from > 0 && !x.started && ftruncate(fd, 0) != 0) {
            *err = ot_errorf(OT_E_IO, "fetching '%s': cannot truncate the partial download: %s", url, strerror(errno));
            return XFER_FAIL;
        }
        if (code != 200 && code != 206) {
            *err = ot_errorf(OT_E_IO, "fetching '%s': unexpected HTTP status %ld", url, code);
            return XFER_FAIL;
        }
        return XFER_DONE;
    }
    if (rc == CURLE_HTTP_RETURNED_ERROR) {
        *http_code = code;
        if (x.retry_after_s > 0) *wait_ms = (x.retry_after_s > 60 ? 60 : x.retry_after_s) * 1000;
        if (code == 416) {
            /* Our partial file does not fit what the server has now: start from scratch. */
            *discard = 1;
            *err = ot_errorf(OT_E_IO, "fetching '%s': HTTP 416 resuming at byte %lld", url, (long long)x.resume_from);
            return XFER_RETRY;
        }
        *err = ot_errorf(OT_E_IO, "fetching '%s': HTTP %ld%s", url, code,
                  code == 404 ? " (not found)" : code == 401 || code == 403 ? " (access denied; a token may be needed)" : "");
        return code == 408 || code == 429 || code >= 500 ? XFER_RETRY : XFER_FAIL;
    }
    switch (rc) {
    case CURLE_TOO_MANY_REDIRECTS:
        *err = ot_errorf(OT_E_IO, "fetching '%s': more than %ld redirects", url, OT_FETCH_MAX_REDIRS);
        return XFER_FAIL;
    case CURLE_UNSUPPORTED_PROTOCOL:
        *err = ot_errorf(OT_E_UNSUPPORTED, "fetching '%s': redirected to a scheme other than http or https (%s)", url, why);
        return XFER_FAIL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        *err = ot_errorf(OT_E_IO, "fetching '%s': %s", url, why);
        return XFER_RETRY;
    default:
        *err = ot_errorf(OT_E_IO, "fetching '%s': %s", url, why);
        return XFER_FAIL;
    }
}

/* The blob a ref names, when both exist: *blob is malloc'd, *sha filled. 0 when absent. */
static int read_ref(const char *root, const char *key, char sha[OT_SHA256_HEX_LEN + 1], char **blob) {
    char *ref = ot_fetch_join(root, "refs", key);
    if (!ref) return 0;
    FILE *f = fopen(ref, "re");
    free(ref);
    if (!f) return 0;
    char line[OT_SHA256_HEX_LEN + 2] = "";
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    if (!ok || !ot_sha256_is_hex(line)) return 0;
    char *b = ot_fetch_join(root, "blobs", line);
    struct stat sb;
    if (!b || stat(b, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        free(b);
        return 0;
    }
    memcpy(sha, line, OT_SHA256_HEX_LEN + 1);
    *blob = b;
    return 1;
}

/* A cached blob is usable when it matches the expected digest and size limit. */
static int cache_hit(const char *root, const char *key, const ot_fetch_target *t, const ot_fetch_opts *opts,
                     char **blob) {
    char sha[OT_SHA256_HEX_LEN + 1];
    char *b = NULL;
    if (!read_ref(root, key, sha, &b)) return 0;
    struct stat sb;
    int ok = (!t->sha256[0] || strcmp(sha, t->sha256) == 0) &&
             (!opts || opts->max_bytes <= 0 || (stat(b, &sb) == 0 && sb.st_size <= opts->max_bytes));
    if (!ok) {
        free(b);
        return 0;
    }
    *blob = b;
    return 1;
}

/* Hashes and verifies the finished partial file, renames it to blobs/<sha256>, writes the
 * ref. */
static ot_status commit(const char *root, const char *key, const ot_fetch_target *t, const char *partial, char **blob) {
    char sha[OT_SHA256_HEX_LEN + 1];
    OT_TRY(ot_sha256_file(partial, sha));
    if (t->sha256[0] && strcmp(sha, t->sha256) != 0) {
        unlink(partial);
        return ot_errorf(OT_E_INVALID, "fetching '%s': sha256 mismatch: expected %s, got %s", t->url, t->sha256, sha);
    }
    char *dest = ot_fetch_join(root, "blobs", sha);
    if (!dest) return ot_errorf(OT_E_NOMEM, "out of memory");
    struct stat sb;
    if (stat(dest, &sb) == 0) {
        unlink(partial); /* identical content is already stored (another URL): keep one copy */
    } else if (rename(partial, dest) != 0) {
        ot_status st = ot_errorf(OT_E_IO, "cannot move '%s' to '%s': %s", partial, dest, strerror(errno));
        free(dest);
        return st;
    }
    fsync_parent(dest);
    char *refdir = ot_fetch_join(root, "refs", NULL);
    char *ref = ot_fetch_join(root, "refs", key);
    size_t tl = strlen(ref ? ref : "") + 32;
    char *tmp = malloc(tl);
    ot_status st = refdir && ref && tmp ? ot_fetch_mkdirs(refdir) : ot_errorf(OT_E_NOMEM, "out of memory");
    if (st == OT_OK) {
        snprintf(tmp, tl, "%s.tmp-%ld", ref, (long)getpid());
        size_t cl = OT_SHA256_HEX_LEN + strlen(t->url) + 3;
        char *content = malloc(cl);
        if (!content) {
            st = ot_errorf(OT_E_NOMEM, "out of memory");
        } else {
            /* The digest names the blob; the URL is there for people reading the cache. */
            snprintf(content, cl, "%s\n%s\n", sha, t->url);
            st = write_atomic(ref, tmp, content, strlen(content));
            free(content);
        }
    }
    free(refdir);
    free(ref);
    free(tmp);
    if (st != OT_OK) {
        free(dest);
        return st;
    }
    *blob = dest;
    return OT_OK;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Downloads under the lock already held. */
static ot_status download(const char *root, const char *key, const ot_fetch_target *t, const ot_fetch_opts *opts,
                          char **blob, int *not_found) {
    char *blobs = ot_fetch_join(root, "blobs", NULL);
    char name[OT_SHA256_HEX_LEN + 32];
    snprintf(name, sizeof name, ".partial-%s", key);
    char *partial = blobs ? ot_fetch_join(blobs, NULL, name) : NULL;
    snprintf(name, sizeof name, ".partial-%s.validator", key);
    char *validator = blobs ? ot_fetch_join(blobs, NULL, name) : NULL;
    char *label = NULL;
    ot_status st = partial && validator ? ot_fetch_mkdirs(blobs) : ot_errorf(OT_E_NOMEM, "out of memory");
    if (st != OT_OK) goto done;
    if (ot_fetch_url_basename(t->url, &label) != OT_OK) label = strdup(t->url);
    ot_clear_error();
    const char *token = NULL;
    if (t->hub) token = opts && opts->token ? opts->token : getenv("HF_TOKEN");
    int retries = opts && opts->retries ? opts->retries : OT_FETCH_DEFAULT_RETRIES;
    if (retries < 0) retries = 0;
    long backoff = OT_FETCH_BACKOFF_MS;
    for (int i = 0;; i++) {
        int fd = open(partial, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            st = ot_errorf(OT_E_IO, "cannot open '%s': %s", partial, strerror(errno));
            break;
        }
        long code = 0, wait = 0;
        int discard = 0;
        ot_status err = OT_OK;
        xfer_outcome o = attempt(t->url, opts, token, fd, validator, label ? label : "", &code, &wait, &discard, &err);
        if (o == XFER_DONE && fsync(fd) != 0) {
            o = XFER_FAIL;
            err = ot_errorf(OT_E_IO, "cannot sync '%s': %s", partial, strerror(errno));
        }
        struct stat sb;
        if (o == XFER_FAIL || (o == XFER_RETRY && i >= retries && stat(partial, &sb) == 0 && sb.st_size == 0))
            discard = 1; /* keep only a partial file worth resuming by the next fetch */
        close(fd);
        if (discard || o == XFER_DONE) unlink(validator);
        if (discard) unlink(partial);
        if (o == XFER_DONE) {
            st = commit(root, key, t, partial, blob);
            break;
        }
        if (o == XFER_FAIL || i >= retries) {
            if (not_found && (code == 404 || code == 410)) *not_found = 1;
            st = o == XFER_RETRY ? ot_error_wrap(err, "gave up after %d attempts: ", i + 1) : err;
            break;
        }
        sleep_ms(wait > backoff ? wait : backoff);
        backoff = backoff * 2 > OT_FETCH_BACKOFF_MAX_MS ? OT_FETCH_BACKOFF_MAX_MS : backoff * 2;
    }
done:
    free(blobs);
    free(partial);
    free(validator);
    free(label);
    return st;
}

ot_status ot_fetch_target_file(const ot_fetch_target *t, const ot_fetch_opts *opts, char **path, int *not_found) {
    *path = NULL;
    if (not_found) *not_found = 0;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) return ot_errorf(OT_E_INTERNAL, "libcurl initialisation failed");
    char *root = NULL;
    OT_TRY(ot_fetch_cache_root(opts, &root));
    char key[OT_SHA256_HEX_LEN + 1];
    ot_status st = ot_fetch_url_key(t->url, key);
    int lock = -1;
    if (st == OT_OK && cache_hit(root, key, t, opts, path)) goto done;
    if (st == OT_OK) st = ot_fetch_lock(root, key, &lock);
    /* whoever held the lock before us may have fetched it */
    if (st == OT_OK && !cache_hit(root, key, t, opts, path)) st = download(root, key, t, opts, path, not_found);
done:
    if (lock >= 0) close(lock);
    free(root);
    return st;
}

ot_status ot_fetch_file(const char *url, const ot_fetch_opts *opts, char **path) {
    *path = NULL;
    ot_fetch_target t;
    ot_status st = ot_fetch_resolve(url, opts, &t);
    if (st == OT_OK) st = ot_fetch_target_file(&t, opts, path, NULL);
    ot_fetch_target_free(&t);
    return st;
}
