/* test_estimate.c — the memory estimator (trainer/estimate.h).
 *
 * Arithmetic, exactly (integers, no tolerance): DESIGN.md's 16 B per trainable parameter in
 * mixed precision and fp32, the 7B / 8-rank numbers of issue 4 (112 GB unsharded, 38.5 /
 * 26.25 / 14 GB per rank for ZeRO-1/2/3), LoRA's frozen base at 2 B, uneven shards rounding
 * up, the fp32 accumulator only with more than one micro-batch per step, and errors naming
 * a bad stage, rank count or precision.
 * On the committed GPT-2-style model: the LoRA trainable count equals the adapters' sizes
 * worked out by hand, the frozen count is the model's own float weights, activations grow
 * with the micro-batch, checkpointing never costs more, and the synthetic micro-batch plans
 * exactly as the first micro-batch of real data of the same shape. */
#include <stdlib.h>
#include <string.h>

#include "onnxtune/importer.h"
#include "ot_test.h"
#include "trainer/estimate.h"

static ot_estimate counts(const char *prec, int full, int64_t trainable, int64_t frozen, int zero, int ranks) {
    ot_estimate e;
    memset(&e, 0, sizeof e);
    snprintf(e.precision, sizeof e.precision, "%s", prec);
    e.full = full;
    e.trainable = trainable;
    e.frozen = frozen;
    e.zero = zero;
    e.ranks = ranks;
    e.grad_accum = 4; /* the f32 accumulator exists */
    e.activations[0] = e.activations[1] = -1;
    return e;
}

static void test_7b_full_bf16(void) {
    const int64_t n = 7000000000;
    for (int z = 0; z <= 3; z++) {
        ot_estimate e = counts("bf16", 1, n, 0, z, 8);
        CHECK_OK(ot_estimate_compute(&e));
        CHECK(e.unsharded.model_states == 112000000000);
        CHECK(e.model_states_by_zero[0] == 112000000000);
        CHECK(e.model_states_by_zero[1] == 38500000000);  /* 4 + 12/8 B */
        CHECK(e.model_states_by_zero[2] == 26250000000);  /* 2 + 14/8 B */
        CHECK(e.model_states_by_zero[3] == 14000000000);  /* 16/8 B */
        CHECK(e.per_rank.model_states == e.model_states_by_zero[z]);
        CHECK(e.per_rank.activations == -1);
        CHECK(e.per_rank.total == e.per_rank.model_states + e.per_rank.grad_accum_buffer);
    }
    ot_estimate e = counts("bf16", 1, n, 0, 2, 8);
    CHECK_OK(ot_estimate_compute(&e));
    CHECK(e.per_rank.weights == 14000000000);
    CHECK(e.per_rank.gradients == 1750000000);
    CHECK(e.per_rank.master == 3500000000);
    CHECK(e.per_rank.optimizer == 7000000000);
    CHECK(e.per_rank.grad_accum_buffer == 3500000000);
    CHECK(e.unsharded.grad_accum_buffer == 28000000000);
    e.grad_accum = 1; /* one micro-batch per step: gradients are read in place */
    CHECK_OK(ot_estimate_compute(&e));
    CHECK(e.per_rank.grad_accum_buffer == 0 && e.unsharded.grad_accum_buffer == 0);
    CHECK(e.per_rank.total == 26250000000);
}

static void test_fp32_and_lora(void) {
    /* fp32: the weight is its own master; still 16 B per trainable parameter */
    ot_estimate e = counts("fp32", 1, 1000, 0, 0, 1);
    CHECK_OK(ot_estimate_compute(&e));
    CHECK(e.unsharded.weights == 4000 && e.unsharded.gradients == 4000 && e.unsharded.master == 0);
    CHECK(e.unsharded.optimizer == 8000 && e.unsharded.model_states == 16000);
    /* LoRA in fp16: 1e9 frozen at 2 B, 1e6 adapters at 16 B */
    e = counts("fp16", 0, 1000000, 1000000000, 0, 1);
    e.activations[0] = 500, e.activations[1] = 100;
    CHECK_OK(ot_estimate_compute(&e));
    CHECK(e.unsharded.weights == 2002000000);
    CHECK(e.unsharded.gradients == 2000000 && e.unsharded.master == 4000000 && e.unsharded.optimizer == 8000000);
    CHECK(e.unsharded.model_states == 2016000000);
    CHECK(e.per_rank.activations == 500 && e.per_rank.total == 2016000000 + 4000000 + 500);
    e.checkpoint = 1;
    CHECK_OK(ot_estimate_compute(&e));
    CHECK(e.per_rank.activations == 100 && e.per_rank.total == 2016000000 + 4000000 + 100);
    /* a shard of 10 over 3 ranks holds ceil(10/3) = 4 */
    e = counts("bf16", 1, 10, 0, 3, 3);
    CHECK_OK(ot_estimate_compute(&e));
    CHECK(e.per_rank.weights == 8 && e.per_rank.gradients == 8);
    CHECK(e.per_rank.master == 16 && e.per_rank.optimizer == 32);
}

