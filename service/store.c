/* store.c — the job store's connection, schema and files (see store.h); jobs, events and
 * checkpoints are in store_jobs.c.
 *
 * Owns data_dir/onnxtune.db (+ -wal, -shm) and data_dir/files/. Invariants: the database
 * is in WAL mode with synchronous=FULL and foreign keys on; the schema is at
 * OT_STORE_SCHEMA_VERSION after open (migrations run in order, each in one transaction
 * together with its schema_version bump); a files/<id> content file exists for every files
 * row (it is renamed into place, fsynced, before the row is committed, and unlinked after
 * the row is deleted, so a crash can at worst leave an orphan file, never a dangling row). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/path.h"
#include "service/store_internal.h"

/* ---- schema -------------------------------------------------------------------------- */

/* Migration i brings the schema from version i to i + 1. Append; never edit a shipped one. */
static const char *const MIGRATIONS[] = {
    /* 0 -> 1 */
    "CREATE TABLE files("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, filename TEXT NOT NULL,"
    " purpose TEXT NOT NULL, bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, status TEXT NOT NULL,"
    " path TEXT NOT NULL);"
    "CREATE TABLE jobs("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL,"
    " started_at INTEGER, finished_at INTEGER, status TEXT NOT NULL, model TEXT NOT NULL,"
    " training_file TEXT, validation_file TEXT, suffix TEXT, seed INTEGER, metadata TEXT,"
    " request TEXT NOT NULL, hyperparameters TEXT NOT NULL, error TEXT, fine_tuned_model TEXT,"
    " result_files TEXT NOT NULL DEFAULT '[]', trained_tokens INTEGER NOT NULL DEFAULT 0,"
    " estimated_finish INTEGER, idempotency_key TEXT UNIQUE, attempt INTEGER NOT NULL DEFAULT 0,"
    " pid INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_by_status ON jobs(status, seq);"
    "CREATE TABLE events("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    " job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, created_at INTEGER NOT NULL,"
    " level TEXT NOT NULL, message TEXT NOT NULL, data TEXT);"
    "CREATE INDEX events_by_job ON events(job_id, seq);"
    "CREATE TABLE checkpoints("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    " job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, step INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, metrics TEXT NOT NULL, path TEXT NOT NULL, UNIQUE(job_id, step));",
};
#define OT_STORE_SCHEMA_VERSION (int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0])

/* ---- helpers shared with store_jobs.c ------------------------------------------------ */

ot_status ot_store_dberr(ot_store *st, const char *what) {
    return ot_errorf(OT_E_IO, "job store '%s': %s: %s", st->dir, what, sqlite3_errmsg(st->db));
}

ot_status ot_store_prep(ot_store *st, const char *sql, sqlite3_stmt **s) {
    if (sqlite3_prepare_v2(st->db, sql, -1, s, NULL) != SQLITE_OK) return ot_store_dberr(st, "prepare");
    return OT_OK;
}

ot_status ot_store_exec(ot_store *st, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        ot_status s = ot_errorf(OT_E_IO, "job store '%s': %s", st->dir, msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        return s;
    }
    return OT_OK;
}

int ot_store_bind_text(sqlite3_stmt *s, int i, const char *v) {
    return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);
}

char *ot_store_col_dup(sqlite3_stmt *s, int i, int *oom) {
    if (sqlite3_column_type(s, i) == SQLITE_NULL) return NULL;
    const char *t = (const char *)sqlite3_column_text(s, i);
    char *d = t ? strdup(t) : NULL;
    if (!d) *oom = 1;
    return d;
}

void ot_store_col_id(sqlite3_stmt *s, int i, char out[OT_ID_MAX]) {
    const char *t = (const char *)sqlite3_column_text(s, i);
    snprintf(out, OT_ID_MAX, "%s", t ? t : "");
}

ot_status ot_store_check_limit(int limit) {
    if (limit < 1 || limit > 10000) return ot_errorf(OT_E_INVALID, "limit must be 1..10000, got %d", limit);
    return OT_OK;
}

