/* test_lora.c — the LoRA rewrite: module paths read from the exported GPT-2-style model,
 * PEFT's suffix matching, scales (alpha/r and rsLoRA's alpha/√r), initialisations, the
 * no-match error listing the known modules, and TrainingDropout (mask statistics,
 * determinism per seed, and its gradient by central differences in f64). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "onnxtune/importer.h"
#include "runtime/op.h"
#include "ot_test.h"
#include "trainer/lora.h"

#define GPT2 OT_SOURCE_DIR "/tests/models/gpt2_tiny.onnx"

static void test_module_matching(void) {
    CHECK(ot_module_matches("transformer.h.0.attn.c_attn", "c_attn"));
    CHECK(ot_module_matches("transformer.h.0.attn.c_attn", "attn.c_attn"));
    CHECK(ot_module_matches("transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_attn"));
    CHECK(!ot_module_matches("transformer.h.0.attn.c_attn", "attn")); /* a suffix, not a prefix */
    CHECK(!ot_module_matches("transformer.h.0.attn.c_attn", "_attn")); /* component boundary */
    CHECK(!ot_module_matches("c_attn", "h.0.attn.c_attn"));
}

static void test_linears(void) {
    ot_graph *g;
    CHECK_OK(ot_onnx_load(GPT2, &g));
    ot_linear *l;
    int n;
    CHECK_OK(ot_find_linears(g, &l, &n));
    int heads = 0, found_c_attn = 0;
    for (int i = 0; i < n; i++) {
        heads += l[i].is_head;
        if (!strcmp(l[i].module, "transformer.h.0.attn.c_attn")) {
            found_c_attn = 1;
            CHECK(l[i].in == 64 && l[i].out == 192 && !l[i].w_transposed); /* exported as MatMul on Wᵀ [in, out] */
        }
    }
    CHECK(n == 9 && heads == 1 && found_c_attn);
    ot_linears_free(l, n);
    ot_graph_free(g);
}

static ot_graph *adapted(float alpha, int r, int rslora, ot_lora_init init, const char *target, ot_lora_adapter **ad,
                         int *n, ot_status *st) {
    ot_graph *g;
    if (ot_onnx_load(GPT2, &g) != OT_OK) abort();
    const char *targets[1] = {target};
    ot_lora_config cfg = {r, alpha, 0, rslora, init, targets, 1, 7};
    *st = ot_lora_apply(g, &cfg, ad, n);
    return g;
}

static void test_rewrite(void) {
    ot_lora_adapter *ad;
    int n;
    ot_status st;
    ot_graph *g = adapted(16, 4, 0, OT_LORA_INIT_KAIMING, "c_fc", &ad, &n, &st);
    CHECK_OK(st);
    CHECK(n == 2 && fabsf(ad[0].scale - 4.0f) < 1e-6f);
    const ot_tensor *a = g->values[ad[0].a].init, *b = g->values[ad[0].b].init;
    CHECK(a->dims[0] == 4 && a->dims[1] == 64 && b->dims[0] == 256 && b->dims[1] == 4);
    CHECK(ot_graph_find(g, "transformer.h.0.mlp.c_fc.lora_A.weight") == ad[0].a);
    double bound = 1 / sqrt(64.0), maxabs = 0, sumb = 0;
    for (int64_t i = 0; i < ot_tensor_numel(a); i++) maxabs = fmax(maxabs, fabs(((float *)a->data)[i]));
    for (int64_t i = 0; i < ot_tensor_numel(b); i++) sumb += fabs(((float *)b->data)[i]);
    CHECK(maxabs <= bound && maxabs > 0.8 * bound); /* kaiming-uniform: U(-1/√in, 1/√in) */
    CHECK(sumb == 0);                                 /* B starts at zero */
    CHECK(g->values[ad[0].a].is_param && g->values[ad[0].b].is_param);
    ot_lora_adapters_free(ad, n);
    ot_graph_free(g);

    g = adapted(16, 4, 1, OT_LORA_INIT_GAUSSIAN, "all-linear", &ad, &n, &st);
    CHECK_OK(st);
    CHECK(n == 8 && fabsf(ad[0].scale - 8.0f) < 1e-6f); /* rsLoRA: 16 / √4; the head is not adapted */
    a = g->values[ad[0].a].init;
    double s2 = 0;
    for (int64_t i = 0; i < ot_tensor_numel(a); i++) s2 += (double)((float *)a->data)[i] * ((float *)a->data)[i];
    double sd = sqrt(s2 / (double)ot_tensor_numel(a));
    CHECK(fabs(sd - 0.25) < 0.03); /* gaussian: std 1/r */
    ot_lora_adapters_free(ad, n);
    ot_graph_free(g);

    g = adapted(16, 4, 0, OT_LORA_INIT_KAIMING, "q_proj", &ad, &n, &st);
    CHECK(st == OT_E_INVALID && strstr(ot_last_error(), "q_proj") && strstr(ot_last_error(), "transformer.h.1.mlp.c_proj"));
    ot_graph_free(g);
}

