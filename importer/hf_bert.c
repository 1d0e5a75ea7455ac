/* hf_bert.c — the BERT graph (BertForSequenceClassification) from its Hugging Face weights.
 *
 *   h = LN(word[input_ids] + position[positions] + token_type[token_type_ids])
 *   per layer: h = LN(h + attention.output.dense(attn(h, mask)))
 *              h = LN(h + output.dense(act(intermediate.dense(h))))
 *   logits = classifier(tanh(pooler.dense(h[:, 0])))          [batch, num_labels]
 *
 * Inputs: input_ids, attention_mask (1 = token, 0 = padding; becomes the additive mask
 * (1 - m)·finfo(float).min over keys, as transformers does) and token_type_ids (all zeros
 * is what transformers assumes when they are not given). */
#include <math.h>
#include <stdio.h>

#include "importer/hf_internal.h"

void ot_hf_build_bert(ot_hf_builder *b) {
    const ot_hf_config *c = b->cfg;
    const int64_t d = c->hidden, hd = d / c->heads;
    char p[256];
    int am = ot_hf_input_ids(b, "attention_mask");
    int tt = ot_hf_input_ids(b, "token_type_ids");
    int word = ot_hf_weight(b, "bert.embeddings.word_embeddings.weight", 2, c->vocab, d);
    int posw = ot_hf_weight(b, "bert.embeddings.position_embeddings.weight", 2, c->max_pos, d);
    int typw = ot_hf_weight(b, "bert.embeddings.token_type_embeddings.weight", 2, c->type_vocab, d);
    int e = ot_hf_op2(b, "Add", ot_hf_op2(b, "Gather", word, b->ids), ot_hf_op2(b, "Gather", posw, ot_hf_positions(b)));
    e = ot_hf_op2(b, "Add", e, ot_hf_op2(b, "Gather", typw, tt));
    const int64_t flat[2] = {-1, d};
    int h = ot_hf_op2(b, "Reshape", e, ot_hf_const_i64(b, 2, flat));
    h = ot_hf_layernorm(b, h, "bert.embeddings.LayerNorm", d, c->eps);

    /* [B, S] int64 -> [B, 1, 1, S] additive float mask */
    int mf = ot_hf_op1(b, "Cast", am);
    ot_hf_attr_int(b, mf, "to", OT_F32);
    int neg = ot_hf_op2(b, "Mul", ot_hf_op2(b, "Sub", ot_hf_scalar(b, 1.0f), mf), ot_hf_scalar(b, -3.4028234663852886e38f));
    const int64_t axes[2] = {1, 2};
    int mask = ot_hf_op2(b, "Unsqueeze", neg, ot_hf_const_i64(b, 2, axes));

    for (int64_t l = 0; l < c->layers; l++) {
#define P(fmt) (snprintf(p, sizeof p, "bert.encoder.layer.%lld." fmt, (long long)l), p)
        int q = ot_hf_split_heads(b, ot_hf_linear(b, h, P("attention.self.query"), d, d, 1, 1), c->heads, hd);
        int k = ot_hf_split_heads(b, ot_hf_linear(b, h, P("attention.self.key"), d, d, 1, 1), c->heads, hd);
        int v = ot_hf_split_heads(b, ot_hf_linear(b, h, P("attention.self.value"), d, d, 1, 1), c->heads, hd);
        int a = ot_hf_merge_heads(b, ot_hf_attention(b, q, k, v, mask, (float)(1.0 / sqrt((double)hd))), d);
        a = ot_hf_linear(b, a, P("attention.output.dense"), d, d, 1, 1);
        h = ot_hf_layernorm(b, ot_hf_op2(b, "Add", a, h), P("attention.output.LayerNorm"), d, c->eps);
        int m = ot_hf_act_apply(b, ot_hf_linear(b, h, P("intermediate.dense"), d, c->inter, 1, 1), c->act);
        m = ot_hf_linear(b, m, P("output.dense"), c->inter, d, 1, 1);
        h = ot_hf_layernorm(b, ot_hf_op2(b, "Add", m, h), P("output.LayerNorm"), d, c->eps);
#undef P
    }
    /* the pooler reads the first token: [N, d] -> [B, S, d] -> [B, d] */
    const int64_t zero = 0;
    int first = ot_hf_op2(b, "Gather", ot_hf_op2(b, "Reshape", h, b->bsd), ot_hf_const_i64(b, 1, &zero));
    ot_hf_attr_int(b, first, "axis", 1);
    const int64_t sq = 1;
    first = ot_hf_op2(b, "Squeeze", first, ot_hf_const_i64(b, 1, &sq));
    int pooled = ot_hf_op1(b, "Tanh", ot_hf_linear(b, first, "bert.pooler.dense", d, d, 1, 1));
    int in[3] = {pooled, ot_hf_weight(b, "classifier.weight", 2, c->num_labels, d),
                 ot_hf_weight(b, "classifier.bias", 1, c->num_labels, 0)};
    int logits = ot_hf_op_named(b, "Gemm", in, 3, "logits");
    ot_hf_attr_int(b, logits, "transB", 1);
    ot_hf_output(b, logits, "logits", 0, c->num_labels);
}
