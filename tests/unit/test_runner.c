/* test_runner.c — the service's job runner (service/runner.h) and job file translation
 * (service/job_config.h). A fake `onnxtune` (a shell script written here) stands in for
 * training so success, failure, cancel (with and without SIGKILL escalation), shutdown and
 * resume are exercised in milliseconds; one real short LoRA run of the built onnxtune on
 * samples/gpt2-tiny checks events, checkpoints and artifacts end to end. */
#include <cJSON.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ot_test.h"
#include "service/job_config.h"
#include "service/runner.h"

static char root[512], fake[600];

static const char FAKE_SCRIPT[] =
    "#!/bin/sh\n"
    "cfg=\"$3\"\n"
    "out=$(sed -n 's/.*\"out\":[[:space:]]*\"\\([^\"]*\\)\".*/\\1/p' \"$cfg\")\n"
    "echo \"fake onnxtune $*\"\n"
    "echo 'training 10 parameters in 1 tensors (LoRA), 4 steps of 8 samples (8 x 1)' >&2\n"
    "mode=ok\n"
    "for m in fail sleep stubborn; do grep -q \"/$m.onnx\" \"$cfg\" && mode=$m; done\n"
    "first=1; [ \"$4\" = --resume ] && first=3\n"
    "step() { echo \"{\\\"step\\\": $1, \\\"loss\\\": 2.$1, \\\"lr\\\": 0.0001, \\\"grad_norm\\\": 1, \\\"tokens\\\": "
    "$(($1*100)), \\\"tokens_per_s\\\": 10, \\\"elapsed_s\\\": $1, \\\"train_mean_token_accuracy\\\": 0.7$1}\" "
    ">> \"$out/log.jsonl\"; }\n"
    /* with eval_data, an eval line before each checkpoint, as the trainer writes it */
    "ev() { grep -q '\"eval_data\"' \"$cfg\" && echo \"{\\\"step\\\": $1, \\\"eval\\\": true, \\\"valid_loss\\\": 1.$1, "
    "\\\"valid_mean_token_accuracy\\\": 0.$1, \\\"eval_batches\\\": 2, \\\"full_set\\\": true}\" >> \"$out/log.jsonl\"; }\n"
    "ckpt() { d=\"$out/checkpoints/step-0000000$1\"; mkdir -p \"$d.tmp.1\" && echo '{}' > \"$d.tmp.1/manifest.json\" "
    "&& mv \"$d.tmp.1\" \"$d\"; }\n"
    "step $first; step 2; ev 2; ckpt 2; step 3\n"
    "case $mode in\n"
    "fail) echo 'error: boom at step 3' >&2; exit 3;;\n"
    "sleep) [ \"$4\" = --resume ] || { i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; exit 9; };;\n"
    "stubborn) trap '' TERM; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; exit 9;;\n"
    "esac\n"
    "step 4; ev 4; ckpt 4\n"
    "mkdir -p \"$out/export/adapter\"\n"
    "for f in model.onnx model.safetensors adapter/adapter_model.safetensors adapter/adapter_config.json; do "
    "echo x > \"$out/export/$f\"; done\n"
    "exit 0\n";

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Copies `src` into the store as a fine-tune file; its id into id. */
static void add_file(ot_store *st, const char *src_text, const char *src_path, char id[OT_ID_MAX]) {
    char p[800];
    snprintf(p, sizeof p, "%s/upload", ot_store_tmp_dir(st));
    if (src_path) {
        char cmd[2000];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src_path, p);
        if (system(cmd) != 0) fprintf(stderr, "copy failed\n");
    } else {
        write_text(p, src_text);
    }
    ot_file_rec f;
    id[0] = '\0';
    CHECK_OK(ot_store_file_add(st, p, "train.jsonl", "fine-tune", &f));
    snprintf(id, OT_ID_MAX, "%s", f.id);
    ot_file_rec_free(&f);
}

