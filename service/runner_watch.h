/* runner_watch.h — what a runner worker does while its child trains: turns new lines of
 * run/log.jsonl into step events and progress, new run/checkpoints/step-N folders into
 * checkpoint rows (metrics: train_loss, train_mean_token_accuracy and, when the job has a
 * validation file, valid_* and full_valid_* from the step's eval line), and, at the end, lists the exported artifacts or the last log lines.
 * Internal to service/runner*.c. One watch per running job, used by one thread. */
#ifndef OT_SERVICE_RUNNER_WATCH_H
#define OT_SERVICE_RUNNER_WATCH_H

#include <stdint.h>
#include <stdio.h>

#include "service/store.h"

typedef struct ot_watch {
    ot_store *st;
    char job_id[OT_ID_MAX];
    char *run_dir, *log_json, *train_log;
    long offset;         /* bytes of log.jsonl consumed */
    char *partial;       /* an unfinished last line */
    int64_t last_event_step; /* steps <= this already have events (earlier attempts) */
    int64_t total_steps;     /* 0 until known */
    int64_t first_step;      /* first step this attempt logged, -1 until seen */
    double first_elapsed;
    struct { int64_t step; double loss, acc; int has_acc; } *losses; /* logged steps, for checkpoint metrics */
    int nlosses, caplosses;
    /* logged evaluations ({"step", "eval": true, "valid_loss", ...} lines of --eval-data) */
    struct { int64_t step; double loss, acc; int has_acc, full; } *evals;
    int nevals, capevals;
    int64_t *ckpt_seen;
    int nseen, capseen;
} ot_watch;

/* Sets up a watch for a job whose work dir is job_dir (run dir job_dir/run); reads the
 * job's existing events to know which steps are already reported. */
ot_status ot_watch_init(ot_watch *w, ot_store *st, const char *job_id, const char *job_dir);
void ot_watch_free(ot_watch *w);
/* Consumes new log lines and checkpoint folders into the store. Errors are store errors. */
ot_status ot_watch_poll(ot_watch *w);
/* The highest complete checkpoint step under the run dir, 0 when none. */
int64_t ot_watch_latest_ckpt(const char *run_dir);
/* JSON array text (malloc'd) of the artifact names present under run/export. */
char *ot_watch_result_files(const char *run_dir);
/* The last `n` lines of `path` (malloc'd; "" when unreadable). */
char *ot_watch_tail_lines(const char *path, int n);

#endif
