/* store_internal.h — what store.c (open, schema, files) and store_jobs.c (jobs, events,
 * checkpoints) share: the store struct, the mutex discipline and small SQLite helpers.
 * Every helper expects the caller to hold st->mu. Not for use outside service/store*.c. */
#ifndef OT_SERVICE_STORE_INTERNAL_H
#define OT_SERVICE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "service/store.h"

struct ot_store {
    sqlite3 *db;
    pthread_mutex_t mu; /* one connection, one user at a time */
    char *dir, *tmp, *files, *jobs;
    int version;
};

/* An error naming what failed and SQLite's message. */
ot_status ot_store_dberr(ot_store *st, const char *what);
ot_status ot_store_prep(ot_store *st, const char *sql, sqlite3_stmt **s);
ot_status ot_store_exec(ot_store *st, const char *sql);
/* Binds text or NULL. */
int ot_store_bind_text(sqlite3_stmt *s, int i, const char *v);
/* A malloc'd copy of column i, NULL for SQL NULL; sets *oom on allocation failure. */
char *ot_store_col_dup(sqlite3_stmt *s, int i, int *oom);
void ot_store_col_id(sqlite3_stmt *s, int i, char out[OT_ID_MAX]);

/* Runs a SELECT that yields records, one per row, into a malloc'd array of `elem`-byte
 * records: `read` fills one record from the current row, `drop` frees one. At most
 * `limit` rows are kept; the statement should ask for limit + 1 so *has_more is right. */
typedef ot_status (*ot_store_row_fn)(sqlite3_stmt *s, void *rec);
typedef void (*ot_store_drop_fn)(void *rec);
ot_status ot_store_collect(ot_store *st, sqlite3_stmt *s, size_t elem, ot_store_row_fn read, ot_store_drop_fn drop,
                           int limit, void **out, int *n, int *has_more);
/* The seq of row `id` in `table` (restricted to job `job_id` when non-NULL); *found. */
ot_status ot_store_seq_of(ot_store *st, const char *table, const char *id, const char *job_id, int64_t *seq,
                          int *found);
ot_status ot_store_check_limit(int limit);

#endif
