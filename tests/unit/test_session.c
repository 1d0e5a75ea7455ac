/* test_session.c — the training session end to end on the committed GPT-2-style model:
 * every LoRA parameter gets a gradient that agrees with a central finite difference of the
 * loss along the gradient's direction (1e-2 relative; the forward is f32), and the rewrite
 * adapts every linear layer but the head. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ot_test.h"
#include "trainer/session.h"


static ot_batch make_batch(int64_t b, int64_t s, int64_t vocab) {
    ot_batch bt = {0};
    bt.n = 2;
    bt.names = calloc(2, sizeof(char *));
    bt.tensors = calloc(2, sizeof(ot_tensor *));
    bt.names[0] = strdup("input_ids");
    bt.names[1] = strdup("labels");
    int64_t dims[2] = {b, s};
    ot_tensor_new(&bt.tensors[0], OT_I64, 2, dims);
    ot_tensor_new(&bt.tensors[1], OT_I64, 2, dims);
    for (int64_t i = 0; i < b * s; i++) {
        int64_t id = (i * 37 + 11) % vocab;
        ((int64_t *)bt.tensors[0]->data)[i] = id;
        ((int64_t *)bt.tensors[1]->data)[i] = (i % s == s - 1 && i / s == 1) ? -100 : id;
    }
    return bt;
}

static void test_lora_gradients(void) {
    ot_train_config cfg;
    ot_config_defaults(&cfg);
    cfg.model = strdup(OT_SOURCE_DIR "/tests/models/gpt2_tiny.onnx");
    free(cfg.precision);
    cfg.precision = strdup("fp32"); /* finite differences need f32 */
    cfg.lora_r = 4;
    ot_session s;
    ot_batch b = make_batch(2, 8, 256);
    CHECK_OK(ot_session_build(&s, &cfg, &b));
    if (!s.plan) return;
    CHECK(s.n_adapters == 8); /* 2 blocks x (c_attn, c_proj, c_fc, mlp c_proj); the head is excluded */
    /* Make B non-zero so A gets a gradient too. */
    for (int i = 0; i < s.n_params; i++)
        if (strstr(s.params[i].name, "lora_B"))
            for (int64_t k = 0; k < s.params[i].numel; k++) s.params[i].data[k] = 0.05f * (float)sin((double)k + i);
    double loss;
    CHECK_OK(ot_session_step(&s, &b, 1, &loss));
    CHECK(isfinite(loss) && loss > 0);
    /* Per parameter tensor, the directional derivative along u = g/|g| must equal |g|:
     * (L(θ + εu) − L(θ − εu)) / 2ε. Summing over the whole tensor keeps the signal far
     * above the f32 rounding of the loss, which element-wise differences are not. */
    int checked = 0, bad = 0;
    for (int i = 0; i < s.n_params; i++) {
        int64_t n = s.params[i].numel;
        float *g = malloc((size_t)n * sizeof(float)), *x0 = malloc((size_t)n * sizeof(float));
        CHECK_OK(ot_session_step(&s, &b, 1, &loss)); /* gradients at the unperturbed point */
        memcpy(g, ot_session_grad(&s, i), (size_t)n * sizeof(float));
        memcpy(x0, s.params[i].data, (size_t)n * sizeof(float));
        double norm = 0;
        for (int64_t k = 0; k < n; k++) norm += (double)g[k] * g[k];
        norm = sqrt(norm);
        if (norm < 1e-4) {
            free(g), free(x0);
            continue;
        }
        const double eps = 3e-3;
        double lp, lm;
        for (int64_t k = 0; k < n; k++) s.params[i].data[k] = (float)(x0[k] + eps * g[k] / norm);
        ot_session_step(&s, &b, 1, &lp);
        for (int64_t k = 0; k < n; k++) s.params[i].data[k] = (float)(x0[k] - eps * g[k] / norm);
        ot_session_step(&s, &b, 1, &lm);
        memcpy(s.params[i].data, x0, (size_t)n * sizeof(float));
        double num = (lp - lm) / (2 * eps);
        checked++;
        if (fabs(num - norm) > 1e-2 * norm) {
            fprintf(stderr, "%s: |g| %g, directional difference %g\n", s.params[i].name, norm, num);
            bad++;
        }
        free(g), free(x0);
    }
    CHECK(checked == s.n_params); /* every LoRA factor gets a gradient once B != 0 */
    CHECK(bad == 0);
    ot_batch_free(&b);
    ot_session_free(&s);
    ot_config_free(&cfg);
}

int main(void) {
    OT_RUN(test_lora_gradients);
    return OT_TEST_EXIT();
}
