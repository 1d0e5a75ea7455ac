/* server.c — the libmicrohttpd daemon of `onnxtune serve`: routing, authentication, body
 * collection and limits, request metrics, and the ticker that wakes parked event streams.
 * Route handlers live in routes_*.c; responses and errors in http_util.c. */
#include "service/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- routes -------------------------------------------------------------------------- */

enum {
    R_PAGE, R_HEALTHZ, R_METRICS, R_FILES, R_FILE, R_FILE_CONTENT, R_JOBS, R_JOB, R_JOB_CANCEL, R_JOB_EVENTS,
    R_JOB_CKPTS, R_JOB_ARTIFACT, R_COUNT
};

static const struct {
    const char *pattern;
    const char *methods; /* comma-separated, as in an Allow header */
} routes[R_COUNT] = {
    [R_PAGE] = {"/", "GET, HEAD"},
    [R_HEALTHZ] = {"/healthz", "GET, HEAD"},
    [R_METRICS] = {"/metrics", "GET, HEAD"},
    [R_FILES] = {"/v1/files", "GET, HEAD, POST"},
    [R_FILE] = {"/v1/files/{id}", "GET, HEAD, DELETE"},
    [R_FILE_CONTENT] = {"/v1/files/{id}/content", "GET, HEAD"},
    [R_JOBS] = {"/v1/fine_tuning/jobs", "GET, HEAD, POST"},
    [R_JOB] = {"/v1/fine_tuning/jobs/{id}", "GET, HEAD"},
    [R_JOB_CANCEL] = {"/v1/fine_tuning/jobs/{id}/cancel", "POST"},
    [R_JOB_EVENTS] = {"/v1/fine_tuning/jobs/{id}/events", "GET, HEAD"},
    [R_JOB_CKPTS] = {"/v1/fine_tuning/jobs/{id}/checkpoints", "GET, HEAD"},
    [R_JOB_ARTIFACT] = {"/v1/fine_tuning/jobs/{id}/artifacts/{name}", "GET, HEAD"},
};

const double ot_metric_bucket_bounds[OT_METRIC_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                           0.05,   0.1,   0.25,   0.5,   1.0,  2.5};

int ot_route_count(void) { return R_COUNT; }
const char *ot_route_pattern(int route) { return route >= 0 && route < R_COUNT ? routes[route].pattern : "unmatched"; }

#define MAX_SEG 16

/* Splits a copy of `path` into segments (empty ones dropped). Returns the count, or -1 when
 * there are too many. */
static int split_path(char *path, char **seg) {
    int n = 0;
    for (char *tok = strtok(path, "/"); tok; tok = strtok(NULL, "/")) {
        if (n == MAX_SEG) return -1;
        seg[n++] = tok;
    }
    return n;
}

/* Index of the route whose pattern matches the segments, or -1. {name} takes the rest. */
static int match_route(char **seg, int nseg) {
    for (int i = 0; i < R_COUNT; i++) {
        char pat[96];
        snprintf(pat, sizeof pat, "%s", routes[i].pattern);
        char *pseg[MAX_SEG];
        int np = split_path(pat, pseg), k;
        for (k = 0; k < np; k++) {
            if (k >= nseg) break;
            if (!strcmp(pseg[k], "{name}")) {
                k = np;
                break;
            }
            if (strcmp(pseg[k], "{id}") && strcmp(pseg[k], seg[k])) break;
        }
        if (k == np && (np == nseg || (np > 0 && !strcmp(pseg[np - 1], "{name}")))) return i;
    }
    return -1;
}

static int method_allowed(int route, const char *method) {
    const char *m = routes[route].methods;
    size_t ml = strlen(method);
    for (const char *p = m; (p = strstr(p, method)); p += ml)
        if ((p == m || (p - m >= 2 && p[-2] == ',')) && (p[ml] == ',' || p[ml] == 0)) return 1;
    return 0;
}

static int body_kind(int route, const char *method) {
    if (strcmp(method, "POST")) return OT_BODY_NONE;
    return route == R_FILES ? OT_BODY_UPLOAD : OT_BODY_JSON;
}

/* ---- metrics ------------------------------------------------------------------------- */

