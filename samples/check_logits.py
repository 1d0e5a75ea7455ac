"""Compares onnxtune's logits for a model with ONNX Runtime's on the same input.

usage: python samples/check_logits.py MODEL.onnx INPUT_IDS.npy ONNXTUNE_LOGITS.npy
Exits non-zero when the relative error max|a-b| / max|b| exceeds 1e-5.
"""
import sys

import numpy as np
import onnxruntime as ort


def main() -> int:
    model, ids_path, ours_path = sys.argv[1:4]
    ids = np.load(ids_path)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: ids})[0]
    ours = np.load(ours_path)
    if ours.shape != ref.shape:
        print(f"shape mismatch: onnxtune {ours.shape}, onnxruntime {ref.shape}")
        return 1
    rel = float(np.max(np.abs(ours - ref)) / max(float(np.max(np.abs(ref))), 1e-30))
    print(f"logits {ours.shape}: max relative error vs ONNX Runtime {rel:.2e} (tolerance 1e-5)")
    return 0 if rel < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
