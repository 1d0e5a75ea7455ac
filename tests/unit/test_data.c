/* test_data.c — training datasets (trainer/data.h): every format, padding, truncation and
 * packing against hand-computed rows, shuffle determinism and cursor arithmetic, and every
 * malformed input failing with a message that names the file (and line, for JSONL).
 * Test data is written by the test into a fresh temporary directory. The expected
 * permutations were computed by an independent Python implementation of the documented
 * algorithm (splitmix64 + Fisher–Yates, data_internal.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/npy.h"
#include "ot_test.h"
#include "trainer/data.h"

static char tmpdir[256];

static const char *tpath(const char *name) {
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fclose(f);
}

static const char *write_text(const char *name, const char *text) {
    const char *p = tpath(name);
    write_bytes(p, text, strlen(text));
    return p;
}

/* An llm.c shard: header (magic, version, count) then n uint16 tokens. */
static const char *write_shard(const char *name, const uint16_t *tok, int n, int32_t magic, int32_t version,
                               int32_t count) {
    const char *p = tpath(name);
    size_t bytes = 1024 + 2 * (size_t)n;
    unsigned char *buf = calloc(1, bytes);
    int32_t h[3] = {magic, version, count};
    memcpy(buf, h, sizeof h);
    if (n) memcpy(buf + 1024, tok, 2 * (size_t)n);
    write_bytes(p, buf, bytes);
    free(buf);
    return p;
}

static const char *write_npy(const char *name, ot_dtype dt, int ndim, const int64_t *dims, const int64_t *vals) {
    const char *p = tpath(name);
    ot_tensor *t;
    if (ot_tensor_new(&t, dt, ndim, dims) != OT_OK) exit(2);
    int64_t n = ot_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        if (dt == OT_I64) ((int64_t *)t->data)[i] = vals[i];
        else if (dt == OT_I32) ((int32_t *)t->data)[i] = (int32_t)vals[i];
        else if (dt == OT_U16) ((uint16_t *)t->data)[i] = (uint16_t)vals[i];
        else if (dt == OT_F32) ((float *)t->data)[i] = (float)vals[i];
    }
    if (ot_npy_write(p, t) != OT_OK) exit(2);
    ot_tensor_free(t);
    return p;
}

static ot_data_opts opts(int seq_len, int pack, int shuffle, uint64_t seed, int64_t pad) {
    ot_data_opts o = {seq_len, pack, shuffle, seed, pad};
    return o;
}

/* Row r of a [B, S] int64 tensor equals want[0..S). */
static void check_row(const ot_tensor *t, int r, const int64_t *want, int n, int line) {
    int ok = t && t->dtype == OT_I64 && t->ndim == 2 && t->dims[1] == n && r < t->dims[0];
    for (int i = 0; ok && i < n; i++) ok = ((const int64_t *)t->data)[r * n + i] == want[i];
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "  (line %d) row %d: got", line, r);
        for (int i = 0; t && i < n && r < t->dims[0]; i++)
            fprintf(stderr, " %lld", (long long)((const int64_t *)t->data)[r * n + i]);
        fprintf(stderr, ", want");
        for (int i = 0; i < n; i++) fprintf(stderr, " %lld", (long long)want[i]);
        fprintf(stderr, "\n");
    }
}
#define CHECK_ROW(t, r, ...)                                                  \
    do {                                                                      \
        const int64_t w_[] = {__VA_ARGS__};                                   \
        check_row((t), (r), w_, (int)(sizeof w_ / sizeof w_[0]), __LINE__);   \
    } while (0)

/* Opening must fail; the message must name the file and contain each non-NULL `want`. */
static void check_open_fails(const char *path, ot_data_opts o, const char *want1, const char *want2, int line) {
    ot_dataset *ds = (ot_dataset *)&ds; /* must be reset to NULL */
    ot_status s = ot_dataset_open(path, &o, &ds);
    const char *msg = ot_last_error();
    int ok = s != OT_OK && ds == NULL && strstr(msg, path) && (!want1 || strstr(msg, want1)) &&
             (!want2 || strstr(msg, want2));
    CHECK(ok);
    if (!ok) fprintf(stderr, "  (line %d) status %d, message: %s\n", line, (int)s, msg);
    if (s == OT_OK) ot_dataset_close(ds);
}
#define CHECK_OPEN_FAILS(path, o, w1, w2) check_open_fails((path), (o), (w1), (w2), __LINE__)

static ot_dataset *open_ok(const char *path, ot_data_opts o) {
    ot_dataset *ds = NULL;
    CHECK_OK(ot_dataset_open(path, &o, &ds));
    if (!ds) {
        fprintf(stderr, "cannot continue without %s\n", path);
        exit(2);
    }
    return ds;
}

/* ---- .bin shards ---- */

