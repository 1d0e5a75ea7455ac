/* test_safetensors.c — the safetensors reader and writer.
 *
 * Round trips of every dtype (including empty and scalar tensors), the exact bytes of a
 * small file (spelled out here by hand from the format description, not by the writer),
 * determinism, escaping, the copy of misaligned data, and every validation rule of the
 * reader broken one at a time on hand-built byte strings: each must fail with a message
 * naming the file and, where there is one, the tensor. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnxtune/safetensors.h"
#include "ot_test.h"

static char tmpdir[256];

static char *tpath(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", tmpdir, name);
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
    fclose(f);
    return b;
}

/* An image: u64 LE header length, the header text, then `dlen` data bytes (0, 1, 2, ...). */
static unsigned char *image(const char *hdr, size_t dlen, size_t *size) {
    size_t hl = strlen(hdr);
    *size = 8 + hl + dlen;
    unsigned char *b = malloc(*size + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < dlen; i++) b[8 + hl + i] = (unsigned char)i;
    return b;
}

static int contains(const char *hay, const char *needle) { return needle == NULL || strstr(hay, needle) != NULL; }

/* Parses an image that must be refused with status `want`, and a message that names the file
 * and contains `a` and `b` (either may be NULL). */
static void expect_bad_image(const unsigned char *b, size_t size, ot_status want, const char *a, const char *bb,
                             int line) {
    ot_safetensors *st = (ot_safetensors *)0x1;
    ot_status s = ot_safetensors_parse(b, size, "bad.safetensors", &st);
    const char *msg = ot_last_error();
    int ok = s == want && st == NULL && contains(msg, "bad.safetensors") && contains(msg, a) && contains(msg, bb);
    if (!ok || getenv("OT_TEST_VERBOSE"))
        fprintf(stderr, "line %d: status %s (want %s), message: %s\n", line, ot_status_name(s), ot_status_name(want), msg);
    CHECK(ok);
    if (s == OT_OK) ot_safetensors_close(st);
}

#define BAD_HDR(hdr, dlen, want, a, b)                        \
    do {                                                      \
        size_t n_;                                            \
        unsigned char *img_ = image(hdr, dlen, &n_);          \
        expect_bad_image(img_, n_, want, a, b, __LINE__);     \
        free(img_);                                           \
    } while (0)

static void good_hdr(const char *hdr, size_t dlen, int want_count, int line) {
    size_t n;
    unsigned char *img = image(hdr, dlen, &n);
    ot_safetensors *st = NULL;
    ot_status s = ot_safetensors_parse(img, n, "good.safetensors", &st);
    if (s != OT_OK) fprintf(stderr, "line %d: refused: %s\n", line, ot_last_error());
    CHECK(s == OT_OK && ot_safetensors_count(st) == want_count);
    ot_safetensors_close(st);
    free(img);
}

static const ot_dtype all_dtypes[] = {OT_F64, OT_F32, OT_F16, OT_BF16, OT_I64, OT_I32, OT_I16,
                                      OT_I8,  OT_U8,  OT_U16, OT_U32,  OT_U64, OT_BOOL};
static const char *const all_names[] = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16",
                                        "I8",  "U8",  "U16", "U32",  "U64", "BOOL"};
#define N_DT ((int)(sizeof all_dtypes / sizeof all_dtypes[0]))

static void test_dtype_names(void) {
    for (int i = 0; i < N_DT; i++) CHECK(strcmp(ot_safetensors_dtype_name(all_dtypes[i]), all_names[i]) == 0);
    CHECK(ot_safetensors_dtype_name(OT_STRING) == NULL);
    CHECK(ot_safetensors_dtype_name(OT_UNDEFINED) == NULL);
}

