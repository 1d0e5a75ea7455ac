"""Mixed precision end to end (issue 4): `onnxtune train --precision bf16|fp16` through the CLI.

  1. trajectories: gpt2_tiny, llama_tiny and bert_tiny trained with the LoRA set-up of the fp32
     reference (tests/reference/make_reference.py: r 4, alpha 8, all-linear, 6 AdamW steps of 4
     samples as 2 micro-batches of 2, clipping at 1, constant LR, file order) in bf16 and fp16
     track onnxtune's own fp32 run step by step, within a tolerance taken from PyTorch's
     bf16-autocast gap on the same run (tests/reference/precision/<model>.json, recorded by
     tests/reference/make_precision_reference.py). The fp32 run itself is anchored to PyTorch's
     fp32 losses (1e-4, the issue-3 tolerance).
  2. fp16 underflow: a one-MatMul model with an MSE loss whose every gradient is below half of
     fp16's smallest subnormal (so it rounds to 0) at loss scale 1 and representable at 2^16:
     `--loss-scale 1` learns nothing (same loss every step, checkpoint weights bit-equal to the
     initial ones), the default dynamic scaler (2^16) learns, like fp32 does.
  3. fp16 overflow: an initial scale of 1e30 makes every gradient inf: the step lines say
     skipped, the scale halves each step until the gradients are finite, and the weights of the
     skipped steps are untouched (same loss on the same batch; checkpoint equal to the start).
  4. checkpoint/resume bit-exact in fp32, bf16 and fp16, the loss scaler included.
  5. export keeps the source dtype: a bf16-trained LoRA of an f32 model exports f32 ONNX that
     ORT runs, close to the fp32-trained export; --export-dtype bf16 writes BF16 safetensors that
     are the round-to-nearest-even of the f32 export.

Step lines of --log-json carry "loss_scale" and "skipped" (issue 4: "the scale and its counters
are logged"); a line with "precision" states the run's precision. Relative error is
max|got - ref| / max|ref| unless said otherwise.
"""
import json
import os
import re
import struct
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "parity"))
from otrun import run_ort  # noqa: E402
from test_train import (REF, GPT2, cli, ok, raw_field, read_log, read_safetensors,  # noqa: E402
                        latest_checkpoint, rel_err)

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
PREC = os.path.join(REPO, "tests", "reference", "precision")
MODELS = ["gpt2_tiny", "llama_tiny", "bert_tiny"]
FP32_TORCH_TOL = 1e-4  # issue 3's trajectory tolerance; measured onnxtune fp32 vs PyTorch fp32: < 1.1e-7
# A "bf16"/"fp16" run must actually round: its loss differs from fp32's somewhere by more than the
# fp32 noise (onnxtune fp32 vs PyTorch fp32 differ by at most 1.1e-7 on these runs).
MIN_LOWP_GAP = 1e-6
U_RATIO = 2.0 ** -11 / 2.0 ** -8  # fp16 / bf16 unit roundoff


def yardstick(model):
    with open(os.path.join(PREC, model + ".json")) as f:
        return json.load(f)