static void test_bin_rows(void) {
    uint16_t tok[10];
    for (int i = 0; i < 10; i++) tok[i] = (uint16_t)(100 + i);
    const char *p = write_shard("s.bin", tok, 10, 20240520, 1, 10);
    ot_dataset *ds = open_ok(p, opts(4, 0, 0, 0, 7));
    CHECK(ot_dataset_is_tokens(ds));
    CHECK(ot_dataset_len(ds) == 3); /* ceil(10 / 4): the tail row is padded, not dropped */
    ot_batch b = {0};
    CHECK_OK(ot_dataset_batch(ds, 0, 3, &b));
    CHECK(b.n == 3);
    const ot_tensor *ids = ot_batch_get(&b, "input_ids"), *lab = ot_batch_get(&b, "labels"),
                    *msk = ot_batch_get(&b, "attention_mask");
    CHECK(ids && lab && msk && ot_batch_get(&b, "nope") == NULL);
    CHECK_ROW(ids, 0, 100, 101, 102, 103);
    CHECK_ROW(ids, 1, 104, 105, 106, 107);
    CHECK_ROW(ids, 2, 108, 109, 7, 7);
    CHECK_ROW(lab, 0, 100, 101, 102, 103);
    CHECK_ROW(lab, 2, 108, 109, -100, -100);
    CHECK_ROW(msk, 1, 1, 1, 1, 1);
    CHECK_ROW(msk, 2, 1, 1, 0, 0);
    CHECK(b.tokens == 3 + 3 + 1); /* labels[s] != -100 for s >= 1 */
    /* Cursor 2, batch 3, no shuffle: rows 2, then epoch 1's rows 0 and 1. The batch is reused:
     * the previous one is freed first. */
    CHECK_OK(ot_dataset_batch(ds, 2, 3, &b));
    ids = ot_batch_get(&b, "input_ids");
    CHECK_ROW(ids, 0, 108, 109, 7, 7);
    CHECK_ROW(ids, 1, 100, 101, 102, 103);
    CHECK_ROW(ids, 2, 104, 105, 106, 107);
    /* A cursor far into the run: sample 3001 is row 3001 % 3 = 1. */
    CHECK_OK(ot_dataset_batch(ds, 3001, 1, &b));
    CHECK_ROW(ot_batch_get(&b, "input_ids"), 0, 104, 105, 106, 107);
    ot_batch_free(&b);
    CHECK(b.n == 0 && b.names == NULL);
    ot_batch_free(&b); /* twice is fine */
    /* Bad batch arguments. */
    CHECK(ot_dataset_batch(ds, 0, 0, &b) == OT_E_INVALID && strstr(ot_last_error(), p));
    CHECK(ot_dataset_batch(ds, -1, 2, &b) == OT_E_INVALID && strstr(ot_last_error(), "cursor"));
    CHECK(ot_dataset_batch(ds, INT64_MAX - 1, 2, &b) == OT_E_INVALID);
    ot_dataset_close(ds);
}

static void test_bin_glob(void) {
    uint16_t a[5] = {0, 1, 2, 3, 4}, c[3] = {50, 51, 52};
    write_shard("sh_0.bin", a, 5, 20240520, 1, 5);
    write_shard("sh_1.bin", c, 3, 20240520, 1, 3);
    write_shard("sh_2.bin", NULL, 0, 20240520, 1, 0); /* an empty shard adds nothing */
    ot_dataset *ds = open_ok(tpath("sh_*.bin"), opts(3, 0, 0, 0, 0));
    CHECK(ot_dataset_len(ds) == 3);
    ot_batch b = {0};
    CHECK_OK(ot_dataset_batch(ds, 0, 3, &b));
    const ot_tensor *ids = ot_batch_get(&b, "input_ids");
    CHECK_ROW(ids, 0, 0, 1, 2);
    CHECK_ROW(ids, 1, 3, 4, 50); /* a row across the shard boundary */
    CHECK_ROW(ids, 2, 51, 52, 0);
    CHECK_ROW(ot_batch_get(&b, "attention_mask"), 2, 1, 1, 0);
    ot_batch_free(&b);
    ot_dataset_close(ds);
    CHECK_OPEN_FAILS(tpath("none_*.bin"), opts(3, 0, 0, 0, 0), "no token shard", NULL);
}

static void test_bin_errors(void) {
    uint16_t tok[4] = {1, 2, 3, 4};
    ot_data_opts o = opts(2, 0, 0, 0, 0);
    CHECK_OPEN_FAILS(write_shard("magic.bin", tok, 4, 20240521, 1, 4), o, "magic", "20240520");
    CHECK_OPEN_FAILS(write_shard("version.bin", tok, 4, 20240520, 2, 4), o, "version 2", NULL);
    CHECK_OPEN_FAILS(write_shard("count.bin", tok, 4, 20240520, 1, 5), o, "5 tokens", "1032 bytes");
    CHECK_OPEN_FAILS(write_shard("extra.bin", tok, 4, 20240520, 1, 3), o, "3 tokens", NULL);
    CHECK_OPEN_FAILS(write_shard("neg.bin", tok, 4, 20240520, 1, -1), o, "negative", NULL);
    CHECK_OPEN_FAILS(write_shard("empty.bin", NULL, 0, 20240520, 1, 0), o, "no tokens", NULL);
    CHECK_OPEN_FAILS(write_text("short.bin", "tiny"), o, "header", NULL);
    CHECK_OPEN_FAILS(tpath("missing.bin"), o, NULL, NULL);
    /* Token data needs a row length. */
    CHECK_OPEN_FAILS(write_shard("ok.bin", tok, 4, 20240520, 1, 4), opts(0, 0, 0, 0, 0), "seq_len", NULL);
}

/* ---- .npy ---- */