static void record_metrics(ot_server *s, const ot_http_req *r) {
    double dt = ot_http_now() - r->t_start;
    int ri = r->route + 1; /* 0 = unmatched */
    pthread_mutex_lock(&s->metrics_mu);
    for (int i = 0; i < OT_METRIC_SLOTS; i++) {
        ot_metric_slot *sl = &s->slots[i];
        if (sl->count && (sl->route != r->route || sl->code != r->status || strcmp(sl->method, r->method))) continue;
        if (!sl->count) {
            sl->route = r->route;
            sl->code = r->status;
            snprintf(sl->method, sizeof sl->method, "%s", r->method);
        }
        sl->count++;
        break;
    }
    int b = 0;
    while (b < OT_METRIC_BUCKETS && dt > ot_metric_bucket_bounds[b]) b++;
    s->lat_buckets[ri][b]++;
    s->lat_sum[ri] += dt;
    s->lat_count[ri]++;
    pthread_mutex_unlock(&s->metrics_mu);
}

/* ---- request handling ---------------------------------------------------------------- */

static enum MHD_Result dispatch(ot_http_req *r) {
    char *copy = strdup(r->path), *seg[MAX_SEG];
    if (!copy) return ot_http_error(r, 500, NULL, NULL, NULL, "out of memory");
    int nseg = split_path(copy, seg);
    enum MHD_Result ret;
    switch (r->route) {
    case R_PAGE: ret = ot_route_page(r); break;
    case R_HEALTHZ: ret = ot_route_healthz(r); break;
    case R_METRICS: ret = ot_route_metrics(r); break;
    case R_FILES:
    case R_FILE:
    case R_FILE_CONTENT: ret = ot_route_files(r, seg, nseg); break;
    default: ret = ot_route_jobs(r, seg, nseg); break;
    }
    free(copy);
    if (!r->handled && ret == MHD_YES) ret = ot_http_error(r, 500, NULL, NULL, NULL, "no response for %s %s", r->method, r->path);
    return ret;
}

static int authorized(ot_server *s, ot_http_req *r) {
    if (!s->api_key) return 1;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    while (*h == ' ') h++;
    return ot_http_ct_equal(s->api_key, s->api_key_len, h, strlen(h));
}

