/* store.h — the service's durable job store: files, fine-tuning jobs, their events and
 * checkpoints, in one SQLite database (data_dir/onnxtune.db) in WAL mode with
 * `synchronous=FULL`, so every function that changes state has committed (and fsynced) its
 * transaction before it returns; a kill -9 after a return loses nothing.
 *
 * Threading: one SQLite connection per ot_store, guarded by a mutex; every function may be
 * called from any thread (HTTP handlers, runner workers) at the same time. Compare-and-set
 * status changes run inside one IMMEDIATE transaction, so a cancel racing a finish resolves
 * to exactly one winner. A busy timeout covers a second process opening the same database.
 *
 * Layout under data_dir (created by ot_store_open): onnxtune.db, files/<file id> (uploaded
 * content), jobs/<job id>/ (the runner's work dir), tmp/ (uploads in progress; same file
 * system, so ot_store_file_add can rename into files/).
 *
 * Records: strings in records are heap copies owned by the record (free with the matching
 * *_free); JSON-valued columns are returned as JSON text; NULL means "not set". Times are
 * Unix seconds; 0 means "not set". Ids are validated (ids.h) before use, so no id can name
 * a path outside data_dir. Unknown ids are not errors for get/delete: `*found` says. */
#ifndef OT_SERVICE_STORE_H
#define OT_SERVICE_STORE_H

#include <stdint.h>

#include "core/status.h"
#include "service/ids.h"

typedef struct ot_store ot_store;

/* ---- job states ---------------------------------------------------------------------- */

typedef enum {
    OT_JOB_VALIDATING_FILES = 0,
    OT_JOB_QUEUED,
    OT_JOB_RUNNING,
    OT_JOB_SUCCEEDED,
    OT_JOB_FAILED,
    OT_JOB_CANCELLED,
    OT_JOB_NSTATES
} ot_job_status;

#define OT_JOB_BIT(s) (1u << (s))
/* States a job can still leave (cancel applies to these). */
#define OT_JOB_ACTIVE_MASK (OT_JOB_BIT(OT_JOB_VALIDATING_FILES) | OT_JOB_BIT(OT_JOB_QUEUED) | OT_JOB_BIT(OT_JOB_RUNNING))

/* "validating_files", "queued", ... ("unknown" out of range). */
const char *ot_job_status_name(ot_job_status s);
/* Parses a state name; OT_E_INVALID naming `s` when it is not one. */
ot_status ot_job_status_parse(const char *s, ot_job_status *out);
/* 1 for succeeded, failed, cancelled. */
int ot_job_status_terminal(ot_job_status s);

/* ---- records ------------------------------------------------------------------------- */

typedef struct ot_file_rec {
    char id[OT_ID_MAX];
    char *filename; /* as uploaded */
    char *purpose;  /* "fine-tune" */
    int64_t bytes;
    int64_t created_at;
    char *status; /* "processed" */
    char *path;   /* data_dir/files/<id> */
} ot_file_rec;

typedef struct ot_job_rec {
    char id[OT_ID_MAX];
    int64_t seq; /* insertion order (FIFO claim order; lists are newest first) */
    int64_t created_at, started_at, finished_at;
    ot_job_status status;
    char *model;
    char *training_file, *validation_file; /* file ids; validation_file may be NULL */
    char *suffix;                          /* or NULL */
    int has_seed;
    int64_t seed;
    char *metadata;         /* JSON object text or NULL */
    char *request;          /* the full validated request, JSON text (never NULL) */
    char *hyperparameters;  /* JSON object text (never NULL; "{}" when none) */
    char *error;            /* JSON {"code","message","param"} text, or NULL */
    char *fine_tuned_model; /* or NULL */
    char *result_files;     /* JSON array text (never NULL; "[]" until it succeeds) */
    int64_t trained_tokens;
    int64_t estimated_finish;
    char *idempotency_key; /* or NULL */
    int attempt;           /* how many times a worker has claimed (started) it */
    int64_t pid;           /* the running child's pid (= its process group), 0 if none */
} ot_job_rec;

