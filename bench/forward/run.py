#!/usr/bin/env python3
"""Forward-pass benchmark: onnxtune vs ONNX Runtime on a GPT-2-small-sized graph.

    python3 bench/forward/run.py [--threads N] [--repeat 10] [--warmup 2] [--seq 256] ...

1. Builds (onnx.helper + numpy, no torch) a GPT-2 small graph -- 12 layers, d=768, 12 heads,
   vocab 50257, 1024 positions -- with the ops PyTorch exports for it: Gather embeddings,
   Shape/Gather/Range/Unsqueeze for position ids, a causal additive mask sliced from a
   [1,1,1024,1024] constant, LayerNormalization, MatMul+Add, Split, Reshape/Transpose heads,
   MatMul Q.K^T, Div by sqrt(64), Add mask, Softmax, MatMul, the tanh GELU formula
   (Pow/Mul/Add/Tanh; `--gelu op` uses the opset-20 Gelu op instead), residual Adds, final
   LayerNormalization, tied head as MatMul with the transposed embedding (a separate initializer,
   as the exporter's constant folding leaves it). Weights are random (seeded) and live in
   external data. Cached under bench/forward/.cache/<config hash>/ (gitignored).
2. Runs ONNX Runtime (CPU, intra_op_num_threads = --threads, default graph optimizations) and
   onnxtune once on the same input_ids and checks max|a-b|/max|b| < 1e-4 on the logits.
3. Times --repeat forward passes of each after --warmup untimed ones: ORT in-process,
   onnxtune via `onnxtune infer ... --repeat N`, which prints a JSON line
   {"repeat":N,"mean_ms":...,"min_ms":...}. Loading is not timed for either.
4. Prints a table and the onnxtune/ORT time ratio, then one JSON summary line.

The onnxtune binary is $ONNXTUNE_BIN or build/onnxtune; it gets --threads and --warmup, and
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to --threads too.
"""
import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "parity"))
import otrun  # noqa: E402

FMIN = float(np.finfo(np.float32).min)


