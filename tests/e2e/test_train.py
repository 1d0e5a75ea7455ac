"""End-to-end training through the CLI: `onnxtune train`, `export`, `run` on tests/models/gpt2_tiny.onnx.

References come from tests/reference/gpt2_tiny/, recorded by tests/reference/make_reference.py with
PyTorch in float64 (see its docstring for the exact recipe). Relative error everywhere is
max|got - ref| / max|ref| over the whole tensor (or list).

  1. trajectory: a LoRA run from a fixed adapter (--lora-init), r=4, alpha=8, all-linear, 6 AdamW
     steps, batch 4 as 2 micro-batches of 2, clipping at 1, constant LR, no shuffling: each logged
     loss and grad_norm within 1e-4 of PyTorch's.
  2. merged export: ONNX Runtime on `export --format onnx` gives
       - the logits of the same model with the LoRA branches unmerged (ORT on the original
         graph plus explicit x·Aᵀ·Bᵀ·scale nodes built here from the exported adapter): rel < 1e-5,
       - PyTorch's logits after the same 6 steps: rel < 1e-4,
       - `onnxtune infer` on the merged file: rel < 1e-5;
     the merged graph keeps the original nodes, and only adapted weights change.
  3. PEFT: the exported adapter holds exactly the checkpoint's trainable tensors (bit-equal) and is
     within 1e-5 of PyTorch's trained A and B; its config says r=4, alpha=8; fed back through
     --lora-init with lr 0 it gives the merged model's loss on the first batch (computed from ORT
     logits here) and comes back out bit-equal.
  4. resume: 6 steps straight (with --save-every 3) vs 3 steps then --resume to 6: the logged
     loss and grad_norm strings of steps 4..6 are identical, and so are the final weights.
     --eval-data: a run evaluating at steps 3 and 6 logs training lines (loss, grad_norm,
     train_mean_token_accuracy) bit-identical to a run without, and the same final weights; with
     lr 0 the eval of the first 4 rows equals step 1's training loss and accuracy.
  5. bad input: malformed JSONL, labels out of range, targets matching nothing, corrupted or
     truncated checkpoint, unwritable --out, inconsistent batch options: non-zero exit, a message
     naming the culprit, no sanitizer report, no checkpoint left behind.
  6. `onnxtune run` trains and writes export/model.onnx (and the adapter) that ORT runs.
"""
import json
import os
import re
import shutil
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "parity"))
import otrun  # noqa: E402
from otrun import SANITIZER_MARKERS, require_binary_or_fail, run_ort  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
GPT2 = os.path.join(REPO, "tests", "models", "gpt2_tiny.onnx")
REF = os.path.join(REPO, "tests", "reference", "gpt2_tiny")
DATA = os.path.join(REF, "train.jsonl")
LORA_INIT = os.path.join(REF, "lora_init")
TRAJ_TOL = 1e-4    # issue 3: per-step losses within 1e-4 relative of PyTorch (fp32)
MERGE_TOL = 1e-5   # issue 3: merged ONNX in ORT vs the unmerged model
TORCH_LOGITS_TOL = 1e-4
# The trained adapter vs PyTorch's: float32 noise measured 9e-7; leaving out weight decay moves it
# by 6e-5 and leaving out clipping by 7e-3, which the loss trajectory alone could not see.
ADAPTER_TOL = 1e-5


def trajectory():
    with open(os.path.join(REF, "trajectory.json")) as f:
        return json.load(f)


def rel_err(got, ref):
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, "shape %s, expected %s" % (got.shape, ref.shape)
    assert np.all(np.isfinite(got)), "non-finite values"
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


def cli(*args, timeout=600):
    require_binary_or_fail()
    proc = otrun.run_cli([str(a) for a in args], timeout=timeout)
    for marker in SANITIZER_MARKERS:
        assert marker not in proc.stderr, "sanitizer report:\n%s" % proc.stderr
    return proc


def ok(proc):
    assert proc.returncode == 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (proc.returncode, proc.stdout, proc.stderr)
    return proc


