"""Whole-model parity: onnxtune vs ONNX Runtime for every tests/models/*.onnx.

Each model runs at batch 1 and 3 and, when it has a sequence axis, at sequence length 7 and 32
(token ids are drawn over the whole vocabulary). BERT gets an attention mask with padding in
every batch size (right padding, and left padding in row 2 at batch 3).

Pass criteria, for every output: max|onnxtune - ort| / max|ort| < 1e-5, and
np.testing.assert_allclose(rtol=1e-5, atol=1e-6 * max|ort|); dtype and shape equal.

The models come from tests/models/make_models.py (run with /usr/bin/python3, which has torch).
"""
import glob
import os
import sys
import zlib

import numpy as np
import onnx
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from otrun import require_binary_or_fail, run_onnxtune, run_ort  # noqa: E402

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
MODEL_FILES = sorted(glob.glob(os.path.join(MODELS_DIR, "*.onnx")))
BATCHES = (1, 3)
SEQS = (7, 32)
MAX_REL = 1e-5


def _vocab_size(model):
    """Rows of the largest float initializer gathered by a Gather whose indices are a graph input
    (the token embedding), else 256."""
    inits = {i.name: i for i in model.graph.initializer}
    inputs = {i.name for i in model.graph.input}
    best = 0
    for n in model.graph.node:
        if n.op_type == "Gather" and n.input[0] in inits and n.input[1] in inputs:
            best = max(best, inits[n.input[0]].dims[0])
    return best or 256


def _input_specs(model):
    """[(name, numpy dtype, [dim or dim_param])] of the graph inputs that are not initializers."""
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = [d.dim_param if d.dim_param else d.dim_value for d in tt.shape.dim]
        specs.append((vi.name, onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type), dims))
    return specs


def _has_sequence_axis(model):
    return any(isinstance(d, str) and d != "batch" for _, _, dims in _input_specs(model) for d in dims)


def make_feeds(model, batch, seq, seed):
    rng = np.random.default_rng(seed)
    vocab = _vocab_size(model)
    feeds = {}
    for name, dtype, dims in _input_specs(model):
        shape = []
        for k, d in enumerate(dims):
            if isinstance(d, str):
                shape.append(batch if (k == 0 or d == "batch") else seq)
            else:
                shape.append(d)
        if name == "attention_mask":
            m = np.ones(shape, dtype)
            s = shape[1]
            m[0, max(1, s - 2):] = 0                 # right padding, also at batch 1
            if shape[0] > 1:
                m[1, max(1, s // 2):] = 0
            if shape[0] > 2:
                m[2, : s // 3] = 0                   # left padding
            feeds[name] = m
        elif np.issubdtype(dtype, np.integer):
            feeds[name] = rng.integers(0, vocab, size=shape).astype(dtype)
        else:
            feeds[name] = rng.standard_normal(size=shape).astype(dtype)
    return feeds


def _params():
    params = []
    for path in MODEL_FILES:
        name = os.path.splitext(os.path.basename(path))[0]
        model = onnx.load(path, load_external_data=False)
        seqs = SEQS if _has_sequence_axis(model) else (None,)
        for b in BATCHES:
            for s in seqs:
                tag = "%s-b%d" % (name, b) + ("" if s is None else "-s%d" % s)
                seed = zlib.crc32(tag.encode()) & 0xFFFF
                params.append(pytest.param(path, b, s, seed, id="%s-seed%d" % (tag, seed)))
    return params


def test_models_present():
    names = {os.path.basename(p) for p in MODEL_FILES}
    want = {"gpt2_tiny.onnx", "llama_tiny.onnx", "bert_tiny.onnx", "mlp_gemm.onnx"}
    assert want <= names, "missing models in %s: %s (run /usr/bin/python3 tests/models/make_models.py)" % (
        MODELS_DIR, sorted(want - names))


@pytest.mark.parametrize("path,batch,seq,seed", _params())
def test_model_parity(path, batch, seq, seed):
    require_binary_or_fail()
    model = onnx.load(path, load_external_data=False)
    feeds = make_feeds(model, batch, seq or 1, seed)
    ref = run_ort(path, feeds)
    got = run_onnxtune(path, feeds)
    assert sorted(got) == sorted(ref)
    for name, r in ref.items():
        g = got[name]
        assert g.dtype == r.dtype, "%s: dtype %s, expected %s" % (name, g.dtype, r.dtype)
        assert g.shape == r.shape, "%s: shape %s, expected %s" % (name, g.shape, r.shape)
        scale = float(np.abs(r).max())
        rel = float(np.abs(g.astype(np.float64) - r).max()) / max(scale, 1e-30)
        assert rel < MAX_REL, "%s: max|a-b|/max|b| = %.3g (limit %g)" % (name, rel, MAX_REL)
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6 * scale, err_msg=name)