static void test_npy_2d(void) {
    int64_t v[15], dims[2] = {3, 5};
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 5; c++) v[r * 5 + c] = r * 10 + c;
    const char *p = write_npy("m.npy", OT_I64, 2, dims, v);
    ot_batch b = {0};

    /* Truncation: rows are samples, cut to 4. */
    ot_dataset *ds = open_ok(p, opts(4, 0, 0, 0, 0));
    CHECK(ot_dataset_len(ds) == 3);
    CHECK_OK(ot_dataset_batch(ds, 0, 3, &b));
    CHECK_ROW(ot_batch_get(&b, "input_ids"), 0, 0, 1, 2, 3);
    CHECK_ROW(ot_batch_get(&b, "input_ids"), 2, 20, 21, 22, 23);
    CHECK_ROW(ot_batch_get(&b, "attention_mask"), 1, 1, 1, 1, 1);
    CHECK(b.tokens == 9);
    ot_dataset_close(ds);

    /* Padding to 7 with pad_id 99. */
    ds = open_ok(p, opts(7, 0, 0, 0, 99));
    CHECK_OK(ot_dataset_batch(ds, 1, 1, &b));
    CHECK_ROW(ot_batch_get(&b, "input_ids"), 0, 10, 11, 12, 13, 14, 99, 99);
    CHECK_ROW(ot_batch_get(&b, "labels"), 0, 10, 11, 12, 13, 14, -100, -100);
    CHECK_ROW(ot_batch_get(&b, "attention_mask"), 0, 1, 1, 1, 1, 1, 0, 0);
    CHECK(b.tokens == 4);
    ot_dataset_close(ds);

    /* Packing: 15 tokens in rows of 4; each npy row is a document whose first label is -100. */
    ds = open_ok(p, opts(4, 1, 0, 0, 0));
    CHECK(ot_dataset_len(ds) == 4);
    CHECK_OK(ot_dataset_batch(ds, 0, 4, &b));
    const ot_tensor *ids = ot_batch_get(&b, "input_ids"), *lab = ot_batch_get(&b, "labels");
    CHECK_ROW(ids, 0, 0, 1, 2, 3);
    CHECK_ROW(ids, 1, 4, 10, 11, 12);
    CHECK_ROW(ids, 2, 13, 14, 20, 21);
    CHECK_ROW(ids, 3, 22, 23, 24, 0);
    CHECK_ROW(lab, 0, -100, 1, 2, 3);
    CHECK_ROW(lab, 1, 4, -100, 11, 12);
    CHECK_ROW(lab, 2, 13, 14, -100, 21);
    CHECK_ROW(lab, 3, 22, 23, 24, -100);
    CHECK_ROW(ot_batch_get(&b, "attention_mask"), 3, 1, 1, 1, 0);
    CHECK(b.tokens == 3 + 2 + 2 + 2);
    ot_batch_free(&b);
    ot_dataset_close(ds);
}

static void test_npy_1d(void) {
    int64_t v[7] = {5, 6, 7, 8, 9, 10, 11}, dims[1] = {7};
    ot_dtype dts[2] = {OT_U16, OT_I32};
    for (int k = 0; k < 2; k++) {
        const char *p = write_npy(k ? "s32.npy" : "s16.npy", dts[k], 1, dims, v);
        for (int pack = 0; pack < 2; pack++) { /* a stream chunks the same way in both modes */
            ot_dataset *ds = open_ok(p, opts(3, pack, 0, 0, 1));
            CHECK(ot_dataset_len(ds) == 3);
            ot_batch b = {0};
            CHECK_OK(ot_dataset_batch(ds, 0, 3, &b));
            CHECK_ROW(ot_batch_get(&b, "input_ids"), 0, 5, 6, 7);
            CHECK_ROW(ot_batch_get(&b, "labels"), 0, 5, 6, 7);
            CHECK_ROW(ot_batch_get(&b, "input_ids"), 2, 11, 1, 1);
            CHECK_ROW(ot_batch_get(&b, "labels"), 2, 11, -100, -100);
            CHECK(b.tokens == 2 + 2 + 0);
            ot_batch_free(&b);
            ot_dataset_close(ds);
        }
    }
    /* The largest id, 2^31 - 1, is fine. */
    int64_t big[2] = {0, INT32_MAX}, d2[1] = {2};
    ot_dataset *ds = open_ok(write_npy("big.npy", OT_I64, 1, d2, big), opts(2, 0, 0, 0, 0));
    ot_batch b = {0};
    CHECK_OK(ot_dataset_batch(ds, 0, 1, &b));
    CHECK_ROW(ot_batch_get(&b, "input_ids"), 0, 0, INT32_MAX);
    ot_batch_free(&b);
    ot_dataset_close(ds);
}

static void test_npy_errors(void) {
    ot_data_opts o = opts(4, 0, 0, 0, 0);
    int64_t v[6] = {1, 2, 3, 4, -5, 6}, d23[2] = {2, 3}, d6[1] = {6}, d3[3] = {1, 2, 3}, d0[1] = {0};
    CHECK_OPEN_FAILS(write_npy("neg32.npy", OT_I32, 2, d23, v), o, "token [1, 1]", "-5");
    int64_t w[6] = {1, 2, 3, 4, 2147483648LL, 6};
    CHECK_OPEN_FAILS(write_npy("big64.npy", OT_I64, 1, d6, w), o, "token [4]", "2147483648");
    CHECK_OPEN_FAILS(write_npy("f32.npy", OT_F32, 1, d6, v), o, "float32", NULL);
    CHECK_OPEN_FAILS(write_npy("r3.npy", OT_I64, 3, d3, v), o, "[1, 2, 3]", NULL);
    CHECK_OPEN_FAILS(write_npy("empty.npy", OT_I64, 1, d0, v), o, "no tokens", NULL);
    CHECK_OPEN_FAILS(write_text("garbage.npy", "not an npy file"), o, NULL, NULL);
    CHECK_OPEN_FAILS(write_npy("noseq.npy", OT_I64, 1, d6, w), opts(0, 0, 0, 0, 0), "seq_len", NULL);
}

/* ---- JSONL, language-model form ---- */

static const char *lm_text = "{\"input_ids\": [1, 2, 3]}\n"
                             "\n"
                             "{\"input_ids\": [4, 5, 6, 7, 8, 10], \"labels\": [-100, -100, 6, 7, 8, 10]}\r\n"
                             "{\"attention_mask\": [1, 0], \"input_ids\": [11, 12]}";

