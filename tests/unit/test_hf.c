/* test_hf.c — the Hugging Face importer (importer/hf_*.c) on its failure paths and its
 * contract with LoRA: config.json errors name the field (an unknown model_type names itself
 * and the supported ones); weight files missing, adding or mis-shaping tensors fail with one
 * message listing every such name; sharded checkpoints load, and a missing shard is named;
 * ot_find_linears sees every projection of the three architectures under its HF module
 * path with the layout of the stored weight. Logits against transformers are checked by
 * tests/parity/test_hf_models.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "importer/hf_internal.h"
#include "onnxtune/importer.h"
#include "onnxtune/safetensors.h"
#include "ot_test.h"
#include "trainer/lora.h"

#define HF OT_SOURCE_DIR "/tests/models/hf/"

static char tmp[512];

static int parse(const char *json, ot_hf_config *c) {
    return ot_hf_config_parse(json, strlen(json), "cfg.json", c);
}

static int has(const char *needle) {
    int ok = strstr(ot_last_error(), needle) != NULL;
    if (!ok) fprintf(stderr, "  message lacks \"%s\": %s\n", needle, ot_last_error());
    return ok;
}

static void test_config_errors(void) {
    ot_hf_config c;
    CHECK(parse("{\"vocab_size\": 3}", &c) == OT_E_INVALID && has("model_type") && has("gpt2, llama, bert"));
    CHECK(parse("{\"model_type\": \"mistral\"}", &c) == OT_E_UNSUPPORTED && has("\"mistral\"") &&
          has("gpt2, llama, bert"));
    CHECK(parse("{\"model_type\": 7}", &c) == OT_E_INVALID && has("model_type"));
    CHECK(parse("not json", &c) == OT_E_FORMAT && has("cfg.json"));
    CHECK(parse("{\"model_type\": \"llama\", \"vocab_size\": 10, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
                "\"intermediate_size\": 8}",
                &c) == OT_E_INVALID &&
          has("\"hidden_size\""));
    CHECK(parse("{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 8.5, \"num_hidden_layers\": 1, "
                "\"num_attention_heads\": 2, \"intermediate_size\": 8}",
                &c) == OT_E_INVALID &&
          has("hidden_size") && has("integer"));
    const char *llama = "{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 16, \"num_hidden_layers\": 1, "
                        "\"num_attention_heads\": 4, \"intermediate_size\": 8, %s}";
    char buf[1024];
    snprintf(buf, sizeof buf, llama, "\"num_key_value_heads\": 3");
    CHECK(parse(buf, &c) == OT_E_INVALID && has("num_key_value_heads 3"));
    snprintf(buf, sizeof buf, llama, "\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2}");
    CHECK(parse(buf, &c) == OT_E_UNSUPPORTED && has("dynamic"));
    snprintf(buf, sizeof buf, llama, "\"hidden_act\": \"mish\"");
    CHECK(parse(buf, &c) == OT_E_UNSUPPORTED && has("mish") && has("hidden_act"));
    snprintf(buf, sizeof buf, llama, "\"tie_word_embeddings\": 1");
    CHECK(parse(buf, &c) == OT_E_INVALID && has("tie_word_embeddings"));
    CHECK(parse("{\"model_type\": \"bert\", \"architectures\": [\"BertForMaskedLM\"], \"vocab_size\": 10, "
                "\"hidden_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"intermediate_size\": 8}",
                &c) == OT_E_UNSUPPORTED &&
          has("BertForMaskedLM"));
    CHECK(parse("{\"model_type\": \"gpt2\", \"vocab_size\": 10, \"n_embd\": 16, \"n_layer\": 1, \"n_head\": 3, "
                "\"n_positions\": 8}",
                &c) == OT_E_INVALID &&
          has("divisible"));
}

static void test_config_values(void) {
    ot_hf_config c;
    CHECK_OK(ot_hf_config_read(HF "llama_tied/config.json", &c));
    CHECK(c.arch == OT_HF_LLAMA && c.heads == 4 && c.kv_heads == 1 && c.tie == 1 && c.rope_factor == 2.0 &&
          c.rope_theta == 10000.0 && c.act == OT_HF_ACT_SILU && c.eps == 1e-6);
    CHECK_OK(ot_hf_config_read(HF "llama/config.json", &c));
    CHECK(c.kv_heads == 2 && c.tie == 0 && c.rope_factor == 1.0 && c.rope_theta == 50000.0);
    CHECK_OK(ot_hf_config_read(HF "gpt2/config.json", &c));
    CHECK(c.arch == OT_HF_GPT2 && c.act == OT_HF_ACT_GELU_TANH && c.tie == 1 && c.inter == 4 * c.hidden);
    CHECK_OK(ot_hf_config_read(HF "bert/config.json", &c));
    CHECK(c.arch == OT_HF_BERT && c.seq_cls && c.num_labels == 3 && c.act == OT_HF_ACT_GELU_ERF && c.eps == 1e-12);
}

static void copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    char buf[65536];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    if (in) fclose(in);
    if (out) fclose(out);
}

/* tmp/<sub>/ with the fixture's config.json and its tensors, minus `drop`, plus an extra
 * tensor `add` (when not NULL), with `reshape` given shape [1, numel] — split over `shards`
 * files with an index when shards > 1. */