/* A queued job; valid_id: its validation_file (NULL for none). */
static void create_job_valid(ot_store *st, const char *model, const char *file_id, const char *valid_id,
                             const char *onnxtune, const char *suffix, char id[OT_ID_MAX]) {
    char req[2000], vf[128] = "";
    if (valid_id) snprintf(vf, sizeof vf, "\"validation_file\":\"%s\",", valid_id);
    snprintf(req, sizeof req,
             "{\"model\":\"%s\",\"training_file\":\"%s\",%s\"method\":{\"type\":\"supervised\",\"supervised\":"
             "{\"hyperparameters\":{\"batch_size\":2,\"n_epochs\":\"auto\"}}},\"onnxtune\":%s}",
             model, file_id, vf, onnxtune ? onnxtune : "{}");
    ot_job_new n = {0};
    n.model = model, n.training_file = file_id, n.request = req, n.suffix = suffix, n.initial = OT_JOB_QUEUED;
    n.validation_file = valid_id;
    ot_job_rec r;
    int existed;
    id[0] = '\0';
    CHECK_OK(ot_store_job_create(st, &n, &r, &existed));
    snprintf(id, OT_ID_MAX, "%s", r.id);
    ot_job_rec_free(&r);
}

static void create_job(ot_store *st, const char *model, const char *file_id, const char *onnxtune,
                       const char *suffix, char id[OT_ID_MAX]) {
    create_job_valid(st, model, file_id, NULL, onnxtune, suffix, id);
}

/* Polls until the job's status is in `mask` (at most timeout_ms); returns the status. */
static ot_job_status wait_status(ot_store *st, const char *id, unsigned mask, int timeout_ms, ot_job_rec *out) {
    ot_job_status s = OT_JOB_NSTATES;
    for (int t = 0; t <= timeout_ms; t += 20) {
        ot_job_rec r;
        int found = 0;
        if (ot_store_job_get(st, id, &r, &found) == OT_OK && found) {
            s = r.status;
            if (mask & OT_JOB_BIT(s)) {
                if (out) *out = r;
                else ot_job_rec_free(&r);
                return s;
            }
            ot_job_rec_free(&r);
        }
        sleep_ms(20);
    }
    return s;
}

static int count_events(ot_store *st, const char *id, const char *needle, int *step_events) {
    ot_event_rec *ev;
    int n = 0, more, hits = 0;
    if (step_events) *step_events = 0;
    if (ot_store_event_list(st, id, NULL, 1000, 0, &ev, &n, &more) != OT_OK) return -1;
    for (int i = 0; i < n; i++) {
        if (strstr(ev[i].message, needle)) hits++;
        if (step_events && !strncmp(ev[i].message, "Step ", 5)) (*step_events)++;
    }
    ot_event_recs_free(ev, n);
    return hits;
}