/* What a create stores. Strings are copied; NULL = unset. */
typedef struct ot_job_new {
    const char *model;
    const char *training_file, *validation_file, *suffix;
    int has_seed;
    int64_t seed;
    const char *metadata;        /* JSON text or NULL */
    const char *request;         /* JSON text, required */
    const char *hyperparameters; /* JSON text or NULL ("{}") */
    const char *idempotency_key; /* or NULL */
    ot_job_status initial;       /* OT_JOB_QUEUED (usual) or OT_JOB_VALIDATING_FILES */
} ot_job_new;

typedef struct ot_event_rec {
    char id[OT_ID_MAX];
    char job_id[OT_ID_MAX];
    int64_t seq; /* increasing across the whole store */
    int64_t created_at;
    char *level;   /* "info" | "warn" | "error" */
    char *message;
    char *data;    /* JSON object text or NULL */
} ot_event_rec;

typedef struct ot_ckpt_rec {
    char id[OT_ID_MAX];
    char job_id[OT_ID_MAX];
    int64_t step;
    int64_t created_at;
    char *metrics; /* JSON object text (never NULL; "{}" when none) */
    char *path;    /* the checkpoint directory on disk */
} ot_ckpt_rec;

void ot_file_rec_free(ot_file_rec *r);
void ot_job_rec_free(ot_job_rec *r);
void ot_event_rec_free(ot_event_rec *r);
void ot_ckpt_rec_free(ot_ckpt_rec *r);
/* Frees an array returned by a *_list function (each record, then the array). */
void ot_file_recs_free(ot_file_rec *v, int n);
void ot_job_recs_free(ot_job_rec *v, int n);
void ot_event_recs_free(ot_event_rec *v, int n);
void ot_ckpt_recs_free(ot_ckpt_rec *v, int n);

/* ---- open / close -------------------------------------------------------------------- */

/* Creates data_dir (and files/, jobs/, tmp/) if missing, opens or creates the database,
 * applies schema migrations up to the current version (schema_version table). */
ot_status ot_store_open(const char *data_dir, ot_store **out);
/* Closes the connection; NULL-safe. Nothing is lost: every change is already committed. */
void ot_store_close(ot_store *st);
const char *ot_store_data_dir(const ot_store *st);
/* The schema version the open database is at (for tests and /healthz). */
int ot_store_schema_version(ot_store *st);

/* data_dir/jobs/<job id> into buf (OT_E_INVALID for a malformed id or a short buffer). */
ot_status ot_store_job_dir(const ot_store *st, const char *job_id, char *buf, size_t n);
/* data_dir/tmp: where the HTTP layer streams an upload before ot_store_file_add. */
const char *ot_store_tmp_dir(const ot_store *st);

/* ---- files --------------------------------------------------------------------------- */

/* Takes ownership of the finished upload at `src_path` (a file under ot_store_tmp_dir):
 * assigns a new "file-" id, fsyncs and renames it to data_dir/files/<id>, records it with
 * status "processed" and fills *out (may be NULL). On failure src_path is left in place. */
ot_status ot_store_file_add(ot_store *st, const char *src_path, const char *filename, const char *purpose,
                            ot_file_rec *out);
ot_status ot_store_file_get(ot_store *st, const char *id, ot_file_rec *out, int *found);
/* Newest first. `purpose` filters when non-NULL; `after` (a file id or NULL) starts after
 * that file (OT_E_INVALID naming it when unknown); limit 1..10000. *out is a malloc'd
 * array of *n records (NULL when 0); *has_more says whether more follow. */
ot_status ot_store_file_list(ot_store *st, const char *purpose, const char *after, int limit, ot_file_rec **out,
                             int *n, int *has_more);
/* Removes the row and the content file. *found = 0 when there was no such file. */
ot_status ot_store_file_delete(ot_store *st, const char *id, int *found);

/* ---- jobs ---------------------------------------------------------------------------- */

/* Inserts a new job ("ftjob-" id, created_at now, attempt 0). When in->idempotency_key is
 * set and a job already has it, nothing is inserted, *existed = 1 and *out is that job
 * (callers may compare out->request with theirs to reject a reused key). */
ot_status ot_store_job_create(ot_store *st, const ot_job_new *in, ot_job_rec *out, int *existed);
ot_status ot_store_job_get(ot_store *st, const char *id, ot_job_rec *out, int *found);
/* Newest first, starting after job `after` (NULL: from the newest); limit 1..10000;
 * OT_E_INVALID naming `after` when there is no such job. Arrays as ot_store_file_list. */