def base_args(out, log=None, steps=6, **over):
    """The reference run's command line; `over` replaces options (value None drops one)."""
    opts = {"--model": GPT2, "--data": DATA, "--out": out, "--lora-init": LORA_INIT, "--lora-r": 4,
            "--lora-alpha": 8, "--lora-targets": "all-linear", "--steps": steps, "--batch-size": 4,
            "--micro-batch-size": 2, "--lr": "1e-3", "--weight-decay": 0.01, "--lr-schedule": "constant",
            "--max-grad-norm": 1, "--seq-len": 16, "--lora-dropout": 0,
            "--precision": "fp32"}  # the PyTorch reference is fp32 (bf16/fp16: tests/e2e/test_precision.py)
    if log:
        opts["--log-json"] = log
    for k, v in over.items():
        opts["--" + k.replace("_", "-")] = v
    args = ["train"]
    for k, v in opts.items():
        if v is not None:
            args += [k, v]
    return args + ["--no-shuffle"]


def train(out, log=None, steps=6, **over):
    return ok(cli(*base_args(out, log, steps, **over)))


def read_log(path, all_lines=False):
    """[(parsed record, raw line)] of the step and eval lines of a --log-json file; the run's
    one {"memory": ...} line (checked by test_estimate.py) only with all_lines."""
    with open(path) as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    recs = [(json.loads(ln), ln) for ln in lines]
    return [(r, ln) for r, ln in recs if all_lines or "step" in r]


def raw_field(line, key):
    """The number exactly as written in a JSON line (for bit-identity checks)."""
    m = re.search(r'"%s"\s*:\s*([^,}\s]+)' % re.escape(key), line)
    assert m, "no %r in log line %s" % (key, line)
    return m.group(1)


def read_safetensors(path):
    from safetensors.numpy import load_file
    return load_file(path)


def latest_checkpoint(out):
    ck = os.path.join(out, "checkpoints")
    with open(os.path.join(ck, "latest")) as f:
        return os.path.join(ck, f.read().strip())


def causal_lm_loss(logits, ids):
    """Mean over positions t < S-1 of cross-entropy(logits[:, t], ids[:, t+1]), in float64."""
    x = logits[:, :-1].astype(np.float64)
    y = ids[:, 1:]
    m = x.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]
    picked = np.take_along_axis(x, y[..., None], -1)[..., 0]
    return float((lse - picked).mean())


def dataset_rows():
    with open(DATA) as f:
        return np.array([json.loads(ln)["input_ids"] for ln in f if ln.strip()], dtype=np.int64)


# ------------------------------------------------------------------------------------------
# the reference LoRA run, shared by tests 1-3
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("lora")
    out, log = str(d / "run"), str(d / "log.jsonl")
    proc = train(out, log)
    return {"dir": d, "out": out, "log": read_log(log), "proc": proc}


@pytest.fixture(scope="module")
def exports(lora_run):
    d = lora_run["dir"]
    merged, adapter = str(d / "merged.onnx"), str(d / "adapter")
    ok(cli("export", "--checkpoint", lora_run["out"], "--format", "onnx", "--out", merged))
    ok(cli("export", "--checkpoint", lora_run["out"], "--format", "peft", "--out", adapter))
    return {"onnx": merged, "peft": adapter}


# ------------------------------------------------------------------------------------------
# 1. trajectory
# ------------------------------------------------------------------------------------------
def test_reference_moves_more_than_tolerance():
    """The fixture itself: its losses change by far more than the tolerance, so the trajectory
    comparison can tell a wrong update from a right one."""
    t = trajectory()
    losses = t["losses"]
    assert len(losses) == 6
    assert (max(losses) - min(losses)) / max(losses) > 100 * TRAJ_TOL
    assert rel_err(t["losses_float32_torch"], losses) < TRAJ_TOL / 10


def test_lora_trajectory_matches_pytorch(lora_run):
    t = trajectory()
    recs = [r for r, _ in lora_run["log"]]
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5, 6], recs
    report = []
    for r, ref_loss, ref_norm in zip(recs, t["losses"], t["grad_norms"]):
        report.append("step %d loss %.9g (torch %.9g, rel %.2e) grad_norm %.9g (torch %.9g, rel %.2e)" % (
            r["step"], r["loss"], ref_loss, abs(r["loss"] - ref_loss) / abs(ref_loss),
            r["grad_norm"], ref_norm, abs(r["grad_norm"] - ref_norm) / ref_norm))
    print("\n".join(report))
    assert rel_err([r["loss"] for r in recs], t["losses"]) < TRAJ_TOL, "\n".join(report)
    for r, ref_loss in zip(recs, t["losses"]):
        assert abs(r["loss"] - ref_loss) / abs(ref_loss) < TRAJ_TOL, "\n".join(report)
    for r, ref_norm in zip(recs, t["grad_norms"]):
        assert abs(r["grad_norm"] - ref_norm) / ref_norm < TRAJ_TOL, "\n".join(report)
    assert all(r["lr"] == pytest.approx(1e-3, rel=1e-12) for r in recs)


