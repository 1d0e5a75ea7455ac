/* test_checkpoint.c — resumable checkpoints: save, open (all three path forms), the manifest
 * checked against sizes and a CRC32 computed here bit by bit (not by zlib), `latest`
 * following the newest save, and refusal of every kind of damage: a flipped byte, a
 * truncated file, a truncated or foreign manifest, a dangling or empty `latest`. A crashed
 * save's leftover temporary folder must be ignored; an unwritable output folder is an error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ot_test.h"
#include "trainer/checkpoint.h"

static char tmpdir[256];

static char *tpath(const char *fmt, const char *a) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8], rel[512];
    snprintf(rel, sizeof rel, fmt, a);
    snprintf(p, 1024, "%s/%s", tmpdir, rel);
    return p;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, n, f);
    fclose(f);
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* CRC-32 (IEEE, reflected, poly 0xEDB88320), one bit at a time: independent of zlib. */
static uint32_t crc32_ref(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

/* Opening `path` must fail with a message containing `a` and `b`. */
static void expect_open_fails(const char *path, const char *a, const char *b, int line) {
    ot_checkpoint *c = (ot_checkpoint *)0x1;
    ot_status s = ot_checkpoint_open(path, &c);
    const char *m = ot_last_error();
    int ok = s != OT_OK && c == NULL && (!a || strstr(m, a)) && (!b || strstr(m, b));
    if (!ok || getenv("OT_TEST_VERBOSE")) fprintf(stderr, "line %d: %s: %s\n", line, ot_status_name(s), m);
    CHECK(ok);
    if (s == OT_OK) ot_checkpoint_close(c);
}

/* Three groups of model-like state: f32 and bf16 weights, AdamW moments. */
static float w[12], m1[12], v1[12];
static uint16_t hb[3];
static ot_tensor tw = {.dtype = OT_F32, .ndim = 2, .dims = {4, 3}, .data = w};
static ot_tensor th = {.dtype = OT_BF16, .ndim = 1, .dims = {3}, .data = hb};
static ot_tensor tm = {.dtype = OT_F32, .ndim = 2, .dims = {4, 3}, .data = m1};
static ot_tensor tv = {.dtype = OT_F32, .ndim = 2, .dims = {4, 3}, .data = v1};

static ot_status save(const char *out, int64_t step, float base, char **dir) {
    for (int i = 0; i < 12; i++) w[i] = base + (float)i, m1[i] = base * 0.1f + (float)i, v1[i] = base * 0.01f;
    for (int i = 0; i < 3; i++) hb[i] = (uint16_t)(0x3f80 + i + (int)base);
    ot_named_tensor trainable[] = {{"layer.0.weight", &tw}, {"head.bias", &th}};
    ot_named_tensor adam_m[] = {{"layer.0.weight", &tm}};
    ot_named_tensor adam_v[] = {{"layer.0.weight", &tv}};
    ot_ckpt_group groups[] = {{"trainable", trainable, 2}, {"adam_m", adam_m, 1}, {"adam_v", adam_v, 1}};
    cJSON *state = cJSON_CreateObject();
    cJSON_AddNumberToObject(state, "cursor", (double)(step * 8));
    cJSON_AddStringToObject(state, "rng", "0123456789abcdef");
    cJSON_AddNumberToObject(state, "base", base);
    ot_status s = ot_checkpoint_save(out, step, state, groups, 3, dir);
    cJSON_Delete(state);
    return s;
}

static void check_contents(const ot_checkpoint *c, int64_t step, float base) {
    CHECK(ot_checkpoint_step(c) == step);
    const cJSON *st = ot_checkpoint_state(c);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(st, "cursor")) == (double)(step * 8));
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(st, "base")) == base);
    const char *rng = cJSON_GetStringValue(cJSON_GetObjectItem(st, "rng"));
    CHECK(rng && strcmp(rng, "0123456789abcdef") == 0);
    const ot_tensor *x = ot_checkpoint_tensor(c, "trainable", "layer.0.weight");
    CHECK(x && x->dtype == OT_F32 && x->ndim == 2 && x->dims[0] == 4 && x->dims[1] == 3);
    for (int i = 0; x && i < 12; i++) CHECK(((const float *)x->data)[i] == base + (float)i);
    const ot_tensor *h = ot_checkpoint_tensor(c, "trainable", "head.bias");
    CHECK(h && h->dtype == OT_BF16 && ((const uint16_t *)h->data)[2] == (uint16_t)(0x3f82 + (int)base));
    const ot_tensor *m = ot_checkpoint_tensor(c, "adam_m", "layer.0.weight");
    CHECK(m && ((const float *)m->data)[5] == base * 0.1f + 5.0f);
    const ot_tensor *v = ot_checkpoint_tensor(c, "adam_v", "layer.0.weight");
    CHECK(v && ((const float *)v->data)[0] == base * 0.01f);
    CHECK(ot_checkpoint_tensor(c, "adam_v", "head.bias") == NULL);
    CHECK(ot_checkpoint_tensor(c, "master", "layer.0.weight") == NULL);
    CHECK(ot_checkpoint_group(c, "master") == NULL);
    CHECK(ot_checkpoint_group(c, "trainable") && ot_safetensors_count(ot_checkpoint_group(c, "trainable")) == 2);
}