ot_status ot_store_job_list(ot_store *st, const char *after, int limit, ot_job_rec **out, int *n, int *has_more);

/* Atomic compare-and-set: when the job's status is in `from_mask` (OT_JOB_BIT(...)s) it
 * becomes `to`, `error_json` (JSON text or NULL) is stored in error, and *changed = 1;
 * otherwise nothing changes and *changed = 0 (also for an unknown id). Entering running
 * sets started_at if unset; entering a terminal state sets finished_at and clears pid. */
ot_status ot_store_job_set_status(ot_store *st, const char *id, unsigned from_mask, ot_job_status to,
                                  const char *error_json, int *changed);
/* The general transition: CAS as ot_store_job_set_status; when it changes the job and
 * `to` is succeeded, fine_tuned_model and result_files_json are stored too; when
 * event_message is non-NULL an event (event_level: info|warn|error) is appended in the
 * SAME transaction, so a reader that sees the new status also sees that event (an event
 * stream may stop at a terminal status without missing the final event). */
ot_status ot_store_job_transition(ot_store *st, const char *id, unsigned from_mask, ot_job_status to,
                                  const char *error_json, const char *fine_tuned_model, const char *result_files_json,
                                  const char *event_level, const char *event_message, int *changed);
/* running -> succeeded with its results in one transaction (CAS as above). */
ot_status ot_store_job_succeed(ot_store *st, const char *id, const char *fine_tuned_model, const char *result_files_json,
                               int *changed);
/* Oldest queued job -> running (attempt + 1, started_at if unset), atomically, so two
 * workers never claim the same job. *found = 0 when the queue is empty. */
ot_status ot_store_job_claim_next(ot_store *st, ot_job_rec *out, int *found);
/* Records the child's pid (0 to clear). */
ot_status ot_store_job_set_pid(ot_store *st, const char *id, int64_t pid);
/* Progress: trained tokens so far and the estimated finish time (0 = unknown). */
ot_status ot_store_job_set_progress(ot_store *st, const char *id, int64_t trained_tokens, int64_t estimated_finish);
/* Jobs per state, and tokens trained over all jobs (for /metrics). */
ot_status ot_store_job_counts(ot_store *st, int64_t counts[OT_JOB_NSTATES], int64_t *trained_tokens_total);
/* After a restart: every job left `running` (its server died) goes back to `queued` with
 * pid cleared, keeping its work dir and checkpoints so the next attempt resumes. Call once
 * after open, before starting the runner. *requeued may be NULL. */
ot_status ot_store_recover_after_restart(ot_store *st, int *requeued);

/* ---- events -------------------------------------------------------------------------- */

/* Appends an event ("ftevent-" id, created_at now). level: info|warn|error; data:
 * JSON object text or NULL. *out may be NULL. */
ot_status ot_store_event_add(ot_store *st, const char *job_id, const char *level, const char *message,
                             const char *data_json, ot_event_rec *out);
/* A job's events. newest_first = 1 (the OpenAI list order): events older than `after`
 * (an event id; NULL = from the newest). newest_first = 0 (for streaming): events newer
 * than `after`, oldest first. An unknown `after` is OT_E_INVALID naming it. */
ot_status ot_store_event_list(ot_store *st, const char *job_id, const char *after, int limit, int newest_first,
                              ot_event_rec **out, int *n, int *has_more);

/* ---- checkpoints --------------------------------------------------------------------- */

/* Records checkpoint `step` of a job; a second add of the same (job, step) changes nothing
 * and returns the existing row. metrics: JSON object text or NULL. *out may be NULL. */
ot_status ot_store_ckpt_add(ot_store *st, const char *job_id, int64_t step, const char *metrics_json,
                            const char *path, ot_ckpt_rec *out);
/* Newest (highest step) first, after checkpoint id `after` (NULL: from the newest). */
ot_status ot_store_ckpt_list(ot_store *st, const char *job_id, const char *after, int limit, ot_ckpt_rec **out,
                             int *n, int *has_more);

#endif