static void test_job_config(void) {
    cJSON *req = cJSON_Parse("{\"model\":\"/m/base.onnx\",\"seed\":5,\"method\":{\"type\":\"supervised\","
                             "\"supervised\":{\"hyperparameters\":{\"n_epochs\":2,\"batch_size\":\"auto\","
                             "\"learning_rate_multiplier\":2}}},\"onnxtune\":{\"lora-r\":4,\"steps\":10}}");
    cJSON *cfg = NULL, *hp = NULL;
    CHECK_OK(ot_job_config_build(req, "/d/files/file-x", NULL, "/d/jobs/j/run", &cfg));
    CHECK(cfg && !strcmp(cJSON_GetObjectItem(cfg, "data")->valuestring, "/d/files/file-x"));
    CHECK(cfg && cJSON_GetObjectItem(cfg, "epochs")->valuedouble == 2);
    CHECK(cfg && cJSON_GetObjectItem(cfg, "batch_size")->valuedouble == OT_JOB_DEFAULT_BATCH);
    CHECK(cfg && fabs(cJSON_GetObjectItem(cfg, "lr")->valuedouble - 2e-4) < 1e-12);
    CHECK(cfg && cJSON_GetObjectItem(cfg, "lora_r")->valuedouble == 4 && cJSON_GetObjectItem(cfg, "seed"));
    CHECK(cfg && !strcmp(cJSON_GetObjectItem(cfg, "log_json")->valuestring, "/d/jobs/j/run/log.jsonl"));
    CHECK(cfg && cJSON_GetArraySize(cJSON_GetObjectItem(cfg, "export")) == 3);
    CHECK(cfg && !cJSON_GetObjectItem(cfg, "eval_data")); /* no validation file: no eval */
    cJSON_Delete(cfg);
    /* a validation file becomes eval_data */
    CHECK_OK(ot_job_config_build(req, "/d/files/file-x", "/d/jobs/j/validation.jsonl", "/d/jobs/j/run", &cfg));
    CHECK(cfg && cJSON_IsString(cJSON_GetObjectItem(cfg, "eval_data")) &&
          !strcmp(cJSON_GetObjectItem(cfg, "eval_data")->valuestring, "/d/jobs/j/validation.jsonl"));
    cJSON_Delete(cfg);
    CHECK_OK(ot_job_hyperparameters(req, &hp));
    CHECK(hp && cJSON_GetObjectItem(hp, "batch_size")->valuedouble == OT_JOB_DEFAULT_BATCH);
    cJSON_Delete(hp);
    cJSON_Delete(req);
    static const char *const bad[] = {
        "{\"model\":\"m\",\"onnxtune\":{\"lora_rr\":4}}",               /* unknown option */
        "{\"model\":\"m\",\"onnxtune\":{\"lora_r\":\"four\"}}",         /* wrong type */
        "{\"model\":\"m\",\"onnxtune\":{\"out\":\"/etc\"}}",            /* reserved */
        "{\"model\":\"m\",\"onnxtune\":{\"--log-json\":\"/tmp/x\"}}",   /* reserved, dashed */
        "{\"model\":\"m\",\"onnxtune\":{\"eval-data\":\"/etc/x\"}}",    /* reserved: the validation_file's */
        "{\"model\":\"m\",\"onnxtune\":{\"full\":true,\"export\":[\"peft\"]}}",
        "{\"model\":\"m\",\"hyperparameters\":{\"n_epochs\":0}}",
        "{\"model\":\"m\",\"method\":{\"type\":\"dpo\"}}",
        "{\"model\":\"m\",\"method\":{\"supervised\":{\"hyperparameters\":{\"batch_size\":1.5}}}}",
        "{\"model\":\"m\",\"seed\":-1}",
        "{\"model\":3}",
        "{\"model\":\"m\",\"onnxtune\":[1]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        req = cJSON_Parse(bad[i]);
        cfg = NULL;
        ot_status s = ot_job_config_build(req, "/d", NULL, "/r", &cfg);
        if (s == OT_OK) fprintf(stderr, "accepted bad request: %s\n", bad[i]);
        CHECK(s == OT_E_INVALID && cfg == NULL);
        cJSON_Delete(cfg);
        cJSON_Delete(req);
    }
    /* full fine-tuning exports no adapter */
    req = cJSON_Parse("{\"model\":\"m\",\"onnxtune\":{\"full\":true}}");
    CHECK_OK(ot_job_config_build(req, "/d", NULL, "/r", &cfg));
    CHECK(cfg && cJSON_GetArraySize(cJSON_GetObjectItem(cfg, "export")) == 2);
    cJSON_Delete(cfg);
    cJSON_Delete(req);
    char name[256];
    ot_job_fine_tuned_name("/models/gpt2-tiny/model.onnx", "mine", "ftjob-1", name, sizeof name);
    CHECK(!strcmp(name, "ft:model:mine"));
    ot_job_fine_tuned_name("hf://org/Llama-3", NULL, "ftjob-1", name, sizeof name);
    CHECK(!strcmp(name, "ft:Llama-3:ftjob-1"));
    ot_job_fine_tuned_name("/models/gpt2-tiny/", "", "ftjob-1", name, sizeof name);
    CHECK(!strcmp(name, "ft:gpt2-tiny:ftjob-1"));
    char p[512];
    CHECK_OK(ot_runner_artifact_path("/d", "ftjob-AAAAAAAAAAAAAAAAAAAAAAAA", "adapter/adapter_config.json", p, sizeof p));
    CHECK(!strcmp(p, "/d/jobs/ftjob-AAAAAAAAAAAAAAAAAAAAAAAA/run/export/adapter/adapter_config.json"));
    CHECK(ot_runner_artifact_path("/d", "ftjob-AAAAAAAAAAAAAAAAAAAAAAAA", "../../onnxtune.db", p, sizeof p) == OT_E_INVALID);
    CHECK(ot_runner_artifact_path("/d", "ftjob-..", "model.onnx", p, sizeof p) == OT_E_INVALID);
}

