"""Makes the tiny Hugging Face fixtures under tests/models/hf/ (committed; not run by tests).

Each folder is what `save_pretrained(safe_serialization=True)` writes (config.json +
model.safetensors) for a random-weight model from transformers, plus the inputs and the
reference logits of that model in eval mode:

  gpt2/         GPT2LMHeadModel (tied head), gelu_new
  llama/        LlamaForCausalLM, GQA (4 heads, 2 kv heads), rope_theta 50000, untied head
  llama_tied/   LlamaForCausalLM, tie_word_embeddings, rope_scaling linear (factor 2)
  bert/         BertForSequenceClassification, num_labels 3, padded attention_mask

Files per folder: input_ids.npy [2, 7] int64 (bert also attention_mask.npy and
token_type_ids.npy), logits.npy (float32 model), logits_f64.npy (the same model in float64, where transformers can run it),
and input_ids_b3s5.npy / logits_b3s5.npy (another batch and sequence length; bert also
attention_mask_b3s5.npy).

Run with a venv that sees Debian's torch:
  /usr/bin/python3 -m venv --system-site-packages /tmp/hfenv
  /tmp/hfenv/bin/pip install "transformers==4.36.2" "safetensors==0.4.1"
  /tmp/hfenv/bin/python tests/models/hf/make_hf_models.py
"""
import copy
import json
import os
import shutil

import numpy as np
import torch
import transformers
from transformers import (BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel,
                          LlamaConfig, LlamaForCausalLM)

HERE = os.path.dirname(os.path.abspath(__file__))


def perturb(model, gen):
    """Random init leaves norms at 1/0 and biases at 0, which would hide a wrong norm or bias
    path: give every parameter some random spread."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                if "weight" in name:
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def logits_of(model, feeds):
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    return out.logits


def save(name, model, feed_sets):
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    model.eval()
    model.save_pretrained(d, safe_serialization=True)
    gen_cfg = os.path.join(d, "generation_config.json")  # not read by onnxtune
    if os.path.exists(gen_cfg):
        os.remove(gen_cfg)
    m64 = copy.deepcopy(model).double().eval()
    for suffix, feeds in feed_sets:
        for k, v in feeds.items():
            np.save(os.path.join(d, f"{k}{suffix}.npy"), v)
        np.save(os.path.join(d, f"logits{suffix}.npy"), logits_of(model, feeds).numpy().astype(np.float32))
        try:
            np.save(os.path.join(d, f"logits_f64{suffix}.npy"), logits_of(m64, feeds).numpy())
        except RuntimeError as e:  # transformers 4.36's llama mask code overflows in f64 on torch 1.13
            print(f"{name}: no float64 reference ({e})")
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name}: {size} bytes, {sorted(os.listdir(d))}")


def ids(gen, vocab, b, s):
    return torch.randint(0, vocab, (b, s), generator=gen).numpy().astype(np.int64)


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)

    cfg = GPT2Config(vocab_size=128, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                     activation_function="gelu_new", resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    m = GPT2LMHeadModel(cfg)
    perturb(m, gen)
    save("gpt2", m, [("", {"input_ids": ids(gen, 128, 2, 7)}), ("_b3s5", {"input_ids": ids(gen, 128, 3, 5)})])

    cfg = LlamaConfig(vocab_size=160, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_theta=50000.0, tie_word_embeddings=False)
    m = LlamaForCausalLM(cfg)
    perturb(m, gen)
    save("llama", m, [("", {"input_ids": ids(gen, 160, 2, 7)}), ("_b3s5", {"input_ids": ids(gen, 160, 3, 5)})])

    cfg = LlamaConfig(vocab_size=160, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=64,
                      rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
                      rope_scaling={"type": "linear", "factor": 2.0})
    m = LlamaForCausalLM(cfg)
    perturb(m, gen)
    save("llama_tied", m, [("", {"input_ids": ids(gen, 160, 2, 7)}), ("_b3s5", {"input_ids": ids(gen, 160, 3, 5)})])

    cfg = BertConfig(vocab_size=180, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=96, max_position_embeddings=64, type_vocab_size=2,
                     hidden_dropout_prob=0, attention_probs_dropout_prob=0, num_labels=3,
                     id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2},
                     architectures=["BertForSequenceClassification"])
    m = BertForSequenceClassification(cfg)
    perturb(m, gen)
    mask = np.ones((2, 7), np.int64)
    mask[1, 4:] = 0
    tt = np.zeros((2, 7), np.int64)
    tt[:, 3:] = 1
    mask2 = np.ones((3, 5), np.int64)
    mask2[0, 2:] = 0
    mask2[2, 4:] = 0
    save("bert", m, [("", {"input_ids": ids(gen, 180, 2, 7), "attention_mask": mask, "token_type_ids": tt}),
                     ("_b3s5", {"input_ids": ids(gen, 180, 3, 5), "attention_mask": mask2})])
    print("transformers", transformers.__version__, "torch", torch.__version__)


if __name__ == "__main__":
    main()
