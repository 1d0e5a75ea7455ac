"""The graph-IR ONNX writer and the weights overlay, checked with onnx, ONNX Runtime and numpy.

The writer (exporter/onnx_graph_writer.c) runs through tests/tools/export_tool --from-graph
($ONNXTUNE_EXPORT_TOOL, set by ctest; else build/tests/export_tool), which loads a model into the
graph IR (optionally applying --weights FILE.safetensors) and writes the graph as a new model.
The overlay through training goes through the CLI ($ONNXTUNE_BIN): `onnxtune train --weights F`
then `onnxtune export`. Expected values never come from onnxtune:

  - each test model rewritten from its graph passes onnx.checker (full check), keeps every node
    (name, op, edges, attributes) and every initializer byte for byte, and ONNX Runtime gives the
    original's outputs within 1e-6; over a small inline limit the large initializers go to
    "<dst>.data" at 64-byte aligned offsets and the model still runs the same;
  - Hugging Face directories (config.json + safetensors) written as ONNX give the logits that
    transformers recorded in tests/models/hf/*/logits.npy (rel < 1e-5) in ONNX Runtime, also
    after a LoRA training run (lr 0) and `onnxtune export --format onnx`;
  - a safetensors file of gpt2_tiny's weights under module names, in nn.Linear [out, in] layout,
    with some weights changed, fed to `train --weights --steps 1 --lr 0` and exported: every
    initializer of the export equals the numpy-modified original (the tied head follows the new
    embedding), ONNX Runtime gives that model's logits within 1e-6, and the safetensors export
    gives back the file's tensors exactly;
  - missing, extra and mis-shaped tensors fail naming them, before anything is written.
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.external_data_helper import uses_external_data
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from otrun import REPO_ROOT, SANITIZER_MARKERS, require_binary_or_fail, run_cli, run_ort  # noqa: E402

MODELS = os.path.join(REPO_ROOT, "tests", "models")
HF = os.path.join(MODELS, "hf")
GPT2 = os.path.join(MODELS, "gpt2_tiny.onnx")
DATA = os.path.join(REPO_ROOT, "tests", "reference", "gpt2_tiny", "train.jsonl")
SAME_TOL = 1e-6
HF_TOL = 1e-5


def tool():
    path = os.environ.get("ONNXTUNE_EXPORT_TOOL") or os.path.join(REPO_ROOT, "build", "tests", "export_tool")
    if not os.path.exists(path):
        pytest.fail(f"export_tool not built at {path} (build the export_tool target or set ONNXTUNE_EXPORT_TOOL)",
                    pytrace=False)
    return path


def no_sanitizer_report(text):
    for marker in SANITIZER_MARKERS:
        assert marker not in text, text


def from_graph(model, dst, weights=None, limit=None, check=True):
    args = [tool(), "--from-graph", str(model), str(dst)]
    if weights:
        args += ["--weights", str(weights)]
    if limit is not None:
        args += ["--inline-limit", str(limit)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    no_sanitizer_report(p.stderr)
    if check:
        assert p.returncode == 0, f"export_tool failed ({p.returncode}): {p.stderr}"
    return p


def cli(*args):
    require_binary_or_fail()
    p = run_cli([str(a) for a in args], timeout=600)
    no_sanitizer_report(p.stderr)
    return p


def ok(p):
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def rel_err(ref, got):
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    assert ref.shape == got.shape
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


def feeds_for(name, seed=0):
    rng = np.random.default_rng(seed)
    if name == "mlp_gemm":
        return {"x": rng.standard_normal((5, 16)).astype(np.float32)}
    ids = rng.integers(0, 256, size=(2, 16), dtype=np.int64)
    if name == "bert_tiny":
        mask = np.ones((2, 16), np.int64)
        mask[1, 11:] = 0
        return {"input_ids": ids, "attention_mask": mask}
    return {"input_ids": ids}


def inits(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def node_key(n):
    attrs = tuple(sorted((a.name, repr(helper.get_attribute_value(a))) for a in n.attribute))
    return (n.name, n.op_type, n.domain, tuple(n.input), tuple(n.output), attrs)


# ------------------------------------------------------------------------------------------
# the writer on ONNX models
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gpt2_tiny", "llama_tiny", "bert_tiny", "mlp_gemm"])
def test_rewritten_model_checks_and_runs_the_same(tmp_path, name):
    src = os.path.join(MODELS, name + ".onnx")
    dst = tmp_path / (name + ".onnx")
    from_graph(src, dst)
    onnx.checker.check_model(str(dst), full_check=True)
    a, b = onnx.load(src), onnx.load(str(dst))
    assert b.ir_version == 8
    assert [(o.domain, o.version) for o in a.opset_import] == [(o.domain, o.version) for o in b.opset_import]
    assert sorted(node_key(n) for n in a.graph.node) == sorted(node_key(n) for n in b.graph.node)
    assert [i.SerializeToString() for i in a.graph.input] == [i.SerializeToString() for i in b.graph.input]
    assert [o.SerializeToString() for o in a.graph.output] == [o.SerializeToString() for o in b.graph.output]
    ia, ib = inits(a), inits(b)
    assert list(ia) == list(ib)
    for k in ia:
        assert ia[k].dtype == ib[k].dtype and ia[k].shape == ib[k].shape and ia[k].tobytes() == ib[k].tobytes(), k
    feeds = feeds_for(name)
    ref, got = run_ort(src, feeds), run_ort(str(dst), feeds)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=SAME_TOL, atol=SAME_TOL * np.max(np.abs(ref[k])))


def test_over_the_limit_goes_external(tmp_path):
    dst = tmp_path / "big.onnx"
    from_graph(GPT2, dst, limit=100_000)
    onnx.checker.check_model(str(dst), full_check=True)
    meta = onnx.load(str(dst), load_external_data=False)
    assert meta.ByteSize() <= 100_000
    full = inits(onnx.load(GPT2))
    n_ext = 0
    for t in meta.graph.initializer:
        assert uses_external_data(t) == (full[t.name].nbytes >= 1024), t.name
        if uses_external_data(t):
            info = {e.key: e.value for e in t.external_data}
            assert info["location"] == "big.onnx.data" and int(info["offset"]) % 64 == 0
            n_ext += 1
    assert n_ext >= 10
    feeds = feeds_for("gpt2_tiny", 1)
    np.testing.assert_allclose(run_ort(str(dst), feeds)["logits"], run_ort(GPT2, feeds)["logits"], rtol=SAME_TOL,
                               atol=SAME_TOL)
    p = from_graph(GPT2, tmp_path / "small.onnx", limit=10, check=False)
    assert p.returncode == 1 and "external data" in p.stderr
    assert not [f for f in os.listdir(tmp_path) if f.startswith("small.onnx")]


# ------------------------------------------------------------------------------------------
# the writer on Hugging Face models (no source .onnx)
# ------------------------------------------------------------------------------------------
def hf_feeds(d):
    names = ["input_ids", "attention_mask", "token_type_ids"]
    return {n: np.load(os.path.join(d, n + ".npy")) for n in names if os.path.exists(os.path.join(d, n + ".npy"))}


def ort_feeds(path, feeds):
    """The feeds the model declares (an HF bert graph may not take token_type_ids)."""
    declared = {i.name for i in onnx.load(str(path), load_external_data=False).graph.input}
    return {k: v for k, v in feeds.items() if k in declared}


@pytest.mark.parametrize("arch", ["gpt2", "llama", "llama_tied", "bert"])
def test_hf_model_exports_with_transformers_logits(tmp_path, arch):
    d = os.path.join(HF, arch)
    dst = tmp_path / (arch + ".onnx")
    from_graph(d, dst)
    got = run_ort(str(dst), ort_feeds(dst, hf_feeds(d)))["logits"]
    assert rel_err(np.load(os.path.join(d, "logits.npy")), got) < HF_TOL


@pytest.mark.parametrize("arch", ["gpt2", "llama", "llama_tied", "bert"])
def test_hf_model_export_passes_the_checker(tmp_path, arch):
    dst = tmp_path / (arch + ".onnx")
    from_graph(os.path.join(HF, arch), dst)
    onnx.checker.check_model(str(dst), full_check=True)


def test_hf_lora_run_exports_onnx(tmp_path):
    """train (LoRA, lr 0) on an HF directory, then export: the new graph, B = 0 merged in, gives
    transformers' logits."""
    d = os.path.join(HF, "llama")
    data = tmp_path / "data.jsonl"
    rng = np.random.default_rng(5)
    data.write_text("".join(json.dumps({"input_ids": rng.integers(0, 160, 12).tolist()}) + "\n" for _ in range(4)))
    out, dst = tmp_path / "run", tmp_path / "merged.onnx"
    ok(cli("train", "--model", d, "--data", data, "--out", out, "--steps", 1, "--lr", 0, "--seq-len", 12,
           "--batch-size", 2, "--lora-r", 4, "--lora-targets", "q_proj,v_proj"))
    ok(cli("export", "--checkpoint", out, "--format", "onnx", "--out", dst))
    got = run_ort(str(dst), ort_feeds(dst, hf_feeds(d)))["logits"]
    assert rel_err(np.load(os.path.join(d, "logits.npy")), got) < HF_TOL


