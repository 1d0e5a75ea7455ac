/* test_store.c — the service's job store (service/store.h) and ids: every function, the
 * idempotency key, compare-and-set and claim races between threads, list pagination, and
 * recovery after a simulated crash (jobs left running are requeued on reopen). */
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ot_test.h"
#include "service/store.h"

static char root[512];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static ot_job_new job_new(const char *key) {
    ot_job_new n = {0};
    n.model = "/models/base.onnx";
    n.training_file = "file-AAAAAAAAAAAAAAAAAAAAAAAA";
    n.request = "{\"model\":\"/models/base.onnx\"}";
    n.hyperparameters = "{\"n_epochs\":3}";
    n.idempotency_key = key;
    n.initial = OT_JOB_QUEUED;
    return n;
}

static void test_ids(void) {
    char a[OT_ID_MAX], b[OT_ID_MAX];
    CHECK_OK(ot_id_new(OT_ID_JOB, a));
    CHECK_OK(ot_id_new(OT_ID_JOB, b));
    CHECK(strncmp(a, "ftjob-", 6) == 0 && strlen(a) == 6 + 24);
    CHECK(strcmp(a, b) != 0);
    CHECK(ot_id_valid(a, OT_ID_JOB));
    CHECK(!ot_id_valid(a, OT_ID_FILE));
    CHECK(!ot_id_valid("ftjob-../../../etc/passwd", OT_ID_JOB));
    CHECK(!ot_id_valid("ftjob-AAAAAAAAAAAAAAAAAAAAAAA", OT_ID_JOB));   /* 23 */
    CHECK(!ot_id_valid("ftjob-AAAAAAAAAAAAAAAAAAAAAAA/", OT_ID_JOB));  /* bad char */
    CHECK(!ot_id_valid("ftjob-AAAAAAAAAAAAAAAAAAAAAAAAA", OT_ID_JOB)); /* 25 */
    CHECK(ot_id_valid("ftjob-AAAAAAAAAAAAAAAAAAAAAAAA", OT_ID_JOB));
    CHECK(!ot_id_valid(NULL, OT_ID_JOB));
    ot_job_status s;
    CHECK_OK(ot_job_status_parse("cancelled", &s));
    CHECK(s == OT_JOB_CANCELLED && ot_job_status_terminal(s));
    CHECK(ot_job_status_parse("done", &s) == OT_E_INVALID);
    CHECK(!strcmp(ot_job_status_name(OT_JOB_VALIDATING_FILES), "validating_files"));
}

