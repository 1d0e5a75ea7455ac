"""Exported ONNX models in ONNX Runtime and onnx.checker.

The exporter (exporter/onnx_writer.c, merge.c) runs through tests/tools/export_tool
($ONNXTUNE_EXPORT_TOOL, set by ctest; else build/tests/export_tool), which merges LoRA
factors A [r, in], B [out, r] into initializers (scale * B.A, in the weight's layout) and
writes the model. Each check compares against something computed without onnxtune:

  - the merged initializers equal NumPy's W + scale * (B @ A) (transposed for MatMul
    weights), computed in float64; every other initializer and every node serialises to the
    same protobuf bytes as in the source;
  - ONNX Runtime on the exported model gives the logits of the *unmerged* model — the source
    graph with x @ A.T @ B.T * scale added beside each adapted MatMul/Gemm, built here with
    the onnx helper — within 1e-5 relative, and onnxtune's own infer of the exported file
    agrees with ONNX Runtime within 1e-5;
  - a source with external data exports with external data ("<dst>.onnx.data", 64-byte
    aligned offsets), which onnx.checker and ONNX Runtime load, and the source's data file is
    left byte-identical; over the size limit every initializer of 1 KB or more goes external;
  - onnx.checker.check_model passes on every export; an export without updates reproduces
    each test model byte for byte; bad updates fail naming the tensor.
"""
import copy
import hashlib
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.external_data_helper import uses_external_data

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from otrun import REPO_ROOT, require_binary_or_fail, run_onnxtune, run_ort  # noqa: E402

MODELS_DIR = os.path.join(REPO_ROOT, "tests", "models")
GPT2 = os.path.join(MODELS_DIR, "gpt2_tiny.onnx")
MLP = os.path.join(MODELS_DIR, "mlp_gemm.onnx")
MAX_REL = 1e-5
RANK = 8
SCALE = 2.0  # alpha / r = 16 / 8


def tool():
    path = os.environ.get("ONNXTUNE_EXPORT_TOOL") or os.path.join(REPO_ROOT, "build", "tests", "export_tool")
    if not os.path.exists(path):
        pytest.fail(f"export_tool not built at {path} (build the export_tool target or set ONNXTUNE_EXPORT_TOOL)",
                    pytrace=False)
    return path


def export(src, dst, merges=(), updates=(), limit=None, check=True):
    """Runs export_tool; merges are (name, a.npy, b.npy, transposed)."""
    args = [tool(), str(src), str(dst)]
    args += [f"{name}={path}" for name, path in updates]
    for name, a, b, t in merges:
        args += ["--merge", f"{name}={a},{b},{SCALE!r},{int(t)}"]
    if limit is not None:
        args += ["--inline-limit", str(limit)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in p.stderr, p.stderr
    if check:
        assert p.returncode == 0, f"export_tool failed ({p.returncode}): {p.stderr}"
    return p


def rel_err(ref, got):
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref)) / np.max(np.abs(ref)))


def make_lora(model, names, transposed, tmp, seed):
    """Random A [r, in], B [out, r] per weight, saved as .npy: {name: (A, B, a_path, b_path)}."""
    rng = np.random.default_rng(seed)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    lora = {}
    for k, name in enumerate(names):
        w = inits[name]
        out_dim, in_dim = w.shape if transposed else w.shape[::-1]
        a = (rng.standard_normal((RANK, in_dim)) / np.sqrt(in_dim)).astype(np.float32)
        b = (rng.standard_normal((out_dim, RANK)) * 0.05).astype(np.float32)
        pa, pb = os.path.join(tmp, f"a{k}.npy"), os.path.join(tmp, f"b{k}.npy")
        np.save(pa, a)
        np.save(pb, b)
        lora[name] = (a, b, pa, pb)
    return lora


def merged_reference(w, a, b, transposed):
    delta = SCALE * (b.astype(np.float64) @ a.astype(np.float64))  # [out, in]
    return w.astype(np.float64) + (delta if transposed else delta.T)


def unmerged_model(model, lora):
    """The source graph with y = op(x, W, ...) + scale * (x @ A.T) @ B.T for each adapted weight."""
    m = copy.deepcopy(model)
    g = m.graph
    nodes = []
    for node in g.node:
        w = node.input[1] if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 else None
        if w not in lora:
            nodes.append(node)
            continue
        a, b, _, _ = lora[w]
        tag = f"{w}__lora_{len(nodes)}"
        x, y = node.input[0], node.output[0]
        node.output[0] = tag + "_base"
        nodes.append(node)
        g.initializer.extend([numpy_helper.from_array(np.ascontiguousarray(a.T), tag + "_AT"),
                              numpy_helper.from_array(np.ascontiguousarray(b.T), tag + "_BT"),
                              numpy_helper.from_array(np.array(SCALE, np.float32), tag + "_s")])
        nodes += [helper.make_node("MatMul", [x, tag + "_AT"], [tag + "_xa"]),
                  helper.make_node("MatMul", [tag + "_xa", tag + "_BT"], [tag + "_xab"]),
                  helper.make_node("Mul", [tag + "_xab", tag + "_s"], [tag + "_d"]),
                  helper.make_node("Add", [tag + "_base", tag + "_d"], [y])]
    del g.node[:]
    g.node.extend(nodes)
    return m.SerializeToString()


