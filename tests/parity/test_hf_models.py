"""Hugging Face model directories (config.json + safetensors) against transformers.

The fixtures in tests/models/hf/ (made by tests/models/hf/make_hf_models.py with
transformers 4.36 and PyTorch, committed) hold tiny random-weight GPT-2, Llama (GQA,
rope_theta 50000), tied Llama (rope_scaling linear) and BertForSequenceClassification
models with inputs and the logits transformers computed for them. onnxtune builds each graph
from the directory alone (importer/hf_*.c through ot_model_load) and runs it through
tests/tools/hf_infer ($ONNXTUNE_HF_INFER, set by ctest; else build/tests/hf_infer). Logits
must equal the reference within 1e-5 relative (max|a - b| / max|b|), at the fixture's
[2, 7] inputs and at [3, 5].
"""
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from otrun import REPO_ROOT, SANITIZER_MARKERS  # noqa: E402

HF_DIR = os.path.join(REPO_ROOT, "tests", "models", "hf")
MAX_REL = 1e-5
INPUTS = {"gpt2": ["input_ids"], "llama": ["input_ids"], "llama_tied": ["input_ids"],
          "bert": ["input_ids", "attention_mask", "token_type_ids"]}


def tool():
    path = os.environ.get("ONNXTUNE_HF_INFER") or os.path.join(REPO_ROOT, "build", "tests", "hf_infer")
    if not os.path.exists(path):
        pytest.fail(f"hf_infer not built at {path} (build the hf_infer target or set ONNXTUNE_HF_INFER)",
                    pytrace=False)
    return path


def infer(model, feeds, out_dir):
    """Runs hf_infer on `model` with feeds {name: array}; returns (returncode, stderr, logits)."""
    args = [tool(), str(model), str(out_dir)]
    for name, arr in feeds.items():
        path = os.path.join(out_dir, f"in_{name}.npy")
        np.save(path, arr)
        args.append(f"{name}={path}")
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    for marker in SANITIZER_MARKERS:
        assert marker not in p.stderr, p.stderr
    logits = np.load(os.path.join(out_dir, "logits.npy")) if p.returncode == 0 else None
    return p.returncode, p.stderr, logits


def fixture_feeds(name, suffix):
    d = os.path.join(HF_DIR, name)
    return {k: np.load(os.path.join(d, f"{k}{suffix}.npy")) for k in INPUTS[name]
            if os.path.exists(os.path.join(d, f"{k}{suffix}.npy"))}


def rel_err(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())


@pytest.mark.parametrize("suffix", ["", "_b3s5"])
@pytest.mark.parametrize("name", ["gpt2", "llama", "llama_tied", "bert"])
def test_logits_match_transformers(name, suffix, tmp_path):
    d = os.path.join(HF_DIR, name)
    rc, err, got = infer(d, fixture_feeds(name, suffix), tmp_path)
    assert rc == 0, err
    want = np.load(os.path.join(d, f"logits{suffix}.npy"))
    assert got.shape == want.shape and got.dtype == np.float32
    assert rel_err(got, want) <= MAX_REL, (name, suffix, rel_err(got, want))
    f64 = os.path.join(d, f"logits_f64{suffix}.npy")
    if os.path.exists(f64):  # transformers cannot run every model in float64 on torch 1.13
        assert rel_err(got, np.load(f64)) <= MAX_REL


def test_bert_mask_and_token_types_matter(tmp_path):
    """The padded row changes when the mask is dropped, and token types change logits:
    neither input can be silently ignored."""
    feeds = fixture_feeds("bert", "")
    want = np.load(os.path.join(HF_DIR, "bert", "logits.npy"))
    no_mask = dict(feeds, attention_mask=np.ones_like(feeds["attention_mask"]))
    rc, err, got = infer(os.path.join(HF_DIR, "bert"), no_mask, tmp_path)
    assert rc == 0, err
    assert rel_err(got[0], want[0]) <= MAX_REL  # row 0 has no padding
    assert rel_err(got[1], want[1]) > 1e-3
    no_types = dict(feeds, token_type_ids=np.zeros_like(feeds["token_type_ids"]))
    rc, err, got = infer(os.path.join(HF_DIR, "bert"), no_types, tmp_path)
    assert rc == 0, err
    assert rel_err(got, want) > 1e-3