# ------------------------------------------------------------------------------------------
# 2. merged export
# ------------------------------------------------------------------------------------------
def module_of(node_name):
    """"/transformer/h.0/attn/c_attn/MatMul" -> "transformer.h.0.attn.c_attn" (see trainer/lora.h)."""
    parts = node_name.strip("/").split("/")
    return ".".join(parts[:-1])


def load_peft(d):
    with open(os.path.join(d, "adapter_config.json")) as f:
        cfg = json.load(f)
    tensors = read_safetensors(os.path.join(d, "adapter_model.safetensors"))
    mods = {}
    for k, v in tensors.items():
        m = re.fullmatch(r"base_model\.model\.(.+)\.lora_([AB])\.weight", k)
        assert m, "unexpected adapter key %r" % k
        mods.setdefault(m.group(1), {})[m.group(2)] = v
    return cfg, mods


def unmerged_model(adapter_dir):
    """The original gpt2_tiny graph with each adapted MatMul's output y replaced by
    y + scale * ((x @ Aᵀ) @ Bᵀ): LoRA computed by ORT from the exported adapter, independently of
    onnxtune's merge."""
    cfg, mods = load_peft(adapter_dir)
    scale = float(cfg["lora_alpha"]) / float(cfg["r"])
    model = onnx.load(GPT2)
    g = model.graph
    inits = {i.name for i in g.initializer}
    new_nodes, used = [], set()
    for node in g.node:
        mod = module_of(node.name) if node.op_type == "MatMul" and node.input[1] in inits else None
        if mod not in mods:
            new_nodes.append(node)
            continue
        used.add(mod)
        a, b = mods[mod]["A"], mods[mod]["B"]
        x, y = node.input[0], node.output[0]
        base = y + "/lora_base"
        node.output[0] = base
        new_nodes.append(node)
        p = mod + ".test_lora"
        g.initializer.extend([numpy_helper.from_array(np.ascontiguousarray(a.T), p + ".A_T"),
                              numpy_helper.from_array(np.ascontiguousarray(b.T), p + ".B_T"),
                              numpy_helper.from_array(np.array(scale, dtype=np.float32), p + ".scale")])
        new_nodes += [helper.make_node("MatMul", [x, p + ".A_T"], [p + ".xa"], name=p + "/MatMul_A"),
                      helper.make_node("MatMul", [p + ".xa", p + ".B_T"], [p + ".xab"], name=p + "/MatMul_B"),
                      helper.make_node("Mul", [p + ".xab", p + ".scale"], [p + ".d"], name=p + "/Mul"),
                      helper.make_node("Add", [base, p + ".d"], [y], name=p + "/Add")]
    assert used == set(mods), "adapter modules without a MatMul in the graph: %s" % sorted(set(mods) - used)
    del g.node[:]
    g.node.extend(new_nodes)
    return model.SerializeToString()


def test_merged_export_equals_unmerged_in_ort(exports):
    ids = np.load(os.path.join(REF, "final_input_ids.npy"))
    merged = run_ort(exports["onnx"], {"input_ids": ids})["logits"]
    unmerged = run_ort(unmerged_model(exports["peft"]), {"input_ids": ids})["logits"]
    base = run_ort(GPT2, {"input_ids": ids})["logits"]
    assert rel_err(unmerged, base) > 100 * MERGE_TOL, "training did not change the model"
    err = rel_err(merged, unmerged)
    print("merged vs unmerged (ORT): rel %.2e" % err)
    assert err < MERGE_TOL


def test_merged_export_matches_pytorch_logits(exports):
    ids = np.load(os.path.join(REF, "final_input_ids.npy"))
    ref = np.load(os.path.join(REF, "final_logits.npy"))
    got = run_ort(exports["onnx"], {"input_ids": ids})["logits"]
    err = rel_err(got, ref)
    print("ORT(merged) vs PyTorch after 6 steps: rel %.2e" % err)
    assert err < TORCH_LOGITS_TOL