/* Every dtype in three shapes — [3, 2], scalar, [0, 4] — in one file, read back exactly. */
static void test_roundtrip_all_dtypes(void) {
    enum { PER = 3 };
    ot_tensor ts[N_DT * PER];
    ot_named_tensor nt[N_DT * PER];
    char names[N_DT * PER][32];
    unsigned char *bufs[N_DT * PER];
    for (int d = 0; d < N_DT; d++) {
        for (int k = 0; k < PER; k++) {
            int i = d * PER + k;
            ot_tensor *t = &ts[i];
            memset(t, 0, sizeof *t);
            t->dtype = all_dtypes[d];
            if (k == 0) t->ndim = 2, t->dims[0] = 3, t->dims[1] = 2;
            if (k == 2) t->ndim = 2, t->dims[0] = 0, t->dims[1] = 4;
            size_t nb = ot_tensor_nbytes(t);
            bufs[i] = malloc(nb ? nb : 1);
            for (size_t b = 0; b < nb; b++)
                bufs[i][b] = all_dtypes[d] == OT_BOOL ? (unsigned char)(b & 1) : (unsigned char)(b * 37 + (size_t)d * 11 + 1);
            t->data = nb ? bufs[i] : NULL;
            /* Names in reverse of the dtype order, so the writer's sort is exercised. */
            snprintf(names[i], sizeof names[i], "%c.%s.%s", 'z' - d, k == 0 ? "mat" : k == 1 ? "scalar" : "empty",
                     all_names[d]);
            nt[i].name = names[i];
            nt[i].t = t;
        }
    }
    const char *meta[] = {"format", "pt", "note", "round trip"};
    CHECK_OK(ot_safetensors_write(tpath("all.safetensors"), nt, N_DT * PER, meta, 2));
    ot_safetensors *st = NULL;
    CHECK_OK(ot_safetensors_open(tpath("all.safetensors"), &st));
    if (!st) return;
    CHECK(ot_safetensors_count(st) == N_DT * PER);
    CHECK(strcmp(ot_safetensors_meta(st, "format"), "pt") == 0);
    CHECK(strcmp(ot_safetensors_meta(st, "note"), "round trip") == 0);
    CHECK(ot_safetensors_meta(st, "missing") == NULL);
    CHECK(ot_safetensors_find(st, "nope") == NULL);
    for (int i = 1; i < ot_safetensors_count(st); i++)
        CHECK(strcmp(ot_safetensors_name(st, i - 1), ot_safetensors_name(st, i)) < 0); /* name order = file order */
    for (int i = 0; i < N_DT * PER; i++) {
        const ot_tensor *t = ot_safetensors_find(st, names[i]);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK(t->dtype == ts[i].dtype);
        CHECK(ot_shape_equal(t->ndim, t->dims, ts[i].ndim, ts[i].dims));
        CHECK(t->owned == 0);
        size_t nb = ot_tensor_nbytes(t);
        CHECK(nb == ot_tensor_nbytes(&ts[i]));
        CHECK(nb == 0 || memcmp(t->data, bufs[i], nb) == 0);
        CHECK(nb == 0 || (uintptr_t)t->data % ot_dtype_size(t->dtype) == 0);
    }
    ot_safetensors_close(st);

    /* The data buffer starts 8-byte aligned in the file. */
    size_t n;
    unsigned char *b = slurp(tpath("all.safetensors"), &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    CHECK(hl % 8 == 0);
    CHECK(b[8] == '{' && (b[8 + hl - 1] == ' ' || b[8 + hl - 1] == '}'));
    free(b);
    for (int i = 0; i < N_DT * PER; i++) free(bufs[i]);
}

/* The exact bytes of a small file, written out by hand from the format. "a" (1 byte) comes
 * first by name, which leaves "b" (F32) at data offset 1: misaligned, so the reader copies it. */
static void test_exact_bytes_and_misaligned(void) {
    float bv[2] = {1.0f, 2.0f};
    int8_t av = -3;
    ot_tensor b = {.dtype = OT_F32, .ndim = 1, .dims = {2}, .data = bv};
    ot_tensor a = {.dtype = OT_I8, .ndim = 0, .data = &av};
    ot_named_tensor nt[] = {{"b", &b}, {"a", &a}};
    const char *meta[] = {"k", "v"};
    CHECK_OK(ot_safetensors_write(tpath("exact.safetensors"), nt, 2, meta, 1));
    const char *json = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[0,1]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8;
    unsigned char want[512];
    memset(want, 0, sizeof want);
    want[0] = (unsigned char)hl;
    memcpy(want + 8, json, jl);
    memset(want + 8 + jl, ' ', hl - jl);
    const unsigned char data[9] = {0xfd, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40};
    memcpy(want + 8 + hl, data, 9);
    size_t n;
    unsigned char *got = slurp(tpath("exact.safetensors"), &n);
    CHECK(n == 8 + hl + 9);
    CHECK(got && n == 8 + hl + 9 && memcmp(got, want, n) == 0);

    ot_safetensors *st = NULL;
    CHECK_OK(ot_safetensors_parse(got, n, "exact", &st));
    if (st) {
        const ot_tensor *t = ot_safetensors_find(st, "b");
        CHECK(t && (uintptr_t)t->data % 4 == 0);
        CHECK(t && (const unsigned char *)t->data != got + 8 + hl + 1); /* a copy, not the view */
        CHECK(t && ((const float *)t->data)[0] == 1.0f && ((const float *)t->data)[1] == 2.0f);
        const ot_tensor *ta = ot_safetensors_tensor(st, 0);
        CHECK(ta && ta->ndim == 0 && *(const int8_t *)ta->data == -3);
        CHECK(ta && (const unsigned char *)ta->data == got + 8 + hl); /* aligned: zero-copy */
        CHECK(strcmp(ot_safetensors_name(st, 0), "a") == 0 && strcmp(ot_safetensors_name(st, 1), "b") == 0);
        CHECK(ot_safetensors_name(st, 2) == NULL && ot_safetensors_tensor(st, -1) == NULL);
        ot_safetensors_close(st);
    }
    free(got);
}

/* Same tensors in any input order, same bytes; metadata keys sorted. */
static void test_deterministic(void) {
    int32_t x[3] = {1, 2, 3};
    uint16_t y[2] = {7, 8};
    ot_tensor tx = {.dtype = OT_I32, .ndim = 1, .dims = {3}, .data = x};
    ot_tensor ty = {.dtype = OT_BF16, .ndim = 2, .dims = {1, 2}, .data = y};
    ot_named_tensor n1[] = {{"x", &tx}, {"y", &ty}}, n2[] = {{"y", &ty}, {"x", &tx}};
    const char *m1[] = {"a", "1", "b", "2"}, *m2[] = {"b", "2", "a", "1"};
    CHECK_OK(ot_safetensors_write(tpath("d1.safetensors"), n1, 2, m1, 2));
    CHECK_OK(ot_safetensors_write(tpath("d2.safetensors"), n2, 2, m2, 2));
    size_t l1, l2;
    unsigned char *b1 = slurp(tpath("d1.safetensors"), &l1), *b2 = slurp(tpath("d2.safetensors"), &l2);
    CHECK(b1 && b2 && l1 == l2 && memcmp(b1, b2, l1) == 0);
    CHECK(b1 && memmem(b1, l1, "{\"__metadata__\":{\"a\":\"1\",\"b\":\"2\"}", 33) != NULL);
    free(b1);
    free(b2);

    /* No tensors at all: "{}" padded to 8. */
    CHECK_OK(ot_safetensors_write(tpath("empty.safetensors"), NULL, 0, NULL, 0));
    b1 = slurp(tpath("empty.safetensors"), &l1);
    CHECK(b1 && l1 == 16 && b1[0] == 8 && memcmp(b1 + 8, "{}      ", 8) == 0);
    free(b1);
    ot_safetensors *st = NULL;
    CHECK_OK(ot_safetensors_open(tpath("empty.safetensors"), &st));
    CHECK(st && ot_safetensors_count(st) == 0 && ot_safetensors_meta(st, "a") == NULL);
    ot_safetensors_close(st);
}

/* Names with characters JSON must escape, and non-ASCII, survive the trip. */
static void test_escaping(void) {
    float v = 5.0f;
    ot_tensor t = {.dtype = OT_F32, .ndim = 0, .data = &v};
    const char *names[] = {"q\"uote", "back\\slash", "new\nline", "ctl\x01", "caf\xc3\xa9", "tab\t"};
    ot_named_tensor nt[6];
    for (int i = 0; i < 6; i++) nt[i].name = names[i], nt[i].t = &t;
    const char *meta[] = {"k\"", "v\n\xe2\x82\xac"};
    CHECK_OK(ot_safetensors_write(tpath("esc.safetensors"), nt, 6, meta, 1));
    size_t n;
    unsigned char *b = slurp(tpath("esc.safetensors"), &n);
    CHECK(b && memmem(b, n, "\"ctl\\u0001\"", 11) && memmem(b, n, "\"new\\nline\"", 11) &&
          memmem(b, n, "\"back\\\\slash\"", 13));
    free(b);
    ot_safetensors *st = NULL;
    CHECK_OK(ot_safetensors_open(tpath("esc.safetensors"), &st));
    if (!st) return;
    for (int i = 0; i < 6; i++) {
        const ot_tensor *g = ot_safetensors_find(st, names[i]);
        CHECK(g && *(const float *)g->data == 5.0f);
    }
    CHECK(ot_safetensors_meta(st, "k\"") && strcmp(ot_safetensors_meta(st, "k\""), "v\n\xe2\x82\xac") == 0);
    ot_safetensors_close(st);
}

/* A tensor big enough that the writer streams many pages. */
static void test_large(void) {
    int64_t n = 3 * 1000 * 1000 + 7;
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = (float)i * 0.5f;
    ot_tensor t = {.dtype = OT_F32, .ndim = 1, .dims = {n}, .data = v};
    ot_named_tensor nt = {"big", &t};
    CHECK_OK(ot_safetensors_write(tpath("big.safetensors"), &nt, 1, NULL, 0));
    ot_safetensors *st = NULL;
    CHECK_OK(ot_safetensors_open(tpath("big.safetensors"), &st));
    const ot_tensor *g = st ? ot_safetensors_find(st, "big") : NULL;
    CHECK(g && g->dims[0] == n && memcmp(g->data, v, (size_t)n * 4) == 0);
    ot_safetensors_close(st);
    free(v);
    unlink(tpath("big.safetensors"));
}

static void test_valid_edge_cases(void) {
    good_hdr("{}", 0, 0, __LINE__);
    good_hdr("{}     \n\t\r", 0, 0, __LINE__);
    good_hdr(" \n{}", 0, 0, __LINE__); /* leading whitespace: the reference reads it */
    good_hdr("{\"__metadata__\":null}", 0, 0, __LINE__);
    good_hdr("{\"__metadata__\":{}}", 0, 0, __LINE__);
    /* Entries in any order in the JSON; sorted by offset. Empty tensors may share an offset. */
    good_hdr("{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
             "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[2,2]},"
             "\"f\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[2,2]},"
             "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
             4, 4, __LINE__);
    /* Unknown fields inside an entry are ignored, as the reference does (numbers in them
     * included, which must not disturb the exact reading of those that matter). */
    good_hdr("{\"a\":{\"x\":[1.5,-2e3],\"dtype\":\"I16\",\"shape\":[],\"data_offsets\":[0,2],\"extra\":{\"y\":[0.5]}},"
             "\"b\":{\"dtype\":\"I8\",\"z\":-1,\"shape\":[3],\"q\":\"1,2\\\"3\",\"data_offsets\":[2,5]}}",
             5, 2, __LINE__);
    /* Dimensions beyond 2^53 are exact (an empty tensor may have one). */
    good_hdr("{\"t\":{\"dtype\":\"U8\",\"shape\":[1152921504606846977,0],\"data_offsets\":[0,0]}}", 0, 1, __LINE__);
    {
        size_t n;
        unsigned char *img = image("{\"t\":{\"dtype\":\"U8\",\"shape\":[1152921504606846977,0],\"data_offsets\":[0,0]}}",
                                   0, &n);
        ot_safetensors *st = NULL;
        CHECK_OK(ot_safetensors_parse(img, n, "bigdim", &st));
        const ot_tensor *t = st ? ot_safetensors_find(st, "t") : NULL;
        CHECK(t && t->ndim == 2 && t->dims[0] == 1152921504606846977LL && t->dims[1] == 0);
        ot_safetensors_close(st);
        free(img);
    }

    size_t n;
    unsigned char *img = image("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                               "\"v\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]}}",
                               3, &n);
    ot_safetensors *st = NULL;
    CHECK_OK(ot_safetensors_parse(img, n, "order", &st));
    if (st) { /* file order is offset order, whatever the names */
        CHECK(strcmp(ot_safetensors_name(st, 0), "w") == 0 && strcmp(ot_safetensors_name(st, 1), "v") == 0);
        const ot_tensor *v = ot_safetensors_find(st, "v");
        CHECK(v && *(const unsigned char *)v->data == 2);
        ot_safetensors_close(st);
    }
    free(img);
}

#define T1 "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

/* Every rule of the reader, broken one at a time. */
static void test_validation_rules(void) {
    /* Framing. */
    {
        unsigned char small[5] = {1, 0, 0, 0, 0};
        expect_bad_image(small, sizeof small, OT_E_FORMAT, "shorter than", NULL, __LINE__);
        unsigned char big[16] = {0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, '{', '}'}; /* 100000001 */
        expect_bad_image(big, sizeof big, OT_E_FORMAT, "100000000", NULL, __LINE__);
        unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
        expect_bad_image(huge, sizeof huge, OT_E_FORMAT, "100000000", NULL, __LINE__);
        unsigned char past[12] = {5, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
        expect_bad_image(past, sizeof past, OT_E_FORMAT, "past the end", NULL, __LINE__);
        unsigned char zero[8] = {0};
        expect_bad_image(zero, sizeof zero, OT_E_FORMAT, "'{'", NULL, __LINE__);
        expect_bad_image(NULL, 0, OT_E_FORMAT, "shorter than", NULL, __LINE__);
    }
    /* Header text. */
    BAD_HDR("{\"a\xff\":1}", 0, OT_E_FORMAT, "UTF-8", NULL);
    BAD_HDR("{\"\xc0\xaf\":1}", 0, OT_E_FORMAT, "UTF-8", NULL); /* overlong '/' */
    BAD_HDR("{\"\xed\xa0\x80\":1}", 0, OT_E_FORMAT, "UTF-8", NULL); /* surrogate */
    BAD_HDR("[1]", 0, OT_E_FORMAT, "'{'", NULL);
    BAD_HDR(" \n", 0, OT_E_FORMAT, "'{'", NULL);
    BAD_HDR("\"a\"", 0, OT_E_FORMAT, "'{'", NULL);
    BAD_HDR("{\"a\":", 0, OT_E_FORMAT, "not valid JSON", NULL);
    BAD_HDR("{}x", 0, OT_E_FORMAT, "trailing", NULL);
    BAD_HDR("{} {}", 0, OT_E_FORMAT, "trailing", NULL);
    BAD_HDR("{\x01}", 0, OT_E_FORMAT, "control byte", NULL);
    BAD_HDR("{\"a\x02\":{}}", 0, OT_E_FORMAT, "control byte", NULL);
    /* Entries. */
    BAD_HDR("{\"t\":1}", 0, OT_E_FORMAT, "'t'", "not a JSON object");
    BAD_HDR("{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'", "lacks 'dtype'");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'", "lacks 'shape'");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, OT_E_FORMAT, "'t'", "lacks 'data_offsets'");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'",
            "twice");
    BAD_HDR("{\"t\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'", "unknown dtype");
    BAD_HDR("{\"t\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'", "unknown dtype");
    BAD_HDR("{\"t\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'", "dtype");
    BAD_HDR("{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, OT_E_UNSUPPORTED, "'t'",
            "F8_E4M3 is not supported");
    BAD_HDR("{\"t\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, OT_E_UNSUPPORTED, "'t'",
            "not supported");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'", "shape");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'",
            "shape[0] is not a non-negative integer");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1.5],\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'", "shape[1]");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'", "shape[0]");
    /* Integers are read from the text exactly: no floats, exponents or leading zeros. */
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'", "shape[0]");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'", "shape[0]");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8, OT_E_FORMAT, "'t'", "malformed");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", 8, OT_E_FORMAT, "'t'",
            "non-negative integers");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1.]}}", 8, OT_E_FORMAT, "'t'", "malformed");
    BAD_HDR("{\"t\":{\"dtype\":\"U8\",\"shape\":[18446744073709551616,0],\"data_offsets\":[0,0]}}", 0, OT_E_FORMAT,
            "'t'", "shape[0]"); /* above u64 */
    BAD_HDR("{\"t\":{\"dtype\":\"U8\",\"shape\":[9223372036854775808,0],\"data_offsets\":[0,0]}}", 0,
            OT_E_UNSUPPORTED, "'t'", "too large"); /* a u64, but not an int64 dimension */
    BAD_HDR("{\"t\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,9007199254740993]}}", 2, OT_E_FORMAT, "'t'",
            "[0, 9007199254740993]"); /* exact beyond 2^53 */
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, OT_E_UNSUPPORTED,
            "'t'", "rank 9");
    BAD_HDR("{\"t\":{\"dtype\":\"U8\",\"shape\":[1073741824,1073741824,1073741824],\"data_offsets\":[0,8]}}", 8,
            OT_E_FORMAT, "'t'", "overflow");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, OT_E_FORMAT, "'t'", "[begin, end]");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, OT_E_FORMAT, "'t'", "[begin, end]");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"a\":0,\"b\":8}}}", 8, OT_E_FORMAT, "'t'",
            "[begin, end]");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-1,8]}}", 8, OT_E_FORMAT, "'t'", "non-negative");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, OT_E_FORMAT, "'t'",
            "end before they begin");
    /* Sizes and tiling. */
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, OT_E_FORMAT, "'t'",
            "needs 8 bytes but data_offsets [0, 4] span 4");
    BAD_HDR("{\"t\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, OT_E_FORMAT, "'t'",
            "needs 8 bytes");
    BAD_HDR("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, OT_E_FORMAT, "'t'", "gap");
    BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
            12, OT_E_FORMAT, "'b'", "gap");
    BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            12, OT_E_FORMAT, "'b'", "overlap");
    BAD_HDR("{" T1 "}", 12, OT_E_FORMAT, "4 bytes after the last tensor", NULL);
    BAD_HDR("{}", 1, OT_E_FORMAT, "1 bytes after the last tensor", NULL);
    BAD_HDR("{" T1 "}", 7, OT_E_FORMAT, "'t'", "truncated");
    BAD_HDR("{\"t\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 0, OT_E_FORMAT, "'t'", "truncated");
    BAD_HDR("{" T1 "," T1 "}", 8, OT_E_FORMAT, "'t'", "appears twice");
    /* Metadata. */
    BAD_HDR("{\"__metadata__\":{\"k\":1}," T1 "}", 8, OT_E_FORMAT, "'k'", "not a string");
    BAD_HDR("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, OT_E_FORMAT, "'k'", "not a string");
    BAD_HDR("{\"__metadata__\":[\"k\"]}", 0, OT_E_FORMAT, "__metadata__", "not a JSON object");
    BAD_HDR("{\"__metadata__\":\"k\"}", 0, OT_E_FORMAT, "__metadata__", "not a JSON object");
    BAD_HDR("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, OT_E_FORMAT, "'k'", "twice");
    BAD_HDR("{\"__metadata__\":{},\"__metadata__\":{}}", 0, OT_E_FORMAT, "__metadata__", "twice");
}

static void test_open_errors(void) {
    ot_safetensors *st = NULL;
    CHECK(ot_safetensors_open(tpath("missing.safetensors"), &st) == OT_E_IO);
    CHECK(strstr(ot_last_error(), "missing.safetensors") != NULL && st == NULL);
    CHECK(ot_safetensors_open(tmpdir, &st) != OT_OK && st == NULL); /* a folder */

    /* A good file cut short by one byte: refused, naming the file and the tensor. */
    size_t n;
    unsigned char *b = slurp(tpath("exact.safetensors"), &n);
    FILE *f = fopen(tpath("cut.safetensors"), "wb");
    fwrite(b, 1, n - 1, f);
    fclose(f);
    free(b);
    CHECK(ot_safetensors_open(tpath("cut.safetensors"), &st) == OT_E_FORMAT);
    CHECK(strstr(ot_last_error(), "cut.safetensors") && strstr(ot_last_error(), "'b'") &&
          strstr(ot_last_error(), "truncated"));
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void test_writer_errors(void) {
    float v[2] = {1, 2};
    ot_tensor t = {.dtype = OT_F32, .ndim = 1, .dims = {2}, .data = v};
    ot_tensor ts = {.dtype = OT_STRING, .ndim = 1, .dims = {2}, .data = v};
    ot_tensor neg = {.dtype = OT_F32, .ndim = 1, .dims = {-2}, .data = v};
    ot_tensor nodata = {.dtype = OT_F32, .ndim = 1, .dims = {2}, .data = NULL};
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("keep.safetensors")); /* tpath's buffers rotate */
    ot_named_tensor good = {"w", &t};
    CHECK_OK(ot_safetensors_write(p, &good, 1, NULL, 0));
    size_t n0;
    unsigned char *before = slurp(p, &n0);

    ot_named_tensor dup[] = {{"w", &t}, {"w", &t}};
    CHECK(ot_safetensors_write(p, dup, 2, NULL, 0) == OT_E_INVALID && strstr(ot_last_error(), "'w' appears twice"));
    ot_named_tensor str = {"s", &ts};
    CHECK(ot_safetensors_write(p, &str, 1, NULL, 0) == OT_E_UNSUPPORTED && strstr(ot_last_error(), "'s'"));
    ot_named_tensor reserved = {"__metadata__", &t};
    CHECK(ot_safetensors_write(p, &reserved, 1, NULL, 0) == OT_E_INVALID && strstr(ot_last_error(), "reserved"));
    ot_named_tensor ng = {"n", &neg};
    CHECK(ot_safetensors_write(p, &ng, 1, NULL, 0) == OT_E_INVALID && strstr(ot_last_error(), "negative"));
    ot_named_tensor nd = {"d", &nodata};
    CHECK(ot_safetensors_write(p, &nd, 1, NULL, 0) == OT_E_INVALID && strstr(ot_last_error(), "no data"));
    ot_named_tensor badutf = {"x\xff", &t};
    CHECK(ot_safetensors_write(p, &badutf, 1, NULL, 0) == OT_E_INVALID && strstr(ot_last_error(), "UTF-8"));
    const char *mdup[] = {"k", "1", "k", "2"};
    CHECK(ot_safetensors_write(p, &good, 1, mdup, 2) == OT_E_INVALID && strstr(ot_last_error(), "'k' appears twice"));
    const char *mnull[] = {"k", NULL};
    CHECK(ot_safetensors_write(p, &good, 1, mnull, 1) == OT_E_INVALID);

    /* The file written before is untouched by the refused writes. */
    size_t n1;
    unsigned char *after = slurp(p, &n1);
    CHECK(n0 == n1 && memcmp(before, after, n0) == 0);
    free(before);
    free(after);

    /* Unwritable destination (its folder is a regular file): an error naming the path, and
     * no temporary left behind. */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/sub/out.safetensors", p);
    CHECK(ot_safetensors_write(bad, &good, 1, NULL, 0) == OT_E_IO && strstr(ot_last_error(), "out.safetensors"));
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    CHECK(!file_exists(tmp));
    if (getuid() != 0) { /* root ignores permission bits */
        mkdir(tpath("ro"), 0555);
        CHECK(ot_safetensors_write(tpath("ro/x.safetensors"), &good, 1, NULL, 0) == OT_E_IO);
        CHECK(strstr(ot_last_error(), "ro/x.safetensors") != NULL);
    }
}

int main(void) {
    ot_test_mkdtemp(tmpdir, sizeof tmpdir, "ot_st_");
    OT_RUN(test_dtype_names);
    OT_RUN(test_roundtrip_all_dtypes);
    OT_RUN(test_exact_bytes_and_misaligned);
    OT_RUN(test_deterministic);
    OT_RUN(test_escaping);
    OT_RUN(test_large);
    OT_RUN(test_valid_edge_cases);
    OT_RUN(test_validation_rules);
    OT_RUN(test_open_errors);
    OT_RUN(test_writer_errors);
    ot_test_rmtree(tmpdir);
    return OT_TEST_EXIT();
}