def test_hf_lora_training_exports_agree(tmp_path):
    """LoRA with a real learning rate on the HF llama: the merged ONNX export (run in ONNX
    Runtime) and the merged safetensors export (loaded back as an HF directory by onnxtune)
    are two independent paths from one checkpoint and must give the same logits; and the
    training moved the model away from the base."""
    d = os.path.join(HF, "llama")
    data = tmp_path / "data.jsonl"
    rng = np.random.default_rng(6)
    data.write_text("".join(json.dumps({"input_ids": rng.integers(0, 160, 12).tolist()}) + "\n" for _ in range(8)))
    out = tmp_path / "run"
    ok(cli("train", "--model", d, "--data", data, "--out", out, "--steps", 4, "--lr", 0.05, "--seq-len", 12,
           "--batch-size", 4, "--lora-r", 4, "--lora-targets", "all-linear", "--lr-schedule", "constant"))
    onnx_path, hf_dir = tmp_path / "merged.onnx", tmp_path / "merged_hf"
    hf_dir.mkdir()
    ok(cli("export", "--checkpoint", out, "--format", "onnx", "--out", onnx_path))
    ok(cli("export", "--checkpoint", out, "--format", "safetensors", "--out", hf_dir / "model.safetensors"))
    (hf_dir / "config.json").write_text(open(os.path.join(d, "config.json")).read())
    feeds = hf_feeds(d)
    via_ort = run_ort(str(onnx_path), ort_feeds(onnx_path, feeds))["logits"]
    ids = tmp_path / "ids.npy"
    np.save(ids, feeds["input_ids"])
    ok(cli("infer", hf_dir, "--input", "input_ids=%s" % ids, "--out", tmp_path / "o"))
    via_hf = np.load(tmp_path / "o" / "logits.npy")
    assert rel_err(via_ort, via_hf) < HF_TOL
    assert rel_err(np.load(os.path.join(d, "logits.npy")), via_ort) > 1e-3  # the adapters moved


