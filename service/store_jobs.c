/* store_jobs.c — jobs, events and checkpoints in the job store (see store.h).
 *
 * Invariants: a job's status only changes through compare-and-set statements (one UPDATE
 * whose WHERE clause names the allowed source states, or an IMMEDIATE transaction), so
 * concurrent callers (a cancel and a finishing worker) see exactly one winner; a job enters
 * a terminal state at most once and then never leaves it. Every function commits before it
 * returns (synchronous=FULL, see store.c). Callers hold no lock; each function takes st->mu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "service/store_internal.h"

static const char *const STATE_NAMES[OT_JOB_NSTATES] = {"validating_files", "queued",  "running",
                                                          "succeeded",        "failed", "cancelled"};

const char *ot_job_status_name(ot_job_status s) {
    return (int)s >= 0 && s < OT_JOB_NSTATES ? STATE_NAMES[s] : "unknown";
}

ot_status ot_job_status_parse(const char *s, ot_job_status *out) {
    for (int i = 0; s && i < OT_JOB_NSTATES; i++)
        if (!strcmp(s, STATE_NAMES[i])) {
            *out = (ot_job_status)i;
            return OT_OK;
        }
    return ot_errorf(OT_E_INVALID, "unknown job status '%.64s'", s ? s : "");
}

int ot_job_status_terminal(ot_job_status s) {
    return s == OT_JOB_SUCCEEDED || s == OT_JOB_FAILED || s == OT_JOB_CANCELLED;
}

/* ---- records ------------------------------------------------------------------------- */

void ot_job_rec_free(ot_job_rec *r) {
    if (!r) return;
    free(r->model), free(r->training_file), free(r->validation_file), free(r->suffix), free(r->metadata);
    free(r->request), free(r->hyperparameters), free(r->error), free(r->fine_tuned_model), free(r->result_files);
    free(r->idempotency_key);
    memset(r, 0, sizeof *r);
}
void ot_event_rec_free(ot_event_rec *r) {
    if (!r) return;
    free(r->level), free(r->message), free(r->data);
    memset(r, 0, sizeof *r);
}
void ot_ckpt_rec_free(ot_ckpt_rec *r) {
    if (!r) return;
    free(r->metrics), free(r->path);
    memset(r, 0, sizeof *r);
}
void ot_job_recs_free(ot_job_rec *v, int n) {
    for (int i = 0; v && i < n; i++) ot_job_rec_free(&v[i]);
    free(v);
}
void ot_event_recs_free(ot_event_rec *v, int n) {
    for (int i = 0; v && i < n; i++) ot_event_rec_free(&v[i]);
    free(v);
}
void ot_ckpt_recs_free(ot_ckpt_rec *v, int n) {
    for (int i = 0; v && i < n; i++) ot_ckpt_rec_free(&v[i]);
    free(v);
}

#define EVENT_COLS "id, job_id, seq, created_at, level, message, data"
static ot_status read_event_row(sqlite3_stmt *s, void *rec);

#define JOB_COLS                                                                                         \
    "id, seq, created_at, started_at, finished_at, status, model, training_file, validation_file, suffix, " \
    "seed, metadata, request, hyperparameters, error, fine_tuned_model, result_files, trained_tokens, "    \
    "estimated_finish, idempotency_key, attempt, pid"

static int64_t col_i64(sqlite3_stmt *s, int i) {
    return sqlite3_column_type(s, i) == SQLITE_NULL ? 0 : (int64_t)sqlite3_column_int64(s, i);
}