ot_status ot_store_collect(ot_store *st, sqlite3_stmt *s, size_t elem, ot_store_row_fn read, ot_store_drop_fn drop,
                           int limit, void **out, int *n, int *has_more) {
    char *arr = NULL;
    int cnt = 0, more = 0, rc;
    ot_status status = OT_OK;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (cnt == limit) {
            more = 1;
            break;
        }
        char *grown = realloc(arr, (size_t)(cnt + 1) * elem);
        if (!grown) {
            status = ot_errorf(OT_E_NOMEM, "job store: out of memory listing %d rows", cnt + 1);
            break;
        }
        arr = grown;
        memset(arr + (size_t)cnt * elem, 0, elem);
        if ((status = read(s, arr + (size_t)cnt * elem)) != OT_OK) {
            drop(arr + (size_t)cnt * elem);
            break;
        }
        cnt++;
    }
    if (status == OT_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) status = ot_store_dberr(st, "list");
    if (status != OT_OK) {
        for (int i = 0; i < cnt; i++) drop(arr + (size_t)i * elem);
        free(arr);
        return status;
    }
    *out = arr;
    *n = cnt;
    if (has_more) *has_more = more;
    return OT_OK;
}

ot_status ot_store_seq_of(ot_store *st, const char *table, const char *id, const char *job_id, int64_t *seq,
                          int *found) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT seq FROM %s WHERE id = ?1%s", table, job_id ? " AND job_id = ?2" : "");
    sqlite3_stmt *s;
    OT_TRY(ot_store_prep(st, sql, &s));
    ot_store_bind_text(s, 1, id);
    if (job_id) ot_store_bind_text(s, 2, job_id);
    int rc = sqlite3_step(s);
    *found = rc == SQLITE_ROW;
    if (*found) *seq = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? OT_OK : ot_store_dberr(st, "lookup");
}

/* ---- open / close -------------------------------------------------------------------- */

static ot_status ensure_dir(const char *d) {
    if (mkdir(d, 0700) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(d, &sb) == 0 && S_ISDIR(sb.st_mode)) return OT_OK;
        return ot_errorf(OT_E_IO, "data dir: '%s' exists and is not a directory", d);
    }
    return ot_errorf(OT_E_IO, "data dir: cannot create '%s': %s", d, strerror(errno));
}