static void test_jsonl_lm_padding(void) {
    const char *p = write_text("lm.jsonl", lm_text);
    ot_dataset *ds = open_ok(p, opts(4, 0, 0, 0, 9));
    CHECK(ot_dataset_is_tokens(ds));
    CHECK(ot_dataset_len(ds) == 3);
    ot_batch b = {0};
    CHECK_OK(ot_dataset_batch(ds, 0, 3, &b));
    const ot_tensor *ids = ot_batch_get(&b, "input_ids"), *lab = ot_batch_get(&b, "labels"),
                    *msk = ot_batch_get(&b, "attention_mask");
    CHECK_ROW(ids, 0, 1, 2, 3, 9);
    CHECK_ROW(lab, 0, 1, 2, 3, -100);
    CHECK_ROW(msk, 0, 1, 1, 1, 0);
    CHECK_ROW(ids, 1, 4, 5, 6, 7); /* truncated */
    CHECK_ROW(lab, 1, -100, -100, 6, 7);
    CHECK_ROW(msk, 1, 1, 1, 1, 1);
    CHECK_ROW(ids, 2, 11, 12, 9, 9);
    CHECK_ROW(lab, 2, 11, -100, -100, -100); /* no labels given: masked positions are ignored */
    CHECK_ROW(msk, 2, 1, 0, 0, 0);
    CHECK(b.tokens == 2 + 2 + 0);
    ot_batch_free(&b);
    ot_dataset_close(ds);
}

static void test_jsonl_lm_packing(void) {
    const char *p = write_text("lm_pack.jsonl", lm_text);
    ot_dataset *ds = open_ok(p, opts(4, 1, 0, 0, 9));
    CHECK(ot_dataset_len(ds) == 3); /* 11 tokens */
    ot_batch b = {0};
    CHECK_OK(ot_dataset_batch(ds, 0, 3, &b));
    const ot_tensor *ids = ot_batch_get(&b, "input_ids"), *lab = ot_batch_get(&b, "labels"),
                    *msk = ot_batch_get(&b, "attention_mask");
    CHECK_ROW(ids, 0, 1, 2, 3, 4);
    CHECK_ROW(lab, 0, -100, 2, 3, -100); /* documents start at tokens 0 and 3 */
    CHECK_ROW(msk, 0, 1, 1, 1, 1);
    CHECK_ROW(ids, 1, 5, 6, 7, 8);
    CHECK_ROW(lab, 1, -100, 6, 7, 8);
    CHECK_ROW(ids, 2, 10, 11, 12, 9);
    CHECK_ROW(lab, 2, 10, -100, -100, -100); /* 11 starts a document; 12 is masked; then padding */
    CHECK_ROW(msk, 2, 1, 1, 0, 0);
    CHECK(b.tokens == 2 + 3 + 0);
    ot_batch_free(&b);
    ot_dataset_close(ds);

    /* A record with labels after records without: earlier labels stay the ids. */
    p = write_text("lm_late.jsonl", "{\"input_ids\": [1, 2]}\n{\"input_ids\": [3, 4], \"labels\": [5, 6]}\n");
    ds = open_ok(p, opts(2, 0, 0, 0, 0));
    CHECK_OK(ot_dataset_batch(ds, 0, 2, &b));
    CHECK_ROW(ot_batch_get(&b, "labels"), 0, 1, 2);
    CHECK_ROW(ot_batch_get(&b, "labels"), 1, 5, 6);
    ot_batch_free(&b);
    ot_dataset_close(ds);
}

/* Writes "good line, blank line, `bad`" and checks the error names the file and line 3. */
static void check_bad_line(const char *name, const char *bad, const char *want, int line) {
    char text[512];
    snprintf(text, sizeof text, "{\"input_ids\": [1, 2]}\n   \n%s\n{\"input_ids\": [3]}\n", bad);
    const char *p = write_text(name, text);
    check_open_fails(p, opts(8, 0, 0, 0, 0), "line 3", want, line);
}
#define CHECK_BAD_LINE(name, bad, want) check_bad_line((name), (bad), (want), __LINE__)

static void test_jsonl_lm_errors(void) {
    CHECK_BAD_LINE("e1.jsonl", "{\"input_ids\": [1, 2,}", "invalid JSON");
    CHECK_BAD_LINE("e2.jsonl", "{\"input_ids\": [1]} x", "unexpected text");
    CHECK_BAD_LINE("e3.jsonl", "[1, 2]", "object");
    CHECK_BAD_LINE("e4.jsonl", "{\"input_ids\": 5}", "must be an array");
    CHECK_BAD_LINE("e5.jsonl", "{\"input_ids\": [1, 1.5]}", "input_ids[1]");
    CHECK_BAD_LINE("e6.jsonl", "{\"input_ids\": [-1]}", "input_ids[0] is -1");
    CHECK_BAD_LINE("e7.jsonl", "{\"input_ids\": [2147483648]}", "2147483648");
    CHECK_BAD_LINE("e8.jsonl", "{\"input_ids\": [1, 2], \"labels\": [1]}", "labels has 1 entries, input_ids has 2");
    CHECK_BAD_LINE("e9.jsonl", "{\"input_ids\": [1, 2], \"labels\": [1, -5]}", "labels[1] is -5");
    CHECK_BAD_LINE("e10.jsonl", "{\"input_ids\": [1, 2], \"attention_mask\": [1, 2]}", "attention_mask[1]");
    CHECK_BAD_LINE("e11.jsonl", "{\"input_ids\": [1], \"foo\": 1}", "unexpected key 'foo'");
    CHECK_BAD_LINE("e12.jsonl", "{\"input_ids\": [1], \"input_ids\": [2]}", "duplicate key");
    CHECK_BAD_LINE("e13.jsonl", "{\"labels\": [1]}", "missing input_ids");
    CHECK_BAD_LINE("e14.jsonl", "{\"input_ids\": []}", "empty");
    CHECK_BAD_LINE("e15.jsonl", "{\"input_ids\": [\"a\"]}", "is a string");
    CHECK_BAD_LINE("e16.jsonl", "{\"input_ids\": [[1]]}", "is an array");
    CHECK_BAD_LINE("e17.jsonl", "{\"input_ids\": [1], \"labels\": 3}", "labels must be an array");
    CHECK_BAD_LINE("e18.jsonl", "{\"input_ids\": [1], \"attention_mask\": [true]}", "boolean");
    CHECK_BAD_LINE("e19.jsonl", "{\"input_ids\": [1e300]}", "input_ids[0]");
    /* The first line itself, and files without records. */
    CHECK_OPEN_FAILS(write_text("first.jsonl", "{\"input_ids\": [1,\n"), opts(8, 0, 0, 0, 0), "line 1", NULL);
    CHECK_OPEN_FAILS(write_text("empty.jsonl", ""), opts(8, 0, 0, 0, 0), "empty", NULL);
    CHECK_OPEN_FAILS(write_text("blank.jsonl", "\n  \r\n\t\n"), opts(8, 0, 0, 0, 0), "no records", NULL);
    CHECK_OPEN_FAILS(write_text("noseq.jsonl", "{\"input_ids\": [1]}\n"), opts(0, 0, 0, 0, 0), "seq_len", NULL);
    /* Largest id and -100 labels are fine; so is a byte order mark. */
    const char *p = write_text("edge.jsonl", "\xEF\xBB\xBF{\"input_ids\": [2147483647, 0], \"labels\": [-100, 0]}");
    ot_dataset *ds = open_ok(p, opts(2, 0, 0, 0, 0));
    ot_batch b = {0};
    CHECK_OK(ot_dataset_batch(ds, 0, 1, &b));
    CHECK_ROW(ot_batch_get(&b, "input_ids"), 0, 2147483647, 0);
    CHECK_ROW(ot_batch_get(&b, "labels"), 0, -100, 0);
    ot_batch_free(&b);
    ot_dataset_close(ds);
}

