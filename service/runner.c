/* runner.c — worker threads and child processes for fine-tuning jobs (see runner.h).
 *
 * Owns: data_dir/jobs/<id>/{job.json, train.log, run/} for the jobs it runs, and its
 * children. Each worker has a slot (job id, child pid, cancel flag) guarded by r->mu; a
 * worker reaps only its own child (waitpid on that pid), so nothing else in the process is
 * disturbed. Ordering that makes cancel race-free: the worker publishes the job id in its
 * slot, then re-reads the job's status before forking; cancel commits the status change,
 * then looks for the slot. Either the worker sees `cancelled` and skips, or cancel finds
 * the slot and signals (or flags, if the fork has not happened yet) the child. The worker
 * also polls the store, so a status changed by anyone else stops the child too. */
#include "service/runner.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "service/job_config.h"
#include "service/runner_watch.h"

#define POLL_MS 100      /* child watch interval */
#define IDLE_WAIT_MS 500 /* idle worker queue poll */
#define STATUS_EVERY 10  /* re-read the job's status every N polls */

typedef struct slot {
    char job_id[OT_ID_MAX]; /* "" when idle */
    pid_t pid;              /* child (= its process group), 0 when none */
    int cancel;             /* cancelled by the user: stop the child, keep `cancelled` */
    int64_t kill_at_ms;     /* SIGKILL deadline once SIGTERM was sent, 0 otherwise */
} slot;

struct ot_runner {
    ot_store *st;
    char *data_dir, *bin;
    int nworkers, started;
    pthread_t *threads;
    slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping, kick, active, kill_grace_ms;
};

typedef struct {
    ot_runner *r;
    int idx;
} worker_arg;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Sends SIGTERM to a slot's child once; caller holds r->mu. */
static void terminate_locked(ot_runner *r, slot *s) {
    if (s->pid > 0 && !s->kill_at_ms) {
        kill(-s->pid, SIGTERM);
        s->kill_at_ms = now_ms() + r->kill_grace_ms;
    }
}

/* ---- job setup ----------------------------------------------------------------------- */

static ot_status write_atomic(const char *path, const char *text) {
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return ot_errorf(OT_E_IO, "cannot create '%s': %s", tmp, strerror(errno));
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    int ok = off == len && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return ot_errorf(OT_E_IO, "cannot write '%s': %s", path, strerror(errno));
    }
    return OT_OK;
}

/* error JSON {"code","message","param"} (malloc'd) */
static char *error_json(const char *code, const char *message, const char *param) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    char *t = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    return t;
}

static void fail_job(ot_runner *r, const char *id, const char *code, const char *message, const char *param) {
    char *err = error_json(code, message, param);
    int changed = 0;
    ot_store_job_transition(r->st, id, OT_JOB_BIT(OT_JOB_RUNNING), OT_JOB_FAILED, err, NULL, NULL, "error", message,
                            &changed);
    free(err);
}

/* Writes job_dir/job.json for `job`; on a bad request fails the job and returns non-OK. */
static ot_status prepare(ot_runner *r, const ot_job_rec *job, const char *job_dir, const char *run_dir,
                         char *cfg_path, size_t n) {
    if (mkdir(job_dir, 0700) != 0 && errno != EEXIST)
        return ot_errorf(OT_E_IO, "cannot create job dir '%s': %s", job_dir, strerror(errno));
    if (mkdir(run_dir, 0700) != 0 && errno != EEXIST)
        return ot_errorf(OT_E_IO, "cannot create run dir '%s': %s", run_dir, strerror(errno));
    ot_file_rec f;
    int found = 0;
    OT_TRY(ot_store_file_get(r->st, job->training_file, &f, &found));
    if (!found) return ot_errorf(OT_E_INVALID, "training_file '%s' does not exist (deleted?)", job->training_file);
    /* stored files have no extension; the trainer picks the reader by extension */
    const char *ext = ".jsonl", *dot = f.filename ? strrchr(f.filename, '.') : NULL;
    if (dot && (!strcmp(dot, ".npy") || !strcmp(dot, ".bin"))) ext = dot;
    char data[4400];
    snprintf(data, sizeof data, "%s/training%s", job_dir, ext);
    unlink(data);
    if (symlink(f.path, data) != 0) {
        ot_file_rec_free(&f);
        return ot_errorf(OT_E_IO, "cannot link training data '%s': %s", data, strerror(errno));
    }
    ot_file_rec_free(&f);
    /* the validation file, linked the same way (the trainer evaluates it at each checkpoint) */
    char valid[4400];
    if (job->validation_file) {
        ot_file_rec vf;
        found = 0;
        OT_TRY(ot_store_file_get(r->st, job->validation_file, &vf, &found));
        if (!found)
            return ot_errorf(OT_E_INVALID, "validation_file '%s' does not exist (deleted?)", job->validation_file);
        const char *vext = ".jsonl", *vdot = vf.filename ? strrchr(vf.filename, '.') : NULL;
        if (vdot && (!strcmp(vdot, ".npy") || !strcmp(vdot, ".bin"))) vext = vdot;
        snprintf(valid, sizeof valid, "%s/validation%s", job_dir, vext);
        unlink(valid);
        int linked = symlink(vf.path, valid) == 0;
        ot_file_rec_free(&vf);
        if (!linked) return ot_errorf(OT_E_IO, "cannot link validation data '%s': %s", valid, strerror(errno));
    }
    cJSON *req = cJSON_Parse(job->request), *cfg = NULL;
    ot_status s = req ? ot_job_config_build(req, data, job->validation_file ? valid : NULL, run_dir, &cfg)
                      : ot_errorf(OT_E_INVALID, "stored request of job %s is not JSON", job->id);
    cJSON_Delete(req);
    char *text = s == OT_OK ? cJSON_Print(cfg) : NULL;
    cJSON_Delete(cfg);
    if (s == OT_OK && !text) s = ot_errorf(OT_E_NOMEM, "out of memory");
    snprintf(cfg_path, n, "%s/job.json", job_dir);
    if (s == OT_OK) s = write_atomic(cfg_path, text);
    free(text);
    return s;
}

