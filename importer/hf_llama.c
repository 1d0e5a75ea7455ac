/* hf_llama.c — the Llama graph (LlamaForCausalLM) from its Hugging Face weights.
 *
 *   h = embed_tokens[input_ids]
 *   per layer: h += o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))), n = rms(h)
 *              h += down_proj(silu(gate_proj(n)) · up_proj(n)),                n = rms(h)
 *   logits = rms(h) · lm_headᵀ (embed_tokens when tie_word_embeddings)
 *
 * RMSNorm is spelled Pow/ReduceMean/Add/Sqrt/Div/Mul; rotary embeddings gather rows of
 * precomputed cos/sin tables [max_position_embeddings, head_dim] by position (computed in
 * float32 the way transformers 4.3x does, so positions far from 0 round alike), and
 * rotate_half is Slice/Neg/Concat. Grouped-query attention repeats each k/v head
 * heads/kv_heads times with Unsqueeze/Expand/Reshape, as repeat_kv does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "importer/hf_internal.h"

/* weight · x / sqrt(mean(x²) + eps) over the last axis of x [N, d]. */
static int rms_norm(ot_hf_builder *b, int x, const char *name, int64_t d, double eps) {
    int w = ot_hf_weight(b, name, 1, d, 0);
    int ms = ot_hf_op1(b, "ReduceMean", ot_hf_op2(b, "Pow", x, ot_hf_scalar(b, 2.0f)));
    const int64_t last[1] = {-1};
    ot_hf_attr_ints(b, ms, "axes", 1, last);
    ot_hf_attr_int(b, ms, "keepdims", 1);
    int r = ot_hf_op1(b, "Sqrt", ot_hf_op2(b, "Add", ms, ot_hf_scalar(b, (float)eps)));
    return ot_hf_op2(b, "Mul", w, ot_hf_op2(b, "Div", x, r));
}

/* cos or sin table [max_pos, hd]: angle(p, i) = (p / factor) · θ^(-2(i mod hd/2)/hd). */
static int rope_table(ot_hf_builder *b, int use_sin) {
    const ot_hf_config *c = b->cfg;
    const int64_t hd = c->hidden / c->heads, half = hd / 2;
    int64_t dims[2] = {c->max_pos, hd};
    float *t = malloc((size_t)(c->max_pos * hd) * sizeof *t);
    if (!t) {
        if (b->st == OT_OK) b->st = ot_errorf(OT_E_NOMEM, "out of memory for the rotary tables");
        return -1;
    }
    for (int64_t p = 0; p < c->max_pos; p++) {
        const float pos = (float)p / (float)c->rope_factor;
        for (int64_t i = 0; i < half; i++) {
            const float inv_freq = 1.0f / powf((float)c->rope_theta, (float)(2 * i) / (float)hd);
            const float a = pos * inv_freq;
            const float v = use_sin ? (float)sin((double)a) : (float)cos((double)a);
            t[p * hd + i] = t[p * hd + half + i] = v;
        }
    }
    int v = ot_hf_const_f32(b, 2, dims, t);
    free(t);
    return v;
}

static int slice_last(ot_hf_builder *b, int x, int64_t from, int64_t to) {
    const int64_t last = -1;
    int in[4] = {x, ot_hf_const_i64(b, 1, &from), ot_hf_const_i64(b, 1, &to), ot_hf_const_i64(b, 1, &last)};
    return ot_hf_op(b, "Slice", in, 4);
}

/* x·cos + rotate_half(x)·sin, x [B, H, S, hd]; cos, sin [S, hd]. */
static int rope(ot_hf_builder *b, int x, int cos_t, int sin_t, int64_t hd) {
    int x1 = slice_last(b, x, 0, hd / 2), x2 = slice_last(b, x, hd / 2, hd);
    int rin[2] = {ot_hf_op1(b, "Neg", x2), x1};
    int rot = ot_hf_op(b, "Concat", rin, 2);
    ot_hf_attr_int(b, rot, "axis", -1);
    return ot_hf_op2(b, "Add", ot_hf_op2(b, "Mul", x, cos_t), ot_hf_op2(b, "Mul", rot, sin_t));
}