static ot_status read_job_row(sqlite3_stmt *s, void *rec) {
    ot_job_rec *r = rec;
    int oom = 0;
    ot_store_col_id(s, 0, r->id);
    r->seq = col_i64(s, 1);
    r->created_at = col_i64(s, 2);
    r->started_at = col_i64(s, 3);
    r->finished_at = col_i64(s, 4);
    const char *st = (const char *)sqlite3_column_text(s, 5);
    r->status = OT_JOB_FAILED;
    for (int i = 0; st && i < OT_JOB_NSTATES; i++)
        if (!strcmp(st, STATE_NAMES[i])) r->status = (ot_job_status)i;
    r->model = ot_store_col_dup(s, 6, &oom);
    r->training_file = ot_store_col_dup(s, 7, &oom);
    r->validation_file = ot_store_col_dup(s, 8, &oom);
    r->suffix = ot_store_col_dup(s, 9, &oom);
    r->has_seed = sqlite3_column_type(s, 10) != SQLITE_NULL;
    r->seed = col_i64(s, 10);
    r->metadata = ot_store_col_dup(s, 11, &oom);
    r->request = ot_store_col_dup(s, 12, &oom);
    r->hyperparameters = ot_store_col_dup(s, 13, &oom);
    r->error = ot_store_col_dup(s, 14, &oom);
    r->fine_tuned_model = ot_store_col_dup(s, 15, &oom);
    r->result_files = ot_store_col_dup(s, 16, &oom);
    r->trained_tokens = col_i64(s, 17);
    r->estimated_finish = col_i64(s, 18);
    r->idempotency_key = ot_store_col_dup(s, 19, &oom);
    r->attempt = (int)col_i64(s, 20);
    r->pid = col_i64(s, 21);
    if (oom || !r->request || !r->hyperparameters || !r->result_files)
        return ot_errorf(OT_E_NOMEM, "job store: out of memory reading job %s", r->id);
    return OT_OK;
}
static void drop_job(void *rec) { ot_job_rec_free(rec); }

/* Reads one job by id under the lock. */
static ot_status get_job_locked(ot_store *st, const char *id, ot_job_rec *out, int *found) {
    sqlite3_stmt *s;
    *found = 0;
    OT_TRY(ot_store_prep(st, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1", &s));
    ot_store_bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    ot_status status = OT_OK;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        status = read_job_row(s, out);
        *found = status == OT_OK;
    } else if (rc != SQLITE_DONE) {
        status = ot_store_dberr(st, "get job");
    }
    sqlite3_finalize(s);
    return status;
}

/* Runs a one-row write statement already bound; *changes = rows changed. */
static ot_status step_write(ot_store *st, sqlite3_stmt *q, const char *what, int *changes) {
    int rc = sqlite3_step(q);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return ot_store_dberr(st, what);
    if (changes) *changes = sqlite3_changes(st->db);
    return OT_OK;
}

static void rollback(ot_store *st) { sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL); }

/* ---- jobs ---------------------------------------------------------------------------- */