/* ---- JSONL, generic form ---- */

static void test_jsonl_generic(void) {
    const char *p = write_text("gen.jsonl", "{\"x\": [[1.5, 2], [3, 4]], \"m\": [1, 0], \"labels\": 2}\n"
                                            "{\"x\": [[5, 6], [7, 8e0]], \"m\": [0, 1], \"labels\": 9007199254740993}\n"
                                            "\n"
                                            "{\"labels\": -3, \"m\": [1, 1], \"x\": [[0.25, 0], [0, 0]]}\n");
    ot_dataset *ds = open_ok(p, opts(0, 0, 0, 0, 0)); /* seq_len does not apply */
    CHECK(!ot_dataset_is_tokens(ds));
    CHECK(ot_dataset_len(ds) == 3);
    ot_batch b = {0};
    CHECK_OK(ot_dataset_batch(ds, 0, 3, &b));
    CHECK(b.n == 3 && b.tokens == 3);
    CHECK(b.n == 3 && strcmp(b.names[0], "x") == 0 && strcmp(b.names[1], "m") == 0 &&
          strcmp(b.names[2], "labels") == 0);
    const ot_tensor *x = ot_batch_get(&b, "x"), *m = ot_batch_get(&b, "m"), *l = ot_batch_get(&b, "labels");
    CHECK(x && x->dtype == OT_F32 && x->ndim == 3 && x->dims[0] == 3 && x->dims[1] == 2 && x->dims[2] == 2);
    static const float xw[12] = {1.5f, 2, 3, 4, 5, 6, 7, 8, 0.25f, 0, 0, 0};
    CHECK(x && memcmp(x->data, xw, sizeof xw) == 0);
    CHECK(m && m->dtype == OT_I64 && m->ndim == 2 && m->dims[0] == 3 && m->dims[1] == 2);
    CHECK_ROW(m, 0, 1, 0);
    CHECK_ROW(m, 2, 1, 1);
    CHECK(l && l->dtype == OT_I64 && l->ndim == 1 && l->dims[0] == 3);
    /* int64 values come from the literal, exactly (a double would give ...992). */
    CHECK(l && ((int64_t *)l->data)[0] == 2 && ((int64_t *)l->data)[1] == 9007199254740993LL &&
          ((int64_t *)l->data)[2] == -3);
    /* Wrap-around with shuffle off: samples 5, 6 are rows 2, 0. */
    CHECK_OK(ot_dataset_batch(ds, 5, 2, &b));
    l = ot_batch_get(&b, "labels");
    CHECK(l && l->dims[0] == 2 && ((int64_t *)l->data)[0] == -3 && ((int64_t *)l->data)[1] == 2);
    ot_batch_free(&b);
    ot_dataset_close(ds);

    /* Shapes may differ between batches, not within one. */
    p = write_text("shapes.jsonl", "{\"a\": [1, 2]}\n{\"a\": [1, 2, 3]}\n");
    ds = open_ok(p, opts(0, 0, 0, 0, 0));
    CHECK_OK(ot_dataset_batch(ds, 1, 1, &b));
    CHECK(b.n == 1 && b.tensors[0]->dims[1] == 3);
    ot_status s = ot_dataset_batch(ds, 0, 2, &b);
    CHECK(s == OT_E_SHAPE && strstr(ot_last_error(), p) && strstr(ot_last_error(), "line 2") &&
          strstr(ot_last_error(), "[3]") && strstr(ot_last_error(), "[2]"));
    CHECK(b.n == 0);
    ot_dataset_close(ds);

    /* A classification record (scalar labels) next to input_ids is generic, not LM. */
    p = write_text("cls.jsonl", "{\"input_ids\": [5, 6], \"attention_mask\": [1, 1], \"labels\": 1}\n");
    ds = open_ok(p, opts(8, 0, 0, 0, 0));
    CHECK(!ot_dataset_is_tokens(ds));
    CHECK_OK(ot_dataset_batch(ds, 0, 1, &b));
    CHECK(b.n == 3 && ot_batch_get(&b, "input_ids") && ot_batch_get(&b, "input_ids")->dims[1] == 2);
    ot_batch_free(&b);
    ot_dataset_close(ds);

    /* Scalars and empty arrays. */
    p = write_text("scalar.jsonl", "{\"v\": 1, \"e\": []}\n{\"v\": 2, \"e\": []}\n");
    ds = open_ok(p, opts(0, 0, 0, 0, 0));
    CHECK_OK(ot_dataset_batch(ds, 0, 2, &b));
    const ot_tensor *v = ot_batch_get(&b, "v"), *e = ot_batch_get(&b, "e");
    CHECK(v && v->ndim == 1 && ((int64_t *)v->data)[1] == 2);
    CHECK(e && e->ndim == 2 && e->dims[0] == 2 && e->dims[1] == 0);
    ot_batch_free(&b);
    ot_dataset_close(ds);
}