static void test_open_files(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/files-case", root);
    ot_store *st = NULL;
    CHECK_OK(ot_store_open(dir, &st));
    if (!st) return;
    CHECK(ot_store_schema_version(st) == 1);
    char p[800];
    snprintf(p, sizeof p, "%s/onnxtune.db", dir);
    CHECK(exists(p));
    snprintf(p, sizeof p, "%s/jobs", dir);
    CHECK(exists(p));
    /* add three files */
    ot_file_rec f[3];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/up%d", ot_store_tmp_dir(st), i);
        write_text(p, i == 1 ? "{\"text\": \"hello\"}\n" : "{}\n");
        CHECK_OK(ot_store_file_add(st, p, i == 1 ? "train.jsonl" : "x.jsonl", i == 2 ? "other" : "fine-tune", &f[i]));
        CHECK(!exists(p)); /* moved */
        CHECK(ot_id_valid(f[i].id, OT_ID_FILE));
        CHECK(f[i].path && exists(f[i].path));
        CHECK(f[i].status && !strcmp(f[i].status, "processed"));
    }
    CHECK(f[1].bytes == (int64_t)strlen("{\"text\": \"hello\"}\n"));
    CHECK(!strcmp(f[1].filename, "train.jsonl"));
    CHECK(ot_store_file_add(st, "/nonexistent/upload", "a", "fine-tune", NULL) != OT_OK);
    /* get */
    ot_file_rec g;
    int found = 0;
    CHECK_OK(ot_store_file_get(st, f[1].id, &g, &found));
    CHECK(found && g.bytes == f[1].bytes && !strcmp(g.path, f[1].path));
    if (found) ot_file_rec_free(&g);
    CHECK_OK(ot_store_file_get(st, "file-../../onnxtune.db", &g, &found));
    CHECK(!found);
    /* list: newest first, paginated, filtered */
    ot_file_rec *v;
    int n, more;
    CHECK_OK(ot_store_file_list(st, NULL, NULL, 2, &v, &n, &more));
    CHECK(n == 2 && more == 1);
    if (n == 2) CHECK(!strcmp(v[0].id, f[2].id) && !strcmp(v[1].id, f[1].id));
    ot_file_recs_free(v, n);
    CHECK_OK(ot_store_file_list(st, NULL, f[1].id, 2, &v, &n, &more));
    CHECK(n == 1 && more == 0 && !strcmp(v[0].id, f[0].id));
    ot_file_recs_free(v, n);
    CHECK_OK(ot_store_file_list(st, "fine-tune", NULL, 10, &v, &n, &more));
    CHECK(n == 2);
    ot_file_recs_free(v, n);
    CHECK(ot_store_file_list(st, NULL, "file-ZZZZZZZZZZZZZZZZZZZZZZZZ", 10, &v, &n, &more) == OT_E_INVALID);
    CHECK(ot_store_file_list(st, NULL, NULL, 0, &v, &n, &more) == OT_E_INVALID);
    /* delete */
    CHECK_OK(ot_store_file_delete(st, f[0].id, &found));
    CHECK(found && !exists(f[0].path));
    CHECK_OK(ot_store_file_delete(st, f[0].id, &found));
    CHECK(!found);
    CHECK_OK(ot_store_file_get(st, f[0].id, &g, &found));
    CHECK(!found);
    for (int i = 0; i < 3; i++) ot_file_rec_free(&f[i]);
    ot_store_close(st);
    /* the data dir must be a directory */
    snprintf(p, sizeof p, "%s/plainfile", root);
    write_text(p, "x");
    CHECK(ot_store_open(p, &st) != OT_OK);
}

