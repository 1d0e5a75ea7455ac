/* routes_files.c — /v1/files: multipart upload (fields `file` and `purpose`) streamed to a
 * temporary file under the store's tmp/ dir, JSONL validation with line-numbered errors,
 * then ot_store_file_add renames it into files/<id>; list, retrieve, delete and content.
 *
 * JSONL rules (trainer/data.h): every non-blank line is a JSON object; the first record
 * fixes the form. Language-model form: "input_ids" an array of integers, optional "labels"
 * and "attention_mask" arrays of integers of the same length. Generic form: every value a
 * number or (nested) arrays of numbers, and the same keys on every line. Ids in URLs are
 * checked with ot_id_valid before anything looks them up. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "service/server.h"

struct ot_upload {
    struct MHD_PostProcessor *pp;
    int fd;
    char tmp_path[4096];
    int64_t bytes;
    int too_large, io_error, got_file, dup_file;
    char purpose[64];
    size_t purpose_len;
    char filename[256];
};

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                 const char *content_type, const char *transfer_encoding, const char *data, uint64_t off,
                                 size_t size) {
    (void)kind, (void)content_type, (void)transfer_encoding;
    ot_http_req *r = cls;
    struct ot_upload *u = r->upload;
    if (!key) return MHD_YES;
    if (!strcmp(key, "purpose")) {
        if (off == 0) u->purpose_len = 0;
        size_t room = sizeof u->purpose - 1 - u->purpose_len, k = size < room ? size : room;
        memcpy(u->purpose + u->purpose_len, data, k);
        u->purpose_len += k;
        u->purpose[u->purpose_len] = 0;
        return MHD_YES;
    }
    if (strcmp(key, "file")) return MHD_YES; /* other fields are ignored */
    if (off == 0 && u->got_file && u->bytes > 0) u->dup_file = 1;
    if (!u->got_file) {
        u->got_file = 1;
        snprintf(u->filename, sizeof u->filename, "%s", filename && *filename ? filename : "upload.jsonl");
        snprintf(u->tmp_path, sizeof u->tmp_path, "%s/upload-XXXXXX", ot_store_tmp_dir(r->srv->store));
        u->fd = mkstemp(u->tmp_path);
        if (u->fd < 0) {
            u->io_error = errno;
            u->tmp_path[0] = 0;
        }
    }
    if (u->dup_file || u->too_large || u->io_error) return MHD_YES;
    if (u->bytes + (int64_t)size > r->srv->max_upload_bytes) {
        u->too_large = 1;
        return MHD_YES;
    }
    for (size_t done = 0; done < size;) {
        ssize_t w = write(u->fd, data + done, size - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            u->io_error = errno ? errno : EIO;
            return MHD_YES;
        }
        done += (size_t)w;
    }
    u->bytes += (int64_t)size;
    return MHD_YES;
}

int ot_upload_begin(ot_http_req *r, enum MHD_Result *ret) {
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0) {
        *ret = ot_http_error(r, 415, NULL, NULL, "unsupported_media_type",
                             "POST /v1/files expects multipart/form-data with fields 'file' and 'purpose', got '%s'",
                             ct ? ct : "no Content-Type");
        return 0;
    }
    struct ot_upload *u = calloc(1, sizeof *u);
    if (!u) {
        *ret = MHD_NO;
        return 0;
    }
    u->fd = -1;
    r->upload = u;
    u->pp = MHD_create_post_processor(r->conn, 64 * 1024, post_iter, r);
    if (!u->pp) {
        *ret = ot_http_error(r, 400, NULL, NULL, "invalid_multipart", "malformed multipart/form-data (missing boundary?)");
        return 0;
    }
    return 1;
}

int ot_upload_data(ot_http_req *r, const char *data, size_t size) {
    struct ot_upload *u = r->upload;
    if (!u || !u->pp) return 1;
    if (r->body_seen > (uint64_t)r->srv->max_upload_bytes + (1u << 20)) return 0; /* unannounced flood */
    return MHD_post_process(u->pp, data, size) == MHD_YES;
}

void ot_upload_free(ot_http_req *r) {
    struct ot_upload *u = r->upload;
    if (!u) return;
    if (u->pp) MHD_destroy_post_processor(u->pp);
    if (u->fd >= 0) close(u->fd);
    if (u->tmp_path[0]) unlink(u->tmp_path); /* still here: the upload was not kept */
    free(u);
    r->upload = NULL;
}

/* ---- JSONL validation ---------------------------------------------------------------- */

static int int_array(const cJSON *a, int *len) {
    if (!cJSON_IsArray(a)) return 0;
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int64_t)e->valuedouble) return 0;
        n++;
    }
    *len = n;
    return 1;
}

static int numeric_tree(const cJSON *v, int depth) {
    if (cJSON_IsNumber(v)) return 1;
    if (!cJSON_IsArray(v) || depth > 8) return 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) if (!numeric_tree(e, depth + 1)) return 0;
    return 1;
}

