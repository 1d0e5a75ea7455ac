#!/usr/bin/python3
"""Record PyTorch's own bf16-vs-fp32 gap: the yardstick tests/e2e/test_precision.py holds
onnxtune's bf16 and fp16 training to (issue 4: "PyTorch autocast on the same model is the
yardstick: record its bf16-vs-fp32 gap and stay within it").

Run with Debian's python (torch 1.13; the project's .venv has no torch):

    /usr/bin/python3 tests/reference/make_precision_reference.py [--out tests/reference/precision]

For gpt2_tiny, llama_tiny and bert_tiny the LoRA trajectory of tests/reference/make_reference.py
(r 4, alpha 8, every linear but the head, AdamW lr 1e-3 betas (0.9, 0.999) eps 1e-8 weight decay
0.01, 6 steps of 4 samples as 2 micro-batches of 2, clip_grad_norm_ 1.0, constant LR, data in file
order) runs twice in PyTorch float32, single-threaded:
  - fp32: plain float32;
  - bf16: the same under torch.autocast("cpu", dtype=torch.bfloat16) for the forward (linear /
    matmul in bf16 on bf16-rounded weights and activations, softmax and layer_norm in fp32 by
    autocast's own lists); the loss is computed in fp32 from the logits and backward runs outside
    the autocast region, as PyTorch recommends. LoRA parameters and AdamW state stay fp32, which
    is exactly mixed precision with fp32 masters.
Per step it records both losses and grad norms and the relative loss gap
|loss_bf16 - loss_fp32| / |loss_fp32|; "bf16_gap" holds the per-step list, its max, and the final
adapter gap max_tensor max|A_bf16 - A_fp32| / max|A_fp32|, and "final_logits": the relative gap
max|z_bf16 - z_fp32| / max|z_fp32| of the two trained models' logits, both evaluated in fp32 on
tests/reference/gpt2_tiny/final_input_ids.npy (what their f32 exports would compute). "bf16_gap_other_seeds" repeats the
measurement with 4 other data/adapter seeds (same model, same settings) to show how much the gap
itself varies from one draw to the next (the margin the test allows on top of it).

fp16: torch 1.13's CPU autocast only accepts bfloat16 ("AutocastCPU only support Bfloat16"),
and CPU half GEMMs are not implemented there, so PyTorch's fp16 gap is not measurable on this
machine. The fp16 yardstick is the bf16 gap scaled by the ratio of unit roundoffs,
2^-11 / 2^-8 = 1/8 (fp16 keeps 10 mantissa bits + the implicit one, bf16 7 + 1): rounding error
to first order is proportional to the unit roundoff, so an fp16 run with the same data flow
departs from fp32 about 8x less than a bf16 one (as long as nothing underflows, which the loss
scaler is there to prevent). Recorded as "fp16": {"measurable": false, ...}.

Inputs (deterministic; same torch, same bytes out):
  gpt2_tiny: tests/reference/gpt2_tiny/train.jsonl and lora_init/ (the fp32 LoRA reference's own
             data and adapter, so the onnxtune fp32 run is the one test_train.py checks);
  llama_tiny, bert_tiny: written here to tests/reference/precision/<model>/ (train.jsonl: 8
             samples; llama {"input_ids": [16]}, bert {"input_ids": [16], "attention_mask": [16],
             "labels": class}; lora_init/: a PEFT adapter, A uniform +-1/sqrt(in), B uniform
             +-0.05, as make_reference.lora_init draws it).
Output: tests/reference/precision/<model>.json.
"""
import argparse
import json
import os
import struct
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import make_reference as mr  # noqa: E402  (also puts tests/models on sys.path)
import make_models  # noqa: E402

LORA = mr.LORA
U_BF16, U_FP16 = 2.0 ** -8, 2.0 ** -11  # unit roundoff (half an ulp at 1) of bf16 and fp16
# the input the trained models' logits are compared on (all-ones attention mask for bert)
PROBE_IDS = np.load(os.path.join(REPO, "tests", "reference", "gpt2_tiny", "final_input_ids.npy")).tolist()

MODELS = {
    "gpt2_tiny": dict(builder=make_models.build_gpt2, loss="causal-lm", head=None, seed=None),
    "llama_tiny": dict(builder=make_models.build_llama, loss="causal-lm", head="lm_head", seed=3001),
    "bert_tiny": dict(builder=make_models.build_bert, loss="cross-entropy", head="classifier", seed=3002),
}
OTHER_SEEDS = [11, 12, 13, 14]


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (path, k, v["dtype"])
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(data[s:e], dtype=np.float32).reshape(v["shape"]).copy()
    return out


def adapted(model, head):
    """(name, nn.Linear) LoRA adapts: every nn.Linear but the head, as onnxtune's all-linear."""
    return [(n, m) for n, m in mr.lora_modules(model) if n != head]


