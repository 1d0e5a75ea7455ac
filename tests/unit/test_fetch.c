/* test_fetch.c — the parts of fetch that need no server: which URLs are accepted (http and
 * https only, refused before any I/O), hf:// parsing and resolution against the hub's
 * `resolve` layout, fragments, sibling URLs and file names for external data, where the
 * cache lives, sha256 against published test vectors, placement of blobs into model folders
 * (hard links, atomic), the per-URL lock (held against another process), and cache hits
 * answered without the network (the URLs point at a closed loopback port, so any request
 * would fail). Downloads themselves are tested against a live loopback server by
 * tests/parity/test_fetch_py.py. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "importer/fetch_internal.h"
#include "ot_test.h"

static char tmpdir[256];

static char *tpath(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* CHECK that `expr` fails with `code` and a message containing `needle`. */
#define CHECK_FAILS(expr, code, needle)                                                               \
    do {                                                                                              \
        ot_status s_ = (expr);                                                                        \
        CHECK(s_ == (code));                                                                          \
        if (s_ != (code) || !strstr(ot_last_error(), needle))                                         \
            fprintf(stderr, "  got status %d, message '%s' (wanted '%s')\n", s_, ot_last_error(), needle); \
        CHECK(strstr(ot_last_error(), needle) != NULL);                                               \
    } while (0)

static void test_is_url(void) {
    CHECK(ot_is_url("http://h/m.onnx"));
    CHECK(ot_is_url("HTTPS://h/m.onnx"));
    CHECK(ot_is_url("hf://org/name"));
    CHECK(!ot_is_url("file:///etc/passwd"));
    CHECK(!ot_is_url("ftp://h/m.onnx"));
    CHECK(!ot_is_url("models/m.onnx"));
    CHECK(!ot_is_url("http:/h"));
    CHECK(!ot_is_url(NULL));
}

static void test_scheme_refusal(void) {
    CHECK_OK(ot_fetch_check_scheme("http://127.0.0.1:8000/m.onnx"));
    CHECK_OK(ot_fetch_check_scheme("HtTpS://example.org/a/b?c=d"));
    CHECK_FAILS(ot_fetch_check_scheme("file:///etc/passwd"), OT_E_UNSUPPORTED, "scheme 'file'");
    CHECK_FAILS(ot_fetch_check_scheme("ftp://h/m.onnx"), OT_E_UNSUPPORTED, "scheme 'ftp'");
    CHECK_FAILS(ot_fetch_check_scheme("gopher://h/1"), OT_E_UNSUPPORTED, "only http and https");
    CHECK_FAILS(ot_fetch_check_scheme("m.onnx"), OT_E_INVALID, "not a URL");
    CHECK_FAILS(ot_fetch_check_scheme("http:///m.onnx"), OT_E_INVALID, "no host");
    CHECK_FAILS(ot_fetch_check_scheme("http://h/a b.onnx"), OT_E_INVALID, "whitespace");

    /* Refused before any I/O: the cache folder is not even created. */
    ot_fetch_opts o = {.cache_dir = tpath("never")};
    char *p = NULL;
    CHECK_FAILS(ot_fetch_file("file:///etc/passwd", &o, &p), OT_E_UNSUPPORTED, "file:///etc/passwd");
    CHECK(p == NULL);
    CHECK_FAILS(ot_fetch_model("ftp://h/m.onnx", &o, &p), OT_E_UNSUPPORTED, "ftp");
    CHECK_FAILS(ot_fetch_model("gopher://h/m.onnx", &o, &p), OT_E_UNSUPPORTED, "gopher");
    CHECK_FAILS(ot_fetch_file("hf://org/name", &o, &p), OT_E_INVALID, "names a repository");
    CHECK(!file_exists(tpath("never")));
}

