/* test_reference_grads.c — model-level gradients against PyTorch.
 *
 * For each test model (gpt2_tiny, llama_tiny: causal-LM loss; bert_tiny: classification
 * cross-entropy; mlp_gemm: MSE) a full fine-tuning session is built from
 * tests/models/<model>.onnx and run forward + backward once on the batch recorded in
 * tests/reference/<model>/ by tests/reference/make_reference.py. The loss and the gradient of
 * every recorded weight (attention and MLP projections, norms, embeddings, biases; named by
 * their ONNX initializer, transposed like it) must match PyTorch's float64 reference:
 *
 *     relative error = max|onnxtune - torch| / max|torch|  <  1e-4     (per tensor)
 *     |loss - torch| / |torch|                            <  1e-4
 *
 * onnxtune computes in float32, the reference in float64 from the same float32 weights, so
 * the margin covers float32 rounding only. Fixtures are found through OT_SOURCE_DIR, which
 * CMake bakes in. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/npy.h"
#include "ot_test.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/session.h"

#ifndef OT_SOURCE_DIR
#error "OT_SOURCE_DIR must be defined (tests/CMakeLists.txt sets it)"
#endif

#define REL_TOL 1e-4

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = '\0';
    fclose(f);
    return buf;
}

/* buf = "a/b"; an error (not a silently shortened path) when it does not fit. */
static ot_status join(char *buf, size_t n, const char *a, const char *b) {
    int k = snprintf(buf, n, "%s/%s", a, b ? b : "");
    if (!b || k < 0 || (size_t)k >= n)
        return ot_errorf(OT_E_INVALID, "fixture path '%s/%s' is missing or too long", a, b ? b : "(null)");
    return OT_OK;
}

/* The batch named by manifest "inputs": {name: file.npy}. */
static ot_status load_batch(const char *dir, const cJSON *inputs, ot_batch *b) {
    memset(b, 0, sizeof *b);
    int n = cJSON_GetArraySize(inputs);
    b->names = calloc((size_t)n, sizeof *b->names);
    b->tensors = calloc((size_t)n, sizeof *b->tensors);
    if (!b->names || !b->tensors) return ot_errorf(OT_E_NOMEM, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, inputs) {
        char path[2048];
        OT_TRY(join(path, sizeof path, dir, cJSON_GetStringValue(it)));
        ot_tensor *t;
        OT_TRY(ot_npy_read(path, &t));
        b->names[b->n] = strdup(it->string);
        b->tensors[b->n++] = t;
        if (!b->names[b->n - 1]) return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    const ot_tensor *labels = ot_batch_get(b, "labels");
    b->tokens = labels ? labels->dims[0] : 0;
    return OT_OK;
}

/* max|a - b| / max|b| over n f32 values; +inf when a holds a non-finite value. */
static double rel_error(const float *a, const float *b, int64_t n, double *ref_max) {
    double diff = 0, big = 0;
    int finite = 1;
    for (int64_t i = 0; i < n; i++) {
        finite &= isfinite(a[i]) != 0;
        diff = fmax(diff, fabs((double)a[i] - (double)b[i]));
        big = fmax(big, fabs((double)b[i]));
    }
    *ref_max = big;
    if (!finite) return INFINITY;
    return big > 0 ? diff / big : diff;
}

static void check_model(const char *model) {
    char dir[1024], path[2048];
    CHECK_OK(join(dir, sizeof dir, OT_SOURCE_DIR "/tests/reference", model));
    CHECK_OK(join(path, sizeof path, dir, "manifest.json"));
    char *text = read_text(path);
    CHECK(text != NULL);
    if (!text) {
        fprintf(stderr, "  cannot read %s (run tests/reference/make_reference.py)\n", path);
        return;
    }
    cJSON *man = cJSON_Parse(text);
    free(text);
    CHECK(man != NULL);
    if (!man) return;
    const cJSON *grads = cJSON_GetObjectItemCaseSensitive(man, "grads");
    const char *loss_kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(man, "loss_kind"));
    double ref_loss = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(man, "loss"));
    CHECK(cJSON_IsArray(grads) && cJSON_GetArraySize(grads) > 0 && loss_kind && isfinite(ref_loss));

    ot_train_config cfg;
    ot_config_defaults(&cfg);
    int used;
    const char *model_file = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(man, "model"));
    CHECK_OK(join(path, sizeof path, OT_SOURCE_DIR, model_file));
    CHECK_OK(ot_config_set(&cfg, "model", path, &used));
    CHECK_OK(ot_config_set(&cfg, "full", "true", &used));
    CHECK_OK(ot_config_set(&cfg, "precision", "fp32", &used)); /* the PyTorch reference is fp32 */
    CHECK_OK(ot_config_set(&cfg, "loss", loss_kind ? loss_kind : "causal-lm", &used));

    ot_batch batch;
    ot_session s;
    memset(&s, 0, sizeof s);
    ot_status st = load_batch(dir, cJSON_GetObjectItemCaseSensitive(man, "inputs"), &batch);
    CHECK_OK(st);
    if (st == OT_OK) {
        st = ot_session_build(&s, &cfg, &batch);
        CHECK_OK(st);
    }
    double loss = NAN;
    if (st == OT_OK) {
        st = ot_session_step(&s, &batch, 0, &loss);
        CHECK_OK(st);
    }
    if (st == OT_OK) {
        double lerr = fabs(loss - ref_loss) / fabs(ref_loss);
        fprintf(stderr, "  %s loss %.9g, torch %.9g, rel %.2e\n", model, loss, ref_loss, lerr);
        CHECK(isfinite(loss) && lerr < REL_TOL);
        const cJSON *g;
        cJSON_ArrayForEach(g, grads) {
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(g, "name"));
            const char *file = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(g, "file"));
            int idx = -1;
            for (int i = 0; name && i < s.n_params; i++)
                if (!strcmp(s.params[i].name, name)) idx = i;
            if (idx < 0) {
                fprintf(stderr, "  %s: '%s' is not a trainable parameter of the session\n", model, name);
                CHECK(idx >= 0);
                continue;
            }
            ot_tensor *ref = NULL;
            CHECK_OK(join(path, sizeof path, dir, file));
            CHECK_OK(ot_npy_read(path, &ref));
            if (!ref) continue;
            CHECK(ref->dtype == OT_F32 && ot_tensor_numel(ref) == s.params[idx].numel);
            if (ref->dtype == OT_F32 && ot_tensor_numel(ref) == s.params[idx].numel) {
                double big = 0;
                double err = rel_error(ot_session_grad(&s, idx), ref->data, s.params[idx].numel, &big);
                fprintf(stderr, "  %s d loss / d %s: rel %.2e (max|ref| %.3g)\n", model, name, err, big);
                CHECK(big > 0); /* a zero reference would make the comparison vacuous */
                CHECK(err < REL_TOL);
            }
            ot_tensor_free(ref);
        }
    }
    if (s.g) ot_session_free(&s);
    ot_batch_free(&batch);
    ot_config_free(&cfg);
    cJSON_Delete(man);
}

static void test_gpt2(void) { check_model("gpt2_tiny"); }
static void test_llama(void) { check_model("llama_tiny"); }
static void test_bert(void) { check_model("bert_tiny"); }
static void test_mlp(void) { check_model("mlp_gemm"); }

int main(void) {
    OT_RUN(test_gpt2);
    OT_RUN(test_llama);
    OT_RUN(test_bert);
    OT_RUN(test_mlp);
    return OT_TEST_EXIT();
}