ot_status ot_store_job_create(ot_store *st, const ot_job_new *in, ot_job_rec *out, int *existed) {
    *existed = 0;
    if (!in || !in->request || !in->model) return ot_errorf(OT_E_INVALID, "job create: missing model or request");
    if (in->initial != OT_JOB_QUEUED && in->initial != OT_JOB_VALIDATING_FILES)
        return ot_errorf(OT_E_INVALID, "job create: initial status must be queued or validating_files, got %s",
                         ot_job_status_name(in->initial));
    char id[OT_ID_MAX];
    OT_TRY(ot_id_new(OT_ID_JOB, id));
    pthread_mutex_lock(&st->mu);
    ot_status s = ot_store_exec(st, "BEGIN IMMEDIATE");
    int in_txn = s == OT_OK;
    sqlite3_stmt *q = NULL;
    if (s == OT_OK && in->idempotency_key) {
        s = ot_store_prep(st, "SELECT id FROM jobs WHERE idempotency_key = ?1", &q);
        if (s == OT_OK) {
            ot_store_bind_text(q, 1, in->idempotency_key);
            int rc = sqlite3_step(q);
            if (rc == SQLITE_ROW) {
                *existed = 1;
                ot_store_col_id(q, 0, id);
            } else if (rc != SQLITE_DONE) {
                s = ot_store_dberr(st, "idempotency lookup");
            }
        }
        sqlite3_finalize(q);
        q = NULL;
    }
    if (s == OT_OK && !*existed) {
        s = ot_store_prep(st,
                          "INSERT INTO jobs(id, created_at, status, model, training_file, validation_file, suffix, seed,"
                          " metadata, request, hyperparameters, idempotency_key)"
                          " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                          &q);
        if (s == OT_OK) {
            ot_store_bind_text(q, 1, id);
            sqlite3_bind_int64(q, 2, (sqlite3_int64)time(NULL));
            ot_store_bind_text(q, 3, STATE_NAMES[in->initial]);
            ot_store_bind_text(q, 4, in->model);
            ot_store_bind_text(q, 5, in->training_file);
            ot_store_bind_text(q, 6, in->validation_file);
            ot_store_bind_text(q, 7, in->suffix);
            if (in->has_seed) sqlite3_bind_int64(q, 8, in->seed);
            else sqlite3_bind_null(q, 8);
            ot_store_bind_text(q, 9, in->metadata);
            ot_store_bind_text(q, 10, in->request);
            ot_store_bind_text(q, 11, in->hyperparameters ? in->hyperparameters : "{}");
            ot_store_bind_text(q, 12, in->idempotency_key);
            s = step_write(st, q, "create job", NULL);
        }
        sqlite3_finalize(q);
    }
    if (s == OT_OK) s = ot_store_exec(st, "COMMIT");
    else if (in_txn) rollback(st);
    int found = 0;
    if (s == OT_OK) s = get_job_locked(st, id, out, &found);
    if (s == OT_OK && !found) s = ot_errorf(OT_E_INTERNAL, "job %s vanished after create", id);
    pthread_mutex_unlock(&st->mu);
    return s;
}

ot_status ot_store_job_get(ot_store *st, const char *id, ot_job_rec *out, int *found) {
    *found = 0;
    if (!ot_id_valid(id, OT_ID_JOB)) return OT_OK;
    pthread_mutex_lock(&st->mu);
    ot_status s = get_job_locked(st, id, out, found);
    pthread_mutex_unlock(&st->mu);
    return s;
}

ot_status ot_store_job_list(ot_store *st, const char *after, int limit, ot_job_rec **out, int *n, int *has_more) {
    *out = NULL, *n = 0;
    if (has_more) *has_more = 0;
    OT_TRY(ot_store_check_limit(limit));
    pthread_mutex_lock(&st->mu);
    int64_t seq = INT64_MAX;
    int found = 1;
    ot_status s = after ? ot_store_seq_of(st, "jobs", after, NULL, &seq, &found) : OT_OK;
    if (s == OT_OK && !found) s = ot_errorf(OT_E_INVALID, "after: no job '%.64s'", after);
    sqlite3_stmt *q = NULL;
    if (s == OT_OK) s = ot_store_prep(st, "SELECT " JOB_COLS " FROM jobs WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2", &q);
    if (s == OT_OK) {
        sqlite3_bind_int64(q, 1, seq);
        sqlite3_bind_int(q, 2, limit + 1);
        s = ot_store_collect(st, q, sizeof(ot_job_rec), read_job_row, drop_job, limit, (void **)out, n, has_more);
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->mu);
    return s;
}

/* "('queued','running')" for a mask; "(NULL)" matches nothing. */
static void mask_sql(unsigned mask, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "(");
    int any = 0;
    for (int i = 0; i < OT_JOB_NSTATES; i++)
        if (mask & OT_JOB_BIT(i)) {
            len += (size_t)snprintf(buf + len, n - len, "%s'%s'", any ? "," : "", STATE_NAMES[i]);
            any = 1;
        }
    snprintf(buf + len, n - len, "%s)", any ? "" : "NULL");
}

static ot_status insert_event_locked(ot_store *st, const char *job_id, const char *level, const char *message,
                                     const char *data_json, ot_event_rec *out);

