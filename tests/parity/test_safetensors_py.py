"""safetensors parity with the reference Python package (safetensors, Rust inside).

Files written by safetensors.numpy are read back bit for bit by onnxtune's reader; files
written by onnxtune are read back bit for bit by the package; single-dtype files are
byte-identical either way; and damaged files are refused by both or by neither.

onnxtune's side runs through tests/tools/st_roundtrip ($ONNXTUNE_ST_ROUNDTRIP, set by ctest;
else build/tests/st_roundtrip), which converts safetensors <-> a folder of .npy files plus an
index.json (tensor names, safetensors dtypes, shapes, metadata). BF16 travels as raw uint16
bits; the Python side views it through ml_dtypes.
"""
import json
import os
import struct
import subprocess

import numpy as np
import pytest
import safetensors
from safetensors import safe_open
from safetensors.numpy import save, save_file

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - ml_dtypes comes with onnx
    ml_dtypes = None

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

NUMPY_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32,
    "U64": np.uint64, "BOOL": np.bool_,
}
BF16_SKIP = "ml_dtypes is not installed: bfloat16 arrays cannot be built in NumPy"


def tool():
    path = os.environ.get("ONNXTUNE_ST_ROUNDTRIP") or os.path.join(REPO_ROOT, "build", "tests", "st_roundtrip")
    if not os.path.exists(path):
        pytest.fail(f"st_roundtrip not built at {path} (build the st_roundtrip target or set ONNXTUNE_ST_ROUNDTRIP)")
    return path