static void test_jobs(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/jobs-case", root);
    ot_store *st = NULL;
    CHECK_OK(ot_store_open(dir, &st));
    if (!st) return;
    ot_job_rec a, b, c;
    int existed = 0;
    ot_job_new n = job_new("key-1");
    n.suffix = "mine";
    n.has_seed = 1, n.seed = 7;
    n.metadata = "{\"team\":\"x\"}";
    CHECK_OK(ot_store_job_create(st, &n, &a, &existed));
    CHECK(!existed && ot_id_valid(a.id, OT_ID_JOB) && a.status == OT_JOB_QUEUED);
    CHECK(a.has_seed && a.seed == 7 && !strcmp(a.suffix, "mine") && !strcmp(a.metadata, "{\"team\":\"x\"}"));
    CHECK(!strcmp(a.result_files, "[]") && a.error == NULL && a.attempt == 0 && a.created_at > 0);
    /* idempotency: same key -> same job, nothing inserted */
    CHECK_OK(ot_store_job_create(st, &n, &b, &existed));
    CHECK(existed && !strcmp(a.id, b.id));
    ot_job_rec_free(&b);
    ot_job_new n2 = job_new(NULL);
    CHECK_OK(ot_store_job_create(st, &n2, &b, &existed));
    CHECK(!existed && strcmp(a.id, b.id) != 0 && b.idempotency_key == NULL && !b.has_seed);
    n2.initial = OT_JOB_VALIDATING_FILES;
    CHECK_OK(ot_store_job_create(st, &n2, &c, &existed));
    CHECK(c.status == OT_JOB_VALIDATING_FILES);
    n2.initial = OT_JOB_RUNNING;
    ot_job_rec bad;
    CHECK(ot_store_job_create(st, &n2, &bad, &existed) == OT_E_INVALID);
    n2.request = NULL;
    n2.initial = OT_JOB_QUEUED;
    CHECK(ot_store_job_create(st, &n2, &bad, &existed) == OT_E_INVALID);
    /* list newest first */
    ot_job_rec *v;
    int cnt, more, found;
    CHECK_OK(ot_store_job_list(st, NULL, 2, &v, &cnt, &more));
    CHECK(cnt == 2 && more);
    if (cnt == 2) CHECK(!strcmp(v[0].id, c.id) && !strcmp(v[1].id, b.id));
    ot_job_recs_free(v, cnt);
    CHECK_OK(ot_store_job_list(st, b.id, 10, &v, &cnt, &more));
    CHECK(cnt == 1 && !more && !strcmp(v[0].id, a.id));
    ot_job_recs_free(v, cnt);
    CHECK(ot_store_job_list(st, "ftjob-nope", 10, &v, &cnt, &more) == OT_E_INVALID);
    /* claim: FIFO, skips validating_files */
    ot_job_rec got;
    CHECK_OK(ot_store_job_claim_next(st, &got, &found));
    CHECK(found && !strcmp(got.id, a.id) && got.status == OT_JOB_RUNNING && got.attempt == 1 && got.started_at > 0);
    if (found) ot_job_rec_free(&got);
    CHECK_OK(ot_store_job_claim_next(st, &got, &found));
    CHECK(found && !strcmp(got.id, b.id));
    if (found) ot_job_rec_free(&got);
    CHECK_OK(ot_store_job_claim_next(st, &got, &found));
    CHECK(!found);
    /* pid, progress */
    CHECK_OK(ot_store_job_set_pid(st, a.id, 4242));
    CHECK_OK(ot_store_job_set_progress(st, a.id, 1234, 1999999999));
    CHECK_OK(ot_store_job_get(st, a.id, &got, &found));
    CHECK(found && got.pid == 4242 && got.trained_tokens == 1234 && got.estimated_finish == 1999999999);
    if (found) ot_job_rec_free(&got);
    /* CAS */
    int changed;
    CHECK_OK(ot_store_job_set_status(st, a.id, OT_JOB_BIT(OT_JOB_QUEUED), OT_JOB_FAILED, NULL, &changed));
    CHECK(changed == 0);
    CHECK_OK(ot_store_job_succeed(st, a.id, "ft:base:mine", "[\"model.onnx\"]", &changed));
    CHECK(changed == 1);
    CHECK_OK(ot_store_job_succeed(st, a.id, "ft:other", "[]", &changed));
    CHECK(changed == 0);
    CHECK_OK(ot_store_job_get(st, a.id, &got, &found));
    CHECK(found && got.status == OT_JOB_SUCCEEDED && !strcmp(got.fine_tuned_model, "ft:base:mine") &&
          !strcmp(got.result_files, "[\"model.onnx\"]") && got.finished_at > 0 && got.pid == 0);
    if (found) ot_job_rec_free(&got);
    CHECK_OK(ot_store_job_set_status(st, b.id, OT_JOB_ACTIVE_MASK, OT_JOB_FAILED,
                                     "{\"code\":\"x\",\"message\":\"boom\",\"param\":null}", &changed));
    CHECK(changed == 1);
    CHECK_OK(ot_store_job_set_status(st, b.id, OT_JOB_ACTIVE_MASK, OT_JOB_CANCELLED, NULL, &changed));
    CHECK(changed == 0); /* terminal states are final */
    CHECK_OK(ot_store_job_get(st, b.id, &got, &found));
    CHECK(found && got.status == OT_JOB_FAILED && got.error && strstr(got.error, "boom"));
    if (found) ot_job_rec_free(&got);
    /* a transition and its event commit together, or not at all */
    ot_job_rec t;
    ot_job_new tn = job_new(NULL);
    CHECK_OK(ot_store_job_create(st, &tn, &t, &existed));
    CHECK_OK(ot_store_job_transition(st, t.id, OT_JOB_ACTIVE_MASK, OT_JOB_CANCELLED, NULL, NULL, NULL, "info",
                                     "Fine-tuning job cancelled", &changed));
    CHECK(changed == 1);
    CHECK_OK(ot_store_job_transition(st, t.id, OT_JOB_ACTIVE_MASK, OT_JOB_FAILED, NULL, NULL, NULL, "info", "late",
                                     &changed));
    CHECK(changed == 0);
    ot_event_rec *tev;
    int tn_ev, tmore;
    CHECK_OK(ot_store_event_list(st, t.id, NULL, 10, 1, &tev, &tn_ev, &tmore));
    CHECK(tn_ev == 1 && !strcmp(tev[0].message, "Fine-tuning job cancelled"));
    ot_event_recs_free(tev, tn_ev);
    ot_job_rec_free(&t);
    CHECK_OK(ot_store_job_set_status(st, "ftjob-../x", OT_JOB_ACTIVE_MASK, OT_JOB_CANCELLED, NULL, &changed));
    CHECK(changed == 0);
    /* counts */
    int64_t counts[OT_JOB_NSTATES], tokens;
    CHECK_OK(ot_store_job_counts(st, counts, &tokens));
    CHECK(counts[OT_JOB_SUCCEEDED] == 1 && counts[OT_JOB_FAILED] == 1 && counts[OT_JOB_CANCELLED] == 1 && counts[OT_JOB_VALIDATING_FILES] == 1 &&
          counts[OT_JOB_QUEUED] == 0 && tokens == 1234);
    /* job dir */
    char jd[1024];
    CHECK_OK(ot_store_job_dir(st, a.id, jd, sizeof jd));
    CHECK(strstr(jd, a.id) && strstr(jd, "/jobs/"));
    CHECK(ot_store_job_dir(st, "../../etc", jd, sizeof jd) == OT_E_INVALID);

    /* events */
    ot_event_rec e1, e2;
    CHECK_OK(ot_store_event_add(st, a.id, "info", "Step 1", "{\"step\":1}", &e1));
    CHECK(ot_id_valid(e1.id, OT_ID_EVENT) && !strcmp(e1.job_id, a.id) && !strcmp(e1.data, "{\"step\":1}"));
    CHECK_OK(ot_store_event_add(st, a.id, "warn", "Step 2", NULL, &e2));
    CHECK(e2.seq > e1.seq && e2.data == NULL);
    CHECK_OK(ot_store_event_add(st, b.id, "error", "other job", NULL, NULL));
    CHECK_OK(ot_store_event_add(st, a.id, "info", "Step 3", NULL, NULL));
    CHECK(ot_store_event_add(st, a.id, "debug", "x", NULL, NULL) == OT_E_INVALID);
    CHECK(ot_store_event_add(st, "ftjob-AAAAAAAAAAAAAAAAAAAAAAAA", "info", "no job", NULL, NULL) != OT_OK); /* FK */
    ot_event_rec *ev;
    CHECK_OK(ot_store_event_list(st, a.id, NULL, 2, 1, &ev, &cnt, &more));
    CHECK(cnt == 2 && more && !strcmp(ev[0].message, "Step 3") && !strcmp(ev[1].message, "Step 2"));
    ot_event_recs_free(ev, cnt);
    CHECK_OK(ot_store_event_list(st, a.id, e2.id, 10, 1, &ev, &cnt, &more));
    CHECK(cnt == 1 && !more && !strcmp(ev[0].id, e1.id));
    ot_event_recs_free(ev, cnt);
    CHECK_OK(ot_store_event_list(st, a.id, e1.id, 10, 0, &ev, &cnt, &more)); /* streaming order */
    CHECK(cnt == 2 && !strcmp(ev[0].message, "Step 2") && !strcmp(ev[1].message, "Step 3"));
    ot_event_recs_free(ev, cnt);
    CHECK(ot_store_event_list(st, b.id, e1.id, 10, 0, &ev, &cnt, &more) == OT_E_INVALID); /* other job's event */
    ot_event_rec_free(&e1), ot_event_rec_free(&e2);

    /* checkpoints */
    ot_ckpt_rec k1, k2, k1b;
    CHECK_OK(ot_store_ckpt_add(st, a.id, 10, "{\"step\":10,\"train_loss\":1.5}", "/d/step-10", &k1));
    CHECK(ot_id_valid(k1.id, OT_ID_CKPT) && k1.step == 10);
    CHECK_OK(ot_store_ckpt_add(st, a.id, 20, NULL, "/d/step-20", &k2));
    CHECK(!strcmp(k2.metrics, "{}"));
    CHECK_OK(ot_store_ckpt_add(st, a.id, 10, "{}", "/elsewhere", &k1b)); /* idempotent */
    CHECK(!strcmp(k1b.id, k1.id) && !strcmp(k1b.path, "/d/step-10"));
    ot_ckpt_rec *kv;
    CHECK_OK(ot_store_ckpt_list(st, a.id, NULL, 1, &kv, &cnt, &more));
    CHECK(cnt == 1 && more && kv[0].step == 20);
    ot_ckpt_recs_free(kv, cnt);
    CHECK_OK(ot_store_ckpt_list(st, a.id, k2.id, 10, &kv, &cnt, &more));
    CHECK(cnt == 1 && !more && kv[0].step == 10 && strstr(kv[0].metrics, "1.5"));
    ot_ckpt_recs_free(kv, cnt);
    CHECK_OK(ot_store_ckpt_list(st, b.id, NULL, 10, &kv, &cnt, &more));
    CHECK(cnt == 0);
    ot_ckpt_recs_free(kv, cnt);
    CHECK(ot_store_ckpt_add(st, a.id, -1, NULL, "/x", NULL) == OT_E_INVALID);
    ot_ckpt_rec_free(&k1), ot_ckpt_rec_free(&k2), ot_ckpt_rec_free(&k1b);

    /* everything is still there after reopening */
    char aid[OT_ID_MAX];
    snprintf(aid, sizeof aid, "%s", a.id);
    ot_job_rec_free(&a), ot_job_rec_free(&b), ot_job_rec_free(&c);
    ot_store_close(st);
    CHECK_OK(ot_store_open(dir, &st));
    if (!st) return;
    CHECK_OK(ot_store_job_get(st, aid, &got, &found));
    CHECK(found && got.status == OT_JOB_SUCCEEDED);
    if (found) ot_job_rec_free(&got);
    CHECK_OK(ot_store_event_list(st, aid, NULL, 10, 1, &ev, &cnt, &more));
    CHECK(cnt == 3);
    ot_event_recs_free(ev, cnt);
    ot_store_close(st);
}

