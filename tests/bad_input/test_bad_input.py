"""Bad input to `onnxtune infer` / `onnxtune inspect`: a clean error, never a crash.

Every bad case asserts
  * the process exited with a status in 1..127 (not killed by a signal, not 128+N from a shell),
  * stderr names the offending thing (file path, op name, input name, location, ...),
  * stderr has no sanitizer report ("AddressSanitizer", "runtime error:", ...),
  * no output file was left in --out.
Also: models with weights in external data files (one file, a subfolder, one file per tensor)
run and match ONNX Runtime.

Files are built in a per-test tmp dir from tests/models/*.onnx and onnx.helper models.
"""
import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "parity"))
import otrun  # noqa: E402
from otrun import SANITIZER_MARKERS, assert_outputs_match, require_binary_or_fail, run_ort  # noqa: E402

MODELS = os.path.abspath(os.path.join(HERE, "..", "models"))
GPT2 = os.path.join(MODELS, "gpt2_tiny.onnx")
BERT = os.path.join(MODELS, "bert_tiny.onnx")


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def run_cli(*args, **kw):
    require_binary_or_fail()        # without the binary: a one-line test failure saying so
    return otrun.run_cli(*args, **kw)


def run_onnxtune(*args, **kw):
    require_binary_or_fail()
    return otrun.run_onnxtune(*args, **kw)


def assert_clean_failure(proc, mentions, out_dir=None):
    """mentions: a string, or a tuple of strings of which at least one must be in stderr."""
    err = proc.stderr
    rc = proc.returncode
    assert rc != 0, "expected failure, got exit 0\nstdout:\n%s\nstderr:\n%s" % (proc.stdout, err)
    assert rc > 0, "killed by signal %d\nstderr:\n%s" % (-rc, err)
    assert rc < 128, "exit status %d looks like a signal (128+N)\nstderr:\n%s" % (rc, err)
    for marker in SANITIZER_MARKERS:
        assert marker not in err, "sanitizer report in stderr:\n%s" % err
    assert err.strip(), "no message on stderr (exit %d)" % rc
    wanted = (mentions,) if isinstance(mentions, str) else tuple(mentions)
    assert any(w in err for w in wanted), "stderr does not mention %s:\n%s" % (
        " or ".join(repr(w) for w in wanted), err)
    if out_dir is not None and os.path.isdir(out_dir):
        left = [os.path.join(dp, f) for dp, _, fs in os.walk(out_dir) for f in fs]
        assert not left, "output left behind after a failure: %s" % left


def infer(model, inputs, out_dir, extra=()):
    """inputs: [(name, npy path)]"""
    args = ["infer", str(model)]
    for name, f in inputs:
        args += ["--input", "%s=%s" % (name, f)]
    return run_cli(args + ["--out", str(out_dir)] + list(extra))


def save_npy(path, arr):
    np.save(str(path), arr, allow_pickle=False)
    return str(path)


def feature_model(path, ir_version=8, opset=17):
    """features f32 [N, 16] -> MatMul W[16,4] -> Add b -> scores [N, 4]"""
    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "dense.weight")
    b = numpy_helper.from_array(rng.standard_normal((4,)).astype(np.float32), "dense.bias")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["features", "dense.weight"], ["mm"]),
         helper.make_node("Add", ["mm", "dense.bias"], ["scores"])],
        "features", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 4])], initializer=[w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version)
    onnx.save(m, str(path))
    return str(path)


def single_node_model(path, op, domain="", opset=17, extra_opsets=()):
    node = helper.make_node(op, ["x"], ["y"], domain=domain)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    m = helper.make_model(g, opset_imports=opsets, ir_version=8)
    with open(str(path), "wb") as f:      # no checker: these models are invalid on purpose
        f.write(m.SerializeToString())
    return str(path)


def external_model(folder, name="model.onnx", location="weights.bin", one_file=True):
    """feature_model with its initializers in external data."""
    os.makedirs(str(folder), exist_ok=True)
    src = feature_model(os.path.join(str(folder), "src.onnx"))
    m = onnx.load(src)
    os.remove(src)
    path = os.path.join(str(folder), name)
    onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=one_file,
                    location=location if one_file else None, size_threshold=0)
    return path


def relocate_external(path, new_location):
    """rewrite every initializer's external_data location (without touching the data)"""
    m = onnx.load(path, load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = new_location
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


@pytest.fixture
def feats(tmp_path):
    return save_npy(tmp_path / "features.npy", np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32))


