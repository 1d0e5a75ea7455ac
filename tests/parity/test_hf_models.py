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