def test_onnxtune_infer_on_merged_export_equals_ort(exports):
    ids = np.load(os.path.join(REF, "final_input_ids.npy"))
    ref = run_ort(exports["onnx"], {"input_ids": ids})["logits"]
    require_binary_or_fail()
    got = otrun.run_onnxtune(exports["onnx"], {"input_ids": ids})["logits"]
    err = rel_err(got, ref)
    print("onnxtune infer vs ORT on the merged export: rel %.2e" % err)
    assert err < MERGE_TOL


def test_merged_export_keeps_the_graph(exports):
    """Same nodes, same initializer names, shapes and dtypes; only adapted weights change."""
    a, b = onnx.load(GPT2).graph, onnx.load(exports["onnx"]).graph
    assert [(n.op_type, n.name, list(n.input), list(n.output)) for n in a.node] == \
           [(n.op_type, n.name, list(n.input), list(n.output)) for n in b.node]
    assert [i.name for i in a.input] == [i.name for i in b.input]
    assert [o.name for o in a.output] == [o.name for o in b.output]
    ia = {i.name: numpy_helper.to_array(i) for i in a.initializer}
    ib = {i.name: numpy_helper.to_array(i) for i in b.initializer}
    assert sorted(ia) == sorted(ib)
    adapted = {n.input[1] for n in a.node if n.op_type == "MatMul" and n.input[1] in ia and n.name != "/MatMul"}
    assert len(adapted) == 8
    for name in ia:
        assert ia[name].dtype == ib[name].dtype and ia[name].shape == ib[name].shape, name
        if name in adapted:
            assert not np.array_equal(ia[name], ib[name]), "adapted weight %s unchanged" % name
        else:
            assert np.array_equal(ia[name], ib[name]), "weight %s changed but is not adapted" % name


# ------------------------------------------------------------------------------------------
# 3. PEFT adapter
# ------------------------------------------------------------------------------------------
def test_peft_export_equals_checkpoint(lora_run, exports):
    cfg, mods = load_peft(exports["peft"])
    assert cfg["r"] == 4 and float(cfg["lora_alpha"]) == 8.0
    assert cfg.get("use_rslora") in (False, None)
    for key in ("lora_dropout", "target_modules", "bias", "base_model_name_or_path"):
        assert key in cfg, "adapter_config.json lacks %r: %s" % (key, cfg)
    trained = read_safetensors(os.path.join(latest_checkpoint(lora_run["out"]), "trainable.safetensors"))
    expected = set(trajectory()["modules"])
    assert set(mods) == expected
    for mod, ab in mods.items():
        assert ab["A"].shape[0] == 4 and ab["B"].shape[1] == 4
        for k in "AB":
            np.testing.assert_array_equal(ab[k], trained["%s.lora_%s.weight" % (mod, k)], err_msg=mod)


def test_peft_export_close_to_pytorch_adapter(exports):
    """The trained A, B against PyTorch's after the same 6 steps (float64 reference)."""
    _, got = load_peft(exports["peft"])
    ref = read_safetensors(os.path.join(REF, "lora_final", "adapter_model.safetensors"))
    worst = 0.0
    for mod, ab in got.items():
        for k in "AB":
            worst = max(worst, rel_err(ab[k], ref["base_model.model.%s.lora_%s.weight" % (mod, k)]))
    print("trained adapter vs PyTorch: worst rel %.2e" % worst)
    assert worst < ADAPTER_TOL


def test_peft_round_trip_through_lora_init(lora_run, exports, tmp_path):
    """--lora-init <exported adapter> with lr 0: the first step's loss is the merged model's loss
    on the first batch (ORT logits), and the adapter comes back out unchanged."""
    rows = dataset_rows()
    merged_loss = np.mean([causal_lm_loss(run_ort(exports["onnx"], {"input_ids": rows[i:i + 2]})["logits"],
                                          rows[i:i + 2]) for i in (0, 2)])
    out, log = str(tmp_path / "rt"), str(tmp_path / "rt.jsonl")
    train(out, log, steps=1, lora_init=exports["peft"], lr=0)
    (rec, _), = read_log(log)
    err = abs(rec["loss"] - merged_loss) / abs(merged_loss)
    print("loss from the re-loaded adapter %.9g, merged model in ORT %.9g, rel %.2e" % (rec["loss"], merged_loss, err))
    assert err < MERGE_TOL
    again = str(tmp_path / "again")
    ok(cli("export", "--checkpoint", out, "--format", "peft", "--out", again))
    _, a = load_peft(exports["peft"])
    _, b = load_peft(again)
    assert sorted(a) == sorted(b)
    for mod in a:
        for k in "AB":
            np.testing.assert_array_equal(b[mod][k], a[mod][k], err_msg=mod)


