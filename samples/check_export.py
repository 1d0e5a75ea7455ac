"""Checks a fine-tuned export of the sample model in ONNX Runtime.

usage: python samples/check_export.py BASE.onnx EXPORTED.onnx TRAIN.jsonl ONNXTUNE_BIN

1. ONNX Runtime loads the exported model (the original graph with LoRA merged into its
   weights) and onnxtune's own forward pass of it agrees (relative error < 1e-5).
2. On the first 32 training sequences, the exported model's causal-LM loss (computed from
   ORT's logits in NumPy) is below the base model's: the fine-tuning is in the weights.
Exits non-zero when either fails.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort


def lm_loss(sess, seqs):
    total, count = 0.0, 0
    for s in seqs:
        ids = np.array([s], dtype=np.int64)
        logits = sess.run(None, {"input_ids": ids})[0][0, :-1].astype(np.float64)
        m = logits.max(-1, keepdims=True)
        lse = np.log(np.exp(logits - m).sum(-1)) + m[:, 0]
        total += float((lse - logits[np.arange(len(s) - 1), s[1:]]).sum())
        count += len(s) - 1
    return total / count


def main() -> int:
    base, exported, train, onnxtune = sys.argv[1:5]
    seqs = [json.loads(line)["input_ids"] for line in open(train)][:32]
    sess_base = ort.InferenceSession(base, providers=["CPUExecutionProvider"])
    sess_ft = ort.InferenceSession(exported, providers=["CPUExecutionProvider"])

    ids = np.array([seqs[0][:16], seqs[1][:16]], dtype=np.int64)
    ref = sess_ft.run(None, {"input_ids": ids})[0]
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "ids.npy"), ids)
        subprocess.run([onnxtune, "infer", exported, "--input", "input_ids=" + os.path.join(tmp, "ids.npy"),
                        "--out", tmp], check=True, stdout=subprocess.DEVNULL)
        ours = np.load(os.path.join(tmp, "logits.npy"))
    rel = float(np.abs(ours - ref).max() / np.abs(ref).max())
    print(f"exported model: onnxtune vs ONNX Runtime logits, max relative error {rel:.2e} (tolerance 1e-5)")

    lb, lf = lm_loss(sess_base, seqs), lm_loss(sess_ft, seqs)
    print(f"loss on training sequences in ONNX Runtime: base model {lb:.4f} -> fine-tuned export {lf:.4f}")
    return 0 if rel < 1e-5 and lf < lb else 1


if __name__ == "__main__":
    sys.exit(main())