static void test_save_open(void) {
    char out[1024];
    snprintf(out, sizeof out, "%s", tpath("run", NULL)); /* tpath's buffers rotate */
    char *dir = NULL;
    CHECK_OK(save(out, 5, 1.0f, &dir));
    CHECK(dir && strcmp(dir, tpath("run/checkpoints/step-00000005", NULL)) == 0);
    free(dir);
    size_t n;
    char *latest = (char *)slurp(tpath("run/checkpoints/latest", NULL), &n);
    CHECK(latest && strcmp(latest, "step-00000005\n") == 0);
    free(latest);

    /* The manifest, read independently: sizes and CRCs match the files on disk. */
    char *mtext = (char *)slurp(tpath("run/checkpoints/step-00000005/manifest.json", NULL), &n);
    cJSON *man = cJSON_Parse(mtext);
    CHECK(man != NULL);
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(man, "format")), "onnxtune-checkpoint") == 0);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(man, "version")) == 1);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(man, "step")) == 5);
    const cJSON *files = cJSON_GetObjectItem(man, "files");
    CHECK(cJSON_GetArraySize(files) == 3);
    const char *groups[] = {"trainable", "adam_m", "adam_v"};
    for (int g = 0; g < 3; g++) {
        char fname[64];
        snprintf(fname, sizeof fname, "%s.safetensors", groups[g]);
        const cJSON *e = cJSON_GetObjectItem(files, fname);
        size_t fl;
        unsigned char *fb = slurp(tpath("run/checkpoints/step-00000005/%s", fname), &fl);
        CHECK(e && fb);
        if (!e || !fb) continue;
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "bytes")) == (double)fl);
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "crc32")) == (double)crc32_ref(fb, fl));
        free(fb);
    }
    cJSON_Delete(man);
    free(mtext);

    /* No temporary left behind. */
    char tmpname[64];
    snprintf(tmpname, sizeof tmpname, "run/checkpoints/step-00000005.tmp.%ld", (long)getpid());
    CHECK(!exists(tpath(tmpname, NULL)));

    /* All three path forms reach the same checkpoint. */
    const char *forms[] = {"run", "run/checkpoints", "run/checkpoints/step-00000005", "run/checkpoints/step-00000005/"};
    for (int i = 0; i < 4; i++) {
        ot_checkpoint *c = NULL;
        CHECK_OK(ot_checkpoint_open(tpath(forms[i], NULL), &c));
        if (!c) continue;
        check_contents(c, 5, 1.0f);
        CHECK(strcmp(ot_checkpoint_dir(c), tpath("run/checkpoints/step-00000005", NULL)) == 0);
        ot_checkpoint_close(c);
    }

    /* A newer save moves `latest`; the older one stays openable by its folder. */
    CHECK_OK(save(out, 10, 2.0f, NULL));
    ot_checkpoint *c = NULL;
    CHECK_OK(ot_checkpoint_open(out, &c));
    if (c) check_contents(c, 10, 2.0f);
    ot_checkpoint_close(c);
    c = NULL;
    CHECK_OK(ot_checkpoint_open(tpath("run/checkpoints/step-00000005", NULL), &c));
    if (c) check_contents(c, 5, 1.0f);
    ot_checkpoint_close(c);

    /* Saving a step that already exists (resumed from an earlier one) replaces it whole. */
    CHECK_OK(save(out, 5, 3.0f, NULL));
    c = NULL;
    CHECK_OK(ot_checkpoint_open(out, &c));
    if (c) check_contents(c, 5, 3.0f);
    ot_checkpoint_close(c);
    CHECK(!exists(tpath(tmpname, NULL)));
    CHECK_OK(save(out, 10, 2.0f, NULL));

    /* No groups and no state: still a valid checkpoint. */
    CHECK_OK(ot_checkpoint_save(tpath("bare", NULL), 0, NULL, NULL, 0, NULL));
    c = NULL;
    CHECK_OK(ot_checkpoint_open(tpath("bare", NULL), &c));
    CHECK(c && ot_checkpoint_step(c) == 0 && cJSON_IsObject(ot_checkpoint_state(c)));
    ot_checkpoint_close(c);
}