# ------------------------------------------------------------------------------------------
# 4. resume
# ------------------------------------------------------------------------------------------
def test_resume_is_bit_identical(tmp_path):
    full_out, full_log = str(tmp_path / "full"), str(tmp_path / "full.jsonl")
    train(full_out, full_log, save_every=3)
    assert os.path.isdir(os.path.join(full_out, "checkpoints", "step-00000003")), os.listdir(
        os.path.join(full_out, "checkpoints"))
    part_out, log1, log2 = str(tmp_path / "part"), str(tmp_path / "part1.jsonl"), str(tmp_path / "part2.jsonl")
    train(part_out, log1, steps=3)
    proc = train(part_out, log2, steps=6, resume=part_out)
    full = read_log(full_log)
    resumed = read_log(log2)
    assert [r["step"] for r, _ in read_log(log1)] == [1, 2, 3]
    assert [r["step"] for r, _ in resumed] == [4, 5, 6], proc.stderr
    for (a, la), (b, lb) in zip(full[3:], resumed):
        for key in ("loss", "grad_norm", "lr"):
            assert raw_field(la, key) == raw_field(lb, key), "step %d %s: %s vs %s" % (
                a["step"], key, raw_field(la, key), raw_field(lb, key))
    for (a, la), (b, lb) in zip(full[:3], read_log(log1)):
        assert raw_field(la, "loss") == raw_field(lb, "loss")
    wa = read_safetensors(os.path.join(latest_checkpoint(full_out), "trainable.safetensors"))
    wb = read_safetensors(os.path.join(latest_checkpoint(part_out), "trainable.safetensors"))
    assert sorted(wa) == sorted(wb)
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    # resuming from the uninterrupted run's own step-3 checkpoint gives the same again
    again_out, again_log = str(tmp_path / "again"), str(tmp_path / "again.jsonl")
    train(again_out, again_log, steps=6, resume=os.path.join(full_out, "checkpoints", "step-00000003"))
    again = read_log(again_log)
    assert [raw_field(l, "loss") for _, l in again] == [raw_field(l, "loss") for _, l in full[3:]]


def test_eval_data_leaves_training_bit_identical(tmp_path):
    """--eval-data at every checkpoint (3 and 6) and at the end must not change a training line."""
    rows = [ln for ln in open(DATA) if ln.strip()]
    valid = str(tmp_path / "valid.jsonl")
    write_lines(valid, [ln.rstrip("\n") for ln in rows[3:8]])  # 5 samples: 3 batches of 2, the last wraps
    plain_log, eval_log = str(tmp_path / "plain.jsonl"), str(tmp_path / "eval.jsonl")
    train(str(tmp_path / "plain"), plain_log, save_every=3)
    proc = train(str(tmp_path / "eval"), eval_log, save_every=3, eval_data=valid)
    plain, ev = read_log(plain_log), read_log(eval_log)
    steps = [r for r in ev if not r[0].get("eval")]
    evals = [r for r, _ in ev if r.get("eval")]
    assert len(steps) == len(plain) == 6
    for (a, la), (b, lb) in zip(plain, steps):
        for key in ("loss", "grad_norm", "train_mean_token_accuracy"):
            assert raw_field(la, key) == raw_field(lb, key), "step %d %s" % (a["step"], key)
        assert 0 <= b["train_mean_token_accuracy"] <= 1
    assert [r["step"] for r in evals] == [3, 6], ev
    for r in evals:
        assert r["eval_batches"] == 3
        assert np.isfinite(r["valid_loss"]) and r["valid_loss"] > 0
        assert 0 <= r["valid_mean_token_accuracy"] <= 1
    assert evals[0]["valid_loss"] != evals[1]["valid_loss"]  # the weights moved between them
    assert "eval step 6: valid_loss" in proc.stderr
    wa = read_safetensors(os.path.join(latest_checkpoint(str(tmp_path / "plain")), "trainable.safetensors"))
    wb = read_safetensors(os.path.join(latest_checkpoint(str(tmp_path / "eval")), "trainable.safetensors"))
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def test_eval_matches_training_loss_at_lr_0(tmp_path):
    """With lr 0 the weights never move, so evaluating the first 4 rows (2 micro-batches of 2)
    must give exactly step 1's training loss and accuracy (the same 4 rows, unshuffled)."""
    rows = [ln.rstrip("\n") for ln in open(DATA) if ln.strip()]
    valid = str(tmp_path / "valid.jsonl")
    write_lines(valid, rows[:4])
    log = str(tmp_path / "log.jsonl")
    train(str(tmp_path / "run"), log, steps=1, lr=0, eval_data=valid)
    recs = read_log(log)
    step1 = [r for r, _ in recs if not r.get("eval")][0]
    ev = [r for r, _ in recs if r.get("eval")]
    assert len(ev) == 1 and ev[0]["step"] == 1 and ev[0]["eval_batches"] == 2
    assert abs(ev[0]["valid_loss"] - step1["loss"]) <= 1e-7 * abs(step1["loss"])
    assert abs(ev[0]["valid_mean_token_accuracy"] - step1["train_mean_token_accuracy"]) <= 1e-7
    # --eval-batches 1 evaluates the first micro-batch only
    log2 = str(tmp_path / "log2.jsonl")
    train(str(tmp_path / "run2"), log2, steps=1, lr=0, eval_data=valid, eval_batches=1)
    ev2 = [r for r, _ in read_log(log2) if r.get("eval")]
    assert len(ev2) == 1 and ev2[0]["eval_batches"] == 1