/* success, failure, bad file, cancel of a queued and a running job, SIGKILL escalation */
static void test_fake_runs(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/fake", root);
    ot_store *st = NULL;
    CHECK_OK(ot_store_open(dir, &st));
    if (!st) return;
    CHECK(ot_runner_start(st, dir, "/nonexistent/onnxtune", 1, &(ot_runner *){NULL}) == OT_E_INVALID);
    ot_runner *r = NULL;
    CHECK_OK(ot_runner_start(st, dir, fake, 2, &r));
    if (!r) return;
    ot_runner_set_kill_grace_ms(r, 300);
    char file[OT_ID_MAX], ok[OT_ID_MAX], fail[OT_ID_MAX], gone[OT_ID_MAX], sleepy[OT_ID_MAX], stub[OT_ID_MAX];
    add_file(st, "{\"text\": \"hi\"}\n", NULL, file);
    create_job(st, "/m/ok.onnx", file, "{\"save_every\":2}", "mine", ok);
    char valid[OT_ID_MAX], okv[OT_ID_MAX];
    add_file(st, "{\"text\": \"valid\"}\n", NULL, valid);
    create_job_valid(st, "/m/ok.onnx", file, valid, "{\"save_every\":2}", NULL, okv);
    create_job(st, "/m/fail.onnx", file, NULL, NULL, fail);
    create_job(st, "/m/ok.onnx", "file-AAAAAAAAAAAAAAAAAAAAAAAA", NULL, NULL, gone);
    ot_runner_notify(r);
    unsigned term = OT_JOB_BIT(OT_JOB_SUCCEEDED) | OT_JOB_BIT(OT_JOB_FAILED) | OT_JOB_BIT(OT_JOB_CANCELLED);
    ot_job_rec j;
    CHECK(wait_status(st, ok, term, 10000, &j) == OT_JOB_SUCCEEDED);
    if (j.status == OT_JOB_SUCCEEDED) {
        CHECK(!strcmp(j.fine_tuned_model, "ft:ok:mine"));
        CHECK(strstr(j.result_files, "\"model.onnx\"") && strstr(j.result_files, "adapter/adapter_model.safetensors") &&
              strstr(j.result_files, "adapter/adapter_config.json") && strstr(j.result_files, "model.safetensors"));
        CHECK(j.trained_tokens == 400 && j.attempt == 1 && j.finished_at > 0 && j.pid == 0);
        ot_job_rec_free(&j);
    }
    int steps = 0;
    CHECK(count_events(st, ok, "Step 3/4: training loss=2.3000", &steps) == 1);
    CHECK(steps == 4);
    CHECK(count_events(st, ok, "successfully completed", NULL) == 1);
    ot_ckpt_rec *kv;
    int n = 0, more;
    CHECK_OK(ot_store_ckpt_list(st, ok, NULL, 10, &kv, &n, &more));
    CHECK(n == 2 && kv[0].step == 4 && strstr(kv[0].metrics, "\"train_loss\":2.4") && kv[1].step == 2);
    CHECK(n == 2 && strstr(kv[0].metrics, "\"train_mean_token_accuracy\":0.74") && !strstr(kv[0].metrics, "valid"));
    ot_ckpt_recs_free(kv, n);
    /* with a validation file: linked next to the training data, passed as eval_data, and
     * each checkpoint carries its step's eval metrics (full_valid_*: the whole set) */
    CHECK(wait_status(st, okv, term, 10000, &j) == OT_JOB_SUCCEEDED);
    if (j.status == OT_JOB_SUCCEEDED) ot_job_rec_free(&j);
    n = 0;
    CHECK_OK(ot_store_ckpt_list(st, okv, NULL, 10, &kv, &n, &more));
    CHECK(n == 2 && kv[0].step == 4 && kv[1].step == 2);
    if (n == 2) {
        CHECK(strstr(kv[0].metrics, "\"valid_loss\":1.4,") && strstr(kv[0].metrics, "\"valid_mean_token_accuracy\":0.4,"));
        CHECK(strstr(kv[0].metrics, "\"full_valid_loss\":1.4,") &&
              strstr(kv[0].metrics, "\"full_valid_mean_token_accuracy\":0.4}"));
        CHECK(strstr(kv[1].metrics, "\"valid_loss\":1.2,") && strstr(kv[1].metrics, "\"train_loss\":2.2,"));
    }
    ot_ckpt_recs_free(kv, n);
    char p[1200];
    snprintf(p, sizeof p, "%s/jobs/%s/validation.jsonl", dir, okv);
    CHECK(exists(p));
    snprintf(p, sizeof p, "%s/jobs/%s/job.json", dir, ok);
    CHECK(exists(p));

    CHECK(wait_status(st, fail, term, 10000, &j) == OT_JOB_FAILED);
    if (j.status == OT_JOB_FAILED) {
        CHECK(j.error && strstr(j.error, "status 3") && strstr(j.error, "boom at step 3") &&
              strstr(j.error, "training_failed"));
        ot_job_rec_free(&j);
    }
    CHECK(wait_status(st, gone, term, 10000, &j) == OT_JOB_FAILED);
    if (j.status == OT_JOB_FAILED) {
        CHECK(j.error && strstr(j.error, "invalid_request") && strstr(j.error, "does not exist"));
        ot_job_rec_free(&j);
    }

    /* cancel a running job: SIGTERM stops it, the checkpoint stays */
    create_job(st, "/m/sleep.onnx", file, NULL, NULL, sleepy);
    ot_runner_notify(r);
    CHECK(wait_status(st, sleepy, OT_JOB_BIT(OT_JOB_RUNNING), 5000, NULL) == OT_JOB_RUNNING);
    int ck = 0;
    for (int t = 0; t < 250 && !ck; t++) { /* until the fake wrote its checkpoint */
        CHECK_OK(ot_store_ckpt_list(st, sleepy, NULL, 10, &kv, &n, &more));
        ck = n > 0;
        ot_ckpt_recs_free(kv, n);
        if (!ck) sleep_ms(20);
    }
    CHECK(ck);
    int found = 0, changed = 0;
    pid_t pid = 0;
    if (ot_store_job_get(st, sleepy, &j, &found) == OT_OK && found) pid = (pid_t)j.pid, ot_job_rec_free(&j);
    CHECK(pid > 0);
    CHECK_OK(ot_runner_cancel(r, sleepy, &changed));
    CHECK(changed == 1);
    CHECK_OK(ot_runner_cancel(r, sleepy, &changed));
    CHECK(changed == 0);
    int dead = 0;
    for (int t = 0; t < 150 && !dead; t++) { /* the worker reaps it well within the 10 s grace */
        dead = pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
        if (!dead) sleep_ms(20);
    }
    CHECK(dead);
    CHECK(wait_status(st, sleepy, term, 1000, NULL) == OT_JOB_CANCELLED);
    for (int t = 0; t < 100 && count_events(st, sleepy, "last checkpoint kept", NULL) < 1; t++) sleep_ms(20);
    CHECK(count_events(st, sleepy, "last checkpoint kept (step 2)", NULL) == 1);
    CHECK(ot_runner_active(r) == 0);

    /* a child that ignores SIGTERM gets SIGKILL after the grace period */
    create_job(st, "/m/stubborn.onnx", file, NULL, NULL, stub);
    ot_runner_notify(r);
    CHECK(wait_status(st, stub, OT_JOB_BIT(OT_JOB_RUNNING), 5000, NULL) == OT_JOB_RUNNING);
    for (int t = 0; t < 100 && count_events(st, stub, "Step 3", NULL) < 1; t++) sleep_ms(20);
    CHECK_OK(ot_runner_cancel(r, stub, &changed));
    CHECK(changed == 1);
    for (int t = 0; t < 150 && ot_runner_active(r) > 0; t++) sleep_ms(20);
    CHECK(ot_runner_active(r) == 0);

    /* cancel a job no worker holds */
    ot_job_new vn = {0};
    vn.model = "m", vn.request = "{}", vn.initial = OT_JOB_VALIDATING_FILES;
    ot_job_rec v;
    int existed;
    CHECK_OK(ot_store_job_create(st, &vn, &v, &existed));
    CHECK_OK(ot_runner_cancel(r, v.id, &changed));
    CHECK(changed == 1);
    CHECK(wait_status(st, v.id, term, 0, NULL) == OT_JOB_CANCELLED);
    ot_job_rec_free(&v);
    ot_runner_stop(r);
    ot_store_close(st);
}

