#!/usr/bin/python3
"""Export the small parity-test models in tests/models/ from plain torch.nn modules.

Run with Debian's python (it has torch 1.13; the pyenv python has onnx/onnxruntime but no torch):

    /usr/bin/python3 tests/models/make_models.py [--out tests/models]

Writes gpt2_tiny.onnx, llama_tiny.onnx, bert_tiny.onnx and mlp_gemm.onnx (opset 17, constant
folding on, dynamic batch/sequence axes, so the graphs keep the Shape->Gather->Unsqueeze->Concat->
Reshape chains that PyTorch emits) and prints each file's op histogram. The output is
deterministic: same torch version, same bytes.

Module names follow Hugging Face (transformer.wte, transformer.h.0.attn.c_attn, model.layers.0.
self_attn.q_proj, bert.encoder.layer.0.attention.self.query, ...) so that initializer names look
like the ones a real export has. No transformers package is used.
"""
import argparse
import collections
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

OPSET = 17
HERE = os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------------------------------------
# op histogram without the onnx package: walk the protobuf wire format of ModelProto.graph.node
# (ModelProto.graph = field 7, GraphProto.node = field 1, NodeProto.op_type = field 4,
#  NodeProto.domain = field 7). Enough for a report; the tests themselves use the onnx package.
# --------------------------------------------------------------------------------------------
def _varint(buf, i):
    shift = val = 0
    while True:
        b = buf[i]
        i += 1
        val |= (b & 0x7F) << shift
        if not b & 0x80:
            return val, i
        shift += 7


def _fields(buf):
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 2:
            ln, i = _varint(buf, i)
            val, i = buf[i:i + ln], i + ln
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield field, wire, val


def op_histogram(path):
    with open(path, "rb") as f:
        buf = memoryview(f.read())
    hist = collections.Counter()
    for field, wire, graph in _fields(buf):
        if field == 7 and wire == 2:
            for gfield, gwire, node in _fields(graph):
                if gfield == 1 and gwire == 2:
                    op, dom = "", ""
                    for nfield, nwire, v in _fields(node):
                        if nfield == 4 and nwire == 2:
                            op = bytes(v).decode()
                        elif nfield == 7 and nwire == 2:
                            dom = bytes(v).decode()
                    hist[(dom + "::" if dom else "") + op] += 1
    return hist


