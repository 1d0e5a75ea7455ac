#!/usr/bin/python3
"""LoRA training throughput on CPU: `onnxtune train` vs PyTorch on the same GPT-2-style model.

Run with Debian's python (it has torch 1.13 and numpy):

    /usr/bin/python3 bench/train/run.py [--bin build/onnxtune] [--steps 5] [--threads N]
                                        [--vocab 50257] [--layers 6] [--d 512] [--heads 8]
                                        [--seq 256] [--batch 8] [--rank 16] [--precision fp32|bf16]

What it does, in one run:
  1. builds the model with tests/models/make_models.py's GPT2LMHeadModel (pre-LN blocks, fused
     c_attn, tanh GELU, tied head; default 6 layers, d=512, 8 heads, vocab 50257, 256 positions),
     exports it to ONNX (opset 17) and writes a token file; both cached in bench/train/.cache/
     (gitignored) and rebuilt only when the shape options change;
  2. `onnxtune train` on it: LoRA r=16, alpha=32, all-linear (every linear but the tied head),
     AdamW, clipping at 1.0, constant LR, batch 8 x seq 256 in one micro-batch, no shuffling,
     --threads N, --log-json; step times come from the log's elapsed_s;
  3. PyTorch (fp32, torch.set_num_threads(N)) on the same model and weights with a plain LoRA
     module (tests/reference/make_reference.py's LoRALinear: base(x) + scale (x Aᵀ) Bᵀ) on every
     nn.Linear, the same optimizer, clipping and data, in a child process;
  4. a child that only imports torch, to show PyTorch's fixed RSS.
With --precision bf16 (issue 4):
  2'. onnxtune trains with --precision bf16 (bf16 weights/activations, fp32 masters and AdamW);
  3'. PyTorch runs the same step under torch.autocast("cpu", dtype=torch.bfloat16) around the
      forward (the loss in fp32 from the logits, backward outside autocast; fp32 LoRA params and
      AdamW state), and once more in plain fp32, for PyTorch's own bf16/fp32 ratio (issue 4:
      about 2.2x on CPUs with AMX). A oneDNN probe (a child running one bf16 nn.Linear under
      autocast with ONEDNN_VERBOSE=1) shows whether PyTorch's bf16 GEMMs go to oneDNN and which
      ISA it picked (e.g. brg:avx512_core_amx_bf16).
The default --precision fp32 passes --precision fp32 to onnxtune explicitly (its own default is
auto = bf16 where the CPU has bf16 instructions), so the fp32 numbers mean what they did.
Each engine runs in its own child process; peak RSS is that child's maximum resident set size
(/usr/bin/time's %M, else os.wait4); the driver itself imports neither torch nor numpy, because
Linux carries the parent's high-water RSS into a vforked child.
Throughput = batch x seq tokens per step over the step time of steps 2..N (step 1 warms caches
and, for onnxtune, includes planning), both the mean and the fastest step (on a busy machine
the fastest is the better estimate of the code, the mean of what a user waits). The first
step's loss of both engines is printed as a check that they train the same thing (LoRA B starts
at zero, so it is the base model's loss).
ONNX Runtime training is not measured (onnxruntime-training is not installed here).
"""
import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE = os.path.join(HERE, ".cache")
TIME_BIN = "/usr/bin/time"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_measured(cmd, env=None):
    """Runs cmd; returns (rc, stdout, stderr, peak RSS MiB, wall s).

    Peak RSS is the child's maximum resident set, from /usr/bin/time (%M) when it exists, else
    from os.wait4. Linux carries a process's high-water RSS across exec, and subprocess starts
    children with vfork, so a child's ru_maxrss is at least this (parent) process's peak: the
    driver therefore never imports torch or numpy itself (its own peak is printed)."""
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as fr:
        timed = os.path.exists(TIME_BIN)
        full = [TIME_BIN, "-f", "%M", "-o", fr.name] + cmd if timed else cmd
        t0 = time.time()
        p = subprocess.Popen(full, stdout=fo, stderr=fe, env=env, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.time() - t0
        rc = os.waitstatus_to_exitcode(status)
        rss = ru.ru_maxrss / 1024.0
        if timed:
            text = fr.read().strip().splitlines()
            # time prints "Command exited with non-zero status N" before %M on failure
            rss = float(text[-1]) / 1024.0 if text and text[-1].isdigit() else float("nan")
        fo.seek(0)
        fe.seek(0)
        return rc, fo.read(), fe.read(), rss, wall


# --------------------------------------------------------------------------------------------
# model and data (torch)
# --------------------------------------------------------------------------------------------
def model_cfg(a):
    return dict(vocab=a.vocab, d=a.d, heads=a.heads, layers=a.layers, max_pos=a.seq)


def cache_paths(a):
    tag = "gpt2_L%d_d%d_h%d_v%d_s%d" % (a.layers, a.d, a.heads, a.vocab, a.seq)
    return os.path.join(CACHE, tag + ".onnx"), os.path.join(CACHE, tag + "_tokens_%d.npy" % (a.batch * a.steps))


def build_worker(a):
    """Child process: exports the model and writes the token file (torch and numpy live here)."""
    import numpy as np
    sys.path.insert(0, os.path.join(REPO, "tests", "models"))
    import make_models
    onnx_path, data_path = cache_paths(a)
    if not os.path.exists(onnx_path):
        t0 = time.time()
        tmp = onnx_path + ".tmp"
        make_models.build_gpt2(tmp, seed=0, **model_cfg(a))
        os.replace(tmp, onnx_path)
        print("built %s in %.1f s (%.0f MB)" % (onnx_path, time.time() - t0, os.path.getsize(onnx_path) / 1e6))
    if not os.path.exists(data_path):
        rng = np.random.default_rng(0)
        np.save(data_path, rng.integers(0, a.vocab, size=(a.batch * a.steps, a.seq), dtype=np.int64))
    return 0


def build(a):
    onnx_path, data_path = cache_paths(a)
    os.makedirs(CACHE, exist_ok=True)
    if not (os.path.exists(onnx_path) and os.path.exists(data_path)):
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--build-worker"] + shape_args(a))
        if r.returncode != 0:
            raise SystemExit("building the model failed (exit %d)" % r.returncode)
    return onnx_path, data_path


def shape_args(a):
    return ["--precision", a.precision, "--steps", str(a.steps), "--vocab", str(a.vocab), "--layers", str(a.layers), "--d", str(a.d),
            "--heads", str(a.heads), "--seq", str(a.seq), "--batch", str(a.batch), "--rank", str(a.rank),
            "--alpha", str(a.alpha), "--threads", str(a.threads)]


# --------------------------------------------------------------------------------------------
# PyTorch worker (child process)
# --------------------------------------------------------------------------------------------
def torch_worker(a):
    import numpy as np
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    if a.torch_import_only:
        print(json.dumps({"threads": torch.get_num_threads()}))
        return 0
    if a.mkldnn_probe:  # one bf16 linear under autocast; the parent reads ONEDNN_VERBOSE's lines
        lin = torch.nn.Linear(a.d, a.d)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = lin(torch.randn(a.batch, a.d))
        print(json.dumps({"dtype": str(y.dtype), "mkldnn_available": torch.backends.mkldnn.is_available(),
                          "config_has_mkldnn": "MKL-DNN" in torch.__config__.show()}), flush=True)
        return 0
    bf16 = a.precision == "bf16"
    sys.path.insert(0, os.path.join(REPO, "tests", "models"))
    sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
    import make_models
    from make_reference import LoRALinear
    torch.manual_seed(0)  # the weights build_gpt2(seed=0) exported
    model = make_models.GPT2LMHeadModel(**model_cfg(a))
    make_models.perturb_norms(model)
    for p in model.parameters():
        p.requires_grad_(False)
    scale = a.alpha / a.rank
    params = []
    for name, lin in [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]:
        parent = model.get_submodule(name.rsplit(".", 1)[0])
        A = torch.empty(a.rank, lin.in_features)
        torch.nn.init.kaiming_uniform_(A, a=5 ** 0.5)  # PEFT's init; B = 0
        mod = LoRALinear(lin, A, torch.zeros(lin.out_features, a.rank), scale)
        setattr(parent, name.rsplit(".", 1)[1], mod)
        params += [mod.lora_A, mod.lora_B]
    model.train()
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    data = np.load(a.data)
    times, losses = [], []
    for step in range(a.steps):
        t0 = time.perf_counter()
        ids = torch.from_numpy(data[step * a.batch:(step + 1) * a.batch])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(ids)
        logits = logits.float()  # the loss in fp32 (a no-op in fp32)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
    print(json.dumps({"step_s": times, "losses": losses, "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "precision": a.precision,
                      "trainable": sum(p.numel() for p in params)}))
    return 0


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------
def mkldnn_probe(base, env):
    """Whether PyTorch's bf16 linear runs on oneDNN here, and on which ISA (ONEDNN_VERBOSE)."""
    env = dict(env, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1")
    rc, so, se, _, _ = run_measured(base + ["--mkldnn-probe"], env=env)
    if rc != 0:
        return "probe failed (exit %d): %s" % (rc, se.strip()[-300:])
    lines = (so + se).splitlines()
    execs = [ln.split(",") for ln in lines if ln.startswith(("onednn_verbose,exec", "dnnl_verbose,exec"))]
    info = json.loads([ln for ln in lines if ln.startswith("{")][-1])
    isa = [ln.split("isa:", 1)[1] for ln in lines if ",isa:" in ln]
    if not execs:
        return "no oneDNN primitive ran (torch mkldnn available %s, built with MKL-DNN %s); output dtype %s" % (
            info["mkldnn_available"], info["config_has_mkldnn"], info["dtype"])
    return "oneDNN %s via %s (CPU ISA: %s); output dtype %s" % (
        ", ".join(sorted({e[3] for e in execs})), ", ".join(sorted({e[4] for e in execs})),
        isa[0] if isa else "?", info["dtype"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("ONNXTUNE_BIN", os.path.join(REPO, "build", "onnxtune")),
                    help="onnxtune binary (default: $ONNXTUNE_BIN or build/onnxtune)")
    ap.add_argument("--steps", type=int, default=5, help="optimizer steps per engine (timed: 2..N)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both engines (default: nproc)")
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32.0)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="fp32 (default) or bf16: onnxtune --precision bf16 next to PyTorch bf16 autocast (and "
                         "PyTorch fp32 for its own ratio)")
    ap.add_argument("--only", choices=["onnxtune", "torch"], help="run one engine only")
    ap.add_argument("--mkldnn-probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--torch-import-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--build-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.steps < 2:
        ap.error("--steps must be at least 2 (step 1 is not timed)")
    if a.torch_worker:
        return torch_worker(a)
    if a.build_worker:
        return build_worker(a)

    print("command: %s" % " ".join(shlex.quote(x) for x in [sys.executable] + sys.argv))
    print("machine: %s, nproc %d, %s, python %s" % (cpu_model(), os.cpu_count(), platform.platform(),
                                                    platform.python_version()))
    onnx_path, data_path = build(a)
    tokens_per_step = a.batch * a.seq
    print("model: GPT-2 style, %d layers, d=%d, %d heads, vocab %d, seq %d, batch %d (%d tokens/step); "
          "LoRA r=%d alpha=%g all-linear; %d steps, threads %d; precision %s"
          % (a.layers, a.d, a.heads, a.vocab, a.seq, a.batch, tokens_per_step, a.rank, a.alpha, a.steps, a.threads,
             a.precision))
    rows = []

    if a.only in (None, "onnxtune"):
        if not os.access(a.bin, os.X_OK):
            print("onnxtune binary not found at %s (build it or pass --bin)" % a.bin)
            return 1
        out = os.path.join(CACHE, "run-onnxtune")
        log = os.path.join(CACHE, "onnxtune-log.jsonl")
        shutil.rmtree(out, ignore_errors=True)
        if os.path.exists(log):
            os.remove(log)
        cmd = [a.bin, "train", "--model", onnx_path, "--data", data_path, "--out", out, "--steps", str(a.steps),
               "--batch-size", str(a.batch), "--micro-batch-size", str(a.batch), "--seq-len", str(a.seq),
               "--lora-r", str(a.rank), "--lora-alpha", str(a.alpha), "--lora-targets", "all-linear",
               "--lr", "1e-4", "--lr-schedule", "constant", "--weight-decay", "0", "--max-grad-norm", "1",
               "--no-shuffle", "--threads", str(a.threads), "--log-json", log, "--precision", a.precision]
        print("onnxtune: %s" % " ".join(shlex.quote(x) for x in cmd))
        rc, so, se, rss, wall = run_measured(cmd)
        if rc != 0:
            print("onnxtune failed (exit %d):\n%s%s" % (rc, so, se))
            return 1
        with open(log) as f:
            recs = [json.loads(x) for x in f if x.strip()]
        recs = [r for r in recs if "elapsed_s" in r and "loss" in r and not r.get("eval")]  # step lines only
        el = [r["elapsed_s"] for r in recs]
        step_s = [el[0]] + [el[i] - el[i - 1] for i in range(1, len(el))]  # step 1 includes planning
        rows.append(("onnxtune" if a.precision == "fp32" else "onnxtune-" + a.precision, step_s[1:], rss,
                     recs[0]["loss"]))
        print("  step times (s): %s; wall %.1f s" % (" ".join("%.2f" % x for x in step_s), wall))
        shutil.rmtree(out, ignore_errors=True)

    if a.only in (None, "torch"):
        base = [sys.executable, os.path.abspath(__file__), "--torch-worker", "--data", data_path] + shape_args(a)
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
        if a.precision == "bf16":
            probe = mkldnn_probe(base, env)
            print("  PyTorch bf16 GEMM: %s" % probe)
        # bf16 mode: PyTorch bf16 first (the peer), then PyTorch fp32 for its own ratio
        precisions = [a.precision] + (["fp32"] if a.precision != "fp32" else [])
        for prec in precisions:
            i = base.index("--precision")
            cmd = base[:i + 1] + [prec] + base[i + 2:]
            rc, so, se, rss, wall = run_measured(cmd, env=env)
            if rc != 0:
                print("torch worker failed (exit %d):\n%s%s" % (rc, so, se))
                return 1
            res = json.loads(so.strip().splitlines()[-1])
            rows.append(("pytorch" if prec == a.precision else "pytorch-" + prec, res["step_s"][1:], rss,
                         res["losses"][0]))
            print("  pytorch %s %s step times (s): %s; wall %.1f s; %d trainable" % (
                res["torch"], prec, " ".join("%.2f" % x for x in res["step_s"]), wall, res["trainable"]))
        rc, so, se, rss0, _ = run_measured(base + ["--torch-import-only"], env=env)
        torch_import_rss = rss0 if rc == 0 else float("nan")
    else:
        torch_import_rss = None

    # mean over the timed steps, and the fastest step: on a shared machine the minimum is the
    # better estimate of what the code does, the mean of what a user waits
    table = []
    for name, steps, rss, loss in rows:
        mean, best = sum(steps) / len(steps), min(steps)
        table.append((name, mean, best, tokens_per_step / mean, tokens_per_step / best, rss, loss))
    ref = {r[0]: r for r in table}.get("pytorch")
    print()
    if a.precision != "fp32":
        print("(vs PyTorch = vs PyTorch %s autocast; pytorch-fp32 is PyTorch's own fp32 on the same run)"
              % a.precision)
    print("| engine        | s/step mean | s/step min | tokens/s (mean) | tokens/s (min) | vs PyTorch (mean / min) "
          "| peak RSS MiB | RSS vs PyTorch | step-1 loss |")
    print("|---------------|------------:|-----------:|----------------:|---------------:|------------------------:"
          "|-------------:|---------------:|------------:|")
    for name, mean, best, tps, tps_best, rss, loss in table:
        print("| %-13s | %11.3f | %10.3f | %15.1f | %14.1f | %23s | %12.0f | %14s | %11.6f |" % (
            name, mean, best, tps, tps_best, "%.2fx / %.2fx" % (tps / ref[3], tps_best / ref[4]) if ref else "-",
            rss, "%.2fx" % (rss / ref[5]) if ref else "-", loss))
    if torch_import_rss is not None:
        print("(PyTorch's RSS after `import torch` alone: %.0f MiB)" % torch_import_rss)
    print("(peak RSS by %s; this driver's own peak: %.0f MiB)" % (
        "/usr/bin/time %M" if os.path.exists(TIME_BIN) else "os.wait4",
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