def check_carried_over(src_model, dst_path, changed):
    """Every initializer not in `changed` and every node serialise exactly as in the source."""
    dst = onnx.load(str(dst_path), load_external_data=False)
    s_inits = {i.name: i for i in src_model.graph.initializer}
    d_inits = {i.name: i for i in dst.graph.initializer}
    assert list(s_inits) == list(d_inits)
    for name, t in s_inits.items():
        if name not in changed and not uses_external_data(t):
            assert t.SerializeToString() == d_inits[name].SerializeToString(), f"initializer {name} changed"
    assert [n.SerializeToString() for n in src_model.graph.node] == [n.SerializeToString() for n in dst.graph.node]
    assert [(o.domain, o.version) for o in src_model.opset_import] == [(o.domain, o.version) for o in dst.opset_import]
    assert src_model.ir_version == dst.ir_version and src_model.producer_name == dst.producer_name
    assert [i.SerializeToString() for i in src_model.graph.input] == [i.SerializeToString() for i in dst.graph.input]
    assert [o.SerializeToString() for o in src_model.graph.output] == [o.SerializeToString() for o in dst.graph.output]


def gpt2_feeds(seed=0):
    return {"input_ids": np.random.default_rng(seed).integers(0, 256, size=(2, 16), dtype=np.int64)}


def matmul_weights(model):
    inits = {i.name for i in model.graph.initializer}
    return sorted({n.input[1] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits})


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_gpt2_merged_matches_unmerged(tmp_path):
    model = onnx.load(GPT2)
    names = matmul_weights(model)
    assert len(names) == 9  # 4 per block + the tied head, all [in, out]
    lora = make_lora(model, names, transposed=False, tmp=tmp_path, seed=1)
    dst = tmp_path / "gpt2_merged.onnx"
    export(GPT2, dst, merges=[(n, v[2], v[3], False) for n, v in lora.items()])
    onnx.checker.check_model(str(dst), full_check=True)
    assert not os.path.exists(str(dst) + ".data")
    check_carried_over(model, dst, set(names))

    src_w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    got_w = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(dst)).graph.initializer}
    for n, (a, b, _, _) in lora.items():
        ref = merged_reference(src_w[n], a, b, transposed=False)
        assert got_w[n].dtype == np.float32 and got_w[n].shape == src_w[n].shape
        assert np.max(np.abs(got_w[n] - ref)) <= 1e-6 * max(1.0, np.max(np.abs(ref))), n

    feeds = gpt2_feeds()
    base = run_ort(GPT2, feeds)["logits"]
    unmerged = run_ort(unmerged_model(model, lora), feeds)["logits"]
    merged = run_ort(str(dst), feeds)["logits"]
    assert rel_err(base, unmerged) > 1e-3  # the adapters change the model
    assert rel_err(unmerged, merged) < MAX_REL

    require_binary_or_fail()
    ours = run_onnxtune(dst, feeds)["logits"]
    assert rel_err(merged, ours) < MAX_REL


def test_gemm_transposed_weights(tmp_path):
    model = onnx.load(MLP)
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    assert all(helper.get_attribute_value(a) == 1 for n in gemms for a in n.attribute if a.name == "transB")
    names = [n.input[1] for n in gemms]
    lora = make_lora(model, names, transposed=True, tmp=tmp_path, seed=2)
    dst = tmp_path / "mlp_merged.onnx"
    export(MLP, dst, merges=[(n, v[2], v[3], True) for n, v in lora.items()])
    onnx.checker.check_model(str(dst), full_check=True)
    check_carried_over(model, dst, set(names))
    src_w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    got_w = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(dst)).graph.initializer}
    for n, (a, b, _, _) in lora.items():
        ref = merged_reference(src_w[n], a, b, transposed=True)
        assert np.max(np.abs(got_w[n] - ref)) <= 1e-6 * max(1.0, np.max(np.abs(ref))), n

    feeds = {"x": np.random.default_rng(3).standard_normal((5, 16)).astype(np.float32)}
    base = run_ort(MLP, feeds)["y"]
    unmerged = run_ort(unmerged_model(model, lora), feeds)["y"]
    merged = run_ort(str(dst), feeds)["y"]
    assert rel_err(base, unmerged) > 1e-4
    assert rel_err(unmerged, merged) < MAX_REL
    require_binary_or_fail()
    assert rel_err(merged, run_onnxtune(dst, feeds)["y"]) < MAX_REL