# ------------------------------------------------------------------------------------------
# graph builder
# ------------------------------------------------------------------------------------------
class Builder:
    """Nodes plus initializers streamed straight into one external data file."""

    def __init__(self, data_path, seed):
        self.nodes, self.inits = [], []
        self.data_path = data_path
        self.data = open(data_path, "wb")
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def close(self):
        self.data.close()

    def init(self, name, arr):
        arr = np.ascontiguousarray(arr)
        off = self.data.tell()
        pad = (-off) % 64                      # 64-byte aligned, so a reader can mmap in place
        if pad:
            self.data.write(b"\0" * pad)
            off += pad
        self.data.write(arr.tobytes())
        t = TensorProto()
        t.name = name
        t.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
        t.dims.extend(arr.shape)
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", os.path.basename(self.data_path)), ("offset", str(off)),
                     ("length", str(arr.nbytes))):
            e = t.external_data.add()
            e.key, e.value = k, v
        self.inits.append(t)
        return name

    def const(self, name, arr):
        """small constant as a Constant node (how the exporter writes scalars and shapes)"""
        self.nodes.append(helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(np.asarray(arr))))
        return name

    def op(self, op_type, inputs, name_hint, n_out=1, **attrs):
        self.count += 1
        outs = ["/%s/%s_output_%d" % (name_hint, op_type, k) for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name="/%s/%s" % (name_hint, op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def normal(self, *shape, std=0.02):
        return (self.rng.standard_normal(size=shape, dtype=np.float32) * np.float32(std)).astype(np.float32)


def build_gpt2(folder, cfg):
    L, d, H, V, P = cfg["layers"], cfg["d_model"], cfg["heads"], cfg["vocab"], cfg["max_pos"]
    hd = d // H
    os.makedirs(folder, exist_ok=True)
    b = Builder(os.path.join(folder, "weights.bin"), cfg["seed"])

    # embeddings
    wte = b.normal(V, d)
    b.init("transformer.wte.weight", wte)
    b.init("transformer.wpe.weight", b.normal(P, d, std=0.01))
    shape = b.op("Shape", ["input_ids"], "transformer")
    seq = b.op("Gather", [shape, b.const("c_one", np.array(1, np.int64))], "transformer/seq", axis=0)
    pos = b.op("Range", [b.const("c_zero", np.array(0, np.int64)), seq, "c_one"], "transformer/pos")
    pos = b.op("Unsqueeze", [pos, b.const("c_axes0", np.array([0], np.int64))], "transformer/pos")
    tok = b.op("Gather", ["transformer.wte.weight", "input_ids"], "transformer/wte")
    pe = b.op("Gather", ["transformer.wpe.weight", pos], "transformer/wpe")
    x = b.op("Add", [tok, pe], "transformer/emb")

    # causal additive mask: [1,1,P,P] constant sliced to [1,1,s,s]
    mask_full = np.triu(np.full((P, P), FMIN, np.float32), k=1)[None, None]
    b.init("transformer.causal_mask", mask_full)
    seq1 = b.op("Unsqueeze", [seq, "c_axes0"], "transformer/mask")
    ends = b.op("Concat", [seq1, seq1], "transformer/mask", axis=0)
    mask = b.op("Slice", ["transformer.causal_mask", b.const("c_zeros2", np.array([0, 0], np.int64)), ends,
                          b.const("c_axes23", np.array([2, 3], np.int64))], "transformer/mask")

    heads_shape = b.const("c_heads_shape", np.array([0, 0, H, hd], np.int64))
    merge_shape = b.const("c_merge_shape", np.array([0, 0, d], np.int64))
    split_sizes = b.const("c_split", np.array([d, d, d], np.int64))
    scale = b.const("c_scale", np.array(math.sqrt(hd), np.float32))
    c_half = b.const("c_half", np.array(0.5, np.float32))
    c_three = b.const("c_three", np.array(3.0, np.float32))
    c_044 = b.const("c_044715", np.array(0.044715, np.float32))
    c_sqrt2pi = b.const("c_sqrt_2_over_pi", np.array(math.sqrt(2.0 / math.pi), np.float32))
    c_onef = b.const("c_one_f", np.array(1.0, np.float32))

    def ln(x, prefix, hint):
        b.init(prefix + ".weight", (1.0 + b.normal(d, std=0.05)).astype(np.float32))
        b.init(prefix + ".bias", b.normal(d, std=0.02))
        return b.op("LayerNormalization", [x, prefix + ".weight", prefix + ".bias"], hint, axis=-1, epsilon=1e-5)

    def linear(x, prefix, din, dout, hint, std=0.02):
        b.init(prefix + ".weight", b.normal(din, dout, std=std))   # [in, out], as GPT-2's Conv1D
        b.init(prefix + ".bias", b.normal(dout, std=0.01))
        y = b.op("MatMul", [x, prefix + ".weight"], hint)
        return b.op("Add", [prefix + ".bias", y], hint)

    for i in range(L):
        p = "transformer.h.%d" % i
        hint = "transformer/h.%d" % i
        h = ln(x, p + ".ln_1", hint + "/ln_1")
        qkv = linear(h, p + ".attn.c_attn", d, 3 * d, hint + "/attn/c_attn")
        q, k, v = b.op("Split", [qkv, split_sizes], hint + "/attn", n_out=3, axis=2)
        q = b.op("Transpose", [b.op("Reshape", [q, heads_shape], hint + "/attn/q")], hint + "/attn/q", perm=[0, 2, 1, 3])
        k = b.op("Transpose", [b.op("Reshape", [k, heads_shape], hint + "/attn/k")], hint + "/attn/k", perm=[0, 2, 3, 1])
        v = b.op("Transpose", [b.op("Reshape", [v, heads_shape], hint + "/attn/v")], hint + "/attn/v", perm=[0, 2, 1, 3])
        s = b.op("MatMul", [q, k], hint + "/attn/scores")
        s = b.op("Div", [s, scale], hint + "/attn/scores")
        s = b.op("Add", [s, mask], hint + "/attn/scores")
        s = b.op("Softmax", [s], hint + "/attn/probs", axis=-1)
        a = b.op("MatMul", [s, v], hint + "/attn/ctx")
        a = b.op("Transpose", [a], hint + "/attn/ctx", perm=[0, 2, 1, 3])
        a = b.op("Reshape", [a, merge_shape], hint + "/attn/ctx")
        a = linear(a, p + ".attn.c_proj", d, d, hint + "/attn/c_proj")
        x = b.op("Add", [x, a], hint + "/res1")
        h = ln(x, p + ".ln_2", hint + "/ln_2")
        h = linear(h, p + ".mlp.c_fc", d, 4 * d, hint + "/mlp/c_fc")
        if cfg["gelu"] == "op":
            h = b.op("Gelu", [h], hint + "/mlp/act", approximate="tanh")
        else:   # HF NewGELUActivation: 0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x^3)))
            g = hint + "/mlp/act"
            half_x = b.op("Mul", [h, c_half], g + "/half")
            cube = b.op("Pow", [h, c_three], g)
            inner = b.op("Add", [h, b.op("Mul", [cube, c_044], g + "/cube")], g)
            t = b.op("Tanh", [b.op("Mul", [inner, c_sqrt2pi], g + "/inner")], g)
            h = b.op("Mul", [half_x, b.op("Add", [t, c_onef], g + "/t")], g)
        h = linear(h, p + ".mlp.c_proj", 4 * d, d, hint + "/mlp/c_proj")
        x = b.op("Add", [x, h], hint + "/res2")

    x = ln(x, "transformer.ln_f", "transformer/ln_f")
    b.init("lm_head.weight_transposed", np.ascontiguousarray(wte.T))     # tied head, folded transpose
    logits = b.op("MatMul", [x, "lm_head.weight_transposed"], "lm_head")
    b.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="/lm_head/Identity"))
    b.close()

    graph = helper.make_graph(
        b.nodes, "gpt2_small_bench",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", V])],
        initializer=b.inits)
    opset = 20 if cfg["gelu"] == "op" else 17
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=9 if opset == 20 else 8, producer_name="onnxtune-bench")
    path = os.path.join(folder, "model.onnx")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, path)
    return path