static ot_tensor *scalar_i64(int64_t v) {
    ot_tensor *t;
    if (ot_tensor_new(&t, OT_I64, 0, NULL) != OT_OK) abort();
    *(int64_t *)t->data = v;
    return t;
}

static void dropout_attrs(ot_graph *g, int node) {
    gc_attr_float(g, node, "ratio", 0.25f);
    gc_attr_int(g, node, "stream", 3);
}

static void test_training_dropout(void) {
    int64_t dims[2] = {5, 7};
    ot_tensor *x = gc_random(2, dims, 1.0), *seed = scalar_i64(12345);
    gc_input in[2] = {{"x", x, 1}, {"seed", seed, 0}};
    CHECK(gc_check("TrainingDropout", "ai.onnxtune", 17, in, 2, 1, dropout_attrs, 1e-6) == 0);
    ot_tensor_free(x);
    ot_tensor_free(seed);

    /* Forward: about `ratio` of the elements drop, the rest scale by 1/(1-ratio); the same
     * seed gives the same mask, another seed another one. */
    const ot_op_def *def = ot_op_find("ai.onnxtune", "TrainingDropout", 1, NULL);
    CHECK(def != NULL);
    if (!def) return;
    int64_t n = 100000, d1[1] = {n};
    ot_tensor *ones, *y1, *y2, *y3;
    ot_tensor_new(&ones, OT_F32, 1, d1);
    for (int64_t i = 0; i < n; i++) ((float *)ones->data)[i] = 1.0f;
    ot_tensor_new(&y1, OT_F32, 1, d1), ot_tensor_new(&y2, OT_F32, 1, d1), ot_tensor_new(&y3, OT_F32, 1, d1);
    ot_node node = {0};
    node.name = "drop", node.op_type = "TrainingDropout", node.domain = "ai.onnxtune";
    ot_attr attrs[2] = {{0}, {0}};
    attrs[0].name = "ratio", attrs[0].type = OT_ATTR_FLOAT, attrs[0].f = 0.25f;
    attrs[1].name = "stream", attrs[1].type = OT_ATTR_INT, attrs[1].i = 0;
    node.attrs = attrs, node.n_attrs = 2;
    char attr[64];
    CHECK_OK(def->parse(&node, 1, attr));
    ot_tensor *s1 = scalar_i64(1), *s2 = scalar_i64(2);
    const ot_tensor *in1[2] = {ones, s1}, *in2[2] = {ones, s2};
    ot_tensor *o1[1] = {y1}, *o2[1] = {y2}, *o3[1] = {y3};
    ot_op_ctx c1 = {NULL, &node, attr, 1, 2, 1, in1, o1}, c2 = {NULL, &node, attr, 1, 2, 1, in1, o2},
              c3 = {NULL, &node, attr, 1, 2, 1, in2, o3};
    CHECK_OK(def->cpu(&c1));
    CHECK_OK(def->cpu(&c2));
    CHECK_OK(def->cpu(&c3));
    int64_t dropped = 0, same = 0, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = ((float *)y1->data)[i];
        dropped += v == 0;
        bad += v != 0 && fabsf(v - 1.0f / 0.75f) > 1e-6f;
        same += ((float *)y1->data)[i] == ((float *)y3->data)[i];
    }
    CHECK(!bad && fabs((double)dropped / (double)n - 0.25) < 0.01);
    CHECK(memcmp(y1->data, y2->data, (size_t)n * 4) == 0);
    CHECK(same < n); /* another seed, another mask */
    ot_tensor_free(ones), ot_tensor_free(y1), ot_tensor_free(y2), ot_tensor_free(y3), ot_tensor_free(s1), ot_tensor_free(s2);
}

int main(void) {
    OT_RUN(test_module_matching);
    OT_RUN(test_linears);
    OT_RUN(test_rewrite);
    OT_RUN(test_training_dropout);
    return OT_TEST_EXIT();
}