static void make_variant(const char *fixture, const char *sub, const char *drop, const char *add, const char *reshape,
                         int shards) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/%s", tmp, sub);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, HF "%s/config.json", fixture);
    char dst[1200];
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    copy_file(path, dst);
    snprintf(path, sizeof path, HF "%s/model.safetensors", fixture);
    ot_safetensors *st = NULL;
    CHECK_OK(ot_safetensors_open(path, &st));
    if (!st) return;
    int n = ot_safetensors_count(st);
    ot_named_tensor *list = calloc((size_t)n + 1, sizeof *list);
    ot_tensor *shaped = calloc((size_t)n + 1, sizeof *shaped);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *name = ot_safetensors_name(st, i);
        if (drop && strcmp(name, drop) == 0) continue;
        list[k].name = name;
        list[k].t = ot_safetensors_tensor(st, i);
        if (reshape && strcmp(name, reshape) == 0) {
            shaped[i] = *list[k].t;
            shaped[i].ndim = 2;
            shaped[i].dims[0] = 1;
            shaped[i].dims[1] = ot_tensor_numel(list[k].t);
            list[k].t = &shaped[i];
        }
        k++;
    }
    if (add) {
        list[k].name = add;
        list[k].t = ot_safetensors_tensor(st, 0);
        k++;
    }
    if (shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        CHECK_OK(ot_safetensors_write(path, list, k, NULL, 0));
    } else {
        /* tensors i with i % shards == s go to shard s */
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        FILE *f = fopen(path, "w");
        fprintf(f, "{\"metadata\": {}, \"weight_map\": {");
        for (int i = 0; i < k; i++)
            fprintf(f, "%s\"%s\": \"model-%05d-of-%05d.safetensors\"", i ? ", " : "", list[i].name, i % shards + 1,
                    shards);
        fprintf(f, "}}\n");
        fclose(f);
        ot_named_tensor *part = calloc((size_t)k + 1, sizeof *part);
        for (int s = 0; s < shards; s++) {
            int m = 0;
            for (int i = s; i < k; i += shards) part[m++] = list[i];
            snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s + 1, shards);
            CHECK_OK(ot_safetensors_write(path, part, m, NULL, 0));
        }
        free(part);
    }
    free(list);
    free(shaped);
    ot_safetensors_close(st);
}

static ot_status load_sub(const char *sub, ot_graph **g) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", tmp, sub);
    return ot_hf_load(dir, g);
}

static void test_weight_errors(void) {
    ot_graph *g = NULL;
    make_variant("llama", "bad", "model.layers.1.mlp.up_proj.weight", "model.layers.9.mystery.weight",
                 "model.layers.0.self_attn.k_proj.weight", 1);
    CHECK(load_sub("bad", &g) == OT_E_SHAPE && g == NULL);
    CHECK(has("model.layers.1.mlp.up_proj.weight (missing, expected [96, 48])"));
    CHECK(has("model.layers.0.self_attn.k_proj.weight (expected [24, 48], got [1, 1152])"));
    CHECK(has("1 extra: model.layers.9.mystery.weight"));
    CHECK(has("2 missing or mis-shaped"));
    CHECK(has("llama"));
    /* the untied model without lm_head: the head is missing, not silently tied */
    make_variant("llama", "nohead", "lm_head.weight", NULL, NULL, 1);
    CHECK(load_sub("nohead", &g) == OT_E_SHAPE && has("lm_head.weight (missing"));
    /* no weights at all */
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/empty", tmp);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    copy_file(HF "gpt2/config.json", path);
    CHECK(ot_hf_load(dir, &g) == OT_E_IO && has("model.safetensors.index.json"));
    CHECK(ot_hf_load(HF "no-such-model", &g) == OT_E_IO && has("no-such-model"));
}