/* ---- child --------------------------------------------------------------------------- */

/* Starts the child in its own process group, output to train.log; *pid = 0 on failure. */
static ot_status spawn(ot_runner *r, const char *cfg_path, const char *run_dir, int resume, const char *log_path,
                       pid_t *pid) {
    *pid = 0;
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return ot_errorf(OT_E_IO, "cannot open '%s': %s", log_path, strerror(errno));
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char *argv[] = {r->bin, "run", "--config", (char *)cfg_path, resume ? "--resume" : NULL, (char *)run_dir, NULL};
    pid_t server = getpid();
    pid_t p = fork();
    if (p == 0) { /* child: async-signal-safe calls only until exec */
        setpgid(0, 0);
        /* Die with the server (even on kill -9): a restarted server resumes the job, and a
         * surviving orphan would train into the same run directory next to it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != server) _exit(1); /* the server died before prctl took effect */
        if (devnull >= 0) dup2(devnull, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        close_range(3, ~0U, 0); /* the server's sockets and database stay with the server */
        execv(argv[0], argv);
        static const char msg[] = "onnxtune serve: exec of the onnxtune binary failed\n";
        ssize_t ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        _exit(127);
    }
    int e = errno;
    close(fd);
    if (devnull >= 0) close(devnull);
    if (p < 0) return ot_errorf(OT_E_IO, "fork failed: %s", strerror(e));
    setpgid(p, p); /* also from the parent, so a kill right after fork finds the group */
    *pid = p;
    return OT_OK;
}

/* Watches the child until it exits; returns its wait status. */
static int supervise(ot_runner *r, slot *sl, const char *id, ot_watch *w) {
    int status = 0;
    for (int tick = 0;; tick++) {
        pid_t got = waitpid(sl->pid, &status, WNOHANG);
        if (got == sl->pid || (got < 0 && errno != EINTR)) break;
        if (ot_watch_poll(w) != OT_OK) fprintf(stderr, "onnxtune serve: job %s: %s\n", id, ot_last_error());
        if (tick % STATUS_EVERY == STATUS_EVERY - 1) { /* changed behind our back (cancel elsewhere)? */
            ot_job_rec j;
            int found = 0;
            if (ot_store_job_get(r->st, id, &j, &found) == OT_OK && found) {
                if (j.status != OT_JOB_RUNNING) {
                    pthread_mutex_lock(&r->mu);
                    sl->cancel = 1;
                    terminate_locked(r, sl);
                    pthread_mutex_unlock(&r->mu);
                }
                ot_job_rec_free(&j);
            }
        }
        pthread_mutex_lock(&r->mu);
        if (r->stopping) terminate_locked(r, sl);
        if (sl->kill_at_ms && now_ms() >= sl->kill_at_ms) kill(-sl->pid, SIGKILL);
        pthread_mutex_unlock(&r->mu);
        sleep_ms(POLL_MS);
    }
    ot_watch_poll(w); /* the last lines and the final checkpoint */
    kill(-sl->pid, SIGKILL); /* grandchildren (mpirun ranks) go with the group */
    return status;
}

static void finish(ot_runner *r, const ot_job_rec *job, const ot_watch *w, int status, int cancelled, int stopping) {
    int changed = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !cancelled) {
        char *files = ot_watch_result_files(w->run_dir);
        char name[512];
        ot_job_fine_tuned_name(job->model, job->suffix, job->id, name, sizeof name);
        ot_store_job_transition(r->st, job->id, OT_JOB_BIT(OT_JOB_RUNNING), OT_JOB_SUCCEEDED, NULL, name,
                                files ? files : "[]", "info", "The job has successfully completed", &changed);
        free(files);
        return;
    }
    if (cancelled) {
        int64_t step = ot_watch_latest_ckpt(w->run_dir);
        char msg[160];
        snprintf(msg, sizeof msg, "Training stopped; last checkpoint kept (step %lld)", (long long)step);
        ot_store_event_add(r->st, job->id, "info", msg, NULL, NULL);
        return;
    }
    if (stopping) { /* stays `running`: the next server start requeues and resumes it */
        ot_store_event_add(r->st, job->id, "warn", "Server shutting down; the job will resume on restart", NULL, NULL);
        return;
    }
    char head[96];
    if (WIFEXITED(status)) snprintf(head, sizeof head, "onnxtune exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(head, sizeof head, "onnxtune was killed by signal %d", WTERMSIG(status));
    else snprintf(head, sizeof head, "onnxtune ended abnormally");
    char *tail = ot_watch_tail_lines(w->train_log, 20);
    size_t n = strlen(head) + strlen(tail ? tail : "") + 4;
    char *msg = malloc(n);
    if (msg) snprintf(msg, n, "%s:\n%s", head, tail ? tail : "");
    fail_job(r, job->id, "training_failed", msg ? msg : head, NULL);
    free(msg), free(tail);
}

static void run_job(ot_runner *r, slot *sl, ot_job_rec *job) {
    char job_dir[4096], run_dir[4200], cfg_path[4300], log_path[4300];
    if (ot_store_job_dir(r->st, job->id, job_dir, sizeof job_dir) != OT_OK) {
        fail_job(r, job->id, "internal_error", ot_last_error(), NULL);
        return;
    }
    snprintf(run_dir, sizeof run_dir, "%s/run", job_dir);
    snprintf(log_path, sizeof log_path, "%s/train.log", job_dir);
    if (prepare(r, job, job_dir, run_dir, cfg_path, sizeof cfg_path) != OT_OK) {
        fail_job(r, job->id, "invalid_request", ot_last_error(), NULL);
        return;
    }
    int64_t resume_step = ot_watch_latest_ckpt(run_dir);
    char msg[200];
    if (resume_step)
        snprintf(msg, sizeof msg, "Resuming from checkpoint step %lld (attempt %d)", (long long)resume_step, job->attempt);
    else
        snprintf(msg, sizeof msg, "Fine-tuning job started (attempt %d)", job->attempt);
    ot_store_event_add(r->st, job->id, "info", msg, NULL, NULL);
    ot_watch w;
    if (ot_watch_init(&w, r->st, job->id, job_dir) != OT_OK) {
        fail_job(r, job->id, "internal_error", ot_last_error(), NULL);
        return;
    }
    pid_t pid;
    if (spawn(r, cfg_path, run_dir, resume_step > 0, log_path, &pid) != OT_OK) {
        fail_job(r, job->id, "internal_error", ot_last_error(), NULL);
        ot_watch_free(&w);
        return;
    }
    pthread_mutex_lock(&r->mu);
    sl->pid = pid;
    r->active++;
    if (sl->cancel || r->stopping) terminate_locked(r, sl);
    pthread_mutex_unlock(&r->mu);
    ot_store_job_set_pid(r->st, job->id, pid);
    int status = supervise(r, sl, job->id, &w);
    pthread_mutex_lock(&r->mu);
    int cancelled = sl->cancel, stopping = r->stopping;
    sl->pid = 0;
    r->active--;
    pthread_mutex_unlock(&r->mu);
    finish(r, job, &w, status, cancelled, stopping);
    ot_watch_free(&w);
}

/* ---- workers ------------------------------------------------------------------------- */

static void *worker(void *arg) {
    ot_runner *r = ((worker_arg *)arg)->r;
    slot *sl = &r->slots[((worker_arg *)arg)->idx];
    free(arg);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int stop = r->stopping;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        ot_job_rec job;
        int found = 0;
        if (ot_store_job_claim_next(r->st, &job, &found) != OT_OK) {
            fprintf(stderr, "onnxtune serve: claiming a job: %s\n", ot_last_error());
            found = 0;
        }
        if (!found) {
            pthread_mutex_lock(&r->mu);
            if (!r->stopping && !r->kick) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += IDLE_WAIT_MS * 1000000L;
                if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
                pthread_cond_timedwait(&r->cv, &r->mu, &ts);
            }
            r->kick = 0;
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        pthread_mutex_lock(&r->mu);
        snprintf(sl->job_id, sizeof sl->job_id, "%s", job.id);
        sl->cancel = 0, sl->pid = 0, sl->kill_at_ms = 0;
        pthread_mutex_unlock(&r->mu);
        /* re-read after publishing the slot (see the file comment) */
        ot_job_rec cur;
        int still = 0;
        if (ot_store_job_get(r->st, job.id, &cur, &still) == OT_OK && still) {
            still = cur.status == OT_JOB_RUNNING;
            ot_job_rec_free(&cur);
        }
        if (still) run_job(r, sl, &job);
        pthread_mutex_lock(&r->mu);
        sl->job_id[0] = '\0';
        pthread_mutex_unlock(&r->mu);
        ot_job_rec_free(&job);
    }
    return NULL;
}