def lowp_tol(model, precision):
    """Per-step relative loss gap allowed between onnxtune's bf16/fp16 run and its fp32 run.

    max(2 x PyTorch's recorded bf16 gap, floor), floor = the largest bf16 gap PyTorch itself shows
    on the same model over 5 draws of data and adapter init (the recorded one and 4 others, in the
    yardstick file). Why both:
      - 2x: onnxtune stores every activation and gradient in 16 bits (the residual stream too),
        PyTorch's autocast only rounds the inputs and outputs of linear/matmul; roughly twice the
        rounding points along the forward path, and rounding errors of independent points add
        in quadrature or, at worst, linearly: 2x covers the linear case;
      - floor: the gap of one draw is itself noisy; PyTorch's own gap varies by up to 3x from one
        draw to the next on these models (gpt2_tiny 1.3e-4 .. 5.7e-4), so a single draw's gap x 2
        alone could reject an implementation whose rounding is exactly PyTorch's.
    fp16: the same with PyTorch's bf16 numbers scaled by the unit-roundoff ratio 1/8 (PyTorch
    1.13 cannot run fp16 autocast on CPU; see make_precision_reference.py).
    Measured (first onnxtune bf16/fp16, gcc Release, this CPU), max per-step gap / tolerance:
      bf16: gpt2 5.1e-4 / 5.7e-4, llama 1.1e-4 / 1.3e-4, bert 9.8e-4 / 1.3e-3 (PyTorch 1.9e-4,
            6.5e-5, 6.7e-4: onnxtune's gap is 1.5-2.7x PyTorch's, the more-rounding-points case);
      fp16: gpt2 6.2e-5 / 7.2e-5, llama 9.1e-6 / 1.6e-5, bert 1.2e-4 / 1.7e-4.
    The tolerances stay 10x (llama) to 100x (gpt2, bert) below how far each trajectory moves
    (test_yardstick_is_meaningful), so a wrong lowp kernel or a missing master-weight update fails.
    """
    y = yardstick(model)
    gap = y["bf16_gap"]["max"]
    floor = max([gap] + [o["max_loss_gap"] for o in y["bf16_gap_other_seeds"]])
    tol = max(2 * gap, floor)
    return tol if precision == "bf16" else tol * U_RATIO


def lora_args(model, out, log, steps=6, **over):
    y = yardstick(model)
    opts = {"--model": os.path.join(REPO, y["model"]), "--data": os.path.join(REPO, y["data"]), "--out": out,
            "--lora-init": os.path.join(REPO, y["lora_init"]), "--lora-r": 4, "--lora-alpha": 8,
            "--lora-targets": "all-linear", "--steps": steps, "--batch-size": 4, "--micro-batch-size": 2,
            "--lr": "1e-3", "--weight-decay": 0.01, "--lr-schedule": "constant", "--max-grad-norm": 1,
            "--seq-len": 16, "--lora-dropout": 0, "--log-json": log}
    if y["loss_kind"] == "cross-entropy":
        opts["--loss"] = "cross-entropy"
    for k, v in over.items():
        opts["--" + k.replace("_", "-")] = v
    args = ["train"]
    for k, v in opts.items():
        if v is not None:
            args += [k, v]
    return args + ["--no-shuffle"]


def step_lines(log):
    """The per-step records [(rec, raw line)] (not eval or memory/summary lines)."""
    return [(r, ln) for r, ln in read_log(log) if "step" in r and "loss" in r and not r.get("eval")]


_runs = {}


def lora_run(model, precision, tmp_path_factory):
    """onnxtune's 6-step LoRA run of `model` in `precision` (cached per module)."""
    key = (model, precision)
    if key not in _runs:
        d = tmp_path_factory.mktemp("%s_%s" % key)
        out, log = str(d / "run"), str(d / "log.jsonl")
        proc = ok(cli(*lora_args(model, out, log, precision=precision)))
        _runs[key] = {"out": out, "log": step_lines(log), "all": read_log(log, all_lines=True), "proc": proc}
    return _runs[key]


# ------------------------------------------------------------------------------------------
# 1. trajectories
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
def test_yardstick_is_meaningful(model):
    """The recorded gap is far below how much training moves the loss, and the fp16 yardstick is
    the bf16 one scaled by 1/8 (PyTorch 1.13 cannot measure fp16 on CPU)."""
    y = yardstick(model)
    l32 = y["fp32"]["losses"]
    assert len(l32) == 6 and len(y["bf16"]["losses"]) == 6
    spread = (max(l32) - min(l32)) / max(abs(x) for x in l32)
    assert spread > 10 * lowp_tol(model, "bf16"), (spread, lowp_tol(model, "bf16"))
    assert 0 < y["bf16_gap"]["max"] < 1e-2
    assert y["fp16"]["measurable"] is False
    assert y["fp16"]["max"] == pytest.approx(y["bf16_gap"]["max"] * U_RATIO, rel=1e-12)