def run_tool(*args, check=True):
    p = subprocess.run([tool(), *args], capture_output=True, text=True, timeout=120)
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in p.stderr, p.stderr
    if check and p.returncode != 0:
        raise AssertionError(f"st_roundtrip {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def sample(dtype, shape, rng):
    """Values that exercise the whole range of `dtype`, including NaN/inf for floats."""
    n = int(np.prod(shape)) if shape else 1
    dt = np.dtype(dtype)
    if dt == np.bool_:
        a = rng.integers(0, 2, n).astype(np.bool_)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
    else:
        a = (rng.standard_normal(n) * 100).astype(dt)
        if n >= 4:
            a[:4] = [np.nan, np.inf, -np.inf, -0.0]
    return a.reshape(shape)


def sample_bf16(shape, rng):
    bits = rng.integers(0, 1 << 16, int(np.prod(shape)) if shape else 1, dtype=np.uint16)
    return bits.view(ml_dtypes.bfloat16).reshape(shape)


def tensor_set(rng, with_bf16):
    """Every dtype in several shapes: matrix, odd vector, scalar, empty."""
    out = {}
    for code, dt in NUMPY_DTYPES.items():
        for tag, shape in (("mat", (3, 5)), ("odd", (7,)), ("scalar", ()), ("empty", (0, 4))):
            out[f"{code.lower()}.{tag}"] = sample(dt, shape, rng)
    if with_bf16:
        for tag, shape in (("mat", (4, 3)), ("odd", (5,)), ("scalar", ()), ("empty", (2, 0))):
            out[f"bf16.{tag}"] = sample_bf16(shape, rng)
    return out


def st_code(a):
    if ml_dtypes is not None and a.dtype == ml_dtypes.bfloat16:
        return "BF16"
    return next(k for k, v in NUMPY_DTYPES.items() if np.dtype(v) == a.dtype)


def read_npy_dir(d):
    with open(os.path.join(d, "index.json")) as f:
        index = json.load(f)
    out = {}
    for e in index["tensors"]:
        a = np.load(os.path.join(d, e["file"]))
        assert list(a.shape) == e["shape"], e
        out[e["name"]] = (e["dtype"], a)
    return out, index["metadata"], [e["name"] for e in index["tensors"]]


def write_npy_dir(d, tensors, metadata):
    os.makedirs(d, exist_ok=True)
    entries = []
    for i, (name, a) in enumerate(tensors.items()):
        code = st_code(a)
        raw = a.view(np.uint16) if code == "BF16" else a
        fname = f"{i:04d}.npy"
        np.save(os.path.join(d, fname), raw)  # not ascontiguousarray: it turns scalars into [1]
        entries.append({"name": name, "dtype": code, "shape": list(a.shape), "file": fname})
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump({"tensors": entries, "metadata": metadata}, f)


def same_bits(a, b):
    return a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("with_bf16", [False, pytest.param(True, marks=pytest.mark.skipif(ml_dtypes is None, reason=BF16_SKIP))],
                         ids=["numpy-dtypes", "with-bf16"])
def test_python_written_read_by_onnxtune(tmp_path, with_bf16):
    rng = np.random.default_rng(1)
    tensors = tensor_set(rng, with_bf16)
    meta = {"format": "np", "note": "written by safetensors " + safetensors.__version__, "unicode": "caf\u00e9 \u20ac"}
    path = str(tmp_path / "py.safetensors")
    save_file(tensors, path, metadata=meta)
    run_tool("to-npy", path, str(tmp_path / "out"))
    got, got_meta, order = read_npy_dir(str(tmp_path / "out"))
    assert got_meta == meta
    assert set(got) == set(tensors)
    for name, a in tensors.items():
        code, b = got[name]
        assert code == st_code(a), name
        want = a.view(np.uint16) if code == "BF16" else a
        assert b.dtype == want.dtype and same_bits(b, want), name
    # Our file order is the file's offset order, whatever order the writer chose.
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    by_offset = sorted(header, key=lambda k: (header[k]["data_offsets"], k))
    assert [o for o in order if header[o]["data_offsets"][0] != header[o]["data_offsets"][1]] == \
           [o for o in by_offset if header[o]["data_offsets"][0] != header[o]["data_offsets"][1]]


@pytest.mark.parametrize("with_bf16", [False, pytest.param(True, marks=pytest.mark.skipif(ml_dtypes is None, reason=BF16_SKIP))],
                         ids=["numpy-dtypes", "with-bf16"])
def test_onnxtune_written_read_by_python(tmp_path, with_bf16):
    rng = np.random.default_rng(2)
    tensors = tensor_set(rng, with_bf16)
    # Names chosen so that name order puts odd-sized narrow tensors before wide ones: the
    # data of later tensors is misaligned in the file, which the format allows.
    tensors["a.first.byte"] = np.array([7], np.uint8)
    meta = {"written_by": "onnxtune", "quote\"key": "line\nbreak"}
    src = str(tmp_path / "in")
    write_npy_dir(src, tensors, meta)
    path = str(tmp_path / "ours.safetensors")
    run_tool("from-npy", src, path)

    with safe_open(path, framework="numpy") as f:
        assert f.metadata() == meta
        assert set(f.keys()) == set(tensors)
    with open(path, "rb") as fh:
        raw = safetensors.deserialize(fh.read())
    got = {name: info for name, info in raw}
    for name, a in tensors.items():
        info = got[name]
        assert info["dtype"] == st_code(a), name
        assert list(info["shape"]) == list(a.shape), name
        assert bytes(info["data"]) == a.tobytes(), name
    # The package's own NumPy loader agrees for the dtypes it knows.
    if not with_bf16:
        loaded = safetensors.numpy.load_file(path)
        for name, a in tensors.items():
            assert loaded[name].dtype == a.dtype and same_bits(loaded[name], a), name

    # Layout: data starts 8-byte aligned; tensors are laid out in name order.
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
    assert n % 8 == 0
    header.pop("__metadata__")
    names = sorted(header)
    offsets = [header[k]["data_offsets"] for k in names]
    assert offsets[0][0] == 0 and all(offsets[i][1] == offsets[i + 1][0] for i in range(len(offsets) - 1))


@pytest.mark.parametrize("code", sorted(NUMPY_DTYPES) + ["BF16"])
def test_single_dtype_files_are_byte_identical(tmp_path, code):
    if code == "BF16" and ml_dtypes is None:
        pytest.skip(BF16_SKIP)
    rng = np.random.default_rng(3)
    make = (lambda shape: sample_bf16(shape, rng)) if code == "BF16" else (lambda shape: sample(NUMPY_DTYPES[code], shape, rng))
    tensors = {"w.2": make((2, 3)), "w.10": make((5,)), "b": make(()), "e": make((0,)), "z\u00e9": make((1, 1, 1))}
    meta = {"only": "one key, so the reference's HashMap order cannot matter"}
    ref = save(tensors, metadata=meta)
    src = str(tmp_path / "in")
    write_npy_dir(src, tensors, meta)
    run_tool("from-npy", src, str(tmp_path / "ours.safetensors"))
    with open(tmp_path / "ours.safetensors", "rb") as f:
        ours = f.read()
    assert ours == ref

    # And ours -> npy -> ours is the identity.
    run_tool("to-npy", str(tmp_path / "ours.safetensors"), str(tmp_path / "back"))
    run_tool("from-npy", str(tmp_path / "back"), str(tmp_path / "again.safetensors"))
    with open(tmp_path / "again.safetensors", "rb") as f:
        assert f.read() == ref


def _header(b):
    n = struct.unpack("<Q", b[:8])[0]
    return n, b[8:8 + n]


def _with_header(b, text):
    """Replaces the header of image `b` by `text` (same data buffer)."""
    n, _ = _header(b)
    t = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(t)) + t + b[8 + n:]


