/* server.h — the HTTP front of `onnxtune serve`: a libmicrohttpd daemon (internal epoll
 * thread pool, connection timeout, per-connection memory limit, connection cap) that
 * authenticates, routes and meters every request, and owns the job store and the runner
 * for the life of the server.
 *
 * Request flow: the first MHD call matches the path against the route table (404 / 405
 * with Allow), checks `Authorization: Bearer <key>` when a key is configured (401), and
 * refuses an announced body over the limit (413). JSON bodies are collected up to
 * OT_SERVER_JSON_LIMIT; multipart uploads are streamed to a temporary file by
 * routes_files.c. The route handler runs once the whole body is in. Every request is
 * counted by method, route pattern and status, with its latency, for /metrics.
 *
 * The second half of this header is internal: the server record and the route handlers,
 * shared by the routes_*.c files only. */
#ifndef OT_SERVICE_SERVER_H
#define OT_SERVICE_SERVER_H

#include <pthread.h>
#include <stdint.h>

#include "core/status.h"
#include "service/http_util.h"
#include "service/runner.h"
#include "service/store.h"

#define OT_SERVER_MAX_MODEL_ROOTS 16
#define OT_SERVER_JSON_LIMIT (1u << 20)                  /* 1 MiB JSON request bodies */
#define OT_SERVER_DEFAULT_UPLOAD ((int64_t)512 << 20)    /* 512 MiB uploads */

typedef struct ot_server_opts {
    const char *host;      /* "127.0.0.1" when NULL */
    int port;              /* 0: an ephemeral port (ot_server_port tells which) */
    const char *data_dir;  /* required */
    int workers;           /* concurrent training jobs, 1..64 */
    int threads;           /* HTTP thread pool size; 0: 4 */
    const char *api_key;   /* NULL: no authentication */
    const char *model_roots[OT_SERVER_MAX_MODEL_ROOTS];
    int n_model_roots;     /* 0: local model paths are refused */
    int64_t max_upload_bytes; /* 0: OT_SERVER_DEFAULT_UPLOAD */
    const char *onnxtune_bin; /* executable the runner starts; NULL: /proc/self/exe */
} ot_server_opts;

typedef struct ot_server ot_server;

/* Opens the store (recovering jobs a dead server left running), starts the runner and the
 * daemon. Errors name the failing input (bad host, port in use, data dir). */
ot_status ot_server_start(const ot_server_opts *opts, ot_server **out);
/* The port the daemon listens on. */
int ot_server_port(const ot_server *s);
/* Ends event streams, stops the daemon, then the runner (interrupted jobs stay running in
 * the store and resume on the next start), closes the store. NULL-safe. */
void ot_server_stop(ot_server *s);

/* ---- internal: shared with routes_*.c ---------------------------------------------- */

#define OT_METRIC_BUCKETS 12
#define OT_METRIC_SLOTS 512

typedef struct ot_metric_slot {
    int route;          /* -1 unused */
    char method[8];
    unsigned code;
    uint64_t count;
} ot_metric_slot;

struct ot_sse_waiter;

struct ot_server {
    struct MHD_Daemon *daemon;
    ot_store *store;
    ot_runner *runner;
    char *data_dir;
    char *api_key;
    size_t api_key_len;
    char *model_roots[OT_SERVER_MAX_MODEL_ROOTS]; /* realpath'd */
    int n_model_roots;
    int64_t max_upload_bytes;
    int port;
    /* metrics */
    pthread_mutex_t metrics_mu;
    ot_metric_slot slots[OT_METRIC_SLOTS];
    uint64_t lat_buckets[64][OT_METRIC_BUCKETS + 1]; /* per route; last = +Inf */
    double lat_sum[64];
    uint64_t lat_count[64];
    /* event streams parked (suspended) until the ticker resumes them */
    pthread_mutex_t sse_mu;
    struct ot_sse_waiter *sse_waiting;
    int sse_open;
    int stopping;
    pthread_t ticker;
    int ticker_started;
};

/* Route table: patterns with {id} / {name} placeholders, for metrics labels. */
int ot_route_count(void);
const char *ot_route_pattern(int route);
extern const double ot_metric_bucket_bounds[OT_METRIC_BUCKETS];

/* Parks an event-stream connection until the next tick (called from a content reader;
 * returns 0 when the server is stopping and the stream must end instead). */
int ot_server_sse_park(ot_server *s, struct MHD_Connection *conn);

/* Handlers: the request's full body is in; seg[0..nseg) are the path segments. */
enum MHD_Result ot_route_page(ot_http_req *r);
enum MHD_Result ot_route_healthz(ot_http_req *r);
enum MHD_Result ot_route_metrics(ot_http_req *r);
enum MHD_Result ot_route_files(ot_http_req *r, char **seg, int nseg);
enum MHD_Result ot_route_jobs(ot_http_req *r, char **seg, int nseg);

/* Multipart upload streaming for POST /v1/files (routes_files.c). begin returns 0 and
 * queues an error when the request cannot be an upload (wrong content type). */
int ot_upload_begin(ot_http_req *r, enum MHD_Result *ret);
/* Feeds body bytes; returns 0 when the connection must be closed. */
int ot_upload_data(ot_http_req *r, const char *data, size_t size);
void ot_upload_free(ot_http_req *r);

#endif