/* ---- races --------------------------------------------------------------------------- */

#define RACE_JOBS 40
typedef struct {
    ot_store *st;
    char (*ids)[OT_ID_MAX];
    int which; /* 0: finisher (running -> succeeded), 1: canceller */
    int wins[RACE_JOBS];
} race_arg;

static void *racer(void *p) {
    race_arg *a = p;
    for (int i = 0; i < RACE_JOBS; i++) {
        int changed = 0;
        if (a->which == 0) ot_store_job_succeed(a->st, a->ids[i], "ft:m:x", "[]", &changed);
        else ot_store_job_set_status(a->st, a->ids[i], OT_JOB_ACTIVE_MASK, OT_JOB_CANCELLED, NULL, &changed);
        a->wins[i] = changed;
    }
    return NULL;
}

typedef struct {
    ot_store *st;
    char got[RACE_JOBS][OT_ID_MAX];
    int n;
} claim_arg;

static void *claimer(void *p) {
    claim_arg *a = p;
    for (;;) {
        ot_job_rec j;
        int found = 0;
        if (ot_store_job_claim_next(a->st, &j, &found) != OT_OK || !found) break;
        if (a->n < RACE_JOBS) snprintf(a->got[a->n++], OT_ID_MAX, "%s", j.id);
        ot_job_rec_free(&j);
    }
    return NULL;
}