def test_external_data_stays_external(tmp_path):
    model = onnx.load(GPT2)
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    src = src_dir / "model.onnx"
    onnx.save_model(copy.deepcopy(model), str(src), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=1024)
    src_meta = onnx.load(str(src), load_external_data=False)
    external = {i.name for i in src_meta.graph.initializer if uses_external_data(i)}
    assert external and len(external) < len(src_meta.graph.initializer)  # a mix of both
    data_hash = sha256(src_dir / "weights.bin")

    names = matmul_weights(model)[:3]
    lora = make_lora(model, names, transposed=False, tmp=tmp_path, seed=4)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dst = out_dir / "merged.onnx"
    export(src, dst, merges=[(n, v[2], v[3], False) for n, v in lora.items()])
    assert (out_dir / "merged.onnx.data").exists()
    onnx.checker.check_model(str(dst), full_check=True)

    dst_meta = onnx.load(str(dst), load_external_data=False)
    for t in dst_meta.graph.initializer:
        assert uses_external_data(t) == (t.name in external), t.name
        if uses_external_data(t):
            info = {e.key: e.value for e in t.external_data}
            assert info["location"] == "merged.onnx.data"
            assert int(info["offset"]) % 64 == 0
    check_carried_over(src_meta, dst, set(names))

    feeds = gpt2_feeds(1)
    unmerged = run_ort(unmerged_model(model, lora), feeds)["logits"]
    merged = run_ort(str(dst), feeds)["logits"]
    assert rel_err(unmerged, merged) < MAX_REL
    require_binary_or_fail()
    assert rel_err(merged, run_onnxtune(dst, feeds)["logits"]) < MAX_REL

    # The source is untouched and still gives the original logits.
    assert sha256(src_dir / "weights.bin") == data_hash
    assert rel_err(run_ort(GPT2, feeds)["logits"], run_ort(str(src), feeds)["logits"]) == 0.0
    # A destination that would replace the data file the source reads from is refused.
    p = export(src_dir / "model.onnx", src_dir / "weights.bin", merges=[], check=False)
    assert p.returncode == 1 and "weights.bin" in p.stderr
    assert sha256(src_dir / "weights.bin") == data_hash


def test_over_limit_moves_large_initializers(tmp_path):
    model = onnx.load(GPT2)
    dst = tmp_path / "big.onnx"
    export(GPT2, dst, limit=100_000)  # gpt2_tiny is ~0.5 MB: pretend that is over the limit
    onnx.checker.check_model(str(dst), full_check=True)
    meta = onnx.load(str(dst), load_external_data=False)
    assert meta.ByteSize() <= 100_000
    full = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    n_ext = 0
    for t in meta.graph.initializer:
        assert uses_external_data(t) == (full[t.name].nbytes >= 1024), t.name
        n_ext += uses_external_data(t)
    assert n_ext >= 10
    feeds = gpt2_feeds(2)
    np.testing.assert_allclose(run_ort(str(dst), feeds)["logits"], run_ort(GPT2, feeds)["logits"], rtol=1e-6, atol=1e-6)

    p = export(GPT2, tmp_path / "too_small.onnx", limit=10, check=False)
    assert p.returncode == 1 and "external data" in p.stderr
    assert not (tmp_path / "too_small.onnx").exists()


@pytest.mark.parametrize("name", ["gpt2_tiny", "llama_tiny", "bert_tiny", "mlp_gemm"])
def test_no_updates_reproduces_the_file(tmp_path, name):
    """protobuf-c writes fields in number order, as the exporters that made these files did, so
    an export without updates is the source byte for byte."""
    src = os.path.join(MODELS_DIR, name + ".onnx")
    dst = tmp_path / (name + ".onnx")
    export(src, dst)
    with open(src, "rb") as a, open(dst, "rb") as b:
        assert a.read() == b.read()


def test_bad_updates_name_the_tensor(tmp_path):
    w = tmp_path / "w.npy"
    np.save(w, np.zeros((64, 64), np.float32))
    dst = tmp_path / "bad.onnx"
    p = export(GPT2, dst, updates=[("transformer.h.7.mlp.c_fc.weight", w)], check=False)
    assert p.returncode == 1 and "transformer.h.7.mlp.c_fc.weight" in p.stderr
    p = export(GPT2, dst, updates=[("onnx::MatMul_296", w)], check=False)
    assert p.returncode == 1 and "onnx::MatMul_296" in p.stderr and "[64, 64]" in p.stderr and "[64, 192]" in p.stderr
    assert not dst.exists() and not [f for f in os.listdir(tmp_path) if ".tmp." in f]
    p = export(GPT2, tmp_path / "missing" / "dir" / "x.onnx", updates=[("onnx::MatMul_308", w)], check=False)
    assert p.returncode == 1 and "missing/dir/x.onnx" in p.stderr