static void test_hf_parse(void) {
    ot_hf_ref r;
    CHECK_OK(ot_hf_parse("hf://org/name", &r));
    CHECK(strcmp(r.org, "org") == 0 && strcmp(r.name, "name") == 0 && strcmp(r.rev, "main") == 0 && !r.file);
    ot_hf_ref_free(&r);
    CHECK_OK(ot_hf_parse("HF://my-org/tiny_gpt2.v2@v1.0/sub/model.onnx#sha256=00", &r));
    CHECK(strcmp(r.org, "my-org") == 0 && strcmp(r.name, "tiny_gpt2.v2") == 0 && strcmp(r.rev, "v1.0") == 0);
    CHECK(r.file && strcmp(r.file, "sub/model.onnx") == 0);
    ot_hf_ref_free(&r);
    CHECK_OK(ot_hf_parse("hf://org/name@0123abc/", &r));
    CHECK(strcmp(r.rev, "0123abc") == 0 && !r.file);
    ot_hf_ref_free(&r);
    const char *bad[] = {"hf://org", "hf://org/", "hf:///name", "hf://org/na me", "hf://../x", "hf://org/name@",
                         "hf://org/name/../x", "hf://org/name/a//b", "hf://org/name@a/b@c/../../x", "http://org/name"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ot_status s = ot_hf_parse(bad[i], &r);
        CHECK(s == OT_E_INVALID);
        if (s != OT_E_INVALID) fprintf(stderr, "  accepted '%s'\n", bad[i]);
        if (s == OT_OK) ot_hf_ref_free(&r);
    }
}

static void test_hf_resolve(void) {
    ot_hf_ref r;
    char *u = NULL;
    CHECK_OK(ot_hf_parse("hf://org/name@v2", &r));
    CHECK_OK(ot_hf_resolve("http://127.0.0.1:8080/", &r, "config.json", &u));
    CHECK(u && strcmp(u, "http://127.0.0.1:8080/org/name/resolve/v2/config.json") == 0);
    free(u);
    CHECK_OK(ot_hf_resolve("https://huggingface.co", &r, NULL, &u));
    CHECK(u && strcmp(u, "https://huggingface.co/org/name/resolve/v2/") == 0);
    free(u);
    CHECK_OK(ot_hf_resolve("https://hub.local/mirror//", &r, "a b/c+d.bin", &u));
    CHECK(u && strcmp(u, "https://hub.local/mirror/org/name/resolve/v2/a%20b/c%2Bd.bin") == 0);
    free(u);
    CHECK_FAILS(ot_hf_resolve("ftp://hub", &r, "x", &u), OT_E_UNSUPPORTED, "hub URL");
    ot_hf_ref_free(&r);
}

