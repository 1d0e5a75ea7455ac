#!/usr/bin/python3
"""Record the PyTorch reference fixtures the training tests compare against.

Run with Debian's python (torch 1.13 and numpy; the project's .venv has no torch):

    /usr/bin/python3 tests/reference/make_reference.py [--out tests/reference]

The models are the ones in tests/models/make_models.py (imported, not copied). Before recording
anything the script re-exports each model into a temporary folder and checks that the bytes equal
the committed tests/models/<model>.onnx, so the weights below are exactly the ONNX initializers.
Weights are matched to ONNX initializer names by value (the exporter renames and transposes the
nn.Linear weights of MatMul nodes into "onnx::MatMul_<n>" [in, out]); a gradient is saved in the
layout of the initializer it belongs to.

Everything is computed in float64 from the float32 weights (exact casts), single-threaded, so the
references carry no float32 rounding of their own; the float32 PyTorch run of the LoRA trajectory
is recorded beside it to show the size of float32 noise. Output (deterministic: same torch, same
bytes):

  <model>/manifest.json      for gpt2_tiny, llama_tiny, bert_tiny, mlp_gemm:
        {"model": "tests/models/<model>.onnx", "loss_kind": "causal-lm"|"cross-entropy"|"mse",
         "loss": <float64>, "inputs": {graph input or "labels": file.npy},
         "grads": [{"name": <ONNX initializer>, "file": ..., "torch_name": ..., "transposed": bool}]}
  <model>/*.npy              inputs (int64 ids/masks/labels, float32 x / mse targets) and the
                             float32 gradients d loss / d W
  gpt2_tiny/lora_init/       PEFT adapter the LoRA trajectory starts from: adapter_model.safetensors
                             ("base_model.model.<module>.lora_A.weight" [r, in], "lora_B.weight"
                             [out, r], f32) and adapter_config.json (r=4, lora_alpha=8)
  gpt2_tiny/lora_final/      the same adapter after the 6 reference steps
  gpt2_tiny/train.jsonl      8 sequences {"input_ids": [16 ints]}
  gpt2_tiny/trajectory.json  the run's settings, per-step losses and grad norms (float64 and
                             float32 PyTorch)
  gpt2_tiny/final_input_ids.npy, final_logits.npy
                             logits of the trained model, LoRA unmerged, for a fixed input

Loss conventions (onnxtune's): causal-lm = mean over counted positions of the cross-entropy of
logits[:, t] against labels[:, t + 1] (labels -100 are not counted); cross-entropy = mean over the
batch; mse = mean over all elements. The LoRA run: y = x W^T + b + (alpha / r) (x A^T) B^T on every
nn.Linear (the tied output head is a matmul with the embedding, not a Linear, so it is not
adapted: onnxtune's all-linear skips the head too); AdamW lr 1e-3, betas (0.9, 0.999), eps 1e-8,
weight decay 0.01 on every LoRA tensor; each step of 4 samples is two micro-batches of 2 whose
losses are averaged (loss / 2 backpropagated twice); clip_grad_norm_(1.0); constant LR; the data
in file order, wrapping around (6 steps x 4 samples = 3 epochs of 8). The loss recorded for a step
is the mean loss of its batch before its update, and grad_norm the global norm before clipping.
"""
import argparse
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "models"))
import make_models  # noqa: E402


# --------------------------------------------------------------------------------------------
# ONNX initializers, read with make_models' wire-format walker (this python has no onnx package)
# ModelProto.graph = 7; GraphProto.initializer = 5; TensorProto: dims 1, data_type 2,
# float_data 4, name 8, raw_data 9. The torch exporter writes raw_data.
# --------------------------------------------------------------------------------------------
_NP_DTYPE = {1: np.float32, 6: np.int32, 7: np.int64, 9: np.bool_, 11: np.float64}