ot_status ot_store_job_transition(ot_store *st, const char *id, unsigned from_mask, ot_job_status to,
                                  const char *error_json, const char *fine_tuned_model, const char *result_files_json,
                                  const char *event_level, const char *event_message, int *changed) {
    *changed = 0;
    if ((int)to < 0 || to >= OT_JOB_NSTATES) return ot_errorf(OT_E_INVALID, "set status: bad target state %d", (int)to);
    if (!ot_id_valid(id, OT_ID_JOB)) return OT_OK;
    char in[160], sql[640];
    mask_sql(from_mask, in, sizeof in);
    int term = ot_job_status_terminal(to), ok = to == OT_JOB_SUCCEEDED;
    snprintf(sql, sizeof sql, "UPDATE jobs SET status = ?2, error = ?3%s%s%s WHERE id = ?1 AND status IN %s",
             to == OT_JOB_RUNNING ? ", started_at = COALESCE(started_at, ?4)" : "",
             term ? ", finished_at = ?4, pid = 0, estimated_finish = NULL" : "",
             ok ? ", fine_tuned_model = ?5, result_files = ?6" : "", in);
    pthread_mutex_lock(&st->mu);
    ot_status s = ot_store_exec(st, "BEGIN IMMEDIATE");
    int in_txn = s == OT_OK;
    sqlite3_stmt *q = NULL;
    if (s == OT_OK) s = ot_store_prep(st, sql, &q);
    if (s == OT_OK) {
        ot_store_bind_text(q, 1, id);
        ot_store_bind_text(q, 2, STATE_NAMES[to]);
        ot_store_bind_text(q, 3, error_json);
        if (to == OT_JOB_RUNNING || term) sqlite3_bind_int64(q, 4, (sqlite3_int64)time(NULL));
        if (ok) {
            ot_store_bind_text(q, 5, fine_tuned_model);
            ot_store_bind_text(q, 6, result_files_json ? result_files_json : "[]");
        }
        s = step_write(st, q, "set status", changed);
    }
    sqlite3_finalize(q);
    if (s == OT_OK && *changed && event_message)
        s = insert_event_locked(st, id, event_level ? event_level : "info", event_message, NULL, NULL);
    if (s == OT_OK) s = ot_store_exec(st, "COMMIT");
    if (s != OT_OK) {
        *changed = 0;
        if (in_txn) rollback(st);
    }
    pthread_mutex_unlock(&st->mu);
    return s;
}

ot_status ot_store_job_set_status(ot_store *st, const char *id, unsigned from_mask, ot_job_status to,
                                  const char *error_json, int *changed) {
    return ot_store_job_transition(st, id, from_mask, to, error_json, NULL, NULL, NULL, NULL, changed);
}

ot_status ot_store_job_succeed(ot_store *st, const char *id, const char *fine_tuned_model, const char *result_files_json,
                               int *changed) {
    return ot_store_job_transition(st, id, OT_JOB_BIT(OT_JOB_RUNNING), OT_JOB_SUCCEEDED, NULL, fine_tuned_model,
                                   result_files_json, NULL, NULL, changed);
}

ot_status ot_store_job_claim_next(ot_store *st, ot_job_rec *out, int *found) {
    *found = 0;
    pthread_mutex_lock(&st->mu);
    /* One statement: the pick and the state change are one atomic write. */
    sqlite3_stmt *q;
    char id[OT_ID_MAX] = "";
    ot_status s = ot_store_prep(st,
                                "UPDATE jobs SET status = 'running', attempt = attempt + 1,"
                                " started_at = COALESCE(started_at, ?1)"
                                " WHERE seq = (SELECT MIN(seq) FROM jobs WHERE status = 'queued') RETURNING id",
                                &q);
    if (s == OT_OK) {
        sqlite3_bind_int64(q, 1, (sqlite3_int64)time(NULL));
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) ot_store_col_id(q, 0, id);
        else if (rc != SQLITE_DONE) s = ot_store_dberr(st, "claim job");
        /* RETURNING: the change commits when the statement is reset/finalized. */
        if (sqlite3_finalize(q) != SQLITE_OK && s == OT_OK) s = ot_store_dberr(st, "claim job (commit)");
    }
    if (s == OT_OK && id[0]) s = get_job_locked(st, id, out, found);
    pthread_mutex_unlock(&st->mu);
    return s;
}