/* The first call for a request: route, authenticate, check the announced body size. */
static enum MHD_Result first_call(ot_server *s, ot_http_req *r) {
    char *copy = strdup(r->path), *seg[MAX_SEG];
    if (!copy) return MHD_NO;
    int nseg = split_path(copy, seg);
    r->route = nseg < 0 ? -1 : match_route(seg, nseg);
    free(copy);
    /* The status page is static HTML without data (a browser cannot send a bearer token
     * on navigation); everything else needs the key. */
    int is_page = r->route == R_PAGE && (!strcmp(r->method, "GET") || !strcmp(r->method, "HEAD"));
    if (!is_page && !authorized(s, r)) {
        return ot_http_error(r, 401, NULL, NULL, "invalid_api_key",
                             "missing or invalid API key: send 'Authorization: Bearer <key>'");
    }
    if (r->route < 0) return ot_http_error(r, 404, NULL, NULL, "not_found", "no route for %s", r->path);
    if (!method_allowed(r->route, r->method)) {
        char msg[64];
        snprintf(msg, sizeof msg, "%s", routes[r->route].methods);
        cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
        char text[256];
        snprintf(text, sizeof text, "method %s is not allowed on %s (allowed: %s)", r->method, routes[r->route].pattern, msg);
        cJSON_AddStringToObject(err, "message", text);
        cJSON_AddStringToObject(err, "type", "method_not_allowed");
        cJSON_AddNullToObject(err, "param");
        cJSON_AddStringToObject(err, "code", "method_not_allowed");
        char *body = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        if (!body) return MHD_NO;
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(body);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "application/json");
        MHD_add_response_header(resp, "Allow", msg);
        return ot_http_queue(r, 405, resp);
    }
    r->body_kind = body_kind(r->route, r->method);
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
    unsigned long long announced = cl ? strtoull(cl, NULL, 10) : 0;
    if (r->body_kind == OT_BODY_JSON) {
        r->body_cap = OT_SERVER_JSON_LIMIT;
        if (announced > OT_SERVER_JSON_LIMIT)
            return ot_http_error(r, 413, NULL, NULL, "request_too_large", "request body of %llu bytes exceeds the limit of %u bytes",
                                 announced, OT_SERVER_JSON_LIMIT);
    } else if (r->body_kind == OT_BODY_UPLOAD) {
        /* multipart framing adds a little; the file part itself is checked while streaming */
        if (announced > (unsigned long long)s->max_upload_bytes + 65536)
            return ot_http_error(r, 413, NULL, "file", "file_too_large", "upload of %llu bytes exceeds the limit of %lld bytes",
                                 announced, (long long)s->max_upload_bytes);
        enum MHD_Result ret = MHD_YES;
        if (!ot_upload_begin(r, &ret)) return ret;
    } else if (announced > 0) {
        r->body_cap = 0; /* bodies on GET/DELETE are read and ignored, up to the JSON limit */
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
    (void)version;
    ot_server *s = cls;
    ot_http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->method = method;
        r->t_start = ot_http_now();
        r->route = -1;
        r->path = strdup(url ? url : "/");
        *con_cls = r;
        if (!r->path) return MHD_NO;
        if (!strcmp(method, "HEAD")) r->method = "HEAD";
        return first_call(s, r);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        r->body_seen += n;
        if (r->handled) return MHD_YES; /* an early error: discard the rest */
        if (r->body_kind == OT_BODY_UPLOAD) return ot_upload_data(r, upload_data, n) ? MHD_YES : MHD_NO;
        if (r->body_seen > 4ull * OT_SERVER_JSON_LIMIT) return MHD_NO; /* an unannounced flood: drop it */
        if (r->body_kind != OT_BODY_JSON) return MHD_YES;
        if (r->body_len + n > r->body_cap) {
            r->body_too_large = 1;
            return MHD_YES;
        }
        if (!r->body) {
            r->body = malloc(r->body_cap + 1);
            if (!r->body) return MHD_NO;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = 0;
        return MHD_YES;
    }
    if (r->handled) return MHD_YES;
    return dispatch(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    ot_server *s = cls;
    ot_http_req *r = *con_cls;
    if (!r) return;
    if (r->status) record_metrics(s, r);
    ot_upload_free(r);
    free(r->body);
    free(r->path);
    free(r);
    *con_cls = NULL;
}

/* ---- event-stream parking ------------------------------------------------------------ */

struct ot_sse_waiter {
    struct MHD_Connection *conn;
    struct ot_sse_waiter *next;
};

int ot_server_sse_park(ot_server *s, struct MHD_Connection *conn) {
    struct ot_sse_waiter *w = malloc(sizeof *w);
    if (!w) return 0;
    pthread_mutex_lock(&s->sse_mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->sse_mu);
        free(w);
        return 0;
    }
    w->conn = conn;
    w->next = s->sse_waiting;
    s->sse_waiting = w;
    MHD_suspend_connection(conn); /* under sse_mu: the ticker cannot resume it first */
    pthread_mutex_unlock(&s->sse_mu);
    return 1;
}

static void resume_all(ot_server *s) {
    pthread_mutex_lock(&s->sse_mu);
    struct ot_sse_waiter *w = s->sse_waiting;
    s->sse_waiting = NULL;
    while (w) {
        struct ot_sse_waiter *next = w->next;
        MHD_resume_connection(w->conn);
        free(w);
        w = next;
    }
    pthread_mutex_unlock(&s->sse_mu);
}

static void *ticker_main(void *arg) {
    ot_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->sse_mu);
        int stop = s->stopping;
        pthread_mutex_unlock(&s->sse_mu);
        if (stop) break;
        resume_all(s);
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ---- start / stop -------------------------------------------------------------------- */

int ot_server_port(const ot_server *s) { return s->port; }

void ot_server_stop(ot_server *s) {
    if (!s) return;
    pthread_mutex_lock(&s->sse_mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->sse_mu);
    if (s->ticker_started) pthread_join(s->ticker, NULL);
    resume_all(s);
    if (s->daemon) {
        /* let resumed streams see `stopping` and end before the daemon closes them */
        for (int i = 0; i < 20; i++) {
            pthread_mutex_lock(&s->sse_mu);
            int open = s->sse_open;
            pthread_mutex_unlock(&s->sse_mu);
            if (!open) break;
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
            resume_all(s);
        }
        MHD_stop_daemon(s->daemon);
    }
    ot_runner_stop(s->runner);
    ot_store_close(s->store);
    for (int i = 0; i < s->n_model_roots; i++) free(s->model_roots[i]);
    free(s->data_dir);
    free(s->api_key);
    pthread_mutex_destroy(&s->metrics_mu);
    pthread_mutex_destroy(&s->sse_mu);
    free(s);
}