static void check_bad_generic(const char *name, const char *text, const char *line, const char *want, int at) {
    check_open_fails(write_text(name, text), opts(0, 0, 0, 0, 0), line, want, at);
}
#define CHECK_BAD_GENERIC(name, text, line, want) check_bad_generic((name), (text), (line), (want), __LINE__)

static void test_jsonl_generic_errors(void) {
    CHECK_BAD_GENERIC("g1.jsonl", "{\"a\": [1]}\n{\"a\": [[1, 2], [3]]}\n", "line 2", "a[1] has 1 entries, expected 2");
    CHECK_BAD_GENERIC("g2.jsonl", "{\"a\": [[1, 2], 3]}\n", "line 1", "a[1] is a number");
    CHECK_BAD_GENERIC("g3.jsonl", "{\"a\": [1, [2]]}\n", "line 1", "ragged");
    CHECK_BAD_GENERIC("g4.jsonl", "{\"a\": [1, \"x\"]}\n", "line 1", "a[1] is a string");
    CHECK_BAD_GENERIC("g5.jsonl", "{\"a\": true}\n", "line 1", "boolean");
    CHECK_BAD_GENERIC("g6.jsonl", "{\"a\": [null]}\n", "line 1", "null");
    CHECK_BAD_GENERIC("g7.jsonl", "{\"a\": {\"b\": 1}}\n", "line 1", "an object");
    CHECK_BAD_GENERIC("g8.jsonl", "{\"a\": 1, \"b\": 2}\n\n{\"a\": 1}\n", "line 3", "missing key 'b'");
    CHECK_BAD_GENERIC("g9.jsonl", "{\"a\": 1}\n{\"a\": 1, \"c\": 3}\n", "line 2", "key 'c'");
    CHECK_BAD_GENERIC("g10.jsonl", "{\"a\": 1, \"a\": 2}\n", "line 1", "duplicate key");
    CHECK_BAD_GENERIC("g11.jsonl", "{\"a\": 1}\n{\"a\": 1, \"a\": 2}\n", "line 2", "duplicate key");
    CHECK_BAD_GENERIC("g12.jsonl", "{\"a\": [[[[[[[[1]]]]]]]]}\n", "line 1", "deep");
    CHECK_BAD_GENERIC("g13.jsonl", "{\"a\": 9223372036854775808}\n", "line 1", "int64");
    CHECK_BAD_GENERIC("g14.jsonl", "{}\n", "line 1", "no keys");
    CHECK_BAD_GENERIC("g15.jsonl", "{\"a\": 1}\n{\"a\": 1e999}\n", "line 2", "finite");
    CHECK_BAD_GENERIC("g16.jsonl", "{\"a\": 1}\n\"str\"\n", "line 2", "object");
    /* Strings are skipped when reading number literals, escapes included: a key with a
     * quote and digits in it must not shift the numbers. */
    const char *p = write_text("esc.jsonl", "{\"k\\\"1.5\": [7, 8]}\n");
    ot_dataset *ds = open_ok(p, opts(0, 0, 0, 0, 0));
    ot_batch b = {0};
    CHECK_OK(ot_dataset_batch(ds, 0, 1, &b));
    CHECK(b.n == 1 && b.tensors[0]->dtype == OT_I64 && ((int64_t *)b.tensors[0]->data)[1] == 8);
    ot_batch_free(&b);
    ot_dataset_close(ds);
}

/* Every truncation and many one-byte edits of valid files: opening either succeeds (and
 * then every batch does) or fails naming the file; never a crash (run under ASan), never an
 * internal error (the number scanner losing step with cJSON). */
static void test_jsonl_mutations(void) {
    static const char *bases[2] = {
        "{\"input_ids\": [1, 2, 3], \"labels\": [-100, 2, 3]}\n{\"input_ids\": [4], \"attention_mask\": [1]}\n",
        "{\"x\": [[1.5, -2], [3e1, 4]], \"s\\\"q\": 7, \"labels\": [0, 1]}\n{\"x\": [[0, 0], [0, 0]], \"s\\\"q\": 1, "
        "\"labels\": [2, 3]}\n"};
    static const char subst[] = "\"\\1.-[]{},:eE \n\r";
    int opened = 0, failed = 0, bad = 0;
    for (int k = 0; k < 2; k++) {
        size_t n = strlen(bases[k]);
        for (size_t pos = 0; pos <= n; pos++)
            for (size_t c = 0; c <= sizeof subst - 1; c++) { /* c == len: truncate at pos */
                char text[256];
                memcpy(text, bases[k], n + 1);
                if (c == sizeof subst - 1) text[pos] = '\0';
                else if (pos < n) text[pos] = subst[c];
                else continue;
                const char *p = write_text("mut.jsonl", text);
                ot_data_opts o = opts(3, (int)(pos & 1), (int)(c & 1), pos, 0);
                ot_dataset *ds = NULL;
                ot_status s = ot_dataset_open(p, &o, &ds);
                if (s != OT_OK) {
                    failed++;
                    if (s == OT_E_INTERNAL || !strstr(ot_last_error(), p)) {
                        bad++;
                        fprintf(stderr, "  mutation %d/%zu/%zu: %s\n", k, pos, c, ot_last_error());
                    }
                    continue;
                }
                opened++;
                ot_batch b = {0};
                for (int64_t i = 0; i < ot_dataset_len(ds); i++) {
                    s = ot_dataset_batch(ds, i, 1, &b);
                    if (s != OT_OK) {
                        bad++;
                        fprintf(stderr, "  mutation %d/%zu/%zu batch: %s\n", k, pos, c, ot_last_error());
                    }
                }
                ot_batch_free(&b);
                ot_dataset_close(ds);
            }
    }
    CHECK(bad == 0);
    CHECK(opened > 50 && failed > 500); /* both outcomes were exercised */
}