/* shutdown mid-job leaves it running; recovery requeues it; the next attempt resumes from
 * the checkpoint (--resume) and reports each step once. */
static void test_stop_and_resume(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/resume", root);
    ot_store *st = NULL;
    CHECK_OK(ot_store_open(dir, &st));
    if (!st) return;
    ot_runner *r = NULL;
    CHECK_OK(ot_runner_start(st, dir, fake, 1, &r));
    if (!r) return;
    char file[OT_ID_MAX], id[OT_ID_MAX];
    add_file(st, "{\"text\": \"hi\"}\n", NULL, file);
    create_job(st, "/m/sleep.onnx", file, NULL, NULL, id);
    ot_runner_notify(r);
    for (int t = 0; t < 250 && count_events(st, id, "Step 3", NULL) < 1; t++) sleep_ms(20);
    CHECK(count_events(st, id, "Step 3", NULL) == 1);
    ot_runner_stop(r); /* server shutdown */
    CHECK(wait_status(st, id, ~0u, 0, NULL) == OT_JOB_RUNNING);
    ot_store_close(st);

    CHECK_OK(ot_store_open(dir, &st));
    if (!st) return;
    int requeued = 0;
    CHECK_OK(ot_store_recover_after_restart(st, &requeued));
    CHECK(requeued == 1);
    r = NULL;
    CHECK_OK(ot_runner_start(st, dir, fake, 1, &r));
    if (!r) return;
    ot_job_rec j;
    unsigned term = OT_JOB_BIT(OT_JOB_SUCCEEDED) | OT_JOB_BIT(OT_JOB_FAILED) | OT_JOB_BIT(OT_JOB_CANCELLED);
    CHECK(wait_status(st, id, term, 10000, &j) == OT_JOB_SUCCEEDED);
    if (j.status == OT_JOB_SUCCEEDED) {
        CHECK(j.attempt == 2);
        ot_job_rec_free(&j);
    }
    int steps = 0;
    CHECK(count_events(st, id, "Resuming from checkpoint step 2 (attempt 2)", &steps) == 1);
    CHECK(steps == 4); /* steps 1-3, then 3 again (skipped) and 4 */
    char p[1200], buf[4096] = "";
    snprintf(p, sizeof p, "%s/jobs/%s/train.log", dir, id);
    FILE *f = fopen(p, "r");
    if (f) buf[fread(buf, 1, sizeof buf - 1, f)] = '\0', fclose(f);
    CHECK(strstr(buf, "--resume") != NULL);
    ot_runner_stop(r);
    ot_store_close(st);
}