# ------------------------------------------------------------------------------------------
# model files that cannot be read
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("frac", [0.25, 0.5, 0.75, 0.999])
def test_truncated_model(tmp_path, frac):
    data = open(GPT2, "rb").read()
    bad = tmp_path / ("truncated_%d.onnx" % int(frac * 1000))
    bad.write_bytes(data[: int(len(data) * frac)])
    ids = save_npy(tmp_path / "ids.npy", np.zeros((1, 4), np.int64))
    out = tmp_path / "out"
    assert_clean_failure(infer(bad, [("input_ids", ids)], out), str(bad), out)
    assert_clean_failure(run_cli(["inspect", str(bad)]), str(bad))


@pytest.mark.parametrize("kind", ["random-bytes", "text-file", "empty-file", "npy-file"])
def test_not_a_model(tmp_path, feats, kind):
    bad = tmp_path / ("garbage_%s.onnx" % kind)
    if kind == "random-bytes":
        bad.write_bytes(np.random.default_rng(1234).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "text-file":
        bad.write_text("this is not an ONNX model, just a text file\nsecond line\n")
    elif kind == "empty-file":
        bad.write_bytes(b"")
    else:
        bad.write_bytes(open(feats, "rb").read())
    out = tmp_path / "out"
    assert_clean_failure(infer(bad, [("features", feats)], out), str(bad), out)
    assert_clean_failure(run_cli(["inspect", str(bad)]), str(bad))
    assert_clean_failure(run_cli(["inspect", str(bad), "--json"]), str(bad))


def test_model_file_missing(tmp_path, feats):
    missing = tmp_path / "no_such_model.onnx"
    out = tmp_path / "out"
    assert_clean_failure(infer(missing, [("features", feats)], out), str(missing), out)
    assert_clean_failure(run_cli(["inspect", str(missing)]), str(missing))


def test_model_path_is_directory(tmp_path, feats):
    d = tmp_path / "a_directory.onnx"
    d.mkdir()
    assert_clean_failure(infer(d, [("features", feats)], tmp_path / "out"), str(d), tmp_path / "out")


# ------------------------------------------------------------------------------------------
# external data
# ------------------------------------------------------------------------------------------
def test_external_data_missing(tmp_path, feats):
    path = external_model(tmp_path / "m", location="weights_missing.bin")
    os.remove(str(tmp_path / "m" / "weights_missing.bin"))
    out = tmp_path / "out"
    assert_clean_failure(infer(path, [("features", feats)], out), "weights_missing.bin", out)
    # inspect reads the graph only; it may succeed, but must not crash
    proc = run_cli(["inspect", path])
    if proc.returncode != 0:
        assert_clean_failure(proc, "weights_missing.bin")


def test_external_data_too_short(tmp_path, feats):
    path = external_model(tmp_path / "m", location="weights_short.bin")
    data_file = tmp_path / "m" / "weights_short.bin"
    data = data_file.read_bytes()
    data_file.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert_clean_failure(infer(path, [("features", feats)], out), ("weights_short.bin", "dense.weight", "dense.bias"), out)


def test_external_data_escapes_relative(tmp_path, feats):
    """location "../secret.bin": outside the model folder, refused even though the file exists"""
    path = external_model(tmp_path / "m", location="weights.bin")
    os.replace(str(tmp_path / "m" / "weights.bin"), str(tmp_path / "secret.bin"))
    relocate_external(path, "../secret.bin")
    out = tmp_path / "out"
    assert_clean_failure(infer(path, [("features", feats)], out), "../secret.bin", out)


def test_external_data_escapes_nested_relative(tmp_path, feats):
    path = external_model(tmp_path / "m", location="weights.bin")
    os.makedirs(str(tmp_path / "m" / "sub"))
    os.replace(str(tmp_path / "m" / "weights.bin"), str(tmp_path / "secret2.bin"))
    relocate_external(path, "sub/../../secret2.bin")
    out = tmp_path / "out"
    assert_clean_failure(infer(path, [("features", feats)], out), "sub/../../secret2.bin", out)


def test_external_data_escapes_absolute(tmp_path, feats):
    path = external_model(tmp_path / "m", location="weights.bin")
    secret = tmp_path / "abs_secret.bin"
    os.replace(str(tmp_path / "m" / "weights.bin"), str(secret))
    relocate_external(path, str(secret))
    out = tmp_path / "out"
    assert_clean_failure(infer(path, [("features", feats)], out), str(secret), out)


@pytest.mark.parametrize("model,layout", [
    ("gpt2_tiny", "one-file"), ("bert_tiny", "one-file"), ("gpt2_tiny", "subfolder"),
    ("features", "one-file"), ("features", "per-tensor")])
def test_external_data_valid(tmp_path, model, layout):
    folder = tmp_path / "ext"
    os.makedirs(str(folder))
    if model == "features":
        src = onnx.load(feature_model(tmp_path / "src.onnx"))
    else:
        src = onnx.load(os.path.join(MODELS, model + ".onnx"))
    path = os.path.join(str(folder), "model.onnx")
    if layout == "per-tensor":
        onnx.save_model(src, path, save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0)
    else:
        loc = "weights.bin" if layout == "one-file" else "data/weights.bin"
        os.makedirs(os.path.join(str(folder), "data"), exist_ok=True)
        onnx.save_model(src, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=loc, size_threshold=0)
    m = onnx.load(path, load_external_data=False)
    assert any(t.data_location == TensorProto.EXTERNAL for t in m.graph.initializer)
    rng = np.random.default_rng(5)
    if model == "features":
        feeds = {"features": rng.standard_normal((3, 16)).astype(np.float32)}
    else:
        feeds = {"input_ids": rng.integers(0, 256, (2, 9)).astype(np.int64)}
        if model == "bert_tiny":
            mask = np.ones((2, 9), np.int64)
            mask[1, 6:] = 0
            feeds["attention_mask"] = mask
    assert_outputs_match(run_ort(path, feeds), run_onnxtune(path, feeds))


# ------------------------------------------------------------------------------------------
# ops and opsets the runtime does not have
# ------------------------------------------------------------------------------------------
def test_unknown_op(tmp_path, feats):
    path = single_node_model(tmp_path / "foobar.onnx", "FooBar")
    x = save_npy(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    out = tmp_path / "out"
    assert_clean_failure(infer(path, [("x", x)], out), "FooBar", out)


def test_op_not_in_declared_opset(tmp_path):
    """Gelu exists from opset 20; in an opset-17 model it is an unknown op"""
    path = single_node_model(tmp_path / "gelu17.onnx", "Gelu", opset=17)
    x = save_npy(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    out = tmp_path / "out"
    assert_clean_failure(infer(path, [("x", x)], out), "Gelu", out)


def test_unsupported_opset_version(tmp_path):
    path = single_node_model(tmp_path / "opset99.onnx", "Relu", opset=99)
    x = save_npy(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    out = tmp_path / "out"
    assert_clean_failure(infer(path, [("x", x)], out), "99", out)


@pytest.mark.parametrize("opset", [11, 12])
def test_opset_below_13_refused(tmp_path, opset):
    """onnxtune reads opsets 13..21: an older model is refused up front with the range"""
    path = single_node_model(tmp_path / ("opset%d.onnx" % opset), "Relu", opset=opset)
    x = save_npy(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    out = tmp_path / "out"
    assert_clean_failure(infer(path, [("x", x)], out), (str(opset), "13"), out)


def test_unknown_domain(tmp_path):
    path = single_node_model(tmp_path / "custom.onnx", "FusedThing", domain="com.example.custom",
                             extra_opsets=[("com.example.custom", 1)])
    x = save_npy(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    out = tmp_path / "out"
    assert_clean_failure(infer(path, [("x", x)], out), ("FusedThing", "com.example.custom"), out)


# ------------------------------------------------------------------------------------------
# inputs that do not fit the model
# ------------------------------------------------------------------------------------------
@pytest.fixture
def fmodel(tmp_path):
    return feature_model(tmp_path / "features.onnx")


def test_wrong_rank(tmp_path, fmodel):
    f = save_npy(tmp_path / "f3d.npy", np.zeros((2, 3, 16), np.float32))
    out = tmp_path / "out"
    assert_clean_failure(infer(fmodel, [("features", f)], out), "features", out)


def test_wrong_fixed_dim(tmp_path, fmodel):
    f = save_npy(tmp_path / "f15.npy", np.zeros((2, 15), np.float32))
    out = tmp_path / "out"
    assert_clean_failure(infer(fmodel, [("features", f)], out), "features", out)


def test_wrong_rank_dynamic_model(tmp_path):
    ids = save_npy(tmp_path / "ids3d.npy", np.zeros((1, 2, 4), np.int64))
    out = tmp_path / "out"
    assert_clean_failure(infer(GPT2, [("input_ids", ids)], out), "input_ids", out)


def test_wrong_dtype(tmp_path):
    ids = save_npy(tmp_path / "ids_f32.npy", np.zeros((1, 4), np.float32))
    out = tmp_path / "out"
    assert_clean_failure(infer(GPT2, [("input_ids", ids)], out), "input_ids", out)


def test_wrong_dtype_int32_for_float(tmp_path, fmodel):
    f = save_npy(tmp_path / "f_i32.npy", np.zeros((2, 16), np.int32))
    out = tmp_path / "out"
    assert_clean_failure(infer(fmodel, [("features", f)], out), "features", out)


def test_missing_required_input(tmp_path):
    ids = save_npy(tmp_path / "ids.npy", np.zeros((1, 4), np.int64))
    out = tmp_path / "out"
    assert_clean_failure(infer(BERT, [("input_ids", ids)], out), "attention_mask", out)


def test_unknown_input_name(tmp_path, fmodel, feats):
    out = tmp_path / "out"
    assert_clean_failure(infer(fmodel, [("features", feats), ("bogus_input_name", feats)], out),
                         "bogus_input_name", out)


def test_input_given_twice(tmp_path, fmodel, feats):
    out = tmp_path / "out"
    proc = infer(fmodel, [("features", feats), ("features", feats)], out)
    if proc.returncode != 0:          # refusing is fine; crashing is not
        assert_clean_failure(proc, "features", out)


def test_input_file_missing(tmp_path, fmodel):
    missing = tmp_path / "no_such_input.npy"
    out = tmp_path / "out"
    assert_clean_failure(infer(fmodel, [("features", missing)], out), str(missing), out)


@pytest.mark.parametrize("cut", [5, 40, "header", "data"])
def test_truncated_npy(tmp_path, fmodel, feats, cut):
    data = open(feats, "rb").read()
    if cut == "header":
        n = data.index(b"\n") - 5            # inside the header dict
    elif cut == "data":
        n = len(data) - 7                    # inside the array data
    else:
        n = cut
    bad = tmp_path / "features_trunc.npy"
    bad.write_bytes(data[:n])
    out = tmp_path / "out"
    assert_clean_failure(infer(fmodel, [("features", bad)], out), (str(bad), "features"), out)


@pytest.mark.parametrize("kind", ["garbage", "bad-magic", "bad-header", "huge-shape", "object-dtype",
                                  "unknown-dtype"])
def test_corrupt_npy(tmp_path, fmodel, kind):
    bad = tmp_path / ("features_%s.npy" % kind)

    def npy_with_header(header, payload=b""):
        h = header.encode("latin1")
        pad = 64 - (10 + len(h) + 1) % 64
        h = h + b" " * pad + b"\n"
        return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + payload

    if kind == "garbage":
        bad.write_bytes(np.random.default_rng(99).integers(0, 256, 300, dtype=np.uint8).tobytes())
    elif kind == "bad-magic":
        bad.write_bytes(b"\x93NUMPX\x01\x00" + open(save_npy(tmp_path / "ok.npy", np.zeros((2, 16), np.float32)), "rb").read()[8:])
    elif kind == "bad-header":
        bad.write_bytes(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 16", b"\0" * 128))
    elif kind == "huge-shape":
        # claims far more data than the file holds (and more than fits in memory)
        bad.write_bytes(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 16), }",
                                        b"\0" * 128))
    elif kind == "object-dtype":
        arr = np.empty((2, 16), dtype=object)
        np.save(str(bad), arr, allow_pickle=True)
    else:
        bad.write_bytes(npy_with_header("{'descr': '<x9', 'fortran_order': False, 'shape': (2, 16), }", b"\0" * 128))
    out = tmp_path / "out"
    assert_clean_failure(infer(fmodel, [("features", bad)], out), (str(bad), "features"), out)


# ------------------------------------------------------------------------------------------
# outputs that cannot be written
# ------------------------------------------------------------------------------------------
def test_out_dir_under_regular_file(tmp_path, fmodel, feats):
    """--out below a regular file cannot be created (works as root too, unlike chmod)"""
    blocker = tmp_path / "blocker_file"
    blocker.write_text("x")
    out = blocker / "out"
    assert_clean_failure(infer(fmodel, [("features", feats)], out), str(blocker))
    assert blocker.read_text() == "x"


def test_out_is_regular_file(tmp_path, fmodel, feats):
    out = tmp_path / "out_is_a_file"
    out.write_text("keep me")
    assert_clean_failure(infer(fmodel, [("features", feats)], out), str(out))
    assert out.read_text() == "keep me"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_out_dir_read_only(tmp_path, fmodel, feats):
    out = tmp_path / "ro"
    out.mkdir()
    os.chmod(str(out), 0o555)
    try:
        assert_clean_failure(infer(fmodel, [("features", feats)], out), str(out), out)
    finally:
        os.chmod(str(out), 0o755)


def test_good_run_of_the_same_fixture(tmp_path, fmodel, feats):
    """the helpers above build valid inputs: the plain run succeeds and matches ORT"""
    x = np.load(feats)
    assert_outputs_match(run_ort(fmodel, {"features": x}), run_onnxtune(fmodel, {"features": x}))