static void test_sharded(void) {
    ot_graph *whole = NULL, *g = NULL;
    make_variant("gpt2", "sharded", NULL, NULL, NULL, 3);
    CHECK_OK(load_sub("sharded", &g));
    CHECK_OK(ot_hf_load(HF "gpt2", &whole));
    if (g && whole) {
        CHECK(g->n_nodes == whole->n_nodes && g->n_keep == 3);
        const char *name = "transformer.h.1.mlp.c_fc.weight";
        int a = ot_graph_find(g, name), b = ot_graph_find(whole, name);
        CHECK(a >= 0 && b >= 0 && g->values[a].init && whole->values[b].init &&
              memcmp(g->values[a].init->data, whole->values[b].init->data, ot_tensor_nbytes(whole->values[b].init)) == 0);
    }
    ot_graph_free(g);
    ot_graph_free(whole);
    char path[1200];
    snprintf(path, sizeof path, "%s/sharded/model-00002-of-00003.safetensors", tmp);
    remove(path);
    g = NULL;
    CHECK(load_sub("sharded", &g) == OT_E_IO && g == NULL && has("model-00002-of-00003.safetensors") &&
          has("does not exist"));
}

/* Every projection is a linear under its HF module path, with the stored layout. */
static void test_linears(void) {
    static const struct {
        const char *model, *module;
        int64_t in, out;
        int transposed, is_head;
    } want[] = {
        {"gpt2", "transformer.h.0.attn.c_attn", 32, 96, 0, 0},
        {"gpt2", "transformer.h.1.mlp.c_proj", 128, 32, 0, 0},
        {"llama", "model.layers.0.self_attn.k_proj", 48, 24, 1, 0},
        {"llama", "model.layers.1.mlp.down_proj", 96, 48, 1, 0},
        {"llama", "lm_head", 48, 160, 1, 1},
        {"gpt2", "transformer.wte", 32, 128, 1, 1}, /* the tied head */
        {"bert", "bert.encoder.layer.1.attention.self.query", 48, 48, 1, 0},
        {"bert", "bert.encoder.layer.0.intermediate.dense", 48, 96, 1, 0},
        {"bert", "classifier", 48, 3, 1, 1},
    };
    static const struct {
        const char *model;
        int n;
    } counts[] = {{"gpt2", 2 * 4 + 1}, {"llama", 2 * 7 + 1}, {"llama_tied", 2 * 7 + 1}, {"bert", 2 * 6 + 2}};
    for (size_t m = 0; m < sizeof counts / sizeof counts[0]; m++) {
        char dir[512];
        snprintf(dir, sizeof dir, HF "%s", counts[m].model);
        ot_graph *g = NULL;
        CHECK_OK(ot_model_load(dir, &g));
        if (!g) continue;
        ot_linear *l = NULL;
        int n = 0;
        CHECK_OK(ot_find_linears(g, &l, &n));
        CHECK(n == counts[m].n);
        for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
            if (strcmp(want[w].model, counts[m].model) != 0) continue;
            int found = 0;
            for (int i = 0; i < n; i++) {
                if (strcmp(l[i].module, want[w].module) != 0) continue;
                found = 1;
                CHECK(l[i].in == want[w].in && l[i].out == want[w].out && l[i].w_transposed == want[w].transposed);
                if (want[w].is_head >= 0) CHECK(l[i].is_head == want[w].is_head);
            }
            if (!found) fprintf(stderr, "  no linear '%s' in %s\n", want[w].module, counts[m].model);
            CHECK(found);
        }
        ot_linears_free(l, n);
        ot_graph_free(g);
    }
}

static void test_model_load_dispatch(void) {
    ot_graph *g = NULL;
    CHECK_OK(ot_model_load(HF "bert/config.json", &g));
    CHECK(g && g->n_inputs == 3 && g->n_outputs == 1);
    ot_graph_free(g);
    g = NULL;
    CHECK_OK(ot_model_load(OT_SOURCE_DIR "/tests/models/gpt2_tiny.onnx", &g));
    ot_graph_free(g);
    g = NULL;
    CHECK(ot_model_load(HF "gpt2/input_ids.npy", &g) == OT_E_INVALID && has("input_ids.npy") && has(".onnx"));
    CHECK(ot_model_load(OT_SOURCE_DIR "/nope.onnx", &g) == OT_E_IO && has("nope.onnx"));
}

int main(void) {
    ot_test_mkdtemp(tmp, sizeof tmp, "ot_test_hf_");
    OT_RUN(test_config_errors);
    OT_RUN(test_config_values);
    OT_RUN(test_weight_errors);
    OT_RUN(test_sharded);
    OT_RUN(test_linears);
    OT_RUN(test_model_load_dispatch);
    ot_test_rmtree(tmp);
    return OT_TEST_EXIT();
}