def onnx_initializers(path):
    with open(path, "rb") as f:
        buf = memoryview(f.read())
    inits = {}
    for field, wire, graph in make_models._fields(buf):
        if field != 7 or wire != 2:
            continue
        for gfield, gwire, t in make_models._fields(graph):
            if gfield != 5 or gwire != 2:
                continue
            dims, dtype, name, raw, floats = [], 0, "", None, []
            for tf, tw, v in make_models._fields(t):
                if tf == 1 and tw == 0:
                    dims.append(v)
                elif tf == 1 and tw == 2:  # packed dims
                    i, b = 0, bytes(v)
                    while i < len(b):
                        d, i = make_models._varint(b, i)
                        dims.append(d)
                elif tf == 2:
                    dtype = v
                elif tf == 8:
                    name = bytes(v).decode()
                elif tf == 9:
                    raw = bytes(v)
                elif tf == 4 and tw == 2:
                    floats = list(struct.unpack("<%df" % (len(v) // 4), bytes(v)))
            if dtype not in _NP_DTYPE:
                continue
            if raw is not None:
                arr = np.frombuffer(raw, dtype=_NP_DTYPE[dtype]).reshape(dims)
            else:
                arr = np.array(floats, dtype=_NP_DTYPE[dtype]).reshape(dims)
            inits[name] = arr
    return inits


def onnx_name_for(param_name, w, inits):
    """(initializer name, transposed) of torch weight w: the initializer with w's exact values,
    preferring the one named like the parameter (a tied embedding is stored twice)."""
    w = w.detach().cpu().numpy()
    if param_name in inits and inits[param_name].shape == w.shape and np.array_equal(inits[param_name], w):
        return param_name, False
    hits = [(n, False) for n, a in inits.items() if a.shape == w.shape and np.array_equal(a, w)]
    if w.ndim == 2:
        hits += [(n, True) for n, a in inits.items() if a.shape == w.T.shape and np.array_equal(a, w.T)]
    if len(hits) != 1:
        raise SystemExit("weight %s: %d matching ONNX initializers %s" % (param_name, len(hits), hits))
    return hits[0]


def check_committed(name, builder, tmp):
    """Builds the model as make_models does and checks its export equals the committed file."""
    path = os.path.join(tmp, name + ".onnx")
    model = builder(path)
    committed = os.path.join(REPO, "tests", "models", name + ".onnx")
    with open(path, "rb") as a, open(committed, "rb") as b:
        if a.read() != b.read():
            raise SystemExit("%s: a fresh export differs from %s; regenerate the models with "
                             "tests/models/make_models.py (same torch) first" % (name, committed))
    model.eval()  # dropout off: the exported graph has none
    return model, onnx_initializers(committed)


# --------------------------------------------------------------------------------------------
# float64 runs. Llama's attention asks softmax for float32 explicitly (as HF does); inside
# this context that request keeps the input's dtype, so the whole model runs in float64.
# --------------------------------------------------------------------------------------------
class _F64Functional:
    def __getattr__(self, name):
        return getattr(F, name)

    @staticmethod
    def softmax(x, dim=None, dtype=None):
        return F.softmax(x, dim=dim)


class float64_model:
    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.saved = make_models.F
        make_models.F = _F64Functional()
        self.model.double()
        return self.model

    def __exit__(self, *exc):
        make_models.F = self.saved


def causal_lm_loss(logits, labels):
    v = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, v), labels[:, 1:].reshape(-1), ignore_index=-100)


def save_npy(path, arr):
    np.save(path, np.ascontiguousarray(arr), allow_pickle=False)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")


# --------------------------------------------------------------------------------------------
# (a) gradients of the loss w.r.t. chosen weights
# --------------------------------------------------------------------------------------------
GRAD_CASES = {
    "gpt2_tiny": dict(builder=make_models.build_gpt2, loss="causal-lm", weights=[
        "transformer.h.0.attn.c_attn.weight", "transformer.h.1.attn.c_attn.bias",
        "transformer.h.1.mlp.c_proj.weight", "transformer.h.0.ln_1.weight", "transformer.ln_f.bias",
        "transformer.wte.weight", "transformer.wpe.weight"]),
    "llama_tiny": dict(builder=make_models.build_llama, loss="causal-lm", weights=[
        "model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.v_proj.weight",
        "model.layers.0.mlp.down_proj.weight", "model.layers.1.input_layernorm.weight",
        "model.norm.weight", "model.embed_tokens.weight", "lm_head.weight"]),
    "bert_tiny": dict(builder=make_models.build_bert, loss="cross-entropy", weights=[
        "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.1.intermediate.dense.weight",
        "bert.encoder.layer.0.attention.output.LayerNorm.weight", "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight", "bert.pooler.dense.weight", "classifier.weight",
        "classifier.bias"]),
    "mlp_gemm": dict(builder=make_models.build_mlp, loss="mse", weights=[
        "fc1.weight", "fc1.bias", "fc2.weight", "fc3.weight", "fc3.bias"]),
}


def grad_inputs(name, g):
    """Fixed inputs as numpy arrays: graph inputs plus "labels"."""
    if name in ("gpt2_tiny", "llama_tiny"):
        ids = torch.randint(0, 256, (2, 16), generator=g).numpy().astype(np.int64)
        labels = ids.copy()
        if name == "llama_tiny":
            labels[1, 10:] = -100  # ignored positions: the mean runs over counted ones only
        return {"input_ids": ids, "labels": labels}
    if name == "bert_tiny":
        ids = torch.randint(0, 256, (2, 16), generator=g).numpy().astype(np.int64)
        mask = np.ones((2, 16), dtype=np.int64)
        mask[1, 11:] = 0
        return {"input_ids": ids, "attention_mask": mask, "labels": np.array([2, 0], dtype=np.int64)}
    x = torch.randn(4, 16, generator=g).numpy().astype(np.float32)
    target = torch.rand(4, 4, generator=g).numpy().astype(np.float32)
    return {"x": x, "labels": target}


def record_grads(name, case, tmp, out):
    model, inits = check_committed(name, case["builder"], tmp)
    params = dict(model.named_parameters())
    names = {w: onnx_name_for(w, params[w], inits) for w in case["weights"]}
    g = torch.Generator().manual_seed(1000 + sorted(GRAD_CASES).index(name))
    feeds = grad_inputs(name, g)
    with float64_model(model) as m:
        m.zero_grad()
        if name == "mlp_gemm":
            pred = m(torch.from_numpy(feeds["x"]).double())
            loss = F.mse_loss(pred, torch.from_numpy(feeds["labels"]).double())
        elif name == "bert_tiny":
            logits = m(torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"]))
            loss = F.cross_entropy(logits, torch.from_numpy(feeds["labels"]))
        else:
            loss = causal_lm_loss(m(torch.from_numpy(feeds["input_ids"])), torch.from_numpy(feeds["labels"]))
        loss.backward()
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    manifest = {"model": "tests/models/%s.onnx" % name, "loss_kind": case["loss"], "loss": float(loss.item()),
                "precision": "float64 from the float32 weights", "inputs": {}, "grads": []}
    for k, v in feeds.items():
        save_npy(os.path.join(d, k + ".npy"), v)
        manifest["inputs"][k] = k + ".npy"
    for i, w in enumerate(case["weights"]):
        onnx_name, transposed = names[w]
        grad = params[w].grad.numpy()
        if transposed:
            grad = grad.T
        f = "grad_%02d.npy" % i
        save_npy(os.path.join(d, f), grad.astype(np.float32))
        manifest["grads"].append({"name": onnx_name, "file": f, "torch_name": w, "transposed": transposed,
                                  "shape": list(grad.shape)})
    write_json(os.path.join(d, "manifest.json"), manifest)
    print("%s: loss %.9g, %d gradients: %s" % (name, loss.item(), len(case["weights"]),
                                                ", ".join(names[w][0] for w in case["weights"])))


# --------------------------------------------------------------------------------------------
# (b) the LoRA trajectory on gpt2_tiny
# --------------------------------------------------------------------------------------------
LORA = dict(r=4, alpha=8.0, steps=6, batch_size=4, micro_batch_size=2, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
            weight_decay=0.01, max_grad_norm=1.0, seq_len=16, n_samples=8)


class LoRALinear(nn.Module):
    """A plain LoRA module around a frozen nn.Linear: base(x) + scale * (x A^T) B^T."""

    def __init__(self, base, a, b, scale):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(a.clone())
        self.lora_B = nn.Parameter(b.clone())
        self.scale = scale

    def forward(self, x):
        return self.base(x) + self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)


def lora_modules(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def lora_init(model, g):
    """A: uniform in +-1/sqrt(in) (PEFT's Kaiming bound); B: uniform in +-0.05, not zero, so the
    very first step already has a gradient for A. float32, drawn in module order."""
    init = {}
    for name, lin in lora_modules(model):
        bound = 1.0 / math.sqrt(lin.in_features)
        a = (torch.rand(LORA["r"], lin.in_features, generator=g) * 2 - 1) * bound
        b = (torch.rand(lin.out_features, LORA["r"], generator=g) * 2 - 1) * 0.05
        init[name] = (a.float(), b.float())
    return init


def install_lora(model, init, dtype):
    scale = LORA["alpha"] / LORA["r"]
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = {}
    for name, lin in lora_modules(model):
        parent = model.get_submodule(name.rsplit(".", 1)[0])
        a, b = init[name]
        mod = LoRALinear(lin, a.to(dtype), b.to(dtype), scale)
        setattr(parent, name.rsplit(".", 1)[1], mod)
        wrapped[name] = mod
    return wrapped


def write_safetensors(path, tensors, metadata=None):
    """safetensors by hand: u64 little-endian header length, JSON header (padded with spaces to
    a multiple of 8), then the raw little-endian data in header order."""
    header, blobs, off = {}, [], 0
    for k, v in tensors:
        a = np.ascontiguousarray(v, dtype=np.float32)
        blobs.append(a.tobytes())
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for blob in blobs:
            f.write(blob)


def write_adapter(d, adapters, targets):
    os.makedirs(d, exist_ok=True)
    tensors = []
    for name, (a, b) in adapters.items():
        tensors.append(("base_model.model.%s.lora_A.weight" % name, a))
        tensors.append(("base_model.model.%s.lora_B.weight" % name, b))
    write_safetensors(os.path.join(d, "adapter_model.safetensors"), tensors, {"format": "pt"})
    write_json(os.path.join(d, "adapter_config.json"), {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "tests/models/gpt2_tiny.onnx",
        "r": LORA["r"], "lora_alpha": LORA["alpha"], "lora_dropout": 0.0, "target_modules": targets,
        "bias": "none", "use_rslora": False, "fan_in_fan_out": False, "inference_mode": True})


def run_trajectory(model, init, data, final_ids, dtype):
    wrapped = install_lora(model, init, dtype)
    model.to(dtype)
    params = [p for m in wrapped.values() for p in (m.lora_A, m.lora_B)]
    opt = torch.optim.AdamW(params, lr=LORA["lr"], betas=LORA["betas"], eps=LORA["eps"],
                            weight_decay=LORA["weight_decay"])
    accum = LORA["batch_size"] // LORA["micro_batch_size"]
    losses, norms, cursor = [], [], 0
    for _ in range(LORA["steps"]):
        opt.zero_grad()
        total = 0.0
        for _ in range(accum):
            rows = [(cursor + i) % len(data) for i in range(LORA["micro_batch_size"])]
            cursor += LORA["micro_batch_size"]
            ids = torch.from_numpy(data[rows])
            loss = causal_lm_loss(model(ids), ids)
            (loss / accum).backward()
            total += loss.item()
        norm = torch.nn.utils.clip_grad_norm_(params, LORA["max_grad_norm"])
        opt.step()
        losses.append(total / accum)
        norms.append(float(norm))
    with torch.no_grad():
        logits = model(torch.from_numpy(final_ids))
    final = {n: (m.lora_A.detach().float().numpy(), m.lora_B.detach().float().numpy()) for n, m in wrapped.items()}
    return losses, norms, logits.float().numpy(), final


def record_trajectory(tmp, out):
    d = os.path.join(out, "gpt2_tiny")
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(2024)
    model, inits = check_committed("gpt2_tiny", make_models.build_gpt2, tmp)
    init = lora_init(model, g)
    data = torch.randint(0, 256, (LORA["n_samples"], LORA["seq_len"]), generator=g).numpy().astype(np.int64)
    final_ids = torch.randint(0, 256, (2, LORA["seq_len"]), generator=g).numpy().astype(np.int64)
    targets = sorted({n.rsplit(".", 1)[1] for n in init})

    write_adapter(os.path.join(d, "lora_init"), {n: (a.numpy(), b.numpy()) for n, (a, b) in init.items()}, targets)
    with open(os.path.join(d, "train.jsonl"), "w") as f:
        for row in data:
            f.write(json.dumps({"input_ids": [int(t) for t in row]}) + "\n")
    save_npy(os.path.join(d, "final_input_ids.npy"), final_ids)

    with float64_model(model):
        losses, norms, logits, final = run_trajectory(model, init, data, final_ids, torch.float64)
    model32, _ = check_committed("gpt2_tiny", make_models.build_gpt2, tmp)
    losses32, norms32, logits32, _ = run_trajectory(model32, init, data, final_ids, torch.float32)

    save_npy(os.path.join(d, "final_logits.npy"), logits)
    write_adapter(os.path.join(d, "lora_final"), final, targets)
    rel = lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))
    write_json(os.path.join(d, "trajectory.json"), {
        "model": "tests/models/gpt2_tiny.onnx", "data": "train.jsonl", "lora_init": "lora_init",
        "modules": list(init), "settings": dict(LORA, betas=list(LORA["betas"]), lr_schedule="constant",
                                                  shuffle=False, targets="all-linear (every nn.Linear)"),
        "precision": "float64 from float32 weights and adapter init",
        "losses": losses, "grad_norms": norms,
        "losses_float32_torch": losses32, "grad_norms_float32_torch": norms32,
        "float32_vs_float64": {"losses": rel(losses32, losses), "final_logits": rel(logits32, logits)},
        "final_logits": "final_logits.npy", "final_input_ids": "final_input_ids.npy", "lora_final": "lora_final"})
    print("gpt2_tiny LoRA: %d adapters; losses %s; grad norms %s; float32 vs float64 rel: losses %.2e, logits %.2e"
          % (len(init), " ".join("%.6f" % x for x in losses), " ".join("%.4f" % x for x in norms),
             rel(losses32, losses), rel(logits32, logits)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE, help="output folder (default: this script's folder)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one reduction order: the fixtures do not depend on the machine
    with tempfile.TemporaryDirectory(prefix="otref-") as tmp:
        for name in sorted(GRAD_CASES):
            record_grads(name, GRAD_CASES[name], tmp, args.out)
        record_trajectory(tmp, args.out)


if __name__ == "__main__":
    sys.exit(main())
