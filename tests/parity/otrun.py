"""Shared helpers for the python tests: run the onnxtune CLI and ONNX Runtime on the same feeds.

The binary is $ONNXTUNE_BIN, or build/onnxtune relative to the repository root.

    run_onnxtune(model_path, feeds) -> {output name: ndarray}
        writes each feed to a temporary .npy, runs
            onnxtune infer MODEL --input NAME=FILE ... --out DIR
        and reads DIR/<sanitised output name>.npy for every graph output (sanitising replaces each
        character outside [A-Za-z0-9._-] by '_'). Raises OnnxtuneError (with the command line, exit
        status and stderr) when the command fails, prints sanitizer reports, or leaves an output
        out; raises OnnxtuneNotBuilt when the binary does not exist.

    run_ort(model_path, feeds) -> {output name: ndarray}      (CPU provider)
    run_cli(args, ...) -> subprocess.CompletedProcess          (for the bad-input tests)
    assert_outputs_match(ref, got, ...)                        dtype, shape and value comparison
"""
import os
import re
import subprocess
import tempfile

import numpy as np

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_TIMEOUT_S = float(os.environ.get("ONNXTUNE_TIMEOUT", "300"))
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")

__all__ = ["OnnxtuneError", "OnnxtuneNotBuilt", "onnxtune_bin", "require_binary", "require_binary_or_fail", "sanitize_name",
           "model_output_names", "run_onnxtune", "run_ort", "run_cli", "assert_outputs_match", "REPO_ROOT"]


class OnnxtuneError(RuntimeError):
    def __init__(self, message, returncode=None, stderr="", stdout="", cmd=None):
        self.returncode, self.stderr, self.stdout, self.cmd = returncode, stderr, stdout, cmd
        super().__init__(message)


class OnnxtuneNotBuilt(OnnxtuneError):
    pass


def onnxtune_bin():
    """Absolute path of the CLI: $ONNXTUNE_BIN, else <repo>/build/onnxtune."""
    p = os.environ.get("ONNXTUNE_BIN") or os.path.join("build", "onnxtune")
    if not os.path.isabs(p):
        p = os.path.join(REPO_ROOT, p)
    return p


def require_binary():
    """Path of the CLI; raises OnnxtuneNotBuilt with a message saying how to fix it."""
    p = onnxtune_bin()
    if not (os.path.isfile(p) and os.access(p, os.X_OK)):
        raise OnnxtuneNotBuilt(
            "onnxtune binary not found or not executable at %s: build it first (it is expected at "
            "build/onnxtune under the repository root) or point $ONNXTUNE_BIN at it" % p)
    return p


def require_binary_or_fail():
    """For tests: a short pytest failure (no traceback) when the binary is missing."""
    try:
        return require_binary()
    except OnnxtuneNotBuilt as e:
        import pytest
        pytest.fail(str(e), pytrace=False)


_SANITIZE_RE = re.compile(r"[^A-Za-z0-9._-]")


def sanitize_name(name):
    """The file stem `onnxtune infer` uses for a graph output name."""
    return _SANITIZE_RE.sub("_", name)


def model_output_names(model_path):
    """Graph output names, read without loading external data."""
    import onnx
    m = onnx.load(str(model_path), load_external_data=False)
    return [o.name for o in m.graph.output]


def _check_sanitizers(text, cmd):
    for marker in SANITIZER_MARKERS:
        if marker in text:
            raise OnnxtuneError("sanitizer report (%r) from %s:\n%s" % (marker, " ".join(cmd), text),
                                stderr=text, cmd=cmd)


def run_cli(args, timeout=None, env=None, cwd=None):
    """Run `onnxtune ARGS...`; returns the CompletedProcess (text mode), whatever the exit status."""
    cmd = [require_binary()] + [str(a) for a in args]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                          timeout=timeout or DEFAULT_TIMEOUT_S, env=full_env, cwd=cwd)