/* The last record ends exactly at a page boundary without a newline: parsing must stay
 * inside the mapping. */
static void test_jsonl_page_end(void) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || page > 65536) page = 4096;
    char *text = malloc((size_t)page + 1);
    const char *head = "{\"a\": [", *tail = "1]}";
    size_t k = strlen(head);
    memcpy(text, head, k);
    while (k + 2 + strlen(tail) <= (size_t)page) {
        memcpy(text + k, "1,", 2);
        k += 2;
    }
    while (k + strlen(tail) < (size_t)page) text[k++] = ' ';
    memcpy(text + k, tail, strlen(tail) + 1);
    CHECK(strlen(text) == (size_t)page);
    const char *p = write_text("page.jsonl", text);
    ot_dataset *ds = open_ok(p, opts(0, 0, 0, 0, 0));
    ot_batch b = {0};
    CHECK_OK(ot_dataset_batch(ds, 0, 1, &b));
    CHECK(b.n == 1 && b.tensors[0]->dims[1] == (int64_t)(page - 7 - 3) / 2 + 1);
    ot_batch_free(&b);
    ot_dataset_close(ds);
    free(text);
}

/* ---- options ---- */

static void test_open_errors(void) {
    CHECK_OPEN_FAILS(write_text("data.txt", "1 2 3"), opts(4, 0, 0, 0, 0), ".txt", NULL);
    CHECK_OPEN_FAILS(write_text("noext", "1 2 3"), opts(4, 0, 0, 0, 0), "extension", NULL);
    CHECK_OPEN_FAILS(tpath("absent.jsonl"), opts(4, 0, 0, 0, 0), NULL, NULL);
    uint16_t tok[2] = {1, 2};
    const char *p = write_shard("o.bin", tok, 2, 20240520, 1, 2);
    CHECK_OPEN_FAILS(p, opts(4, 0, 0, 0, -1), "pad_id", NULL);
    CHECK_OPEN_FAILS(p, opts(-2, 0, 0, 0, 0), "seq_len", NULL);
    ot_dataset *ds = NULL;
    CHECK(ot_dataset_open(NULL, NULL, &ds) == OT_E_INVALID && ds == NULL);
    /* NULL options: defaults (no seq_len) still open generic JSONL. */
    CHECK_OK(ot_dataset_open(write_text("n.jsonl", "{\"a\": 1}"), NULL, &ds));
    ot_dataset_close(ds);
    ot_dataset_close(NULL);
}

/* ---- order ---- */

/* Input ids of samples [cursor, cursor + n) of a one-token-per-row dataset, minus 100. */
static void rows_of(ot_dataset *ds, int64_t cursor, int n, int64_t *out) {
    ot_batch b = {0};
    CHECK_OK(ot_dataset_batch(ds, cursor, n, &b));
    const ot_tensor *t = ot_batch_get(&b, "input_ids");
    for (int i = 0; i < n; i++) out[i] = t ? ((int64_t *)t->data)[i] - 100 : -1;
    ot_batch_free(&b);
}

static int is_permutation(const int64_t *r, int n) {
    char seen[4096] = {0};
    for (int i = 0; i < n; i++) {
        if (r[i] < 0 || r[i] >= n || seen[r[i]]) return 0;
        seen[r[i]] = 1;
    }
    return 1;
}

static void test_shuffle_reference(void) {
    uint16_t tok[10];
    for (int i = 0; i < 10; i++) tok[i] = (uint16_t)(100 + i);
    const char *p = write_shard("ten.bin", tok, 10, 20240520, 1, 10);
    ot_dataset *ds = open_ok(p, opts(1, 0, 1, 42, 0));
    int64_t r[10];
    /* Independent reference (Python, same algorithm) for seed 42. */
    static const int64_t e0[10] = {6, 1, 8, 5, 2, 7, 4, 3, 9, 0}, e1[10] = {9, 0, 5, 3, 7, 2, 8, 1, 6, 4},
                         e5[10] = {5, 7, 0, 2, 3, 4, 9, 8, 1, 6};
    rows_of(ds, 0, 10, r);
    CHECK(memcmp(r, e0, sizeof r) == 0);
    rows_of(ds, 10, 10, r);
    CHECK(memcmp(r, e1, sizeof r) == 0);
    rows_of(ds, 50, 10, r);
    CHECK(memcmp(r, e5, sizeof r) == 0);
    /* Across the boundary of epochs 0 and 1, asked for after epoch 5 was cached. */
    rows_of(ds, 7, 5, r);
    CHECK(r[0] == e0[7] && r[1] == e0[8] && r[2] == e0[9] && r[3] == e1[0] && r[4] == e1[1]);
    /* Single samples, backwards: the same rows (no dependence on history). */
    for (int i = 9; i >= 0; i--) {
        rows_of(ds, 50 + i, 1, r);
        CHECK(r[0] == e5[i]);
    }
    ot_dataset_close(ds);
    ds = open_ok(p, opts(1, 0, 1, 7, 0));
    static const int64_t s7[10] = {2, 0, 5, 7, 3, 9, 8, 1, 4, 6};
    rows_of(ds, 0, 10, r);
    CHECK(memcmp(r, s7, sizeof r) == 0);
    ot_dataset_close(ds);
    /* Without shuffling the seed does not matter: identity every epoch. */
    ds = open_ok(p, opts(1, 0, 0, 42, 0));
    rows_of(ds, 20, 10, r);
    for (int i = 0; i < 10; i++) CHECK(r[i] == i);
    ot_dataset_close(ds);
}