static void test_races(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/race-case", root);
    ot_store *st = NULL;
    CHECK_OK(ot_store_open(dir, &st));
    if (!st) return;
    static char ids[RACE_JOBS][OT_ID_MAX];
    for (int i = 0; i < RACE_JOBS; i++) {
        ot_job_new n = job_new(NULL);
        ot_job_rec r;
        int existed;
        CHECK_OK(ot_store_job_create(st, &n, &r, &existed));
        snprintf(ids[i], OT_ID_MAX, "%s", r.id);
        ot_job_rec_free(&r);
    }
    /* two workers claim concurrently: every job exactly once */
    static claim_arg c1, c2;
    c1.st = c2.st = st;
    pthread_t t1, t2;
    pthread_create(&t1, NULL, claimer, &c1);
    pthread_create(&t2, NULL, claimer, &c2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK(c1.n + c2.n == RACE_JOBS);
    int dup = 0;
    for (int i = 0; i < c1.n; i++)
        for (int j = 0; j < c2.n; j++) dup += !strcmp(c1.got[i], c2.got[j]);
    CHECK(dup == 0);
    /* finish vs cancel: exactly one winner per job, and the stored state agrees */
    static race_arg fin, can;
    fin.st = can.st = st, fin.ids = can.ids = ids, fin.which = 0, can.which = 1;
    pthread_create(&t1, NULL, racer, &fin);
    pthread_create(&t2, NULL, racer, &can);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    int bad = 0;
    for (int i = 0; i < RACE_JOBS; i++) {
        ot_job_rec r;
        int found = 0;
        ot_store_job_get(st, ids[i], &r, &found);
        if (fin.wins[i] + can.wins[i] != 1) bad++;
        else if (found && r.status != (fin.wins[i] ? OT_JOB_SUCCEEDED : OT_JOB_CANCELLED)) bad++;
        if (found) ot_job_rec_free(&r);
    }
    CHECK(bad == 0);
    ot_store_close(st);
}

/* open, a worker claims a job (running), the process "dies" (close without finishing),
 * reopen: the job is queued again with its attempt count, then claimable as attempt 2. */
static void test_recovery(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/recover-case", root);
    ot_store *st = NULL;
    CHECK_OK(ot_store_open(dir, &st));
    if (!st) return;
    ot_job_new n = job_new("k");
    ot_job_rec a, q, got;
    int existed, found;
    CHECK_OK(ot_store_job_create(st, &n, &a, &existed));
    n.idempotency_key = "k2";
    CHECK_OK(ot_store_job_create(st, &n, &q, &existed));
    CHECK_OK(ot_store_job_claim_next(st, &got, &found));
    CHECK(found && !strcmp(got.id, a.id));
    if (found) ot_job_rec_free(&got);
    CHECK_OK(ot_store_job_set_pid(st, a.id, 99999));
    CHECK_OK(ot_store_ckpt_add(st, a.id, 5, NULL, "/ck/5", NULL));
    ot_store_close(st); /* crash: never finished */

    CHECK_OK(ot_store_open(dir, &st));
    if (!st) return;
    int requeued = -1;
    CHECK_OK(ot_store_recover_after_restart(st, &requeued));
    CHECK(requeued == 1);
    CHECK_OK(ot_store_job_get(st, a.id, &got, &found));
    CHECK(found && got.status == OT_JOB_QUEUED && got.pid == 0 && got.attempt == 1);
    if (found) ot_job_rec_free(&got);
    ot_ckpt_rec *kv;
    int cnt, more;
    CHECK_OK(ot_store_ckpt_list(st, a.id, NULL, 10, &kv, &cnt, &more));
    CHECK(cnt == 1); /* checkpoints survive */
    ot_ckpt_recs_free(kv, cnt);
    /* FIFO still holds: the recovered (older) job comes first, as attempt 2 */
    CHECK_OK(ot_store_job_claim_next(st, &got, &found));
    CHECK(found && !strcmp(got.id, a.id) && got.attempt == 2);
    if (found) ot_job_rec_free(&got);
    CHECK_OK(ot_store_recover_after_restart(st, NULL));
    ot_job_rec_free(&a), ot_job_rec_free(&q);
    ot_store_close(st);
}

int main(void) {
    ot_test_mkdtemp(root, sizeof root, "ot_store_");
    OT_RUN(test_ids);
    OT_RUN(test_open_files);
    OT_RUN(test_jobs);
    OT_RUN(test_races);
    OT_RUN(test_recovery);
    ot_test_rmtree(root);
    return OT_TEST_EXIT();
}