def _mutations(good):
    n, h = _header(good)
    hdr = json.loads(h)
    out = {
        "truncated": good[:-1],
        "trailing-byte": good + b"\0",
        "short-length-field": good[:5],
        "length-past-end": struct.pack("<Q", len(good)) + good[8:],
        "length-too-big": struct.pack("<Q", 100_000_001) + good[8:],
        "not-utf8": _with_header(good, h.replace(b'"a"', b'"\xff"', 1)),
        "not-json": _with_header(good, h.rstrip(b" ")[:-1]),
        "not-object": _with_header(good, b"[]      "),
        "leading-space": _with_header(good, b" " + h),
    }

    def edit(name, fn):
        d = json.loads(json.dumps(hdr))
        fn(d)
        out[name] = _with_header(good, json.dumps(d, separators=(",", ":")))

    edit("unknown-dtype", lambda d: d["a"].__setitem__("dtype", "F33"))
    edit("wrong-dtype-size", lambda d: d["a"].__setitem__("dtype", "F64"))
    edit("shape-mismatch", lambda d: d["a"].__setitem__("shape", [5]))
    edit("negative-shape", lambda d: d["a"].__setitem__("shape", [-4]))
    edit("missing-dtype", lambda d: d["a"].pop("dtype"))
    edit("missing-offsets", lambda d: d["b"].pop("data_offsets"))
    edit("offsets-reversed", lambda d: d["a"].__setitem__("data_offsets", list(reversed(d["a"]["data_offsets"]))))
    edit("gap", lambda d: (d["a"].__setitem__("data_offsets", [4, 20]), d["b"].__setitem__("data_offsets", [20, 32])))
    edit("overlap", lambda d: d["b"].__setitem__("data_offsets", [12, 24]))
    edit("meta-not-string", lambda d: d["__metadata__"].__setitem__("k", 1))
    edit("meta-not-object", lambda d: d.__setitem__("__metadata__", ["k"]))
    edit("entry-not-object", lambda d: d.__setitem__("a", 3))
    edit("fine-reordered", lambda d: d.update({"b": d.pop("b"), "a": d.pop("a")}))
    edit("fine-extra-field", lambda d: d["a"].__setitem__("extra", "x"))
    return out


def test_damaged_files_refused_by_both_or_neither(tmp_path):
    good = save({"a": np.arange(4, dtype=np.float32), "b": np.arange(3, dtype=np.float32)}, metadata={"k": "v"})
    assert _header(good)[1].startswith(b'{"__metadata__"')
    disagreements = []
    for name, blob in _mutations(good).items():
        path = str(tmp_path / f"{name}.safetensors")
        with open(path, "wb") as f:
            f.write(blob)
        try:
            safetensors.deserialize(blob)
            py_ok = True
        except Exception:  # the package raises SafetensorError (or a JSON error)
            py_ok = False
        p = run_tool("to-npy", path, str(tmp_path / f"{name}.out"), check=False)
        ours_ok = p.returncode == 0
        if not ours_ok:
            assert p.returncode == 1 and path in p.stderr, (name, p.stderr)
        if name.startswith("fine-"):
            assert py_ok and ours_ok, (name, p.stderr)
        if py_ok != ours_ok:
            disagreements.append((name, py_ok, ours_ok, p.stderr.strip()))
    assert not disagreements, disagreements