def print_histogram(name, path):
    hist = op_histogram(path)
    size = os.path.getsize(path)
    print("%s: %d nodes, %d bytes" % (name, sum(hist.values()), size))
    for op, n in sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])):
        print("  %-22s %4d" % (op, n))
    return hist


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------
def perturb_norms(model, gen_scale=0.1):
    """LayerNorm/RMSNorm default to weight=1, bias=0, which would hide a kernel that ignores the
    affine part. Give them small random offsets (called after torch.manual_seed)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name or "norm" in name.lower() or "LayerNorm" in name:
                if name.endswith("weight"):
                    p.add_(gen_scale * torch.randn_like(p))
                elif name.endswith("bias"):
                    p.copy_(gen_scale * torch.randn_like(p))


def new_gelu(x):
    # GPT-2's tanh approximation, written as HF's NewGELUActivation does (Pow, Mul, Add, Tanh)
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


# --------------------------------------------------------------------------------------------
# GPT-2
# --------------------------------------------------------------------------------------------
class GPT2Attention(nn.Module):
    def __init__(self, d, heads, max_pos):
        super().__init__()
        self.d, self.heads, self.hd = d, heads, d // heads
        self.c_attn = nn.Linear(d, 3 * d)   # fused q,k,v (HF uses Conv1D; same math, W^T layout)
        self.c_proj = nn.Linear(d, d)
        # HF GPT-2 keeps the causal mask as a bool buffer "bias" and slices it by sequence length
        self.register_buffer(
            "bias", torch.tril(torch.ones(max_pos, max_pos, dtype=torch.bool)).view(1, 1, max_pos, max_pos),
            persistent=True)

    def _split_heads(self, x):
        b, s, _ = x.size()
        return x.view(b, s, self.heads, self.hd).permute(0, 2, 1, 3)

    def forward(self, x):
        b, s, _ = x.size()
        q, k, v = self.c_attn(x).split(self.d, dim=2)
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.hd)
        causal = self.bias[:, :, :s, :s]
        mask_value = torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype)
        w = torch.where(causal, w, mask_value)
        w = F.softmax(w, dim=-1)
        a = torch.matmul(w, v)
        a = a.permute(0, 2, 1, 3).contiguous().view(b, s, self.d)
        return self.c_proj(a)


class GPT2MLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = nn.Linear(d, 4 * d)
        self.c_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.c_proj(new_gelu(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, d, heads, max_pos, eps):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.attn = GPT2Attention(d, heads, max_pos)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.mlp = GPT2MLP(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Transformer(nn.Module):
    def __init__(self, vocab, d, heads, layers, max_pos, eps):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(max_pos, d)
        self.h = nn.ModuleList([GPT2Block(d, heads, max_pos, eps) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d, eps=eps)

    def forward(self, input_ids):
        s = input_ids.size(1)
        pos = torch.arange(0, s, dtype=torch.long, device=input_ids.device).unsqueeze(0)
        x = self.wte(input_ids) + self.wpe(pos)
        for blk in self.h:
            x = blk(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, vocab=256, d=64, heads=4, layers=2, max_pos=128, eps=1e-5):
        super().__init__()
        self.transformer = GPT2Transformer(vocab, d, heads, layers, max_pos, eps)

    def forward(self, input_ids):
        h = self.transformer(input_ids)
        # tied head: logits = h @ wte^T (the exporter folds the transpose into an initializer)
        return torch.matmul(h, self.transformer.wte.weight.t())


# --------------------------------------------------------------------------------------------
# Llama
# --------------------------------------------------------------------------------------------
class LlamaRMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(var + self.eps) * self.weight


class LlamaRotaryEmbedding(nn.Module):
    """cos/sin tables for max_pos positions kept as buffers and gathered by position id (the
    HF transformers <= 4.37 layout). The tables are built here in eager torch, so the graph holds
    them as initializers and uses Gather; no Cos/Sin nodes."""

    def __init__(self, hd, max_pos, base=10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        t = torch.arange(max_pos, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)

    def forward(self, position_ids):
        return self.cos_cached[position_ids], self.sin_cached[position_ids]


def rotate_half(x):
    half = x.shape[-1] // 2
    x1 = x[..., :half]
    x2 = x[..., half:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    b, kvh, s, hd = x.shape
    if n_rep == 1:
        return x
    x = x[:, :, None, :, :].expand(b, kvh, n_rep, s, hd)
    return x.reshape(b, kvh * n_rep, s, hd)


class LlamaAttention(nn.Module):
    def __init__(self, d, heads, kv_heads, max_pos):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, d // heads
        self.q_proj = nn.Linear(d, heads * self.hd, bias=False)
        self.k_proj = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(heads * self.hd, d, bias=False)
        self.rotary_emb = LlamaRotaryEmbedding(self.hd, max_pos)

    def forward(self, x, position_ids, mask):
        b, s, _ = x.size()
        q = self.q_proj(x).view(b, s, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.kv_heads, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.kv_heads, self.hd).transpose(1, 2)
        cos, sin = self.rotary_emb(position_ids)       # [1, s, hd]
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # [1, 1, s, hd]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = repeat_kv(k, self.heads // self.kv_heads)
        v = repeat_kv(v, self.heads // self.kv_heads)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd)
        w = w + mask
        w = F.softmax(w, dim=-1, dtype=torch.float32)
        a = torch.matmul(w, v)
        a = a.transpose(1, 2).contiguous().reshape(b, s, self.heads * self.hd)
        return self.o_proj(a)


class LlamaMLP(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.gate_proj = nn.Linear(d, inter, bias=False)
        self.up_proj = nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, d, heads, kv_heads, inter, max_pos, eps):
        super().__init__()
        self.self_attn = LlamaAttention(d, heads, kv_heads, max_pos)
        self.mlp = LlamaMLP(d, inter)
        self.input_layernorm = LlamaRMSNorm(d, eps)
        self.post_attention_layernorm = LlamaRMSNorm(d, eps)

    def forward(self, x, position_ids, mask):
        x = x + self.self_attn(self.input_layernorm(x), position_ids, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, vocab, d, heads, kv_heads, inter, layers, max_pos, eps):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(
            [LlamaDecoderLayer(d, heads, kv_heads, inter, max_pos, eps) for _ in range(layers)])
        self.norm = LlamaRMSNorm(d, eps)

    def forward(self, input_ids):
        s = input_ids.size(1)
        position_ids = torch.arange(0, s, dtype=torch.long, device=input_ids.device).unsqueeze(0)
        x = self.embed_tokens(input_ids)
        # additive causal mask: finfo.min above the diagonal, 0 elsewhere (Trilu upper, k=1)
        mask = torch.full((s, s), torch.finfo(x.dtype).min, dtype=x.dtype)
        mask = torch.triu(mask, diagonal=1)[None, None, :, :]
        for layer in self.layers:
            x = layer(x, position_ids, mask)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    def __init__(self, vocab=256, d=64, heads=4, kv_heads=2, inter=128, layers=2, max_pos=128, eps=1e-6):
        super().__init__()
        self.model = LlamaModel(vocab, d, heads, kv_heads, inter, layers, max_pos, eps)
        self.lm_head = nn.Linear(d, vocab, bias=False)   # untied

    def forward(self, input_ids):
        return self.lm_head(self.model(input_ids))


# --------------------------------------------------------------------------------------------
# BERT
# --------------------------------------------------------------------------------------------
class BertEmbeddings(nn.Module):
    def __init__(self, vocab, d, max_pos, type_vocab, eps):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, d)
        self.position_embeddings = nn.Embedding(max_pos, d)
        self.token_type_embeddings = nn.Embedding(type_vocab, d)
        self.LayerNorm = nn.LayerNorm(d, eps=eps)
        self.dropout = nn.Dropout(0.1)
        self.register_buffer("position_ids", torch.arange(max_pos).expand((1, -1)), persistent=False)
        self.register_buffer("token_type_ids", torch.zeros((1, max_pos), dtype=torch.long), persistent=False)

    def forward(self, input_ids):
        b, s = input_ids.size()
        position_ids = self.position_ids[:, :s]
        token_type_ids = self.token_type_ids[:, :s].expand(b, s)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.hd = heads, d // heads
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.dropout = nn.Dropout(0.1)

    def transpose_for_scores(self, x):
        new_shape = x.size()[:-1] + (self.heads, self.hd)
        return x.view(new_shape).permute(0, 2, 1, 3)

    def forward(self, x, ext_mask):
        q = self.transpose_for_scores(self.query(x))
        k = self.transpose_for_scores(self.key(x))
        v = self.transpose_for_scores(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.hd)
        scores = scores + ext_mask
        probs = self.dropout(F.softmax(scores, dim=-1))
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(ctx.size()[:-2] + (self.heads * self.hd,))


class BertSelfOutput(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.LayerNorm = nn.LayerNorm(d, eps=eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, h, inp):
        return self.LayerNorm(self.dropout(self.dense(h)) + inp)


class BertAttention(nn.Module):
    def __init__(self, d, heads, eps):
        super().__init__()
        self.self = BertSelfAttention(d, heads)
        self.output = BertSelfOutput(d, eps)

    def forward(self, x, ext_mask):
        return self.output(self.self(x, ext_mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.dense = nn.Linear(d, inter)
        self.intermediate_act_fn = nn.GELU()   # erf form: Div, Erf, Add, Mul, Mul

    def forward(self, x):
        return self.intermediate_act_fn(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, d, inter, eps):
        super().__init__()
        self.dense = nn.Linear(inter, d)
        self.LayerNorm = nn.LayerNorm(d, eps=eps)
        self.dropout = nn.Dropout(0.1)

    def forward(self, h, inp):
        return self.LayerNorm(self.dropout(self.dense(h)) + inp)


class BertLayer(nn.Module):
    def __init__(self, d, heads, inter, eps):
        super().__init__()
        self.attention = BertAttention(d, heads, eps)
        self.intermediate = BertIntermediate(d, inter)
        self.output = BertOutput(d, inter, eps)

    def forward(self, x, ext_mask):
        a = self.attention(x, ext_mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, d, heads, inter, layers, eps):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(d, heads, inter, eps) for _ in range(layers)])

    def forward(self, x, ext_mask):
        for layer in self.layer:
            x = layer(x, ext_mask)
        return x


class BertPooler(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.activation = nn.Tanh()

    def forward(self, h):
        return self.activation(self.dense(h[:, 0]))


class BertModel(nn.Module):
    def __init__(self, vocab, d, heads, inter, layers, max_pos, type_vocab, eps):
        super().__init__()
        self.embeddings = BertEmbeddings(vocab, d, max_pos, type_vocab, eps)
        self.encoder = BertEncoder(d, heads, inter, layers, eps)
        self.pooler = BertPooler(d)

    def forward(self, input_ids, attention_mask):
        x = self.embeddings(input_ids)
        # [b, s] int64 1/0 -> [b, 1, 1, s] additive float mask (0 keep, finfo.min drop)
        ext = attention_mask[:, None, None, :].to(dtype=x.dtype)
        ext = (1.0 - ext) * torch.finfo(x.dtype).min
        return self.pooler(self.encoder(x, ext))


class BertForSequenceClassification(nn.Module):
    def __init__(self, vocab=256, d=64, heads=4, inter=256, layers=2, max_pos=128, type_vocab=2,
                 num_labels=3, eps=1e-12):
        super().__init__()
        self.bert = BertModel(vocab, d, heads, inter, layers, max_pos, type_vocab, eps)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(d, num_labels)

    def forward(self, input_ids, attention_mask):
        return self.classifier(self.dropout(self.bert(input_ids, attention_mask)))


# --------------------------------------------------------------------------------------------
# MLP (2-D input, so nn.Linear exports as Gemm)
# --------------------------------------------------------------------------------------------
class MLPGemm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 32)
        self.fc3 = nn.Linear(32, 4)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        h = torch.tanh(self.fc2(h))
        return torch.sigmoid(self.fc3(h))


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------
def export(model, args, input_names, output_names, dynamic_axes, path):
    model.eval()
    with torch.no_grad():
        torch.onnx.export(
            model, args, path,
            export_params=True,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
        )


def build_gpt2(path, seed=0, **cfg):
    torch.manual_seed(seed)
    m = GPT2LMHeadModel(**cfg)
    perturb_norms(m)
    vocab = m.transformer.wte.num_embeddings
    ids = torch.randint(0, vocab, (2, 8), dtype=torch.long)
    export(m, (ids,), ["input_ids"], ["logits"],
           {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}, path)
    return m


def build_llama(path, seed=1):
    torch.manual_seed(seed)
    m = LlamaForCausalLM()
    perturb_norms(m)
    ids = torch.randint(0, 256, (2, 8), dtype=torch.long)
    export(m, (ids,), ["input_ids"], ["logits"],
           {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}, path)
    return m


def build_bert(path, seed=2):
    torch.manual_seed(seed)
    m = BertForSequenceClassification()
    perturb_norms(m)
    ids = torch.randint(0, 256, (2, 8), dtype=torch.long)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    export(m, (ids, mask), ["input_ids", "attention_mask"], ["logits"],
           {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}, path)
    return m


def build_mlp(path, seed=3):
    torch.manual_seed(seed)
    m = MLPGemm()
    x = torch.randn(2, 16)
    export(m, (x,), ["x"], ["y"], {"x": {0: "batch"}, "y": {0: "batch"}}, path)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE, help="output folder (default: this script's folder)")
    ap.add_argument("--reference", metavar="DIR",
                    help="also write torch reference outputs (<model>.ref.npz) for a cross-check")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    builders = [("gpt2_tiny", build_gpt2), ("llama_tiny", build_llama),
                ("bert_tiny", build_bert), ("mlp_gemm", build_mlp)]
    total = collections.Counter()
    for name, fn in builders:
        path = os.path.join(args.out, name + ".onnx")
        model = fn(path)
        total.update(print_histogram(name, path))
        if args.reference:
            write_reference(name, model, args.reference)
    print("all models: %d distinct ops: %s" % (len(total), " ".join(sorted(total))))


def write_reference(name, model, outdir):
    """torch outputs for fixed inputs, to check the export against torch (not used by the tests)."""
    import numpy as np
    os.makedirs(outdir, exist_ok=True)
    g = torch.Generator().manual_seed(123)
    feeds = {}
    with torch.no_grad():
        if name == "mlp_gemm":
            x = torch.randn(3, 16, generator=g)
            feeds = {"x": x}
            y = model(x)
        elif name == "bert_tiny":
            ids = torch.randint(0, 256, (3, 7), generator=g)
            mask = torch.ones(3, 7, dtype=torch.long)
            mask[1, 4:] = 0
            feeds = {"input_ids": ids, "attention_mask": mask}
            y = model(ids, mask)
        else:
            ids = torch.randint(0, 256, (3, 7), generator=g)
            feeds = {"input_ids": ids}
            y = model(ids)
    arrays = {"in_" + k: v.numpy() for k, v in feeds.items()}
    arrays["out"] = y.numpy()
    np.savez(os.path.join(outdir, name + ".ref.npz"), **arrays)


if __name__ == "__main__":
    sys.exit(main())