# ------------------------------------------------------------------------------------------
# 5. bad input
# ------------------------------------------------------------------------------------------
def assert_clean_failure(proc, *mentions, out=None):
    """Non-zero exit (not a signal), a message on stderr holding every string in `mentions`, and
    no checkpoint left in `out`."""
    err = proc.stderr
    assert proc.returncode != 0, "expected failure, got exit 0\nstderr:\n%s" % err
    assert 0 < proc.returncode < 128, "exit %d (signal?)\nstderr:\n%s" % (proc.returncode, err)
    assert err.strip(), "no message on stderr"
    for m in mentions:
        assert m in err, "stderr does not mention %r:\n%s" % (m, err)
    if out is not None:
        assert not os.path.exists(os.path.join(out, "checkpoints", "latest")), "a checkpoint was written"


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def good_line(i=0):
    return json.dumps({"input_ids": [int(x) for x in dataset_rows()[i]]})


def test_bad_malformed_jsonl_line(tmp_path):
    data = write_lines(tmp_path / "bad.jsonl", [good_line(0), good_line(1), '{"input_ids": [1, 2,', good_line(2)])
    out = str(tmp_path / "out")
    proc = cli(*base_args(out, data=data, lora_init=None, steps=1, batch_size=2))
    assert_clean_failure(proc, data, out=out)
    assert re.search(r"line 3\b|:3\b", proc.stderr), "no line number 3 in:\n%s" % proc.stderr


def test_bad_jsonl_record_wrong_type(tmp_path):
    data = write_lines(tmp_path / "bad.jsonl", [good_line(0), '{"input_ids": "hello"}'])
    out = str(tmp_path / "out")
    proc = cli(*base_args(out, data=data, lora_init=None, steps=1, batch_size=2))
    assert_clean_failure(proc, data, "input_ids", out=out)
    assert re.search(r"line 2\b|:2\b", proc.stderr), "no line number 2 in:\n%s" % proc.stderr


def test_bad_labels_out_of_range(tmp_path):
    ids = [int(x) for x in dataset_rows()[0]]
    labels = list(ids)
    labels[5] = 300  # vocabulary is 256
    data = write_lines(tmp_path / "labels.jsonl", [json.dumps({"input_ids": ids, "labels": labels}), good_line(1)])
    out = str(tmp_path / "out")
    proc = cli(*base_args(out, data=data, lora_init=None, steps=1, batch_size=2))
    assert_clean_failure(proc, "300", out=out)
    assert "label" in proc.stderr.lower()


def test_bad_lora_targets_match_nothing(tmp_path):
    out = str(tmp_path / "out")
    proc = cli(*base_args(out, lora_init=None, lora_targets="q_proj,no_such_module", steps=1))
    assert_clean_failure(proc, "transformer.h.0.attn.c_attn", "transformer.h.1.mlp.c_fc", out=out)