@pytest.mark.parametrize("arch", ["gpt2", "bert"])
def test_hf_safetensors_export_keeps_hf_layout(tmp_path, arch):
    """Weights already named by their module keep the layout the model stores: a gpt2 Conv1D
    stays [in, out], a bert Linear [out, in]; after an lr 0 run every tensor of the source
    checkpoint comes back bit for bit."""
    d = os.path.join(HF, arch)
    data = tmp_path / "data.jsonl"
    rng = np.random.default_rng(6)
    if arch == "gpt2":
        rows = [{"input_ids": rng.integers(0, 128, 8).tolist()} for _ in range(2)]
        extra = []
    else:
        rows = [{"input_ids": rng.integers(0, 100, 8).tolist(), "attention_mask": [1] * 8, "token_type_ids": [0] * 8,
                 "labels": int(i % 3)}
                for i in range(2)]
        extra = ["--loss", "cross-entropy"]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, st = tmp_path / "run", tmp_path / "export.safetensors"
    ok(cli("train", "--model", d, "--data", data, "--out", out, "--steps", 1, "--lr", 0, "--seq-len", 8,
           "--batch-size", 2, "--lora-r", 2, *extra))
    ok(cli("export", "--checkpoint", out, "--format", "safetensors", "--out", st))
    src, got = load_file(os.path.join(d, "model.safetensors")), load_file(str(st))
    for k, a in src.items():
        assert k in got and got[k].shape == a.shape and np.array_equal(got[k], a), k