/* The real binary: a 4-step LoRA run on the bundled tiny GPT-2. */
static void test_real_run(void) {
    char dir[600], model[1024], data[1024];
    snprintf(dir, sizeof dir, "%s/real", root);
    snprintf(model, sizeof model, "%s/samples/gpt2-tiny/model.onnx", OT_SOURCE_DIR);
    snprintf(data, sizeof data, "%s/samples/gpt2-tiny/train.jsonl", OT_SOURCE_DIR);
    ot_store *st = NULL;
    CHECK_OK(ot_store_open(dir, &st));
    if (!st) return;
    ot_runner *r = NULL;
    CHECK_OK(ot_runner_start(st, dir, OT_CLI_BIN, 1, &r));
    if (!r) return;
    char file[OT_ID_MAX], valid[OT_ID_MAX], id[OT_ID_MAX];
    add_file(st, NULL, data, file);
    add_file(st, "{\"input_ids\": [5, 6, 7, 8, 9, 10]}\n{\"input_ids\": [11, 12, 13, 14]}\n{\"input_ids\": [1, 2, 3]}\n",
             NULL, valid);
    create_job_valid(st, model, file, valid, "{\"steps\":4,\"seq_len\":32,\"save_every\":2,\"threads\":2}", "tiny",
                     id);
    ot_runner_notify(r);
    ot_job_rec j;
    unsigned term = OT_JOB_BIT(OT_JOB_SUCCEEDED) | OT_JOB_BIT(OT_JOB_FAILED) | OT_JOB_BIT(OT_JOB_CANCELLED);
    ot_job_status s = wait_status(st, id, term, 30000, &j);
    CHECK(s == OT_JOB_SUCCEEDED);
    if (s == OT_JOB_FAILED) fprintf(stderr, "real run failed: %s\n", j.error ? j.error : "?");
    if (ot_job_status_terminal(s)) {
        CHECK(!strcmp(j.fine_tuned_model, "ft:model:tiny"));
        CHECK(j.trained_tokens > 0);
        CHECK(strstr(j.result_files, "adapter/adapter_model.safetensors") != NULL);
        ot_job_rec_free(&j);
    }
    int steps = 0;
    CHECK(count_events(st, id, "Step 4/4: training loss=", &steps) == 1);
    CHECK(steps == 4);
    ot_ckpt_rec *kv;
    int n = 0, more;
    CHECK_OK(ot_store_ckpt_list(st, id, NULL, 10, &kv, &n, &more));
    CHECK(n == 2 && kv[0].step == 4 && strstr(kv[0].metrics, "train_loss"));
    for (int i = 0; i < n; i++) /* the trainer evaluated the validation file at both checkpoints */
        CHECK(strstr(kv[i].metrics, "\"train_mean_token_accuracy\":") && strstr(kv[i].metrics, "\"valid_loss\":") &&
              strstr(kv[i].metrics, "\"valid_mean_token_accuracy\":") && strstr(kv[i].metrics, "\"full_valid_loss\":"));
    ot_ckpt_recs_free(kv, n);
    static const char *const arts[] = {"model.onnx", "model.safetensors", "adapter/adapter_model.safetensors",
                                       "adapter/adapter_config.json"};
    for (int i = 0; i < 4; i++) {
        char p[1200];
        CHECK_OK(ot_runner_artifact_path(dir, id, arts[i], p, sizeof p));
        CHECK(exists(p));
    }
    ot_runner_stop(r);
    ot_store_close(st);
}

int main(void) {
    ot_test_mkdtemp(root, sizeof root, "ot_runner_");
    snprintf(fake, sizeof fake, "%s/fake-onnxtune", root);
    write_text(fake, FAKE_SCRIPT);
    chmod(fake, 0755);
    OT_RUN(test_job_config);
    OT_RUN(test_fake_runs);
    OT_RUN(test_stop_and_resume);
    OT_RUN(test_real_run);
    ot_test_rmtree(root);
    return OT_TEST_EXIT();
}