static ot_status update_job_ints(ot_store *st, const char *sql, const char *id, int64_t a, int64_t b, int nb) {
    if (!ot_id_valid(id, OT_ID_JOB)) return ot_errorf(OT_E_INVALID, "invalid job id '%.64s'", id ? id : "");
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *q;
    ot_status s = ot_store_prep(st, sql, &q);
    if (s == OT_OK) {
        ot_store_bind_text(q, 1, id);
        sqlite3_bind_int64(q, 2, a);
        if (nb) {
            if (b) sqlite3_bind_int64(q, 3, b);
            else sqlite3_bind_null(q, 3);
        }
        s = step_write(st, q, "update job", NULL);
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&st->mu);
    return s;
}

ot_status ot_store_job_set_pid(ot_store *st, const char *id, int64_t pid) {
    return update_job_ints(st, "UPDATE jobs SET pid = ?2 WHERE id = ?1", id, pid, 0, 0);
}

ot_status ot_store_job_set_progress(ot_store *st, const char *id, int64_t trained_tokens, int64_t estimated_finish) {
    return update_job_ints(st, "UPDATE jobs SET trained_tokens = ?2, estimated_finish = ?3 WHERE id = ?1", id,
                           trained_tokens, estimated_finish, 1);
}

ot_status ot_store_job_counts(ot_store *st, int64_t counts[OT_JOB_NSTATES], int64_t *trained_tokens_total) {
    for (int i = 0; i < OT_JOB_NSTATES; i++) counts[i] = 0;
    if (trained_tokens_total) *trained_tokens_total = 0;
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *q = NULL;
    ot_status s = ot_store_prep(st, "SELECT status, COUNT(*), SUM(trained_tokens) FROM jobs GROUP BY status", &q);
    int rc = SQLITE_DONE;
    while (s == OT_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        for (int i = 0; name && i < OT_JOB_NSTATES; i++)
            if (!strcmp(name, STATE_NAMES[i])) counts[i] = sqlite3_column_int64(q, 1);
        if (trained_tokens_total) *trained_tokens_total += sqlite3_column_int64(q, 2);
    }
    if (s == OT_OK && rc != SQLITE_DONE) s = ot_store_dberr(st, "count jobs");
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->mu);
    return s;
}

ot_status ot_store_recover_after_restart(ot_store *st, int *requeued) {
    int n = 0;
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *q;
    ot_status s = ot_store_prep(st, "UPDATE jobs SET status = 'queued', pid = 0 WHERE status = 'running'", &q);
    if (s == OT_OK) {
        s = step_write(st, q, "recover jobs", &n);
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&st->mu);
    if (requeued) *requeued = n;
    return s;
}

/* ---- events -------------------------------------------------------------------------- */

static ot_status read_event_row(sqlite3_stmt *s, void *rec) {
    ot_event_rec *r = rec;
    int oom = 0;
    ot_store_col_id(s, 0, r->id);
    ot_store_col_id(s, 1, r->job_id);
    r->seq = col_i64(s, 2);
    r->created_at = col_i64(s, 3);
    r->level = ot_store_col_dup(s, 4, &oom);
    r->message = ot_store_col_dup(s, 5, &oom);
    r->data = ot_store_col_dup(s, 6, &oom);
    return oom ? ot_errorf(OT_E_NOMEM, "job store: out of memory reading event %s", r->id) : OT_OK;
}
static void drop_event(void *rec) { ot_event_rec_free(rec); }