static int read_version(ot_store *st) {
    sqlite3_stmt *s;
    int v = -1;
    if (sqlite3_prepare_v2(st->db, "SELECT version FROM schema_version", -1, &s, NULL) != SQLITE_OK) return -1;
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

static ot_status migrate(ot_store *st) {
    OT_TRY(ot_store_exec(st, "BEGIN IMMEDIATE;"
                             "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);"
                             "INSERT INTO schema_version SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM schema_version);"
                             "COMMIT;"));
    int v = read_version(st);
    if (v < 0) return ot_store_dberr(st, "reading schema_version");
    if (v > OT_STORE_SCHEMA_VERSION)
        return ot_errorf(OT_E_UNSUPPORTED, "job store '%s': schema version %d is newer than this onnxtune's %d",
                         st->dir, v, OT_STORE_SCHEMA_VERSION);
    for (; v < OT_STORE_SCHEMA_VERSION; v++) {
        OT_TRY(ot_store_exec(st, "BEGIN IMMEDIATE"));
        char bump[96];
        snprintf(bump, sizeof bump, "UPDATE schema_version SET version = %d", v + 1);
        /* another process may have migrated between our read and BEGIN IMMEDIATE */
        ot_status s = read_version(st) != v ? OT_OK : ot_store_exec(st, MIGRATIONS[v]);
        if (s == OT_OK && read_version(st) == v) s = ot_store_exec(st, bump);
        if (s == OT_OK) s = ot_store_exec(st, "COMMIT");
        if (s != OT_OK) {
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            return ot_error_wrap(s, "migrating schema %d -> %d: ", v, v + 1);
        }
    }
    st->version = OT_STORE_SCHEMA_VERSION;
    return OT_OK;
}

ot_status ot_store_open(const char *data_dir, ot_store **out) {
    *out = NULL;
    if (!data_dir || !*data_dir) return ot_errorf(OT_E_INVALID, "data dir: empty path");
    ot_store *st = calloc(1, sizeof *st);
    if (!st) return ot_errorf(OT_E_NOMEM, "out of memory");
    pthread_mutex_init(&st->mu, NULL);
    st->dir = strdup(data_dir);
    st->tmp = ot_path_join(data_dir, "tmp");
    st->files = ot_path_join(data_dir, "files");
    st->jobs = ot_path_join(data_dir, "jobs");
    char *db = ot_path_join(data_dir, "onnxtune.db");
    ot_status s = (!st->dir || !st->tmp || !st->files || !st->jobs || !db) ? ot_errorf(OT_E_NOMEM, "out of memory")
                                                                           : ensure_dir(data_dir);
    if (s == OT_OK) s = ensure_dir(st->tmp);
    if (s == OT_OK) s = ensure_dir(st->files);
    if (s == OT_OK) s = ensure_dir(st->jobs);
    if (s == OT_OK &&
        sqlite3_open_v2(db, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        s = st->db ? ot_store_dberr(st, "open") : ot_errorf(OT_E_NOMEM, "job store: out of memory opening '%s'", db);
    if (s == OT_OK) sqlite3_busy_timeout(st->db, 5000);
    if (s == OT_OK) {
        /* journal_mode answers with the mode in force: check that WAL took. */
        sqlite3_stmt *q;
        s = ot_store_prep(st, "PRAGMA journal_mode=WAL", &q);
        if (s == OT_OK) {
            const char *mode = sqlite3_step(q) == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : NULL;
            if (!mode || strcmp(mode, "wal") != 0)
                s = ot_errorf(OT_E_IO, "job store '%s': cannot enable WAL (journal mode '%s')", db, mode ? mode : "?");
            sqlite3_finalize(q);
        }
    }
    if (s == OT_OK) s = ot_store_exec(st, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
    if (s == OT_OK) s = migrate(st);
    free(db);
    if (s != OT_OK) {
        ot_store_close(st);
        return s;
    }
    *out = st;
    return OT_OK;
}

void ot_store_close(ot_store *st) {
    if (!st) return;
    if (st->db) sqlite3_close_v2(st->db);
    pthread_mutex_destroy(&st->mu);
    free(st->dir), free(st->tmp), free(st->files), free(st->jobs);
    free(st);
}

const char *ot_store_data_dir(const ot_store *st) { return st->dir; }
const char *ot_store_tmp_dir(const ot_store *st) { return st->tmp; }

int ot_store_schema_version(ot_store *st) {
    pthread_mutex_lock(&st->mu);
    int v = read_version(st);
    pthread_mutex_unlock(&st->mu);
    return v;
}

ot_status ot_store_job_dir(const ot_store *st, const char *job_id, char *buf, size_t n) {
    if (!ot_id_valid(job_id, OT_ID_JOB)) return ot_errorf(OT_E_INVALID, "invalid job id '%.64s'", job_id ? job_id : "");
    if ((size_t)snprintf(buf, n, "%s/%s", st->jobs, job_id) >= n)
        return ot_errorf(OT_E_INVALID, "job dir path for '%s' is too long", job_id);
    return OT_OK;
}

/* ---- records ------------------------------------------------------------------------- */

void ot_file_rec_free(ot_file_rec *r) {
    if (!r) return;
    free(r->filename), free(r->purpose), free(r->status), free(r->path);
    memset(r, 0, sizeof *r);
}

void ot_file_recs_free(ot_file_rec *v, int n) {
    for (int i = 0; v && i < n; i++) ot_file_rec_free(&v[i]);
    free(v);
}

/* ---- files --------------------------------------------------------------------------- */

#define FILE_COLS "id, filename, purpose, bytes, created_at, status, path"

static ot_status read_file_row(sqlite3_stmt *s, void *rec) {
    ot_file_rec *r = rec;
    int oom = 0;
    ot_store_col_id(s, 0, r->id);
    r->filename = ot_store_col_dup(s, 1, &oom);
    r->purpose = ot_store_col_dup(s, 2, &oom);
    r->bytes = sqlite3_column_int64(s, 3);
    r->created_at = sqlite3_column_int64(s, 4);
    r->status = ot_store_col_dup(s, 5, &oom);
    r->path = ot_store_col_dup(s, 6, &oom);
    return oom ? ot_errorf(OT_E_NOMEM, "job store: out of memory reading file %s", r->id) : OT_OK;
}

static void drop_file(void *rec) { ot_file_rec_free(rec); }

static ot_status fsync_path(const char *p, int dir) {
    int fd = open(p, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ot_errorf(OT_E_IO, "open '%s': %s", p, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    return rc == 0 ? OT_OK : ot_errorf(OT_E_IO, "fsync '%s': %s", p, strerror(e));
}

static ot_status get_file_locked(ot_store *st, const char *id, ot_file_rec *out, int *found) {
    sqlite3_stmt *s;
    *found = 0;
    OT_TRY(ot_store_prep(st, "SELECT " FILE_COLS " FROM files WHERE id = ?1", &s));
    ot_store_bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    ot_status status = OT_OK;
    if (rc == SQLITE_ROW) {
        *found = 1;
        memset(out, 0, sizeof *out);
        status = read_file_row(s, out);
    } else if (rc != SQLITE_DONE) {
        status = ot_store_dberr(st, "get file");
    }
    sqlite3_finalize(s);
    return status;
}

ot_status ot_store_file_add(ot_store *st, const char *src_path, const char *filename, const char *purpose,
                            ot_file_rec *out) {
    if (!src_path || !filename || !purpose) return ot_errorf(OT_E_INVALID, "file add: missing path, filename or purpose");
    struct stat sb;
    if (stat(src_path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return ot_errorf(OT_E_IO, "file add: '%s' is not a readable regular file", src_path);
    char id[OT_ID_MAX];
    OT_TRY(ot_id_new(OT_ID_FILE, id));
    char *dst = ot_path_join(st->files, id);
    if (!dst) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_status s = fsync_path(src_path, 0);
    if (s == OT_OK && rename(src_path, dst) != 0)
        s = ot_errorf(OT_E_IO, "file add: cannot move '%s' to '%s': %s", src_path, dst, strerror(errno));
    else if (s == OT_OK)
        s = fsync_path(st->files, 1);
    if (s != OT_OK) {
        free(dst);
        return s;
    }
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *q = NULL;
    s = ot_store_prep(st, "INSERT INTO files(id, filename, purpose, bytes, created_at, status, path)"
                          " VALUES(?1, ?2, ?3, ?4, ?5, 'processed', ?6)", &q);
    if (s == OT_OK) {
        ot_store_bind_text(q, 1, id);
        ot_store_bind_text(q, 2, filename);
        ot_store_bind_text(q, 3, purpose);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)sb.st_size);
        sqlite3_bind_int64(q, 5, (sqlite3_int64)time(NULL));
        ot_store_bind_text(q, 6, dst);
        if (sqlite3_step(q) != SQLITE_DONE) s = ot_store_dberr(st, "add file");
    }
    sqlite3_finalize(q);
    int found = 0;
    if (s == OT_OK && out) s = get_file_locked(st, id, out, &found);
    pthread_mutex_unlock(&st->mu);
    if (s != OT_OK && !found) rename(dst, src_path); /* give the upload back */
    free(dst);
    return s;
}

ot_status ot_store_file_get(ot_store *st, const char *id, ot_file_rec *out, int *found) {
    *found = 0;
    if (!ot_id_valid(id, OT_ID_FILE)) return OT_OK;
    pthread_mutex_lock(&st->mu);
    ot_status s = get_file_locked(st, id, out, found);
    pthread_mutex_unlock(&st->mu);
    return s;
}

ot_status ot_store_file_list(ot_store *st, const char *purpose, const char *after, int limit, ot_file_rec **out,
                             int *n, int *has_more) {
    *out = NULL, *n = 0;
    if (has_more) *has_more = 0;
    OT_TRY(ot_store_check_limit(limit));
    pthread_mutex_lock(&st->mu);
    int64_t seq = INT64_MAX;
    int found = 1;
    ot_status s = after ? ot_store_seq_of(st, "files", after, NULL, &seq, &found) : OT_OK;
    if (s == OT_OK && !found) s = ot_errorf(OT_E_INVALID, "after: no file '%.64s'", after);
    sqlite3_stmt *q = NULL;
    if (s == OT_OK)
        s = ot_store_prep(st, "SELECT " FILE_COLS " FROM files WHERE seq < ?1 AND (?2 IS NULL OR purpose = ?2)"
                              " ORDER BY seq DESC LIMIT ?3", &q);
    if (s == OT_OK) {
        sqlite3_bind_int64(q, 1, seq);
        ot_store_bind_text(q, 2, purpose);
        sqlite3_bind_int(q, 3, limit + 1);
        s = ot_store_collect(st, q, sizeof(ot_file_rec), read_file_row, drop_file, limit, (void **)out, n, has_more);
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->mu);
    return s;
}

ot_status ot_store_file_delete(ot_store *st, const char *id, int *found) {
    *found = 0;
    if (!ot_id_valid(id, OT_ID_FILE)) return OT_OK;
    pthread_mutex_lock(&st->mu);
    ot_file_rec r;
    ot_status s = get_file_locked(st, id, &r, found);
    sqlite3_stmt *q = NULL;
    if (s == OT_OK && *found) {
        s = ot_store_prep(st, "DELETE FROM files WHERE id = ?1", &q);
        if (s == OT_OK) {
            ot_store_bind_text(q, 1, id);
            if (sqlite3_step(q) != SQLITE_DONE) s = ot_store_dberr(st, "delete file");
        }
        sqlite3_finalize(q);
        if (s == OT_OK && unlink(r.path) != 0 && errno != ENOENT)
            s = ot_errorf(OT_E_IO, "file %s: row deleted but '%s' could not be removed: %s", id, r.path, strerror(errno));
        ot_file_rec_free(&r);
    }
    pthread_mutex_unlock(&st->mu);
    return s;
}