static void test_bad_inputs(void) {
    ot_estimate e = counts("bf16", 1, 10, 0, 4, 8);
    CHECK(ot_estimate_compute(&e) == OT_E_INVALID && strstr(ot_last_error(), "--zero"));
    e = counts("bf16", 1, 10, 0, 1, 0);
    CHECK(ot_estimate_compute(&e) == OT_E_INVALID && strstr(ot_last_error(), "--ranks"));
    e = counts("fp8", 1, 10, 0, 1, 1);
    CHECK(ot_estimate_compute(&e) == OT_E_INVALID && strstr(ot_last_error(), "fp8"));
    /* LoRA from a count alone cannot know the adapter size */
    ot_train_config cfg;
    ot_config_defaults(&cfg);
    ot_estimate_opts o = {.params = 1000, .zero = 0, .ranks = 1};
    CHECK(ot_estimate_run(&cfg, &o, 0, &e) == OT_E_INVALID && strstr(ot_last_error(), "--trainable-params"));
    ot_config_free(&cfg);
}

static ot_status config_for(ot_train_config *cfg, int64_t mb) {
    ot_config_defaults(cfg);
    cfg->model = strdup(OT_SOURCE_DIR "/tests/models/gpt2_tiny.onnx");
    cfg->data = strdup(OT_SOURCE_DIR "/tests/reference/gpt2_tiny/train.jsonl");
    cfg->out = strdup("-");
    cfg->lora_r = 4;
    cfg->seq_len = 8;
    cfg->batch_size = mb;
    free(cfg->precision);
    cfg->precision = strdup("bf16");
    return ot_config_finalize(cfg, 1);
}

/* Float initializers of the model file: the weights a LoRA run keeps frozen. */
static int64_t model_float_weights(const char *path) {
    ot_graph *g;
    if (ot_model_load(path, &g) != OT_OK) return -1;
    int64_t n = 0;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].init && ot_dtype_is_float(g->values[v].init->dtype)) n += ot_tensor_numel(g->values[v].init);
    ot_graph_free(g);
    return n;
}

static void test_gpt2_tiny(void) {
    ot_train_config cfg;
    ot_estimate_opts o = {.params = 0, .zero = 0, .ranks = 1};
    ot_estimate e2, e4, ed;
    CHECK_OK(config_for(&cfg, 2));
    CHECK_OK(ot_estimate_run(&cfg, &o, 0, &e2));
    CHECK_OK(ot_estimate_run(&cfg, &o, 1, &ed)); /* the first micro-batch of the data: [2, 8] too */
    ot_config_free(&cfg);
    CHECK_OK(config_for(&cfg, 4));
    CHECK_OK(ot_estimate_run(&cfg, &o, 0, &e4));
    int64_t weights = model_float_weights(cfg.model);
    ot_config_free(&cfg);
    /* r (in + out) per adapter, r = 4, d = 64, per block: c_attn 64->192, attn c_proj 64->64,
     * c_fc 64->256, mlp c_proj 256->64; two blocks; the head is not adapted. */
    CHECK(e2.trainable == 2 * 4 * ((64 + 192) + (64 + 64) + (64 + 256) + (256 + 64)));
    /* the model's weights, plus the scalar constants LoRA (a scale per adapter) and the
     * gradient graph add: 13 elements here; 64 bounds them while catching any real tensor */
    CHECK(weights > 0 && e2.frozen >= weights && e2.frozen <= weights + 64);
    CHECK(e2.micro_batch == 2 && e2.seq_len == 8);
    CHECK(e2.activations[0] > 0 && e2.activations[1] > 0 && e2.activations[1] <= e2.activations[0]);
    CHECK(e4.activations[0] > e2.activations[0]);
    CHECK(ed.activations[0] == e2.activations[0] && ed.activations[1] == e2.activations[1]);
    CHECK(e2.per_rank.activations == e2.activations[0]);
    CHECK(e2.per_rank.total == e2.per_rank.model_states + e2.per_rank.grad_accum_buffer + e2.activations[0]);
    CHECK(e2.per_rank.weights == 2 * (e2.trainable + e2.frozen) + e2.const_bytes);
    CHECK(e2.const_bytes > 0); /* gpt2_tiny's causal mask is a bool initializer */
    CHECK(e2.grad_accum == 1 && e2.per_rank.grad_accum_buffer == 0);
}

int main(void) {
    OT_RUN(test_7b_full_bf16);
    OT_RUN(test_fp32_and_lora);
    OT_RUN(test_bad_inputs);
    OT_RUN(test_gpt2_tiny);
    return OT_TEST_EXIT();
}