/* Returns 1 when the file is valid JSONL training data, else 0 with msg filled. */
static int validate_jsonl(const char *path, char *msg, size_t msz) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, msz, "cannot read the upload back: %s", strerror(errno));
        return 0;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, records = 0;
    int form = 0; /* 1 = language model, 2 = generic */
    cJSON *first = NULL;
    int ok = 1;
    while (ok && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t i = 0;
        while (i < (size_t)len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n')) i++;
        if (i == (size_t)len) continue;
        if (ot_json_depth(line, (size_t)len) > OT_HTTP_JSON_DEPTH) {
            snprintf(msg, msz, "line %ld: JSON nests deeper than %d levels", lineno, OT_HTTP_JSON_DEPTH);
            ok = 0;
            break;
        }
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        if (!j || !cJSON_IsObject(j) || !j->child) {
            snprintf(msg, msz, "line %ld: %s", lineno, !j ? "not valid JSON" : "expected a non-empty JSON object");
            cJSON_Delete(j);
            ok = 0;
            break;
        }
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "input_ids");
        int this_form = ids ? 1 : 2;
        if (!form) form = this_form;
        if (form != this_form) {
            snprintf(msg, msz, "line %ld: %s, but line 1 set the %s form", lineno,
                     ids ? "has input_ids" : "has no input_ids", form == 1 ? "input_ids" : "generic");
            ok = 0;
        } else if (form == 1) {
            int n = 0, m = 0;
            if (!int_array(ids, &n) || n == 0) {
                snprintf(msg, msz, "line %ld: input_ids must be a non-empty array of integers", lineno);
                ok = 0;
            }
            const char *opt[] = {"labels", "attention_mask"};
            for (int k = 0; ok && k < 2; k++) {
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, opt[k]);
                if (a && (!int_array(a, &m) || m != n)) {
                    snprintf(msg, msz, "line %ld: %s must be an array of %d integers (like input_ids)", lineno, opt[k], n);
                    ok = 0;
                }
            }
        } else {
            const cJSON *e;
            cJSON_ArrayForEach(e, j) {
                if (!numeric_tree(e, 0)) {
                    snprintf(msg, msz,
                             "line %ld: key '%s' must be a number or (nested) arrays of numbers (records are "
                             "{\"input_ids\": [...]} or the model's input names mapping to arrays)",
                             lineno, e->string);
                    ok = 0;
                    break;
                }
                if (ok && first && !cJSON_GetObjectItemCaseSensitive(first, e->string)) {
                    snprintf(msg, msz, "line %ld: key '%s' is not in the first record", lineno, e->string);
                    ok = 0;
                    break;
                }
            }
            if (ok && first && cJSON_GetArraySize(first) != cJSON_GetArraySize(j)) {
                snprintf(msg, msz, "line %ld: keys differ from the first record's", lineno);
                ok = 0;
            }
        }
        if (ok) records++;
        if (ok && !first) first = j;
        else cJSON_Delete(j);
    }
    if (ok && ferror(f)) {
        snprintf(msg, msz, "cannot read the upload back");
        ok = 0;
    }
    if (ok && records == 0) {
        snprintf(msg, msz, "the file has no records (expected JSONL: one JSON object per line)");
        ok = 0;
    }
    cJSON_Delete(first);
    free(line);
    fclose(f);
    return ok;
}

/* ---- handlers ------------------------------------------------------------------------ */

static cJSON *file_json(const ot_file_rec *f) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", f->id);
    cJSON_AddStringToObject(o, "object", "file");
    cJSON_AddNumberToObject(o, "bytes", (double)f->bytes);
    cJSON_AddNumberToObject(o, "created_at", (double)f->created_at);
    cJSON_AddStringToObject(o, "filename", f->filename ? f->filename : "");
    cJSON_AddStringToObject(o, "purpose", f->purpose ? f->purpose : "fine-tune");
    cJSON_AddStringToObject(o, "status", f->status ? f->status : "processed");
    cJSON_AddNullToObject(o, "status_details");
    return o;
}

