#!/usr/bin/python3
"""Make the sample model in samples/gpt2-tiny/.

Run with Debian's python (torch 1.13):

    /usr/bin/python3 samples/make_sample.py

Writes
  samples/gpt2-tiny/model.onnx            GPT-2 style LM, d=128, 4 heads, 2 layers, vocab 512,
                                          128 positions, opset 17, dynamic batch/sequence
  samples/gpt2-tiny/input_ids.npy         int64 [2, 16] token ids
  samples/gpt2-tiny/expected_logits.npy   float32 [2, 16, 512], PyTorch's output for input_ids

The architecture is the GPT2LMHeadModel of tests/models/make_models.py (plain torch.nn, HF
module names, tied head), only bigger. Output is deterministic (fixed seeds).
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "models"))
import make_models  # noqa: E402

CONFIG = dict(vocab=512, d=128, heads=4, layers=2, max_pos=128, eps=1e-5)
SEED = 1234


def gpt2_init(model):
    """GPT-2's own initialisation (normal, std 0.02; zero biases), so the sample behaves like
    a pretrained checkpoint: logits of sensible scale and a loss near ln(vocab) on new data."""
    for mod in model.modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Embedding)):
            torch.nn.init.normal_(mod.weight, std=0.02)
            if getattr(mod, "bias", None) is not None:
                torch.nn.init.zeros_(mod.bias)


def main():
    out = os.path.join(HERE, "gpt2-tiny")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model.onnx")
    torch.manual_seed(SEED)
    model = make_models.GPT2LMHeadModel(**CONFIG)
    gpt2_init(model)
    make_models.perturb_norms(model)
    ids0 = torch.randint(0, CONFIG["vocab"], (2, 8), dtype=torch.long)
    make_models.export(model, (ids0,), ["input_ids"], ["logits"],
                       {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}, path)
    make_models.print_histogram("gpt2-tiny", path)

    g = torch.Generator().manual_seed(SEED + 1)
    ids = torch.randint(0, CONFIG["vocab"], (2, 16), generator=g, dtype=torch.long)
    with torch.no_grad():
        logits = model.eval()(ids)
    np.save(os.path.join(out, "input_ids.npy"), ids.numpy().astype(np.int64))
    np.save(os.path.join(out, "expected_logits.npy"), logits.numpy().astype(np.float32))
    print("wrote %s (%d bytes), input_ids.npy %s, expected_logits.npy %s"
          % (path, os.path.getsize(path), tuple(ids.shape), tuple(logits.shape)))


if __name__ == "__main__":
    sys.exit(main())