# --------------------------------------------------------------------------------------------
# data and adapter init
# --------------------------------------------------------------------------------------------
def committed_gpt2():
    ref = os.path.join(REPO, "tests", "reference", "gpt2_tiny")
    with open(os.path.join(ref, "train.jsonl")) as f:
        rows = [json.loads(ln) for ln in f if ln.strip()]
    st = read_safetensors(os.path.join(ref, "lora_init", "adapter_model.safetensors"))
    init = {}
    for k, v in st.items():
        mod, which = k[len("base_model.model."):].rsplit(".lora_", 1)
        init.setdefault(mod, [None, None])["AB".index(which[0])] = torch.from_numpy(v)
    return rows, {k: tuple(v) for k, v in init.items()}, "tests/reference/gpt2_tiny/train.jsonl", \
        "tests/reference/gpt2_tiny/lora_init"


def draw(model, case, seed):
    """Data rows and an adapter init drawn from `seed` (A: +-1/sqrt(in), B: +-0.05)."""
    g = torch.Generator().manual_seed(seed)
    init = {}
    for name, lin in adapted(model, case["head"]):
        bound = 1.0 / lin.in_features ** 0.5
        a = (torch.rand(LORA["r"], lin.in_features, generator=g) * 2 - 1) * bound
        b = (torch.rand(lin.out_features, LORA["r"], generator=g) * 2 - 1) * 0.05
        init[name] = (a.float(), b.float())
    n, s = LORA["n_samples"], LORA["seq_len"]
    ids = torch.randint(0, 256, (n, s), generator=g).tolist()
    if case["loss"] == "causal-lm":
        return [{"input_ids": r} for r in ids], init
    rows = []
    for i, r in enumerate(ids):
        keep = s - (i % 3) * 3  # some rows padded at the end: 16, 13, 10 attended tokens
        rows.append({"input_ids": r, "attention_mask": [1] * keep + [0] * (s - keep), "labels": i % 3})
    return rows, init