ot_status ot_runner_start(ot_store *st, const char *data_dir, const char *onnxtune_bin, int workers,
                          ot_runner **out) {
    *out = NULL;
    if (!st || !data_dir || !onnxtune_bin) return ot_errorf(OT_E_INVALID, "runner: missing store, data dir or binary");
    if (workers < 1 || workers > 64) return ot_errorf(OT_E_INVALID, "--workers must be 1..64, got %d", workers);
    if (access(onnxtune_bin, X_OK) != 0)
        return ot_errorf(OT_E_INVALID, "runner: '%s' is not an executable: %s", onnxtune_bin, strerror(errno));
    ot_runner *r = calloc(1, sizeof *r);
    if (!r) return ot_errorf(OT_E_NOMEM, "out of memory");
    r->st = st;
    r->nworkers = workers;
    r->kill_grace_ms = 10000;
    r->data_dir = strdup(data_dir);
    r->bin = strdup(onnxtune_bin);
    r->threads = calloc((size_t)workers, sizeof *r->threads);
    r->slots = calloc((size_t)workers, sizeof *r->slots);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (!r->data_dir || !r->bin || !r->threads || !r->slots) {
        ot_runner_stop(r);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < workers; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (a) a->r = r, a->idx = i; /* before the thread starts: it reads them at once */
        if (!a || pthread_create(&r->threads[i], NULL, worker, a) != 0) {
            if (a) free(a);
            ot_runner_stop(r);
            return ot_errorf(OT_E_IO, "runner: cannot start worker thread %d", i);
        }
        r->started++;
    }
    *out = r;
    return OT_OK;
}