@pytest.mark.parametrize("model", MODELS)
def test_fp32_matches_pytorch_fp32(model, tmp_path_factory):
    """The anchor: onnxtune's fp32 run is PyTorch's fp32 run (so the lowp gaps below are gaps of
    the same training)."""
    run = lora_run(model, "fp32", tmp_path_factory)
    ref = yardstick(model)["fp32"]["losses"]
    got = [r["loss"] for r, _ in run["log"]]
    assert [r["step"] for r, _ in run["log"]] == [1, 2, 3, 4, 5, 6]
    errs = [abs(a - b) / abs(b) for a, b in zip(got, ref)]
    print("%s fp32 vs PyTorch fp32: %s" % (model, " ".join("%.1e" % e for e in errs)))
    assert max(errs) < FP32_TORCH_TOL


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("model", MODELS)
def test_lowp_tracks_fp32(model, precision, tmp_path_factory):
    ref = lora_run(model, "fp32", tmp_path_factory)
    run = lora_run(model, precision, tmp_path_factory)
    recs = [r for r, _ in run["log"]]
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5, 6], run["proc"].stderr
    # a skipped step would shift the whole trajectory: at the default 2^16 these tiny models'
    # scaled gradients stay below fp16's max (PyTorch fp32: largest activation gradient x 2^16
    # is 1.2e4 on bert_tiny, 6.1e3 on gpt2_tiny)
    for r in recs:
        assert r["skipped"] is False, r
        assert np.isfinite(r["loss_scale"]) and r["loss_scale"] > 0, r
        if precision == "bf16":
            assert r["loss_scale"] == 1, "bf16 does not scale the loss: %s" % r
    tol = lowp_tol(model, precision)
    gaps = [abs(r["loss"] - f["loss"]) / abs(f["loss"]) for r, (f, _) in zip(recs, ref["log"])]
    torch_gap = yardstick(model)["bf16_gap"]["max"] * (1 if precision == "bf16" else U_RATIO)
    print("%s %s vs fp32 per-step loss gap: %s (max %.2e; PyTorch %s %.2e; tolerance %.2e)" % (
        model, precision, " ".join("%.1e" % g for g in gaps), max(gaps), precision, torch_gap, tol))
    assert max(gaps) < tol
    assert max(gaps) > MIN_LOWP_GAP, "%s run equals the fp32 run: no rounding happened" % precision


# ------------------------------------------------------------------------------------------
# 2./3. the fp16 loss scaler on a model made for it
# ------------------------------------------------------------------------------------------
UF_IN, UF_OUT, UF_BATCH = 16, 2048, 64
UF_N = UF_BATCH * UF_OUT  # 2^17 elements in the MSE mean
F16_HALF_MIN_SUBNORMAL = 2.0 ** -25  # |g| <= this rounds to 0 in fp16 (ties to even at 2^-25)
F16_MIN_SUBNORMAL = 2.0 ** -24       # 5.96e-8