static ot_status insert_event_locked(ot_store *st, const char *job_id, const char *level, const char *message,
                                     const char *data_json, ot_event_rec *out) {
    char id[OT_ID_MAX];
    OT_TRY(ot_id_new(OT_ID_EVENT, id));
    sqlite3_stmt *q;
    OT_TRY(ot_store_prep(st,
                         "INSERT INTO events(id, job_id, created_at, level, message, data)"
                         " VALUES(?1, ?2, ?3, ?4, ?5, ?6) RETURNING " EVENT_COLS,
                         &q));
    ot_store_bind_text(q, 1, id);
    ot_store_bind_text(q, 2, job_id);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)time(NULL));
    ot_store_bind_text(q, 4, level);
    ot_store_bind_text(q, 5, message);
    ot_store_bind_text(q, 6, data_json);
    ot_status s = OT_OK;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && out) {
        memset(out, 0, sizeof *out);
        s = read_event_row(q, out);
    } else if (rc != SQLITE_ROW) {
        s = ot_store_dberr(st, "add event");
    }
    if (sqlite3_finalize(q) != SQLITE_OK && s == OT_OK) s = ot_store_dberr(st, "add event (commit)");
    if (s != OT_OK && out && rc == SQLITE_ROW) ot_event_rec_free(out);
    return s;
}

ot_status ot_store_event_add(ot_store *st, const char *job_id, const char *level, const char *message,
                             const char *data_json, ot_event_rec *out) {
    if (!ot_id_valid(job_id, OT_ID_JOB)) return ot_errorf(OT_E_INVALID, "event: invalid job id '%.64s'", job_id ? job_id : "");
    if (!level || (strcmp(level, "info") && strcmp(level, "warn") && strcmp(level, "error")))
        return ot_errorf(OT_E_INVALID, "event: level must be info, warn or error (OpenAI's levels), got '%.32s'",
                         level ? level : "");
    if (!message) return ot_errorf(OT_E_INVALID, "event: missing message");
    pthread_mutex_lock(&st->mu);
    ot_status s = insert_event_locked(st, job_id, level, message, data_json, out);
    pthread_mutex_unlock(&st->mu);
    return s;
}

ot_status ot_store_event_list(ot_store *st, const char *job_id, const char *after, int limit, int newest_first,
                              ot_event_rec **out, int *n, int *has_more) {
    *out = NULL, *n = 0;
    if (has_more) *has_more = 0;
    OT_TRY(ot_store_check_limit(limit));
    pthread_mutex_lock(&st->mu);
    int64_t seq = newest_first ? INT64_MAX : 0;
    int found = 1;
    ot_status s = after ? ot_store_seq_of(st, "events", after, job_id, &seq, &found) : OT_OK;
    if (s == OT_OK && !found) s = ot_errorf(OT_E_INVALID, "after: no event '%.64s' in job %.64s", after, job_id);
    sqlite3_stmt *q = NULL;
    if (s == OT_OK)
        s = ot_store_prep(st,
                          newest_first
                              ? "SELECT " EVENT_COLS " FROM events WHERE job_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                              : "SELECT " EVENT_COLS " FROM events WHERE job_id = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3",
                          &q);
    if (s == OT_OK) {
        ot_store_bind_text(q, 1, job_id);
        sqlite3_bind_int64(q, 2, seq);
        sqlite3_bind_int(q, 3, limit + 1);
        s = ot_store_collect(st, q, sizeof(ot_event_rec), read_event_row, drop_event, limit, (void **)out, n, has_more);
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->mu);
    return s;
}

/* ---- checkpoints --------------------------------------------------------------------- */

#define CKPT_COLS "id, job_id, step, created_at, metrics, path"

static ot_status read_ckpt_row(sqlite3_stmt *s, void *rec) {
    ot_ckpt_rec *r = rec;
    int oom = 0;
    ot_store_col_id(s, 0, r->id);
    ot_store_col_id(s, 1, r->job_id);
    r->step = col_i64(s, 2);
    r->created_at = col_i64(s, 3);
    r->metrics = ot_store_col_dup(s, 4, &oom);
    r->path = ot_store_col_dup(s, 5, &oom);
    return oom ? ot_errorf(OT_E_NOMEM, "job store: out of memory reading checkpoint %s", r->id) : OT_OK;
}
static void drop_ckpt(void *rec) { ot_ckpt_rec_free(rec); }