static enum MHD_Result upload_finish(ot_http_req *r) {
    struct ot_upload *u = r->upload;
    ot_server *s = r->srv;
    if (!u) return ot_http_error(r, 500, NULL, NULL, NULL, "upload state missing");
    int pp_ok = MHD_destroy_post_processor(u->pp) == MHD_YES;
    u->pp = NULL;
    if (u->too_large)
        return ot_http_error(r, 413, NULL, "file", "file_too_large", "the uploaded file exceeds the limit of %lld bytes",
                             (long long)s->max_upload_bytes);
    if (!pp_ok) return ot_http_error(r, 400, NULL, NULL, "invalid_multipart", "malformed or truncated multipart/form-data body");
    if (!u->got_file) return ot_http_error(r, 400, NULL, "file", "missing_required_parameter", "missing multipart field 'file'");
    if (u->dup_file) return ot_http_error(r, 400, NULL, "file", "invalid_value", "more than one 'file' part");
    if (u->io_error)
        return ot_http_error(r, 500, NULL, NULL, NULL, "cannot store the upload: %s", strerror(u->io_error));
    if (!u->purpose_len) return ot_http_error(r, 400, NULL, "purpose", "missing_required_parameter", "missing multipart field 'purpose'");
    if (strcmp(u->purpose, "fine-tune"))
        return ot_http_error(r, 400, NULL, "purpose", "invalid_value", "purpose '%s' is not supported (expected 'fine-tune')",
                             u->purpose);
    if (fsync(u->fd) != 0 || close(u->fd) != 0) {
        u->fd = -1;
        return ot_http_error(r, 500, NULL, NULL, NULL, "cannot store the upload: %s", strerror(errno));
    }
    u->fd = -1;
    if (u->bytes == 0) return ot_http_error(r, 400, NULL, "file", "invalid_file_format", "the uploaded file is empty");
    char msg[512];
    if (!validate_jsonl(u->tmp_path, msg, sizeof msg))
        return ot_http_error(r, 400, NULL, "file", "invalid_file_format", "file '%s' %s", u->filename, msg);
    ot_file_rec rec = {0};
    ot_status st = ot_store_file_add(s->store, u->tmp_path, u->filename, u->purpose, &rec);
    if (st) return ot_http_error(r, 500, NULL, NULL, NULL, "cannot record the upload: %s", ot_last_error());
    u->tmp_path[0] = 0; /* the store owns it now */
    cJSON *o = file_json(&rec);
    ot_file_rec_free(&rec);
    return ot_http_json(r, 200, o);
}

static enum MHD_Result list_files(ot_http_req *r) {
    enum MHD_Result ret = MHD_YES;
    long limit;
    if (!ot_http_query_int(r, "limit", 10000, 1, 10000, &limit, &ret)) return ret;
    const char *after = ot_http_query(r, "after"), *purpose = ot_http_query(r, "purpose");
    if (after && !ot_id_valid(after, OT_ID_FILE))
        return ot_http_error(r, 400, NULL, "after", "invalid_value", "'after' is not a file id");
    ot_file_rec *v = NULL;
    int n = 0, more = 0;
    ot_status st = ot_store_file_list(r->srv->store, purpose, after, (int)limit, &v, &n, &more);
    if (st == OT_E_INVALID) return ot_http_error(r, 400, NULL, "after", "invalid_value", "%s", ot_last_error());
    if (st) return ot_http_error(r, 500, NULL, NULL, NULL, "job store: %s", ot_last_error());
    cJSON *o = cJSON_CreateObject(), *data = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "object", "list");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(data, file_json(&v[i]));
    cJSON_AddItemToObject(o, "data", data);
    cJSON_AddBoolToObject(o, "has_more", more);
    if (n) {
        cJSON_AddStringToObject(o, "first_id", v[0].id);
        cJSON_AddStringToObject(o, "last_id", v[n - 1].id);
    }
    ot_file_recs_free(v, n);
    return ot_http_json(r, 200, o);
}

static enum MHD_Result file_content(ot_http_req *r, const ot_file_rec *f) {
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0) close(fd);
        return ot_http_error(r, 500, NULL, NULL, NULL, "file '%s': content missing on disk", f->id);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd64((uint64_t)sb.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/jsonl");
    return ot_http_queue(r, 200, resp);
}

enum MHD_Result ot_route_files(ot_http_req *r, char **seg, int nseg) {
    if (nseg == 2) return !strcmp(r->method, "POST") ? upload_finish(r) : list_files(r);
    const char *id = seg[2];
    if (!ot_id_valid(id, OT_ID_FILE))
        return ot_http_error(r, 404, NULL, "file_id", "invalid_id", "no such file: '%s' is not a file id", id);
    ot_file_rec f = {0};
    int found = 0;
    ot_status st = ot_store_file_get(r->srv->store, id, &f, &found);
    if (st) return ot_http_error(r, 500, NULL, NULL, NULL, "job store: %s", ot_last_error());
    if (!found) return ot_http_error(r, 404, NULL, "file_id", "file_not_found", "no such file: %s", id);
    enum MHD_Result ret;
    if (nseg == 4) {
        ret = file_content(r, &f);
    } else if (!strcmp(r->method, "DELETE")) {
        st = ot_store_file_delete(r->srv->store, id, &found);
        if (st) {
            ret = ot_http_error(r, 500, NULL, NULL, NULL, "job store: %s", ot_last_error());
        } else if (!found) {
            ret = ot_http_error(r, 404, NULL, "file_id", "file_not_found", "no such file: %s", id);
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", id);
            cJSON_AddStringToObject(o, "object", "file");
            cJSON_AddBoolToObject(o, "deleted", 1);
            ret = ot_http_json(r, 200, o);
        }
    } else {
        ret = ot_http_json(r, 200, file_json(&f));
    }
    ot_file_rec_free(&f);
    return ret;
}