static void test_shuffle_properties(void) {
    enum { N = 1000 };
    uint16_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (uint16_t)(100 + i);
    const char *p = write_shard("thousand.bin", tok, N, 20240520, 1, N);
    ot_dataset *a = open_ok(p, opts(1, 0, 1, 1234, 0)), *a2 = open_ok(p, opts(1, 0, 1, 1234, 0)),
               *c = open_ok(p, opts(1, 0, 1, 1235, 0));
    static int64_t ra[3][N], rb[N], rc[N];
    for (int e = 0; e < 3; e++) {
        rows_of(a, (int64_t)e * N, N, ra[e]);
        CHECK(is_permutation(ra[e], N));
    }
    CHECK(memcmp(ra[0], ra[1], sizeof rb) != 0 && memcmp(ra[1], ra[2], sizeof rb) != 0);
    /* Same seed, fresh dataset, read in another batch size: same order. */
    for (int i = 0; i < 3 * N; i += 7) {
        int n = 3 * N - i < 7 ? 3 * N - i : 7;
        int64_t r[7];
        rows_of(a2, i, n, r);
        for (int k = 0; k < n; k++) CHECK(r[k] == ra[(i + k) / N][(i + k) % N]);
    }
    rows_of(c, 0, N, rc);
    CHECK(is_permutation(rc, N));
    CHECK(memcmp(rc, ra[0], sizeof rc) != 0);
    int moved = 0;
    for (int i = 0; i < N; i++) moved += ra[0][i] != i;
    CHECK(moved > N / 2); /* actually shuffled */
    ot_dataset_close(a);
    ot_dataset_close(a2);
    ot_dataset_close(c);

    /* Packed rows shuffle as units. */
    ot_dataset *ds = open_ok(write_text("ps.jsonl", "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [4, 5, 6, 7, 8]}\n"),
                             opts(2, 1, 1, 99, 0));
    CHECK(ot_dataset_len(ds) == 4);
    ot_batch b = {0};
    CHECK_OK(ot_dataset_batch(ds, 0, 4, &b));
    const ot_tensor *ids = ot_batch_get(&b, "input_ids");
    int seen[4] = {0};
    for (int r = 0; ids && r < 4; r++) {
        int64_t first = ((int64_t *)ids->data)[2 * r];
        int row = first == 1 ? 0 : first == 3 ? 1 : first == 5 ? 2 : first == 7 ? 3 : -1;
        CHECK(row >= 0);
        if (row >= 0) seen[row]++;
        static const int64_t second[4] = {2, 4, 6, 8};
        if (row >= 0) CHECK(((int64_t *)ids->data)[2 * r + 1] == second[row]);
    }
    CHECK(seen[0] == 1 && seen[1] == 1 && seen[2] == 1 && seen[3] == 1);
    ot_batch_free(&b);
    ot_dataset_close(ds);
}

/* ---- speed (printed, not asserted: sanitizer builds are slower) ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_speed(void) {
    enum { N = 1 << 20 };
    uint16_t *tok = malloc(N * sizeof *tok);
    for (int i = 0; i < N; i++) tok[i] = (uint16_t)(i * 2654435761u >> 16);
    const char *p = write_shard("big.bin", tok, N, 20240520, 1, N);
    free(tok);
    ot_dataset *ds = open_ok(p, opts(1024, 0, 1, 5, 0));
    ot_batch b = {0};
    const int iters = 2000;
    double t0 = now_s();
    int64_t sum = 0;
    for (int i = 0; i < iters; i++) {
        CHECK(ot_dataset_batch(ds, (int64_t)i * 8, 8, &b) == OT_OK);
        sum += b.tokens;
    }
    double dt = (now_s() - t0) / iters;
    CHECK(sum == (int64_t)iters * 8 * 1023);
    printf("batch 8 x 1024 from a shuffled .bin: %.1f us\n", dt * 1e6);
    ot_batch_free(&b);
    ot_dataset_close(ds);
}

int main(void) {
    ot_test_mkdtemp(tmpdir, sizeof tmpdir, "ot_test_data.");
    OT_RUN(test_bin_rows);
    OT_RUN(test_bin_glob);
    OT_RUN(test_bin_errors);
    OT_RUN(test_npy_2d);
    OT_RUN(test_npy_1d);
    OT_RUN(test_npy_errors);
    OT_RUN(test_jsonl_lm_padding);
    OT_RUN(test_jsonl_lm_packing);
    OT_RUN(test_jsonl_lm_errors);
    OT_RUN(test_jsonl_generic);
    OT_RUN(test_jsonl_generic_errors);
    OT_RUN(test_jsonl_mutations);
    OT_RUN(test_jsonl_page_end);
    OT_RUN(test_open_errors);
    OT_RUN(test_shuffle_reference);
    OT_RUN(test_shuffle_properties);
    OT_RUN(test_speed);
    ot_test_rmtree(tmpdir);
    return OT_TEST_EXIT();
}