ot_status ot_store_ckpt_add(ot_store *st, const char *job_id, int64_t step, const char *metrics_json,
                            const char *path, ot_ckpt_rec *out) {
    if (!ot_id_valid(job_id, OT_ID_JOB))
        return ot_errorf(OT_E_INVALID, "checkpoint: invalid job id '%.64s'", job_id ? job_id : "");
    if (step < 0 || !path) return ot_errorf(OT_E_INVALID, "checkpoint: bad step %lld or missing path", (long long)step);
    char id[OT_ID_MAX];
    OT_TRY(ot_id_new(OT_ID_CKPT, id));
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *q;
    ot_status s = ot_store_prep(st,
                                "INSERT INTO checkpoints(id, job_id, step, created_at, metrics, path)"
                                " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(job_id, step) DO NOTHING",
                                &q);
    if (s == OT_OK) {
        ot_store_bind_text(q, 1, id);
        ot_store_bind_text(q, 2, job_id);
        sqlite3_bind_int64(q, 3, step);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)time(NULL));
        ot_store_bind_text(q, 5, metrics_json ? metrics_json : "{}");
        ot_store_bind_text(q, 6, path);
        s = step_write(st, q, "add checkpoint", NULL);
        sqlite3_finalize(q);
    }
    if (s == OT_OK && out) {
        s = ot_store_prep(st, "SELECT " CKPT_COLS " FROM checkpoints WHERE job_id = ?1 AND step = ?2", &q);
        if (s == OT_OK) {
            ot_store_bind_text(q, 1, job_id);
            sqlite3_bind_int64(q, 2, step);
            memset(out, 0, sizeof *out);
            s = sqlite3_step(q) == SQLITE_ROW ? read_ckpt_row(q, out) : ot_store_dberr(st, "read checkpoint");
            sqlite3_finalize(q);
        }
    }
    pthread_mutex_unlock(&st->mu);
    return s;
}

ot_status ot_store_ckpt_list(ot_store *st, const char *job_id, const char *after, int limit, ot_ckpt_rec **out,
                             int *n, int *has_more) {
    *out = NULL, *n = 0;
    if (has_more) *has_more = 0;
    OT_TRY(ot_store_check_limit(limit));
    pthread_mutex_lock(&st->mu);
    int64_t step = INT64_MAX;
    int found = 1;
    sqlite3_stmt *q = NULL;
    ot_status s = OT_OK;
    if (after) {
        found = 0;
        s = ot_store_prep(st, "SELECT step FROM checkpoints WHERE id = ?1 AND job_id = ?2", &q);
        if (s == OT_OK) {
            ot_store_bind_text(q, 1, after);
            ot_store_bind_text(q, 2, job_id);
            if (sqlite3_step(q) == SQLITE_ROW) found = 1, step = sqlite3_column_int64(q, 0);
        }
        sqlite3_finalize(q);
        q = NULL;
    }
    if (s == OT_OK && !found) s = ot_errorf(OT_E_INVALID, "after: no checkpoint '%.64s' in job %.64s", after, job_id);
    if (s == OT_OK)
        s = ot_store_prep(st,
                          "SELECT " CKPT_COLS " FROM checkpoints WHERE job_id = ?1 AND step < ?2 ORDER BY step DESC LIMIT ?3",
                          &q);
    if (s == OT_OK) {
        ot_store_bind_text(q, 1, job_id);
        sqlite3_bind_int64(q, 2, step);
        sqlite3_bind_int(q, 3, limit + 1);
        s = ot_store_collect(st, q, sizeof(ot_ckpt_rec), read_ckpt_row, drop_ckpt, limit, (void **)out, n, has_more);
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->mu);
    return s;
}