def run_onnxtune(model_path, feeds, extra_args=(), timeout=None, env=None, output_names=None):
    """Run `onnxtune infer` on feeds {input name: ndarray}; returns {output name: ndarray}.

    output_names defaults to the model's graph outputs (read with the onnx package)."""
    if output_names is None:
        output_names = model_output_names(model_path)
    with tempfile.TemporaryDirectory(prefix="otrun-") as tmp:
        args = ["infer", os.path.abspath(str(model_path))]
        for i, (name, arr) in enumerate(feeds.items()):
            f = os.path.join(tmp, "in%d.npy" % i)
            np.save(f, np.asarray(arr), allow_pickle=False)
            args += ["--input", "%s=%s" % (name, f)]
        out_dir = os.path.join(tmp, "out")
        args += ["--out", out_dir]
        args += list(extra_args)
        proc = run_cli(args, timeout=timeout, env=env)
        cmd = [onnxtune_bin()] + args
        if proc.returncode != 0:
            how = ("killed by signal %d" % -proc.returncode) if proc.returncode < 0 else \
                  ("exit status %d" % proc.returncode)
            raise OnnxtuneError("onnxtune infer failed (%s)\ncommand: %s\nstderr:\n%s"
                                % (how, " ".join(cmd), proc.stderr),
                                returncode=proc.returncode, stderr=proc.stderr, stdout=proc.stdout, cmd=cmd)
        _check_sanitizers(proc.stderr, cmd)
        result = {}
        for name in output_names:
            f = os.path.join(out_dir, sanitize_name(name) + ".npy")
            if not os.path.isfile(f):
                present = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else "(no out dir)"
                raise OnnxtuneError("onnxtune infer wrote no %s for output %r; out dir holds %s\nstderr:\n%s"
                                    % (f, name, present, proc.stderr), returncode=0, stderr=proc.stderr, cmd=cmd)
            result[name] = np.load(f, allow_pickle=False)
        return result


def run_ort(model_path, feeds, threads=None):
    """ONNX Runtime (CPU) reference: {output name: ndarray}. model_path may also be model bytes."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    src = model_path if isinstance(model_path, (bytes, bytearray)) else str(model_path)
    sess = ort.InferenceSession(src, sess_options=so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, {k: np.asarray(v) for k, v in feeds.items()})
    return dict(zip(names, outs))


def assert_outputs_match(ref, got, rtol=1e-5, atol_scale=1e-6, float64_rtol=1e-12, context=""):
    """Compare {name: ndarray} dicts: same names, dtypes and shapes; integer, bool and float16
    outputs bit-equal (float16 appears only as a Cast result, which is exact); float32/float64 with
    assert_allclose(rtol, atol = atol_scale * max(1, max|ref|)) (float64: float64_rtol and
    atol = float64_rtol * max(1, max|ref|)). NaNs must be in the same places."""
    assert sorted(ref) == sorted(got), "%soutput names differ: ref %s, onnxtune %s" % (context, sorted(ref), sorted(got))
    for name in ref:
        r, g = np.asarray(ref[name]), np.asarray(got[name])
        where = "%soutput %r" % (context, name)
        assert g.dtype == r.dtype, "%s: dtype %s, expected %s" % (where, g.dtype, r.dtype)
        assert g.shape == r.shape, "%s: shape %s, expected %s" % (where, g.shape, r.shape)
        if r.dtype.kind in "fc" and r.dtype != np.float16:
            finite = np.abs(r[np.isfinite(r)])
            scale = max(1.0, float(finite.max()) if finite.size else 1.0)
            if r.dtype == np.float64:
                rt, at = float64_rtol, float64_rtol * scale
            else:
                rt, at = rtol, atol_scale * scale
            np.testing.assert_allclose(g, r, rtol=rt, atol=at, equal_nan=True,
                                       err_msg="%s (rtol=%g, atol=%g)" % (where, rt, at))
        else:
            np.testing.assert_array_equal(g, r, err_msg=where)