@pytest.fixture(scope="module")
def underflow_model(tmp_path_factory):
    """y = x @ W, x [64, 16], W [16, 2048], MSE against 0: loss = mean(y^2), dL/dy = 2y / 2^17.

    x ~ U(-1, 1) 2^-6 and W ~ U(-1, 1) scaled by a power of two so that max|y| = 2^-10 or just
    below; both are fp16 values (narrowing them is exact, so fp32 and fp16 runs see the same
    model). Then |dL/dy| <= 2^-10 * 2 / 2^17 = 2^-26 < 2^-25: every output gradient rounds to 0
    in fp16 at scale 1; at scale 2^16 they are y itself, around 2e-4 (normal fp16). The unscaled
    gradients (~4e-9) are below Adam's eps 1e-8, which damps each step to ~0.3 lr; lr 1e-2
    against W's rms 4.5e-3 then takes fp32's loss to ~0.45 of its start in 5 steps (numpy)."""
    d = tmp_path_factory.mktemp("underflow")
    rng = np.random.default_rng(4)
    x = (rng.uniform(-1, 1, (UF_BATCH, UF_IN)) * 2.0 ** -6).astype(np.float16).astype(np.float32)
    w = rng.uniform(-1, 1, (UF_IN, UF_OUT))
    y = x.astype(np.float64) @ w
    w = (w * 2.0 ** np.floor(np.log2(2.0 ** -10 / np.abs(y).max()))).astype(np.float16).astype(np.float32)
    y = x.astype(np.float64) @ w.astype(np.float64)
    assert np.abs(y).max() <= 2.0 ** -10 * (1 + 2.0 ** -8)
    g = 2 * y / UF_N                                 # dL/dy, exact
    gw = x.astype(np.float64).T @ g                  # dL/dW, exact
    assert np.abs(g).max() <= F16_HALF_MIN_SUBNORMAL and np.abs(gw).max() <= F16_HALF_MIN_SUBNORMAL
    assert np.mean(np.abs(g * 2.0 ** 16) >= F16_MIN_SUBNORMAL) > 0.99
    assert np.mean(np.abs(gw * 2.0 ** 16) >= F16_MIN_SUBNORMAL) > 0.99
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="/fc/MatMul")], "underflow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", UF_IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", UF_OUT])],
        [numpy_helper.from_array(w, "W")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test_precision")
    m.ir_version = 8
    onnx.checker.check_model(m)
    path = str(d / "underflow.onnx")
    onnx.save(m, path)
    data = str(d / "data.jsonl")
    zeros = [0.0] * UF_OUT  # written "0.0": the labels are float32
    with open(data, "w") as f:
        for row in x:
            f.write(json.dumps({"x": [float(v) for v in row], "labels": zeros}) + "\n")
    return {"model": path, "data": data, "w": w, "dir": d}


def mlp_train(um, name, steps, **over):
    out, log = str(um["dir"] / name), str(um["dir"] / (name + ".jsonl"))
    opts = {"--model": um["model"], "--data": um["data"], "--out": out, "--full": None, "--loss": "mse",
            "--steps": steps, "--batch-size": UF_BATCH, "--micro-batch-size": UF_BATCH, "--lr": "1e-2",
            "--weight-decay": 0, "--lr-schedule": "constant", "--max-grad-norm": 0, "--log-json": log}
    for k, v in over.items():
        opts["--" + k.replace("_", "-")] = v
    args = ["train"]
    for k, v in opts.items():
        args += [k] if v is None else [k, v]
    ok(cli(*(args + ["--no-shuffle"])))
    return out, log


def trained_w(out):
    """The trained W from the run's last checkpoint (the f32 master), in the ONNX layout."""
    t = read_safetensors(os.path.join(latest_checkpoint(out), "trainable.safetensors"))
    assert len(t) == 1, sorted(t)
    (w,) = t.values()
    assert w.dtype == np.float32
    return w if w.shape == (UF_IN, UF_OUT) else w.T


def test_fp16_underflow_needs_loss_scaling(underflow_model):
    um = underflow_model
    _, log32 = mlp_train(um, "fp32", 5, precision="fp32")
    out1, log1 = mlp_train(um, "fp16_scale1", 5, precision="fp16", loss_scale=1)
    _, logd = mlp_train(um, "fp16_dynamic", 5, precision="fp16")
    l32 = [r["loss"] for r, _ in step_lines(log32)]
    s1, sd = step_lines(log1), step_lines(logd)
    print("fp32 losses %s\nfp16 scale 1 %s\nfp16 dynamic %s" % (l32, [r["loss"] for r, _ in s1],
                                                               [r["loss"] for r, _ in sd]))
    # the set-up learns in fp32 ...
    assert l32[-1] < 0.9 * l32[0]
    # ... not at all in fp16 without scaling: every gradient is 0, nothing moves
    assert len(s1) == 5
    assert len({raw_field(ln, "loss") for _, ln in s1}) == 1, [ln for _, ln in s1]
    for r, _ in s1:
        assert r["loss_scale"] == 1 and r["skipped"] is False, r
        assert r["grad_norm"] == 0, r
    np.testing.assert_array_equal(trained_w(out1), um["w"])
    # ... and with the dynamic scaler (2^16) it learns like fp32
    assert len(sd) == 5
    assert all(r["loss_scale"] == 65536 and r["skipped"] is False for r, _ in sd), [ln for _, ln in sd]
    ld = [r["loss"] for r, _ in sd]
    assert ld[-1] < 0.9 * ld[0]
    assert abs(ld[0] - l32[0]) / l32[0] < 1e-2  # same model, same start (fp16 rounds y)
    assert (ld[0] - ld[-1]) > 0.5 * (l32[0] - l32[-1]), (ld, l32)


def test_fp16_overflow_skips_and_halves(underflow_model):
    um = underflow_model
    steps = 140  # 1e30 = 2^99.7: about 70 to 100 halvings bring the scaled gradients under 65504
    _, log = mlp_train(um, "overflow", steps, precision="fp16", loss_scale_init="1e30", loss_scale_max="1e30")
    recs = step_lines(log)
    assert len(recs) == steps
    skipped = [r["skipped"] for r, _ in recs]
    k = skipped.index(False) if False in skipped else steps
    assert 0 < k < steps, "first good step %d of %d" % (k, steps)
    assert not any(skipped[k:]), "a step after the scale settled was skipped"
    scales = [r["loss_scale"] for r, _ in recs]
    assert scales[0] == pytest.approx(1e30, rel=1e-8)
    for i in range(1, k + 1):  # halved after every skipped step, until a step is finite
        assert scales[i] == pytest.approx(scales[i - 1] / 2, rel=1e-8), (i, scales[i - 1], scales[i])
    assert len(set(scales[k:])) == 1  # then it stays (window 2000 > steps)
    for r, _ in recs[k:]:
        assert np.isfinite(r["grad_norm"]), r
    # skipped steps leave the weights alone: the same batch gives the same loss, bit for bit,
    # up to and including the first good step; that step's update then changes it
    losses = [raw_field(ln, "loss") for _, ln in recs]
    assert len(set(losses[:k + 1])) == 1, losses[:k + 1]
    assert recs[k + 1][0]["loss"] < recs[k][0]["loss"]
    print("%d skipped steps; scale %g -> %g; loss %s -> %s" % (k, scales[0], scales[k], losses[0], losses[-1]))
    # a run of only skipped steps checkpoints the initial weights
    out, _ = mlp_train(um, "overflow_only", k, precision="fp16", loss_scale_init="1e30", loss_scale_max="1e30")
    np.testing.assert_array_equal(trained_w(out), um["w"])


def test_fp16_overflow_on_gpt2_leaves_adapter_untouched(tmp_path):
    """The same on a real model: 3 steps at 1e30, 5e29, 2.5e29 all overflow; the checkpointed
    adapter is the --lora-init one, bit for bit."""
    out, log = str(tmp_path / "run"), str(tmp_path / "log.jsonl")
    ok(cli(*lora_args("gpt2_tiny", out, log, steps=3, precision="fp16", loss_scale_init="1e30",
                      loss_scale_max="1e30")))
    recs = [r for r, _ in step_lines(log)]
    assert [r["skipped"] for r in recs] == [True, True, True], recs
    assert [r["loss_scale"] for r in recs] == pytest.approx([1e30, 5e29, 2.5e29], rel=1e-8)
    # the scaler's counters are logged with every fp16 step
    assert [(r["good_steps"], r["skipped_steps"]) for r in recs] == [(0, 1), (0, 2), (0, 3)], recs
    init = read_safetensors(os.path.join(REF, "lora_init", "adapter_model.safetensors"))
    got = read_safetensors(os.path.join(latest_checkpoint(out), "trainable.safetensors"))
    assert len(got) == len(init)
    for k, v in got.items():
        np.testing.assert_array_equal(v, init["base_model.model." + k], err_msg=k)


def test_log_states_precision(underflow_model):
    """Some line of the log (the memory/summary line) says which precision ran."""
    for precision in ("fp16", "bf16"):
        _, log = mlp_train(underflow_model, "prec_" + precision, 1, precision=precision)
        stated = [r["precision"] for r, _ in read_log(log, all_lines=True) if "precision" in r]
        assert stated and set(stated) == {precision}, read_log(log, all_lines=True)


# ------------------------------------------------------------------------------------------
# 4. resume
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_resume_bit_exact(tmp_path, precision):
    """6 steps with --save-every 3 vs 3 steps then --resume to 6: steps 4..6 log the same loss,
    grad_norm and loss_scale strings and end in the same checkpoint tensors. fp16 uses
    --loss-scale-window 2: the scale doubles after steps 2, 4 and 6 (or halves on an overflow),
    so the resume point (step 3) sits mid-window and a scaler restored without its good-step
    counter would change scale at the wrong step."""
    extra = {"precision": precision}
    if precision == "fp16":
        extra["loss_scale_window"] = 2
    full_out, full_log = str(tmp_path / "full"), str(tmp_path / "full.jsonl")
    ok(cli(*lora_args("gpt2_tiny", full_out, full_log, save_every=3, **extra)))
    part_out, log1, log2 = str(tmp_path / "part"), str(tmp_path / "p1.jsonl"), str(tmp_path / "p2.jsonl")
    ok(cli(*lora_args("gpt2_tiny", part_out, log1, steps=3, **extra)))
    ok(cli(*lora_args("gpt2_tiny", part_out, log2, resume=part_out, **extra)))
    full, resumed = step_lines(full_log), step_lines(log2)
    assert [r["step"] for r, _ in resumed] == [4, 5, 6]
    for (a, la), (_, lb) in zip(full[3:], resumed):
        for key in ("loss", "grad_norm", "loss_scale", "skipped"):
            assert raw_field(la, key) == raw_field(lb, key), "step %d %s: %s vs %s" % (
                a["step"], key, raw_field(la, key), raw_field(lb, key))
    if precision == "fp16":
        assert len({r["loss_scale"] for r, _ in full}) > 1, "the scale never changed: %s" % [
            r["loss_scale"] for r, _ in full]
    ck_a, ck_b = latest_checkpoint(full_out), latest_checkpoint(part_out)
    files = sorted(f for f in os.listdir(ck_a) if f.endswith(".safetensors"))
    assert "trainable.safetensors" in files
    assert files == sorted(f for f in os.listdir(ck_b) if f.endswith(".safetensors"))
    for f in files:
        wa, wb = read_safetensors(os.path.join(ck_a, f)), read_safetensors(os.path.join(ck_b, f))
        assert sorted(wa) == sorted(wb), f
        for k in wa:
            np.testing.assert_array_equal(wa[k], wb[k], err_msg="%s %s" % (f, k))


# ------------------------------------------------------------------------------------------
# 5. export dtypes
# ------------------------------------------------------------------------------------------
def safetensors_dtypes_and_bits(path):
    """{name: (dtype string as the safetensors package reads it, raw uint16/uint32 array)}."""
    from safetensors import safe_open
    with safe_open(path, framework="numpy") as f:
        dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        width = {"BF16": np.uint16, "F16": np.uint16, "F32": np.uint32}.get(v["dtype"], np.uint8)
        out[k] = (dtypes[k], np.frombuffer(data[s:e], dtype=width).reshape(v["shape"] if width != np.uint8 else -1))
    return out


def f32_to_bf16_bits(a):
    """Round to nearest even, as core/dtype.h does (no NaNs here)."""
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def run_export(tmp_path, name, precision, export, export_dtype=None):
    out = str(tmp_path / name)
    args = lora_args("gpt2_tiny", out, str(tmp_path / (name + ".jsonl")), precision=precision)
    args[0] = "run"
    args += ["--export", export]
    if export_dtype:
        args += ["--export-dtype", export_dtype]
    ok(cli(*args))
    return os.path.join(out, "export")


def test_export_keeps_source_dtype(tmp_path):
    """A bf16-trained LoRA of the f32 gpt2_tiny exports f32 ONNX (merged from the f32 masters),
    ORT runs it, and its logits are within PyTorch's own bf16-vs-fp32 logits gap (x2, floor the
    worst of PyTorch's 5 draws, as for the losses) of the fp32-trained export, yet not equal."""
    e16 = run_export(tmp_path, "bf16", "bf16", "onnx,safetensors")
    e32 = run_export(tmp_path, "fp32", "fp32", "onnx")
    src = onnx.load(GPT2).graph
    got = onnx.load(os.path.join(e16, "model.onnx")).graph
    src_t = {i.name: i.data_type for i in src.initializer}
    assert {i.name: i.data_type for i in got.initializer} == src_t
    assert all(t != TensorProto.BFLOAT16 for t in src_t.values())
    ids = np.load(os.path.join(REF, "final_input_ids.npy"))
    z16 = run_ort(os.path.join(e16, "model.onnx"), {"input_ids": ids})["logits"]
    z32 = run_ort(os.path.join(e32, "model.onnx"), {"input_ids": ids})["logits"]
    assert z16.dtype == np.float32
    y = yardstick("gpt2_tiny")
    tol = max(2 * y["bf16_gap"]["final_logits"], max(o["final_logits_gap"] for o in y["bf16_gap_other_seeds"]))
    err = rel_err(z16, z32)
    print("bf16-trained vs fp32-trained export logits: rel %.2e (PyTorch %.2e, tolerance %.2e)" % (
        err, y["bf16_gap"]["final_logits"], tol))
    assert 0 < err < tol
    # safetensors as-source: F32 tensors
    st = safetensors_dtypes_and_bits(os.path.join(e16, "model.safetensors"))
    kinds = {d for d, _ in st.values()}
    assert "F32" in kinds and not kinds & {"BF16", "F16"}, kinds


def test_export_dtype_bf16_safetensors(tmp_path):
    """--export-dtype bf16 --export safetensors: every float tensor BF16, equal to the
    round-to-nearest-even of the same (deterministic) run's as-source F32 export."""
    e_src = run_export(tmp_path, "src", "bf16", "safetensors")
    e_bf = run_export(tmp_path, "bf", "bf16", "safetensors", export_dtype="bf16")
    a = safetensors_dtypes_and_bits(os.path.join(e_src, "model.safetensors"))
    b = safetensors_dtypes_and_bits(os.path.join(e_bf, "model.safetensors"))
    assert sorted(a) == sorted(b)
    n_float = 0
    for k, (dt, bits) in a.items():
        if dt != "F32":
            assert b[k][0] == dt, k
            continue
        n_float += 1
        assert b[k][0] == "BF16", "%s: %s" % (k, b[k][0])
        np.testing.assert_array_equal(b[k][1], f32_to_bf16_bits(bits.view(np.float32)), err_msg=k)
    assert n_float > 0
    assert os.path.getsize(os.path.join(e_bf, "model.safetensors")) < 0.6 * os.path.getsize(
        os.path.join(e_src, "model.safetensors"))


def test_help_documents_precision_options():
    proc = ok(cli("train", "--help"))
    for opt in ("--precision", "--loss-scale", "--loss-scale-init", "--loss-scale-window", "--loss-scale-min",
                "--loss-scale-max", "--export-dtype", "--checkpoint-activations"):
        assert re.search(r"(^|\s)%s\b" % re.escape(opt), proc.stdout), "--help lacks %s" % opt


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("model", ["gpt2_tiny", "llama_tiny"])
def test_checkpoint_activations_changes_nothing_but_memory(tmp_path, model, precision):
    """--checkpoint-activations re-runs the same kernels on the same inputs: step lines (loss,
    grad_norm, loss_scale) and the trained adapter are bit-identical, in every precision, while
    the logged activation bytes drop."""
    runs = {}
    for ca in ("false", "true"):
        out, log = str(tmp_path / ca), str(tmp_path / (ca + ".jsonl"))
        ok(cli(*lora_args(model, out, log, steps=4, precision=precision, checkpoint_activations=ca)))
        mem = [r for r, _ in read_log(log, all_lines=True) if "memory" in r]
        assert len(mem) == 1 and mem[0]["checkpoint_activations"] == (ca == "true"), mem
        runs[ca] = (out, step_lines(log), mem[0]["memory"])
    (out0, lines0, mem0), (out1, lines1, mem1) = runs["false"], runs["true"]
    assert len(lines0) == len(lines1) == 4
    for (a, la), (b, lb) in zip(lines0, lines1):
        for key in ("loss", "grad_norm", "loss_scale"):
            assert raw_field(la, key) == raw_field(lb, key), (precision, a["step"], key, la, lb)
    t0 = read_safetensors(os.path.join(latest_checkpoint(out0), "trainable.safetensors"))
    t1 = read_safetensors(os.path.join(latest_checkpoint(out1), "trainable.safetensors"))
    assert sorted(t0) == sorted(t1)
    for k in t0:
        np.testing.assert_array_equal(t0[k], t1[k], err_msg=k)
    # tiny models at seq 16: the saving is modest but must be there (33-45% at seq 32, see test_remat)
    assert mem1["activations"] < 0.9 * mem0["activations"], (mem0, mem1)