static void test_resolve_targets(void) {
    const char *hex = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
    char url[256];
    snprintf(url, sizeof url, "https://h/m.onnx#sha256=%s", hex);
    ot_fetch_target t;
    CHECK_OK(ot_fetch_resolve(url, NULL, &t));
    CHECK(strcmp(t.url, "https://h/m.onnx") == 0 && !t.hub);
    CHECK(strcmp(t.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    ot_fetch_target_free(&t);
    CHECK_OK(ot_fetch_resolve("http://h/m.onnx", NULL, &t));
    CHECK(t.sha256[0] == '\0');
    ot_fetch_target_free(&t);
    CHECK_FAILS(ot_fetch_resolve("http://h/m.onnx#frag", NULL, &t), OT_E_INVALID, "#sha256=");
    CHECK_FAILS(ot_fetch_resolve("http://h/m.onnx#sha256=abc", NULL, &t), OT_E_INVALID, "64 hex digits");

    ot_fetch_opts o = {.hub_url = "http://127.0.0.1:9/hub"};
    CHECK_OK(ot_fetch_resolve("hf://org/name/model.safetensors", &o, &t));
    CHECK(t.hub && strcmp(t.url, "http://127.0.0.1:9/hub/org/name/resolve/main/model.safetensors") == 0);
    ot_fetch_target_free(&t);
    /* $ONNXTUNE_HUB_URL when the options name no hub; the default otherwise */
    setenv("ONNXTUNE_HUB_URL", "http://mirror.test", 1);
    CHECK_OK(ot_fetch_resolve("hf://org/name@r1/config.json", NULL, &t));
    CHECK(strcmp(t.url, "http://mirror.test/org/name/resolve/r1/config.json") == 0);
    ot_fetch_target_free(&t);
    unsetenv("ONNXTUNE_HUB_URL");
    CHECK(strcmp(ot_fetch_hub(NULL), "https://huggingface.co") == 0);
}

static void test_relpath_and_urls(void) {
    CHECK_OK(ot_fetch_check_relpath("weights.bin", "m"));
    CHECK_OK(ot_fetch_check_relpath("data/w-1.bin", "m"));
    const char *bad[] = {"", "/etc/passwd", "../x", "a/../b", "a//b", "a\\b", "a/", ".", "a/./b", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK(ot_fetch_check_relpath(bad[i], "m") == OT_E_INVALID);

    char *u = NULL;
    CHECK_OK(ot_fetch_url_sibling("http://h:1/a/m.onnx?x=1", "w/d.bin", &u));
    CHECK(u && strcmp(u, "http://h:1/a/w/d.bin") == 0);
    free(u);
    CHECK_OK(ot_fetch_url_sibling("http://h", "x.bin", &u));
    CHECK(u && strcmp(u, "http://h/x.bin") == 0);
    free(u);
    CHECK_OK(ot_fetch_url_sibling("http://h/m.onnx", "a b#.bin", &u));
    CHECK(u && strcmp(u, "http://h/a%20b%23.bin") == 0);
    free(u);

    char *b = NULL;
    CHECK_OK(ot_fetch_url_basename("http://h/a/m.onnx?x=/y", &b));
    CHECK(b && strcmp(b, "m.onnx") == 0);
    free(b);
    CHECK_OK(ot_fetch_url_basename("http://h/a%20b.onnx", &b));
    CHECK(b && strcmp(b, "a b.onnx") == 0);
    free(b);
    CHECK_FAILS(ot_fetch_url_basename("http://h/a/", &b), OT_E_INVALID, "file name");
    CHECK_FAILS(ot_fetch_url_basename("http://h", &b), OT_E_INVALID, "file name");
    CHECK_FAILS(ot_fetch_url_basename("http://h/%2E%2E", &b), OT_E_INVALID, "file name");
    CHECK_FAILS(ot_fetch_url_basename("http://h/a%2Fb", &b), OT_E_INVALID, "file name");
}

static void test_cache_root(void) {
    char *p = NULL;
    setenv("ONNXTUNE_CACHE", "/env/cache", 1);
    ot_fetch_opts o = {.cache_dir = "/opt/cache"};
    CHECK_OK(ot_fetch_cache_root(&o, &p));
    CHECK(p && strcmp(p, "/opt/cache") == 0);
    free(p);
    CHECK_OK(ot_fetch_cache_root(NULL, &p));
    CHECK(p && strcmp(p, "/env/cache") == 0);
    free(p);
    unsetenv("ONNXTUNE_CACHE");
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("HOME", "/home/someone", 1);
    CHECK_OK(ot_fetch_cache_root(NULL, &p));
    CHECK(p && strcmp(p, "/home/someone/.cache/onnxtune") == 0);
    free(p);
    unsetenv("HOME");
    CHECK_FAILS(ot_fetch_cache_root(NULL, &p), OT_E_INVALID, "ONNXTUNE_CACHE");
    if (home) setenv("HOME", home, 1);
    free(home);
    p = ot_fetch_join("/r", "refs", "k");
    CHECK(p && strcmp(p, "/r/refs/k") == 0);
    free(p);
    p = ot_fetch_join("/r", NULL, "k");
    CHECK(p && strcmp(p, "/r/k") == 0);
    free(p);
}

static void test_sha256(void) {
    char hex[65];
    /* FIPS 180-2 test vectors */
    CHECK_OK(ot_sha256_hex("abc", 3, hex));
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    CHECK_OK(ot_sha256_hex("", 0, hex));
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    write_file(tpath("abc.txt"), "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
    CHECK_OK(ot_sha256_file(tpath("abc.txt"), hex));
    CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
    CHECK_FAILS(ot_sha256_file(tpath("missing"), hex), OT_E_IO, "missing");
    char key[65];
    CHECK_OK(ot_fetch_url_key("abc", key));
    CHECK(strcmp(key, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    CHECK(ot_sha256_is_hex("BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    CHECK(!ot_sha256_is_hex("ba7816bf"));
    CHECK(!ot_sha256_is_hex("ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

static void test_place(void) {
    write_file(tpath("blob"), "weights");
    CHECK_OK(ot_fetch_place(tpath("blob"), tpath("models/k/sub/w.bin")));
    struct stat a, b;
    CHECK(stat(tpath("blob"), &a) == 0 && stat(tpath("models/k/sub/w.bin"), &b) == 0);
    CHECK(a.st_ino == b.st_ino && b.st_size == 7); /* a hard link: stored once */
    CHECK_OK(ot_fetch_place(tpath("blob"), tpath("models/k/sub/w.bin"))); /* idempotent */
    write_file(tpath("blob2"), "other");
    CHECK_OK(ot_fetch_place(tpath("blob2"), tpath("models/k/sub/w.bin"))); /* replaced atomically */
    CHECK(stat(tpath("models/k/sub/w.bin"), &b) == 0 && b.st_size == 5);
    CHECK(!file_exists(tpath("models/k/sub/w.bin.tmp")));
    CHECK_FAILS(ot_fetch_place(tpath("nope"), tpath("models/k/x")), OT_E_IO, "nope");
    CHECK(!file_exists(tpath("models/k/x")));
}

static void test_lock(void) {
    int fd = -1;
    CHECK_OK(ot_fetch_lock(tmpdir, "abc", &fd));
    CHECK(fd >= 0);
    /* Another process (its own open file description) cannot take it while we hold it. */
    pid_t pid = fork();
    if (pid == 0) {
        int f = open(tpath("locks/abc.lock"), O_RDWR);
        _exit(f >= 0 && flock(f, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fd);
    pid = fork();
    if (pid == 0) {
        int f = open(tpath("locks/abc.lock"), O_RDWR);
        _exit(f >= 0 && flock(f, LOCK_EX | LOCK_NB) == 0 ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A ref and blob written by hand are found without a request: port 9 on loopback has no
 * server, so anything that reached the network would fail. */
static void test_cache_hit_offline(void) {
    const char *url = "http://127.0.0.1:9/m/model.bin";
    char key[65], sha[65];
    CHECK_OK(ot_fetch_url_key(url, key));
    CHECK_OK(ot_sha256_hex("cached!", 7, sha));
    char cache[300], path[600];
    snprintf(cache, sizeof cache, "%s/cache", tmpdir);
    snprintf(path, sizeof path, "%s/blobs", cache);
    CHECK_OK(ot_fetch_mkdirs(path));
    snprintf(path, sizeof path, "%s/refs", cache);
    CHECK_OK(ot_fetch_mkdirs(path));
    snprintf(path, sizeof path, "%s/blobs/%s", cache, sha);
    write_file(path, "cached!");
    char ref[600], content[200];
    snprintf(ref, sizeof ref, "%s/refs/%s", cache, key);
    snprintf(content, sizeof content, "%s\n%s\n", sha, url);
    write_file(ref, content);

    ot_fetch_opts o = {.cache_dir = cache, .retries = -1};
    char *p = NULL;
    CHECK_OK(ot_fetch_file(url, &o, &p));
    CHECK(p && strcmp(p, path) == 0);
    free(p);
    char withsha[300];
    snprintf(withsha, sizeof withsha, "%s#sha256=%s", url, sha);
    CHECK_OK(ot_fetch_file(withsha, &o, &p));
    free(p);
    /* ot_fetch_model lays the cached file out as models/<key>/<basename>, a hard link */
    CHECK_OK(ot_fetch_model(url, &o, &p));
    char want[600];
    snprintf(want, sizeof want, "%s/models/%s/model.bin", cache, key);
    CHECK(p && strcmp(p, want) == 0);
    struct stat a, b;
    CHECK(p && stat(p, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino);
    free(p);
    p = NULL;
    /* A different expected digest, or a size limit the blob exceeds, is no hit: it goes to
     * the (closed) server and fails naming the URL, without a leftover partial file. */
    snprintf(withsha, sizeof withsha, "%s#sha256=%064d", url, 0);
    CHECK_FAILS(ot_fetch_file(withsha, &o, &p), OT_E_IO, url);
    CHECK(p == NULL);
    o.max_bytes = 3;
    CHECK_FAILS(ot_fetch_file(url, &o, &p), OT_E_IO, url);
    char partial[600];
    snprintf(partial, sizeof partial, "%s/blobs/.partial-%s", cache, key);
    CHECK(!file_exists(partial));
}

int main(void) {
    ot_test_mkdtemp(tmpdir, sizeof tmpdir, "ot_fetch_");
    OT_RUN(test_is_url);
    OT_RUN(test_scheme_refusal);
    OT_RUN(test_hf_parse);
    OT_RUN(test_hf_resolve);
    OT_RUN(test_resolve_targets);
    OT_RUN(test_relpath_and_urls);
    OT_RUN(test_cache_root);
    OT_RUN(test_sha256);
    OT_RUN(test_place);
    OT_RUN(test_lock);
    OT_RUN(test_cache_hit_offline);
    ot_test_rmtree(tmpdir);
    return OT_TEST_EXIT();
}
