/* http_util.c — responses, the error object and request parsing helpers (see http_util.h).
 * Every response carries Cache-Control: no-store and X-Content-Type-Options: nosniff. */
#include "service/http_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double ot_http_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

enum MHD_Result ot_http_queue(ot_http_req *r, unsigned status, struct MHD_Response *resp) {
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        r->handled = 1;
        r->status = status;
    }
    return ret;
}

enum MHD_Result ot_http_text(ot_http_req *r, unsigned status, const char *content_type, const char *body, size_t len) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", content_type);
    return ot_http_queue(r, status, resp);
}

enum MHD_Result ot_http_json(ot_http_req *r, unsigned status, cJSON *obj) {
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!s) return ot_http_text(r, 500, "application/json",
                                "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}",
                                88);
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return ot_http_queue(r, status, resp);
}

static const char *type_for(unsigned status) {
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 405: return "method_not_allowed";
    case 409: return "conflict_error";
    case 413: return "request_too_large";
    case 415: return "unsupported_media_type";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

enum MHD_Result ot_http_error(ot_http_req *r, unsigned status, const char *type, const char *param, const char *code,
                              const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    if (err) {
        cJSON_AddStringToObject(err, "message", msg);
        cJSON_AddStringToObject(err, "type", type ? type : type_for(status));
        if (param) cJSON_AddStringToObject(err, "param", param);
        else cJSON_AddNullToObject(err, "param");
        if (code) cJSON_AddStringToObject(err, "code", code);
        else cJSON_AddNullToObject(err, "code");
    }
    return ot_http_json(r, status, root);
}

int ot_json_depth(const char *text, size_t len) {
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max) max = depth;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return max;
}

int ot_http_parse_body(ot_http_req *r, cJSON **out, enum MHD_Result *ret) {
    *out = NULL;
    if (r->body_too_large) {
        *ret = ot_http_error(r, 413, NULL, NULL, "request_too_large", "request body exceeds the limit of %u bytes",
                             (unsigned)r->body_cap);
        return 0;
    }
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    if (r->body_len && ct && strncasecmp(ct, "application/json", 16) != 0) {
        *ret = ot_http_error(r, 415, NULL, NULL, "unsupported_media_type", "expected Content-Type application/json, got '%s'", ct);
        return 0;
    }
    if (!r->body_len) {
        *ret = ot_http_error(r, 400, NULL, NULL, "invalid_json", "the request needs a JSON object body");
        return 0;
    }
    if (ot_json_depth(r->body, r->body_len) > OT_HTTP_JSON_DEPTH) {
        *ret = ot_http_error(r, 400, NULL, NULL, "invalid_json", "JSON body nests deeper than %d levels", OT_HTTP_JSON_DEPTH);
        return 0;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(r->body, r->body_len, &end, 0);
    if (!j) {
        size_t off = end && end >= r->body ? (size_t)(end - r->body) : 0;
        *ret = ot_http_error(r, 400, NULL, NULL, "invalid_json", "malformed JSON body near byte %zu", off);
        return 0;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        *ret = ot_http_error(r, 400, NULL, NULL, "invalid_json", "the JSON body must be an object");
        return 0;
    }
    *out = j;
    return 1;
}

const char *ot_http_query(ot_http_req *r, const char *key) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

int ot_http_query_int(ot_http_req *r, const char *key, long def, long min, long max, long *out, enum MHD_Result *ret) {
    const char *s = ot_http_query(r, key);
    if (!s) {
        *out = def;
        return 1;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < min || v > max) {
        *ret = ot_http_error(r, 400, NULL, key, "invalid_parameter", "query parameter '%s' must be an integer in [%ld, %ld]",
                             key, min, max);
        return 0;
    }
    *out = v;
    return 1;
}

int ot_http_ct_equal(const char *a, size_t alen, const char *b, size_t blen) {
    /* Walks the expected secret `a` once whatever b is; b is indexed modulo its length. */
    volatile unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < alen; i++) diff |= (unsigned char)(a[i] ^ (blen ? b[i % blen] : 0));
    return diff == 0;
}