/* Restores a file after a damage test. */
typedef struct {
    char path[1024];
    unsigned char *b;
    size_t n;
} saved_file;

static void keep(saved_file *f, const char *path) {
    snprintf(f->path, sizeof f->path, "%s", path);
    f->b = slurp(path, &f->n);
}
static void restore(saved_file *f) {
    spit(f->path, f->b, f->n);
    free(f->b);
}

static void test_damage(void) {
    char out[1024];
    snprintf(out, sizeof out, "%s", tpath("run", NULL));
    char tr[1024], mp[1024], lp[1024];
    snprintf(tr, sizeof tr, "%s", tpath("run/checkpoints/step-00000010/trainable.safetensors", NULL));
    snprintf(mp, sizeof mp, "%s", tpath("run/checkpoints/step-00000010/manifest.json", NULL));
    snprintf(lp, sizeof lp, "%s", tpath("run/checkpoints/latest", NULL));
    saved_file f;

    /* One flipped byte in the data: a CRC error naming the file. */
    keep(&f, tr);
    CHECK(f.b && f.n > 100);
    f.b[f.n - 3] ^= 0x10;
    spit(tr, f.b, f.n);
    f.b[f.n - 3] ^= 0x10;
    expect_open_fails(out, "trainable.safetensors", "CRC32", __LINE__);
    restore(&f);

    /* Truncated by one byte. */
    keep(&f, tr);
    spit(tr, f.b, f.n - 1);
    expect_open_fails(out, "trainable.safetensors", "truncated", __LINE__);
    restore(&f);

    /* A group file missing altogether. */
    keep(&f, tpath("run/checkpoints/step-00000010/adam_v.safetensors", NULL));
    unlink(f.path);
    expect_open_fails(out, "adam_v.safetensors", NULL, __LINE__);
    restore(&f);

    /* Truncated manifest. */
    keep(&f, mp);
    spit(mp, f.b, f.n / 2);
    expect_open_fails(out, "manifest.json", "not valid JSON", __LINE__);
    spit(mp, "", 0);
    expect_open_fails(out, "manifest.json", NULL, __LINE__);

    /* A manifest of another format, a newer version, a step that disagrees with the folder,
     * a bad file entry. */
    cJSON *man = cJSON_Parse((const char *)f.b);
    struct {
        const char *key;
        cJSON *val;
        const char *want;
    } edits[] = {
        {"format", cJSON_CreateString("other"), "format"},
        {"version", cJSON_CreateNumber(2), "version 2"},
        {"step", cJSON_CreateNumber(11), "says step 11"},
        {"step", cJSON_CreateNumber(-1), "step"},
        {"state", NULL, "state"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        cJSON *copy = cJSON_Duplicate(man, 1);
        if (edits[i].val) cJSON_ReplaceItemInObject(copy, edits[i].key, edits[i].val);
        else cJSON_DeleteItemFromObject(copy, edits[i].key);
        char *text = cJSON_Print(copy);
        spit(mp, text, strlen(text));
        expect_open_fails(out, "manifest.json", edits[i].want, __LINE__);
        cJSON_free(text);
        cJSON_Delete(copy);
    }
    {
        cJSON *copy = cJSON_Duplicate(man, 1);
        cJSON *files = cJSON_GetObjectItem(copy, "files");
        cJSON *e = cJSON_DetachItemFromObject(files, "adam_m.safetensors");
        cJSON_AddItemToObject(files, "../adam_m.safetensors", e);
        char *text = cJSON_Print(copy);
        spit(mp, text, strlen(text));
        expect_open_fails(out, "manifest.json", "../adam_m.safetensors", __LINE__);
        cJSON_free(text);
        cJSON_Delete(copy);
    }
    cJSON_Delete(man);
    restore(&f);

    /* `latest` empty, naming a missing folder, or escaping the folder. */
    keep(&f, lp);
    spit(lp, "", 0);
    expect_open_fails(out, "latest", NULL, __LINE__);
    spit(lp, "step-00000099\n", 14);
    expect_open_fails(out, "latest", "step-00000099", __LINE__);
    spit(lp, "../run\n", 7);
    expect_open_fails(out, "latest", NULL, __LINE__);
    restore(&f);

    expect_open_fails(tpath("nowhere", NULL), "nowhere", "not a checkpoint", __LINE__);

    ot_checkpoint *c = NULL;
    CHECK_OK(ot_checkpoint_open(out, &c)); /* everything restored */
    if (c) check_contents(c, 10, 2.0f);
    ot_checkpoint_close(c);
}

/* A save that crashed before its rename leaves step-N.tmp.<pid>: ignored by open, left alone
 * by the next save, and `latest` still names the previous complete checkpoint. */
static void test_crashed_save(void) {
    char out[1024], stale[1024];
    snprintf(out, sizeof out, "%s", tpath("run", NULL));
    snprintf(stale, sizeof stale, "%s", tpath("run/checkpoints/step-00000011.tmp.999999", NULL));
    mkdir(stale, 0755);
    spit(tpath("run/checkpoints/step-00000011.tmp.999999/trainable.safetensors", NULL), "partial", 7);
    ot_checkpoint *c = NULL;
    CHECK_OK(ot_checkpoint_open(out, &c));
    if (c) check_contents(c, 10, 2.0f);
    ot_checkpoint_close(c);

    /* Crash after the rename but before `latest` moved: the new folder is complete but
     * `latest` still names step 10, which is what open returns. */
    CHECK_OK(save(out, 12, 4.0f, NULL));
    spit(tpath("run/checkpoints/latest", NULL), "step-00000010\n", 14);
    c = NULL;
    CHECK_OK(ot_checkpoint_open(out, &c));
    if (c) check_contents(c, 10, 2.0f);
    ot_checkpoint_close(c);

    CHECK_OK(save(out, 11, 5.0f, NULL));
    c = NULL;
    CHECK_OK(ot_checkpoint_open(out, &c));
    if (c) check_contents(c, 11, 5.0f);
    ot_checkpoint_close(c);
    CHECK(exists(stale)); /* another process's leftover is not ours to delete */

    /* A failed save (a dtype safetensors cannot hold) leaves no temporary and `latest` as it was. */
    float x[2] = {0};
    ot_tensor bad = {.dtype = OT_STRING, .ndim = 1, .dims = {2}, .data = x};
    ot_named_tensor nt[] = {{"s", &bad}};
    ot_ckpt_group g[] = {{"trainable", nt, 1}};
    CHECK(ot_checkpoint_save(out, 13, NULL, g, 1, NULL) == OT_E_UNSUPPORTED);
    CHECK(strstr(ot_last_error(), "step 13") != NULL);
    char tmpname[64];
    snprintf(tmpname, sizeof tmpname, "run/checkpoints/step-00000013.tmp.%ld", (long)getpid());
    CHECK(!exists(tpath(tmpname, NULL)));
    CHECK(!exists(tpath("run/checkpoints/step-00000013", NULL)));
    size_t n;
    char *latest = (char *)slurp(tpath("run/checkpoints/latest", NULL), &n);
    CHECK(latest && strcmp(latest, "step-00000011\n") == 0);
    free(latest);
}

static void test_bad_save_args(void) {
    ot_named_tensor nt[] = {{"w", &tw}};
    ot_ckpt_group slash[] = {{"../evil", nt, 1}};
    CHECK(ot_checkpoint_save(tpath("args", NULL), 1, NULL, slash, 1, NULL) == OT_E_INVALID);
    CHECK(strstr(ot_last_error(), "../evil") != NULL);
    ot_ckpt_group dup[] = {{"a", nt, 1}, {"a", nt, 1}};
    CHECK(ot_checkpoint_save(tpath("args", NULL), 1, NULL, dup, 2, NULL) == OT_E_INVALID);
    CHECK(strstr(ot_last_error(), "'a' given twice") != NULL);
    CHECK(ot_checkpoint_save(tpath("args", NULL), -1, NULL, NULL, 0, NULL) == OT_E_INVALID);

    /* Unwritable output folder: under a regular file (fails even for root), and read-only. */
    spit(tpath("afile", NULL), "x", 1);
    char *dir = (char *)0x1;
    ot_status s = ot_checkpoint_save(tpath("afile/run", NULL), 1, NULL, NULL, 0, &dir);
    CHECK(s == OT_E_IO && dir == NULL);
    CHECK(strstr(ot_last_error(), "afile") != NULL);
    if (getuid() != 0) {
        mkdir(tpath("ro", NULL), 0555);
        CHECK(ot_checkpoint_save(tpath("ro/run", NULL), 1, NULL, NULL, 0, NULL) == OT_E_IO);
        CHECK(strstr(ot_last_error(), "ro/run") != NULL);
    }
}

int main(void) {
    ot_test_mkdtemp(tmpdir, sizeof tmpdir, "ot_ckpt_");
    OT_RUN(test_save_open);
    OT_RUN(test_damage);
    OT_RUN(test_crashed_save);
    OT_RUN(test_bad_save_args);
    ot_test_rmtree(tmpdir);
    return OT_TEST_EXIT();
}