/* [B, KV, S, hd] -> [B, KV·rep, S, hd], each head repeated rep times in place. */
static int repeat_kv(ot_hf_builder *b, int x, int64_t kv, int64_t rep, int64_t hd) {
    if (rep == 1) return x;
    const int64_t axis = 2, expand[5] = {1, 1, rep, 1, 1}, shape[4] = {0, kv * rep, -1, hd};
    int u = ot_hf_op2(b, "Unsqueeze", x, ot_hf_const_i64(b, 1, &axis));
    int e = ot_hf_op2(b, "Expand", u, ot_hf_const_i64(b, 5, expand));
    return ot_hf_op2(b, "Reshape", e, ot_hf_const_i64(b, 4, shape));
}

void ot_hf_build_llama(ot_hf_builder *b) {
    const ot_hf_config *c = b->cfg;
    const int64_t d = c->hidden, hd = d / c->heads, kvd = c->kv_heads * hd;
    char p[256];
    int emb = ot_hf_weight(b, "model.embed_tokens.weight", 2, c->vocab, d);
    int h = ot_hf_embed(b, emb, b->ids, d);
    int pos = ot_hf_positions(b);
    int cos_t = ot_hf_op2(b, "Gather", rope_table(b, 0), pos); /* [S, hd] */
    int sin_t = ot_hf_op2(b, "Gather", rope_table(b, 1), pos);
    int mask = ot_hf_causal_mask(b);
    for (int64_t l = 0; l < c->layers; l++) {
        snprintf(p, sizeof p, "model.layers.%lld.input_layernorm.weight", (long long)l);
        int x = rms_norm(b, h, p, d, c->eps);
        snprintf(p, sizeof p, "model.layers.%lld.self_attn.q_proj", (long long)l);
        int q = ot_hf_split_heads(b, ot_hf_linear(b, x, p, d, d, 0, 1), c->heads, hd);
        snprintf(p, sizeof p, "model.layers.%lld.self_attn.k_proj", (long long)l);
        int k = ot_hf_split_heads(b, ot_hf_linear(b, x, p, d, kvd, 0, 1), c->kv_heads, hd);
        snprintf(p, sizeof p, "model.layers.%lld.self_attn.v_proj", (long long)l);
        int v = ot_hf_split_heads(b, ot_hf_linear(b, x, p, d, kvd, 0, 1), c->kv_heads, hd);
        q = rope(b, q, cos_t, sin_t, hd);
        k = repeat_kv(b, rope(b, k, cos_t, sin_t, hd), c->kv_heads, c->heads / c->kv_heads, hd);
        v = repeat_kv(b, v, c->kv_heads, c->heads / c->kv_heads, hd);
        int a = ot_hf_merge_heads(b, ot_hf_attention(b, q, k, v, mask, (float)(1.0 / sqrt((double)hd))), d);
        snprintf(p, sizeof p, "model.layers.%lld.self_attn.o_proj", (long long)l);
        h = ot_hf_op2(b, "Add", h, ot_hf_linear(b, a, p, d, d, 0, 1));
        snprintf(p, sizeof p, "model.layers.%lld.post_attention_layernorm.weight", (long long)l);
        x = rms_norm(b, h, p, d, c->eps);
        snprintf(p, sizeof p, "model.layers.%lld.mlp.gate_proj", (long long)l);
        int gate = ot_hf_act_apply(b, ot_hf_linear(b, x, p, d, c->inter, 0, 1), c->act);
        snprintf(p, sizeof p, "model.layers.%lld.mlp.up_proj", (long long)l);
        int up = ot_hf_linear(b, x, p, d, c->inter, 0, 1);
        snprintf(p, sizeof p, "model.layers.%lld.mlp.down_proj", (long long)l);
        h = ot_hf_op2(b, "Add", h, ot_hf_linear(b, ot_hf_op2(b, "Mul", gate, up), p, c->inter, d, 0, 1));
    }
    h = rms_norm(b, h, "model.norm.weight", d, c->eps);
    ot_hf_lm_head(b, h, emb, d);
}