void ot_runner_notify(ot_runner *r) {
    pthread_mutex_lock(&r->mu);
    r->kick = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

ot_status ot_runner_cancel(ot_runner *r, const char *job_id, int *changed) {
    *changed = 0;
    OT_TRY(ot_store_job_transition(r->st, job_id, OT_JOB_ACTIVE_MASK, OT_JOB_CANCELLED, NULL, NULL, NULL, "info",
                                   "Fine-tuning job cancelled", changed));
    if (!*changed) return OT_OK;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nworkers; i++)
        if (!strcmp(r->slots[i].job_id, job_id)) {
            r->slots[i].cancel = 1;
            terminate_locked(r, &r->slots[i]);
        }
    pthread_mutex_unlock(&r->mu);
    return OT_OK;
}

int ot_runner_active(ot_runner *r) {
    pthread_mutex_lock(&r->mu);
    int n = r->active;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void ot_runner_set_kill_grace_ms(ot_runner *r, int ms) {
    pthread_mutex_lock(&r->mu);
    r->kill_grace_ms = ms < 0 ? 0 : ms;
    pthread_mutex_unlock(&r->mu);
}

ot_status ot_runner_artifact_path(const char *data_dir, const char *job_id, const char *name, char *buf, size_t n) {
    static const char *const names[] = {"model.onnx", "model.safetensors", "adapter/adapter_model.safetensors",
                                        "adapter/adapter_config.json"};
    if (!ot_id_valid(job_id, OT_ID_JOB)) return ot_errorf(OT_E_INVALID, "invalid job id '%.64s'", job_id ? job_id : "");
    int ok = 0;
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++) ok |= !strcmp(name, names[i]);
    if (!ok) return ot_errorf(OT_E_INVALID, "unknown artifact '%.64s'", name ? name : "");
    if ((size_t)snprintf(buf, n, "%s/jobs/%s/run/export/%s", data_dir, job_id, name) >= n)
        return ot_errorf(OT_E_INVALID, "artifact path too long");
    return OT_OK;
}

void ot_runner_stop(ot_runner *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    for (int i = 0; r->slots && i < r->nworkers; i++) terminate_locked(r, &r->slots[i]);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->started; i++) pthread_join(r->threads[i], NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r->threads), free(r->slots), free(r->data_dir), free(r->bin);
    free(r);
}