def write_inputs(d, rows, init, model_name, task):
    os.makedirs(os.path.join(d, "lora_init"), exist_ok=True)
    with open(os.path.join(d, "train.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    tensors = []
    for name, (a, b) in init.items():
        tensors += [("base_model.model.%s.lora_A.weight" % name, a.numpy()),
                    ("base_model.model.%s.lora_B.weight" % name, b.numpy())]
    mr.write_safetensors(os.path.join(d, "lora_init", "adapter_model.safetensors"), tensors, {"format": "pt"})
    mr.write_json(os.path.join(d, "lora_init", "adapter_config.json"), {
        "peft_type": "LORA", "task_type": task, "base_model_name_or_path": "tests/models/%s.onnx" % model_name,
        "r": LORA["r"], "lora_alpha": LORA["alpha"], "lora_dropout": 0.0,
        "target_modules": sorted({n.rsplit(".", 1)[1] for n in init}), "bias": "none", "use_rslora": False,
        "fan_in_fan_out": False, "inference_mode": True})


# --------------------------------------------------------------------------------------------
# one LoRA run, fp32 or bf16 autocast
# --------------------------------------------------------------------------------------------
def run(case, tmp, name, rows, init, bf16):
    model, _ = mr.check_committed(name, case["builder"], tmp)
    for p in model.parameters():
        p.requires_grad_(False)
    scale = LORA["alpha"] / LORA["r"]
    wrapped = {}
    for mod_name, lin in adapted(model, case["head"]):
        parent = model.get_submodule(mod_name.rsplit(".", 1)[0])
        a, b = init[mod_name]
        m = mr.LoRALinear(lin, a, b, scale)
        setattr(parent, mod_name.rsplit(".", 1)[1], m)
        wrapped[mod_name] = m
    assert sorted(wrapped) == sorted(init), (sorted(wrapped), sorted(init))
    params = [p for m in wrapped.values() for p in (m.lora_A, m.lora_B)]
    opt = torch.optim.AdamW(params, lr=LORA["lr"], betas=LORA["betas"], eps=LORA["eps"],
                            weight_decay=LORA["weight_decay"])
    ids_all = torch.tensor([r["input_ids"] for r in rows], dtype=torch.int64)
    mask_all = torch.tensor([r["attention_mask"] for r in rows], dtype=torch.int64) if "attention_mask" in rows[0] else None
    labels_all = torch.tensor([r["labels"] for r in rows], dtype=torch.int64) if case["loss"] == "cross-entropy" else None
    accum = LORA["batch_size"] // LORA["micro_batch_size"]
    losses, norms, cursor = [], [], 0
    for _ in range(LORA["steps"]):
        opt.zero_grad()
        total = 0.0
        for _ in range(accum):
            sel = torch.tensor([(cursor + i) % len(rows) for i in range(LORA["micro_batch_size"])])
            cursor += LORA["micro_batch_size"]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                if mask_all is not None:
                    logits = model(ids_all[sel], mask_all[sel])
                else:
                    logits = model(ids_all[sel])
            logits = logits.float()  # the loss in fp32, outside autocast
            if case["loss"] == "causal-lm":
                loss = mr.causal_lm_loss(logits, ids_all[sel])
            else:
                loss = F.cross_entropy(logits, labels_all[sel])
            (loss / accum).backward()
            total += loss.item()
        norm = torch.nn.utils.clip_grad_norm_(params, LORA["max_grad_norm"])
        opt.step()
        losses.append(total / accum)
        norms.append(float(norm))
    final = {n: (m.lora_A.detach().numpy().copy(), m.lora_B.detach().numpy().copy()) for n, m in wrapped.items()}
    with torch.no_grad():  # the trained model's logits, evaluated in fp32 (as its f32 export would run)
        probe = torch.tensor(PROBE_IDS, dtype=torch.int64)
        logits = model(probe, torch.ones_like(probe)) if mask_all is not None else model(probe)
    return losses, norms, final, logits.numpy()


def gaps(l32, l16, f32, f16):
    per_step = [abs(a - b) / abs(b) for a, b in zip(l16, l32)]
    adapter = max(rel(f16[n][k], f32[n][k]) for n in f32 for k in (0, 1))
    return per_step, adapter


def record(name, case, tmp, out):
    model, _ = mr.check_committed(name, case["builder"], tmp)
    if case["seed"] is None:
        rows, init, data_rel, init_rel = committed_gpt2()
    else:
        rows, init = draw(model, case, case["seed"])
        d = os.path.join(out, name)
        write_inputs(d, rows, init, name, "CAUSAL_LM" if case["loss"] == "causal-lm" else "SEQ_CLS")
        data_rel = os.path.relpath(os.path.join(d, "train.jsonl"), REPO)
        init_rel = os.path.relpath(os.path.join(d, "lora_init"), REPO)
    l32, n32, f32, z32 = run(case, tmp, name, rows, init, bf16=False)
    l16, n16, f16, z16 = run(case, tmp, name, rows, init, bf16=True)
    per_step, adapter = gaps(l32, l16, f32, f16)
    moved = max(rel(f32[n][k], init[n][k].numpy()) for n in f32 for k in (0, 1))
    others = []
    for seed in OTHER_SEEDS:
        r2, i2 = draw(model, case, seed)
        a32, _, g32, y32 = run(case, tmp, name, r2, i2, bf16=False)
        a16, _, g16, y16 = run(case, tmp, name, r2, i2, bf16=True)
        p2, ad2 = gaps(a32, a16, g32, g16)
        others.append({"seed": seed, "max_loss_gap": max(p2), "final_adapter_gap": ad2,
                       "final_logits_gap": rel(y16, y32)})
    ratio = U_FP16 / U_BF16
    res = {
        "model": "tests/models/%s.onnx" % name, "loss_kind": case["loss"], "data": data_rel, "lora_init": init_rel,
        "lora_targets": "all-linear (every nn.Linear but the head%s)" % (
            ": %s" % case["head"] if case["head"] else "; gpt2's head is the tied embedding, no Linear"),
        "settings": dict(LORA, betas=list(LORA["betas"]), lr_schedule="constant", shuffle=False),
        "torch": torch.__version__, "threads": 1,
        "bf16_how": "torch.autocast('cpu', dtype=torch.bfloat16) around the forward; loss in fp32 from "
                    "logits.float(); backward outside autocast; fp32 LoRA params and AdamW state",
        "fp32": {"losses": l32, "grad_norms": n32},
        "bf16": {"losses": l16, "grad_norms": n16},
        "probe_input_ids": "tests/reference/gpt2_tiny/final_input_ids.npy",
        "bf16_gap": {"per_step": per_step, "max": max(per_step), "final_adapter": adapter,
                     "final_logits": rel(z16, z32),
                     "grad_norm_max": max(abs(a - b) / b for a, b in zip(n16, n32))},
        "adapter_moved_fp32": moved,
        "bf16_gap_other_seeds": others,
        "fp16": {"measurable": False,
                 "why": "torch %s CPU autocast supports only bfloat16 and CPU half GEMMs are not implemented"
                        % torch.__version__,
                 "yardstick": "bf16 gap x unit-roundoff ratio 2^-11 / 2^-8 = %g" % ratio,
                 "max": max(per_step) * ratio, "per_step": [g * ratio for g in per_step],
                 "final_adapter": adapter * ratio, "final_logits": rel(z16, z32) * ratio},
    }
    mr.write_json(os.path.join(out, name + ".json"), res)
    print("%s: fp32 losses %s\n  bf16 losses %s\n  bf16 gap per step %s (max %.2e); final adapter gap %.2e "
          "(adapter moved %.2e); final logits gap %.2e; other seeds max gap %s" % (
              name, " ".join("%.6f" % x for x in l32), " ".join("%.6f" % x for x in l16),
              " ".join("%.1e" % x for x in per_step), max(per_step), adapter, moved, rel(z16, z32),
              " ".join("%.1e" % o["max_loss_gap"] for o in others)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "precision"), help="output folder")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of %s" % ",".join(MODELS))
    args = ap.parse_args()
    torch.set_num_threads(1)  # one reduction order: the fixtures do not depend on the machine
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="otprec-") as tmp:
        for name in args.models.split(","):
            record(name, MODELS[name], tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
