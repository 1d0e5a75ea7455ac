/* http_util.h — the per-request context and the response helpers every route uses.
 *
 * Owns: the ot_http_req record MHD carries between calls of one request, JSON and text
 * responses, the error object {"error":{"message","type","param","code"}} (every error
 * response goes through ot_http_error), small parsing helpers (JSON body with a nesting
 * limit, query integers) and a constant-time comparison. Each helper that
 * queues a response records the status code in the request for /metrics and returns the
 * MHD_Result to hand back to MHD. Nothing here touches the job store or the file system. */
#ifndef OT_HTTP_UTIL_H
#define OT_HTTP_UTIL_H

#include <cJSON.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

struct ot_server;
struct ot_upload;
struct ot_sse;

/* Body kinds a route may take. */
enum { OT_BODY_NONE = 0, OT_BODY_JSON = 1, OT_BODY_UPLOAD = 2 };

typedef struct ot_http_req {
    struct ot_server *srv;
    struct MHD_Connection *conn;
    const char *method; /* owned by MHD for the life of the request */
    char *path;         /* copy of the decoded URL path */
    int route;          /* index in the server's route table, -1 if none matched */
    int body_kind;
    /* JSON bodies: collected here up to the server's JSON limit. */
    char *body;
    size_t body_len, body_cap;
    uint64_t body_seen;  /* bytes received, including discarded ones */
    int body_too_large;
    struct ot_upload *upload; /* multipart state (routes_files.c) */
    int handled;              /* a response was queued */
    unsigned status;          /* status of the queued response, for /metrics */
    double t_start;           /* monotonic seconds at the first call */
} ot_http_req;

/* Monotonic seconds. */
double ot_http_now(void);

/* Queues `obj` printed unformatted as application/json with `status`; always frees obj. */
enum MHD_Result ot_http_json(ot_http_req *r, unsigned status, cJSON *obj);
/* Queues a copy of body[0..len) with the given content type. */
enum MHD_Result ot_http_text(ot_http_req *r, unsigned status, const char *content_type, const char *body, size_t len);
/* Queues an already built response (adds the common headers), destroys our reference. */
enum MHD_Result ot_http_queue(ot_http_req *r, unsigned status, struct MHD_Response *resp);
/* Queues {"error":{"message","type","param","code"}}. `type` NULL picks one from the status
 * (400 invalid_request_error, 401 authentication_error, 404 not_found_error, ...); param and
 * code may be NULL (JSON null). */
enum MHD_Result ot_http_error(ot_http_req *r, unsigned status, const char *type, const char *param, const char *code,
                              const char *fmt, ...) OT_PRINTF(6, 7);

/* Parses the collected JSON body into *out (an object). On failure queues the 400/413/415
 * error itself and returns 0; on success returns 1 and the caller owns *out. Nesting deeper
 * than OT_HTTP_JSON_DEPTH is refused before cJSON sees the text. */
#define OT_HTTP_JSON_DEPTH 32
int ot_http_parse_body(ot_http_req *r, cJSON **out, enum MHD_Result *ret);

/* Greatest nesting depth of arrays/objects in text[0..len), strings skipped. */
int ot_json_depth(const char *text, size_t len);

/* Query parameter (GET argument) or NULL. */
const char *ot_http_query(ot_http_req *r, const char *key);
/* Integer query parameter in [min, max]; absent gives def. Returns 0 and queues a 400 naming
 * the parameter when the value is not such an integer. */
int ot_http_query_int(ot_http_req *r, const char *key, long def, long min, long max, long *out, enum MHD_Result *ret);

/* Constant-time equality for secrets (time depends only on the lengths). */
int ot_http_ct_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