def _img(header, nbytes=0):
    h = header.encode()
    return struct.pack("<Q", len(h)) + h + bytes(nbytes)


_T = '"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
# Hand-built headers at the edges of JSON and of the format: (header, data bytes).
EDGE_CASES = {
    "shape-float": ('{"t":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', 8),
    "shape-exponent": ('{"t":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}', 8),
    "shape-leading-zero": ('{"t":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}', 8),
    "shape-minus-zero": ('{"t":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]}}', 0),
    "shape-nested": ('{"t":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}}', 8),
    "offsets-three": ('{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}', 8),
    "offsets-float": ('{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}}', 8),
    "extra-field-leading-zero": ('{"t":{"x":01,"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 8),
    "duplicate-field": ('{"t":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 8),
    "dtype-lowercase": ('{"t":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}', 8),
    "overflow-then-zero": ('{"t":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}', 0),
    "bad-escape": ('{"t\\x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 8),
    "lone-surrogate": ('{"t\\ud800":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 8),
    "control-char": ('{"t\x01":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 8),
    "trailing-comma": ('{' + _T + ',}', 8),
    "trailing-nul": ('{' + _T + '}\x00', 8),
    "empty-header": ('', 0),
    "fine-extra-float": ('{"t":{"x":[1.5,-2e3],"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 8),
    "fine-whitespace": (' \n{' + _T + '}\t\r\n ', 8),
    "fine-meta-null": ('{"__metadata__":null,' + _T + '}', 8),
    "fine-empty-name": ('{"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 8),
    "fine-huge-dim-of-empty": ('{"t":{"dtype":"U8","shape":[1152921504606846976,0],"data_offsets":[0,0]}}', 0),
}
# Where onnxtune is deliberately stricter than the reference (which accepts these), with the
# reason its message must give.
OURS_STRICTER = {
    "duplicate-tensor": ('{' + _T + ',' + _T + '}', 8, "appears twice"),
    "duplicate-meta-key": ('{"__metadata__":{"k":"a","k":"b"},' + _T + '}', 8, "appears twice"),
    "rank-9": ('{"t":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]}}', 8, "rank 9"),
    "fp8": ('{"t":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}', 8, "not supported"),
    "dim-above-int64": ('{"t":{"dtype":"U8","shape":[18446744073709551615,0],"data_offsets":[0,0]}}', 0, "too large"),
}


def _both(tmp_path, name, blob):
    path = str(tmp_path / f"{name}.safetensors")
    with open(path, "wb") as f:
        f.write(blob)
    try:
        safetensors.deserialize(blob)
        py_ok = True
    except Exception:
        py_ok = False
    p = run_tool("to-npy", path, str(tmp_path / f"{name}.out"), check=False)
    if p.returncode != 0:
        assert p.returncode == 1 and path in p.stderr, (name, p.stderr)
    return py_ok, p


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_headers_agree_with_reference(tmp_path, name):
    header, nbytes = EDGE_CASES[name]
    py_ok, p = _both(tmp_path, name, _img(header, nbytes))
    assert py_ok == name.startswith("fine-"), f"the reference {'accepts' if py_ok else 'refuses'} {name}"
    assert (p.returncode == 0) == py_ok, (name, p.stderr)


@pytest.mark.parametrize("name", sorted(OURS_STRICTER))
def test_deliberately_stricter_than_reference(tmp_path, name):
    header, nbytes, why = OURS_STRICTER[name]
    py_ok, p = _both(tmp_path, name, _img(header, nbytes))
    assert py_ok, f"the reference now refuses {name}: move it to EDGE_CASES"
    assert p.returncode == 1 and why in p.stderr, (name, p.stderr)