def cached_model(cfg, rebuild=False):
    key = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]
    folder = os.path.join(HERE, ".cache", "gpt2-%s" % key)
    path = os.path.join(folder, "model.onnx")
    if rebuild or not os.path.isfile(path):
        t = time.perf_counter()
        print("building %s (%s) ..." % (path, ", ".join("%s=%s" % kv for kv in sorted(cfg.items()))), flush=True)
        path = build_gpt2(folder, cfg)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1, sort_keys=True)
        print("  built in %.1f s, weights %.0f MB" % (time.perf_counter() - t,
              os.path.getsize(os.path.join(folder, "weights.bin")) / 2 ** 20), flush=True)
    return path


# ------------------------------------------------------------------------------------------
# runners
# ------------------------------------------------------------------------------------------
def time_ort(path, feeds, threads, repeat, warmup):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    t = time.perf_counter()
    sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t
    out = sess.run(["logits"], feeds)[0]
    for _ in range(max(0, warmup - 1)):
        sess.run(["logits"], feeds)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        sess.run(["logits"], feeds)
        times.append((time.perf_counter() - t) * 1e3)
    return out, {"mean_ms": float(np.mean(times)), "min_ms": float(np.min(times)), "load_s": load_s}


def time_onnxtune(path, ids_file, threads, repeat, warmup):
    env = {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    extra, notes = ["--repeat", str(repeat), "--threads", str(threads), "--warmup", str(max(1, warmup))], []
    with tempfile.TemporaryDirectory(prefix="otbench-") as tmp:
        args = ["infer", path, "--input", "input_ids=%s" % ids_file, "--out", os.path.join(tmp, "out")] + extra
        t = time.perf_counter()
        p = otrun.run_cli(args, env=env, timeout=3600)
        wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit("onnxtune %s failed (exit %d):\n%s" % (" ".join(args), p.returncode, p.stderr))
    rec = None
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{") and '"repeat"' in line:
            rec = json.loads(line)
    if rec is None:
        raise SystemExit("onnxtune printed no {\"repeat\":...} JSON line; stdout:\n%s" % p.stdout)
    rec["wall_s"] = wall
    return rec, notes


def main():
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=ncpu, help="intra-op threads for both (default: all, %d)" % ncpu)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--max-pos", type=int, default=1024)
    ap.add_argument("--gelu", choices=["formula", "op"], default="formula",
                    help="tanh formula with Pow/Mul/Add/Tanh (opset 17, default) or the Gelu op (opset 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached model")
    ap.add_argument("--ort-only", action="store_true", help="time ONNX Runtime only (no onnxtune binary needed)")
    ap.add_argument("--max-rel", type=float, default=1e-4, help="logits check: max|a-b|/max|b| limit")
    a = ap.parse_args()
    if a.seq > a.max_pos:
        ap.error("--seq must be <= --max-pos")

    cfg = {"layers": a.layers, "d_model": a.d_model, "heads": a.heads, "vocab": a.vocab, "max_pos": a.max_pos,
           "gelu": a.gelu, "seed": a.seed}
    path = cached_model(cfg, a.rebuild)
    ids = np.random.default_rng(a.seed + 1).integers(0, a.vocab, (a.batch, a.seq)).astype(np.int64)
    feeds = {"input_ids": ids}

    ref, ort_t = time_ort(path, feeds, a.threads, a.repeat, a.warmup)
    rows = [("onnxruntime", ort_t)]
    summary = {"model": os.path.relpath(path, REPO), "batch": a.batch, "seq": a.seq, "threads": a.threads,
               "repeat": a.repeat, "warmup": a.warmup, "ort_mean_ms": ort_t["mean_ms"], "ort_min_ms": ort_t["min_ms"]}
    notes = []
    if not a.ort_only:
        got = otrun.run_onnxtune(path, feeds, env={"OMP_NUM_THREADS": str(a.threads),
                                                   "OPENBLAS_NUM_THREADS": str(a.threads)}, timeout=3600)["logits"]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            raise SystemExit("logits: onnxtune %s %s, onnxruntime %s %s" % (got.dtype, got.shape, ref.dtype, ref.shape))
        rel = float(np.abs(got.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))
        print("logits check: max|onnxtune-ort|/max|ort| = %.3g (limit %g)" % (rel, a.max_rel))
        summary["max_rel_err"] = rel
        if not rel < a.max_rel:
            raise SystemExit("logits differ from ONNX Runtime beyond %g; not timing" % a.max_rel)
        with tempfile.TemporaryDirectory(prefix="otbench-") as tmp:
            ids_file = os.path.join(tmp, "input_ids.npy")
            np.save(ids_file, ids)
            ot_t, notes = time_onnxtune(path, ids_file, a.threads, a.repeat, a.warmup)
        rows.append(("onnxtune", ot_t))
        summary.update({"onnxtune_mean_ms": ot_t["mean_ms"], "onnxtune_min_ms": ot_t["min_ms"],
                        "ratio_mean": ot_t["mean_ms"] / ort_t["mean_ms"], "ratio_min": ot_t["min_ms"] / ort_t["min_ms"]})

    print()
    print("GPT-2 %d layers d=%d heads=%d vocab=%d, batch %d x seq %d, %d threads, %d timed runs after %d warm-up"
          % (a.layers, a.d_model, a.heads, a.vocab, a.batch, a.seq, a.threads, a.repeat, a.warmup))
    print("%-12s %12s %12s" % ("engine", "mean ms", "min ms"))
    for name, t in rows:
        print("%-12s %12.2f %12.2f" % (name, t["mean_ms"], t["min_ms"]))
    if "ratio_mean" in summary:
        print("onnxtune/ort: %.2fx (mean), %.2fx (min)" % (summary["ratio_mean"], summary["ratio_min"]))
    for n in notes:
        print("note:", n)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