def test_config_json_path_loads_the_directory(tmp_path):
    rc, err, got = infer(os.path.join(HF_DIR, "llama", "config.json"), fixture_feeds("llama", ""), tmp_path)
    assert rc == 0, err
    assert rel_err(got, np.load(os.path.join(HF_DIR, "llama", "logits.npy"))) <= MAX_REL


def test_unknown_model_type_is_named(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "mamba", "vocab_size": 10}')
    rc, err, _ = infer(model, {"input_ids": np.zeros((1, 2), np.int64)}, tmp_path)
    assert rc == 1
    assert "mamba" in err and "gpt2, llama, bert" in err, err


def _bf16_bits(a):
    """float32 array -> bfloat16 bit patterns (round to nearest even; the weights hold no NaN)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _write_bf16_safetensors(path, tensors):
    """A safetensors file of BF16 tensors from {name: uint16 bit arrays} (NumPy has no bfloat16)."""
    import json
    import struct
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = tensors[name].tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_bf16_checkpoint_equals_its_f32_widening(tmp_path):
    """A checkpoint stored in BF16 (as most Hugging Face models ship) loads: its logits equal,
    bit for bit, those of the same weights stored as f32 (the importer widens exactly); a LoRA
    run on it exports merged safetensors in BF16 again (as-source), and in F32 when asked."""
    import shutil
    from safetensors.numpy import load_file, save_file
    src = os.path.join(HF_DIR, "llama")
    bits = {k: _bf16_bits(v) for k, v in load_file(os.path.join(src, "model.safetensors")).items()}
    d16, d32 = tmp_path / "bf16", tmp_path / "f32"
    for d in (d16, d32):
        d.mkdir()
        shutil.copy(os.path.join(src, "config.json"), d / "config.json")
    _write_bf16_safetensors(d16 / "model.safetensors", bits)
    save_file({k: (b.astype(np.uint32) << 16).view(np.float32) for k, b in bits.items()}, str(d32 / "model.safetensors"))
    feeds = fixture_feeds("llama", "")
    (o16 := tmp_path / "o16").mkdir()
    (o32 := tmp_path / "o32").mkdir()
    rc16, err16, got16 = infer(d16, feeds, o16)
    rc32, err32, got32 = infer(d32, feeds, o32)
    assert rc16 == 0 and rc32 == 0, (err16, err32)
    assert np.array_equal(got16, got32)
    want = np.load(os.path.join(src, "logits.npy"))
    assert 0 < rel_err(got16, want) < 0.05  # bf16 weights: close to the f32 model, not equal

    bin_ = os.environ.get("ONNXTUNE_BIN") or os.path.join(REPO_ROOT, "build", "onnxtune")
    rng = np.random.default_rng(0)
    with open(tmp_path / "train.jsonl", "w") as f:
        for _ in range(8):
            f.write('{"input_ids": [%s]}\n' % ", ".join(str(int(x)) for x in rng.integers(0, 160, 12)))
    out = tmp_path / "run"
    p = subprocess.run([bin_, "run", "--model", str(d16), "--data", str(tmp_path / "train.jsonl"), "--out", str(out),
                        "--steps", "2", "--batch-size", "4", "--seq-len", "12", "--lr", "1e-2", "--precision", "bf16",
                        "--export", "safetensors"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    with open(out / "export" / "model.safetensors", "rb") as f:
        import json
        import struct
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    dtypes = {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    assert dtypes == {"BF16"}, dtypes
    p = subprocess.run([bin_, "export", "--checkpoint", str(out), "--format", "safetensors", "--dtype", "fp32",
                        "--out", str(tmp_path / "f32.safetensors")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    merged = load_file(str(tmp_path / "f32.safetensors"))
    assert {v.dtype for v in merged.values()} == {np.dtype(np.float32)}
    # the trained weights moved off the bf16 grid only where LoRA merged into them
    assert any(not np.array_equal(merged[k], (bits[k].astype(np.uint32) << 16).view(np.float32))
               for k in merged if k in bits)