# ------------------------------------------------------------------------------------------
# the weights overlay
# ------------------------------------------------------------------------------------------
def gpt2_module_weights():
    """gpt2_tiny's weights as a PyTorch state dict would hold them: module names, nn.Linear
    [out, in]. Returns (tensors, {onnx initializer name: module name}) for the transposed ones."""
    model = onnx.load(GPT2)
    w = inits(model)
    renamed = {}
    for n in model.graph.node:
        if n.op_type == "MatMul" and n.input[1].startswith("onnx::") and n.name.count("/") > 1:
            renamed[n.input[1]] = ".".join(n.name.strip("/").split("/")[:-1]) + ".weight"
    tensors = {}
    for name, a in w.items():
        if name in renamed:
            tensors[renamed[name]] = np.ascontiguousarray(a.T)
        elif not name.startswith("onnx::") and a.dtype == np.float32:
            tensors[name] = a
    return tensors, renamed


def modified_weights(tensors, seed=7):
    rng = np.random.default_rng(seed)
    t = dict(tensors)
    for k in ["transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_proj.weight", "transformer.ln_f.weight",
              "transformer.h.0.attn.c_attn.bias", "transformer.wte.weight"]:
        t[k] = (t[k] + 0.05 * rng.standard_normal(t[k].shape)).astype(np.float32)
    return t


def numpy_overlaid_model(tensors, renamed):
    """gpt2_tiny with the module-named tensors put back in its own layout; the tied head
    (onnx::MatMul_326 = wteᵀ, used by the unscoped /MatMul) follows the embedding."""
    model = onnx.load(GPT2)
    src = inits(model)
    assert np.array_equal(src["onnx::MatMul_326"], src["transformer.wte.weight"].T)
    new = []
    for t in model.graph.initializer:
        if t.name in renamed:
            a = tensors[renamed[t.name]].T
        elif t.name == "onnx::MatMul_326":
            a = tensors["transformer.wte.weight"].T
        else:
            a = tensors.get(t.name, numpy_helper.to_array(t))
        new.append(numpy_helper.from_array(np.ascontiguousarray(a), t.name))
    del model.graph.initializer[:]
    model.graph.initializer.extend(new)
    return model


def test_module_weights_cover_gpt2():
    tensors, renamed = gpt2_module_weights()
    assert len(renamed) == 8  # 4 linears per block; the head has no scope
    assert tensors["transformer.h.0.attn.c_attn.weight"].shape == (192, 64)  # nn.Linear [out, in]


def test_overlay_through_training_and_export(tmp_path):
    tensors, renamed = gpt2_module_weights()
    new = modified_weights(tensors)
    wfile = tmp_path / "weights.safetensors"
    save_file(new, str(wfile))
    out = tmp_path / "run"
    ok(cli("train", "--model", GPT2, "--data", DATA, "--out", out, "--weights", wfile, "--steps", 1, "--lr", 0,
           "--seq-len", 16, "--batch-size", 2, "--lora-r", 4))
    merged, st = tmp_path / "merged.onnx", tmp_path / "merged.safetensors"
    ok(cli("export", "--checkpoint", out, "--format", "onnx", "--out", merged))
    ok(cli("export", "--checkpoint", out, "--format", "safetensors", "--out", st))
    onnx.checker.check_model(str(merged), full_check=True)

    ref_model = numpy_overlaid_model(new, renamed)
    want, got = inits(ref_model), inits(onnx.load(str(merged)))
    assert list(want) == list(got)
    for k in want:
        assert want[k].tobytes() == got[k].tobytes(), k

    feeds = feeds_for("gpt2_tiny", 3)
    ref = run_ort(ref_model.SerializeToString(), feeds)["logits"]
    assert rel_err(run_ort(GPT2, feeds)["logits"], ref) > 1e-3  # the overlay changes the model
    assert rel_err(ref, run_ort(str(merged), feeds)["logits"]) < SAME_TOL

    exported = load_file(str(st))
    for k, a in new.items():
        assert k in exported and exported[k].shape == a.shape and np.array_equal(exported[k], a), k


