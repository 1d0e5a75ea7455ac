/* hf_gpt2.c — the GPT-2 graph (GPT2LMHeadModel) from its Hugging Face weights.
 *
 *   h = wte[input_ids] + wpe[positions]
 *   per layer: h += c_proj(attn(ln_1(h)));  h += mlp.c_proj(act(mlp.c_fc(ln_2(h))))
 *   logits = ln_f(h) · lm_headᵀ (lm_head = wte when tied)
 *
 * GPT-2 stores its projections as Conv1D, weight [in, out]: each is Gemm(x, W, b) with
 * transB=0. Names carry the "transformer." prefix of GPT2LMHeadModel checkpoints, or none
 * (the original openai-community/gpt2 files). */
#include <math.h>
#include <stdio.h>

#include "importer/hf_internal.h"

void ot_hf_build_gpt2(ot_hf_builder *b) {
    const ot_hf_config *c = b->cfg;
    const int64_t d = c->hidden, hd = d / c->heads;
    const char *pre = ot_hf_has(b, "transformer.wte.weight") || !ot_hf_has(b, "wte.weight") ? "transformer." : "";
    char p[256];
    int wte = ot_hf_weightf(b, 2, c->vocab, d, "%swte.weight", pre);
    int wpe = ot_hf_weightf(b, 2, c->max_pos, d, "%swpe.weight", pre);
    /* positions are [S] and tokens [B*S]: broadcast by viewing tokens as [B, S, d] */
    int h3 = ot_hf_op2(b, "Gather", wte, b->ids); /* [B, S, d] */
    int pos = ot_hf_op2(b, "Gather", wpe, ot_hf_positions(b)); /* [S, d] */
    int64_t flat[2] = {-1, d};
    int h = ot_hf_op2(b, "Reshape", ot_hf_op2(b, "Add", h3, pos), ot_hf_const_i64(b, 2, flat));
    int mask = ot_hf_causal_mask(b);
    for (int64_t l = 0; l < c->layers; l++) {
        snprintf(p, sizeof p, "%sh.%lld.ln_1", pre, (long long)l);
        int x = ot_hf_layernorm(b, h, p, d, c->eps);
        snprintf(p, sizeof p, "%sh.%lld.attn.c_attn", pre, (long long)l);
        int qkv = ot_hf_linear(b, x, p, d, 3 * d, 1, 0);
        /* q, k, v are consecutive column blocks of c_attn's output */
        int64_t s0[1] = {0}, s1[1] = {d}, s2[1] = {2 * d}, s3[1] = {3 * d}, ax[1] = {1};
        int qi[4] = {qkv, ot_hf_const_i64(b, 1, s0), ot_hf_const_i64(b, 1, s1), ot_hf_const_i64(b, 1, ax)};
        int ki[4] = {qkv, qi[2], ot_hf_const_i64(b, 1, s2), qi[3]};
        int vi[4] = {qkv, ki[2], ot_hf_const_i64(b, 1, s3), qi[3]};
        int qh = ot_hf_split_heads(b, ot_hf_op(b, "Slice", qi, 4), c->heads, hd);
        int kh = ot_hf_split_heads(b, ot_hf_op(b, "Slice", ki, 4), c->heads, hd);
        int vh = ot_hf_split_heads(b, ot_hf_op(b, "Slice", vi, 4), c->heads, hd);
        int a = ot_hf_merge_heads(b, ot_hf_attention(b, qh, kh, vh, mask, (float)(1.0 / sqrt((double)hd))), d);
        snprintf(p, sizeof p, "%sh.%lld.attn.c_proj", pre, (long long)l);
        h = ot_hf_op2(b, "Add", h, ot_hf_linear(b, a, p, d, d, 1, 0));
        snprintf(p, sizeof p, "%sh.%lld.ln_2", pre, (long long)l);
        x = ot_hf_layernorm(b, h, p, d, c->eps);
        snprintf(p, sizeof p, "%sh.%lld.mlp.c_fc", pre, (long long)l);
        int m = ot_hf_act_apply(b, ot_hf_linear(b, x, p, d, c->inter, 1, 0), c->act);
        snprintf(p, sizeof p, "%sh.%lld.mlp.c_proj", pre, (long long)l);
        h = ot_hf_op2(b, "Add", h, ot_hf_linear(b, m, p, c->inter, d, 1, 0));
    }
    snprintf(p, sizeof p, "%sln_f", pre);
    h = ot_hf_layernorm(b, h, p, d, c->eps);
    ot_hf_lm_head(b, h, wte, d);
}