def test_bad_lora_init_dir(tmp_path):
    out = str(tmp_path / "out")
    missing = str(tmp_path / "no_adapter")
    proc = cli(*base_args(out, lora_init=missing, steps=1))
    assert_clean_failure(proc, missing, out=out)


@pytest.fixture(scope="module")
def one_step_checkpoint(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ck") / "run")
    train(out, steps=1)
    return out


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_bad_corrupted_checkpoint(one_step_checkpoint, tmp_path, damage):
    run = str(tmp_path / "run")
    shutil.copytree(one_step_checkpoint, run)
    target = os.path.join(latest_checkpoint(run), "trainable.safetensors")
    with open(target, "r+b") as f:
        data = bytearray(f.read())
        if damage == "flip":
            data[len(data) - 5] ^= 0x40  # inside the tensor data: only the CRC can tell
            f.seek(0)
            f.write(data)
        else:
            f.truncate(len(data) - 16)
    proc = cli(*base_args(run, steps=2, resume=run))
    assert_clean_failure(proc, "trainable.safetensors")
    proc = cli("export", "--checkpoint", run, "--format", "onnx", "--out", str(tmp_path / "m.onnx"))
    assert_clean_failure(proc, "trainable.safetensors")
    assert not os.path.exists(tmp_path / "m.onnx")


def test_bad_unwritable_out(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = cli(*base_args(str(blocker / "out"), steps=1))
    assert_clean_failure(proc, str(blocker))
    proc = cli(*base_args(str(blocker), steps=1))  # --out is an existing regular file
    assert_clean_failure(proc, str(blocker))


@pytest.mark.parametrize("opts", [
    {"batch_size": 4, "micro_batch_size": 3},
    {"batch_size": 4, "micro_batch_size": 2, "grad_accum": 3},
    {"batch_size": 6, "micro_batch_size": None, "grad_accum": 4},
])
def test_bad_inconsistent_batch_options(tmp_path, opts):
    out = str(tmp_path / "out")
    proc = cli(*base_args(out, steps=1, **opts))
    assert_clean_failure(proc, "--batch-size", out=out)
    assert not os.path.exists(out) or not os.listdir(out)


def test_train_help_documents_options():
    proc = ok(cli("train", "--help"))
    for opt in ("--steps", "--epochs", "--batch-size", "--micro-batch-size", "--seq-len", "--grad-accum", "--lr",
                "--lr-schedule", "--warmup-steps", "--weight-decay", "--adam-beta1", "--adam-beta2", "--adam-eps",
                "--max-grad-norm", "--seed", "--shuffle", "--lora-r", "--lora-alpha", "--lora-dropout",
                "--lora-targets", "--lora-rslora", "--lora-init", "--full", "--freeze", "--loss", "--save-every",
                "--resume", "--log-json", "--threads", "--config", "--eval-data", "--eval-batches"):
        assert re.search(r"(^|\s)%s\b" % re.escape(opt), proc.stdout), "--help lacks %s" % opt
    assert "default" in proc.stdout


# ------------------------------------------------------------------------------------------
# 6. onnxtune run
# ------------------------------------------------------------------------------------------
def test_run_end_to_end(tmp_path):
    out = str(tmp_path / "run")
    proc = ok(cli("run", "--model", GPT2, "--data", DATA, "--out", out, "--steps", 2, "--batch-size", 4,
                  "--seq-len", 16, "--lr", "1e-2", "--lora-r", 4, "--export", "onnx,peft"))
    model = os.path.join(out, "export", "model.onnx")
    assert os.path.isfile(model), proc.stdout + proc.stderr
    assert os.path.isfile(os.path.join(out, "export", "adapter", "adapter_model.safetensors"))
    ids = np.load(os.path.join(REF, "final_input_ids.npy"))
    got = run_ort(model, {"input_ids": ids})["logits"]
    base = run_ort(GPT2, {"input_ids": ids})["logits"]
    assert got.shape == (2, 16, 256) and np.all(np.isfinite(got))
    assert rel_err(got, base) > 1e-6, "the exported model equals the base model: nothing trained"
    err = rel_err(got, run_ort(unmerged_model(os.path.join(out, "export", "adapter")), {"input_ids": ids})["logits"])
    assert err < MERGE_TOL