static ot_status resolve_host(const char *host, int port, struct sockaddr_storage *ss, int *ipv6) {
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc || !ai) return ot_errorf(OT_E_INVALID, "--host '%s': %s", host, rc ? gai_strerror(rc) : "no address");
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *ipv6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    return OT_OK;
}

ot_status ot_server_start(const ot_server_opts *o, ot_server **out) {
    *out = NULL;
    if (!o->data_dir || !*o->data_dir) return ot_errorf(OT_E_INVALID, "serve: --data-dir is required");
    if (o->port < 0 || o->port > 65535) return ot_errorf(OT_E_INVALID, "--port %d: expected 0..65535", o->port);
    if (o->workers < 1 || o->workers > 64) return ot_errorf(OT_E_INVALID, "--workers %d: expected 1..64", o->workers);
    if (o->n_model_roots < 0 || o->n_model_roots > OT_SERVER_MAX_MODEL_ROOTS)
        return ot_errorf(OT_E_INVALID, "at most %d --model-root directories", OT_SERVER_MAX_MODEL_ROOTS);
    ot_server *s = calloc(1, sizeof *s);
    if (!s) return ot_errorf(OT_E_NOMEM, "out of memory");
    pthread_mutex_init(&s->metrics_mu, NULL);
    pthread_mutex_init(&s->sse_mu, NULL);
    s->max_upload_bytes = o->max_upload_bytes > 0 ? o->max_upload_bytes : OT_SERVER_DEFAULT_UPLOAD;
    ot_status st = OT_OK;
    if (!(s->data_dir = strdup(o->data_dir))) st = ot_errorf(OT_E_NOMEM, "out of memory");
    if (!st && o->api_key) {
        if (!*o->api_key) st = ot_errorf(OT_E_INVALID, "the API key is empty");
        else if (!(s->api_key = strdup(o->api_key))) st = ot_errorf(OT_E_NOMEM, "out of memory");
        else s->api_key_len = strlen(s->api_key);
    }
    for (int i = 0; !st && i < o->n_model_roots; i++) {
        char *rp = realpath(o->model_roots[i], NULL);
        if (!rp) st = ot_errorf(OT_E_INVALID, "--model-root '%s': no such directory", o->model_roots[i]);
        else s->model_roots[s->n_model_roots++] = rp;
    }
    struct sockaddr_storage ss;
    int ipv6 = 0;
    if (!st) st = resolve_host(o->host ? o->host : "127.0.0.1", o->port, &ss, &ipv6);
    if (!st) st = ot_store_open(o->data_dir, &s->store);
    int requeued = 0;
    if (!st) st = ot_store_recover_after_restart(s->store, &requeued);
    if (!st) {
        char exe[4096];
        const char *bin = o->onnxtune_bin;
        if (!bin) {
            ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
            if (n <= 0) st = ot_errorf(OT_E_IO, "cannot resolve /proc/self/exe");
            else exe[n] = 0, bin = exe;
        }
        if (!st) st = ot_runner_start(s->store, o->data_dir, bin, o->workers, &s->runner);
    }
    if (!st) {
        unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        if (ipv6) flags |= MHD_USE_IPv6;
        unsigned threads = o->threads > 0 ? (unsigned)o->threads : 4;
        s->daemon = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, s,
                                     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                     MHD_OPTION_THREAD_POOL_SIZE, threads,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)256 * 1024,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned)512,
                                     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                     MHD_OPTION_END);
        if (!s->daemon) st = ot_errorf(OT_E_IO, "cannot listen on %s port %d (in use, or not a local address?)",
                                       o->host ? o->host : "127.0.0.1", o->port);
    }
    if (!st) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
        s->port = di ? di->port : o->port;
        if (pthread_create(&s->ticker, NULL, ticker_main, s) != 0) st = ot_errorf(OT_E_INTERNAL, "cannot start a thread");
        else s->ticker_started = 1;
    }
    if (st) {
        ot_server_stop(s);
        return st;
    }
    *out = s;
    return OT_OK;
}