def test_overlay_from_graph_export(tmp_path):
    tensors, renamed = gpt2_module_weights()
    new = modified_weights(tensors, seed=11)
    wfile = tmp_path / "w.safetensors"
    save_file(new, str(wfile))
    dst = tmp_path / "overlaid.onnx"
    from_graph(GPT2, dst, weights=wfile)
    want, got = inits(numpy_overlaid_model(new, renamed)), inits(onnx.load(str(dst)))
    for k in want:
        assert want[k].tobytes() == got[k].tobytes(), k


def test_overlay_converts_dtype(tmp_path):
    """f16 tensors replace f32 initializers, converted (exactly: f16 values are f32 values)."""
    tensors, renamed = gpt2_module_weights()
    half = {k: v.astype(np.float16) for k, v in tensors.items()}
    wfile = tmp_path / "half.safetensors"
    save_file(half, str(wfile))
    dst = tmp_path / "half.onnx"
    from_graph(GPT2, dst, weights=wfile)
    want = inits(numpy_overlaid_model({k: v.astype(np.float32) for k, v in half.items()}, renamed))
    got = inits(onnx.load(str(dst)))
    for k in want:
        assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), k


def bad_overlay(tmp_path, tensors):
    wfile = tmp_path / "bad.safetensors"
    save_file(tensors, str(wfile))
    dst = tmp_path / "bad.onnx"
    p = from_graph(GPT2, dst, weights=wfile, check=False)
    assert p.returncode == 1
    assert not dst.exists() and not [f for f in os.listdir(tmp_path) if ".tmp." in f]
    return p.stderr


def test_overlay_missing_tensors_are_listed(tmp_path):
    tensors, _ = gpt2_module_weights()
    del tensors["transformer.h.1.mlp.c_fc.weight"], tensors["transformer.ln_f.bias"]
    err = bad_overlay(tmp_path, tensors)
    assert "2 weight(s) of the model are missing" in err
    assert "transformer.h.1.mlp.c_fc.weight" in err and "transformer.ln_f.bias" in err


def test_overlay_extra_tensors_are_listed(tmp_path):
    tensors, _ = gpt2_module_weights()
    tensors["transformer.h.9.attn.c_attn.weight"] = np.zeros((192, 64), np.float32)
    tensors["lm_head.bias"] = np.zeros(256, np.float32)
    err = bad_overlay(tmp_path, tensors)
    assert "2 tensor(s) in the file match no initializer" in err
    assert "transformer.h.9.attn.c_attn.weight" in err and "lm_head.bias" in err


def test_overlay_shape_mismatch_is_listed(tmp_path):
    tensors, _ = gpt2_module_weights()
    tensors["transformer.h.0.attn.c_attn.weight"] = np.ascontiguousarray(tensors["transformer.h.0.attn.c_attn.weight"].T)
    tensors["transformer.wpe.weight"] = tensors["transformer.wpe.weight"][:64]
    err = bad_overlay(tmp_path, tensors)
    assert "2 tensor(s) have the wrong shape" in err
    assert "transformer.h.0.attn.c_attn.weight (file [64, 192], model [192, 64]" in err
    assert "transformer.wpe.weight (file [64, 64], model [128, 64])" in err


def test_overlay_error_through_train(tmp_path):
    tensors, _ = gpt2_module_weights()
    del tensors["transformer.h.0.ln_1.weight"]
    wfile = tmp_path / "incomplete.safetensors"
    save_file(tensors, str(wfile))
    out = tmp_path / "run"
    p = cli("train", "--model", GPT2, "--data", DATA, "--out", out, "--weights", wfile, "--steps", 1, "--seq-len", 16,
            "--batch-size", 2)
    assert p.returncode != 0 and "transformer.h.0.ln_1.weight" in p.stderr and "incomplete.safetensors" in p.stderr
    assert not os.path.exists(os.path.join(out, "checkpoints", "latest"))
