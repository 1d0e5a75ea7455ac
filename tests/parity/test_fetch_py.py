"""`onnxtune fetch` against a live HTTP server on loopback.

The server (a http.server subclass on 127.0.0.1, ephemeral port, one per module, shut down
at the end) serves files with Range support and endpoints that misbehave on purpose: a
connection dropped halfway the first time, a server that ignores Range on the resume, a
transient 503, a 404, a redirect loop, a redirect to file://, files larger than
--max-bytes (with and without Content-Length), a slow file for two concurrent fetches, an
.onnx with external data, and a fake Hugging Face hub (`/ORG/NAME/resolve/REV/FILE`) with a
single-file and a sharded model. It records every request (path and Range/Authorization
headers) so tests can assert what went over the wire: one download for two concurrent
fetches, no request at all for a cached URL, a Range header on the resume.

The binary is $ONNXTUNE_BIN (set by ctest), else build/onnxtune. Each test has its own
cache folder, so none depends on another.
"""
import hashlib
import http.server
import os
import subprocess
import threading
import time

import numpy as np
import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RUN_TIMEOUT = 60  # seconds for one `onnxtune fetch`; every request loop on both sides is bounded


def binary():
    p = os.environ.get("ONNXTUNE_BIN") or os.path.join("build", "onnxtune")
    if not os.path.isabs(p):
        p = os.path.join(REPO_ROOT, p)
    if not os.path.exists(p):
        pytest.fail(f"onnxtune not built at {p} (set $ONNXTUNE_BIN)")
    return p


def payload(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def sha(b):
    return hashlib.sha256(b).hexdigest()


FILES = {
    "/files/plain.bin": payload(100_000, 1),
    "/files/cached.bin": payload(5_000, 2),
    "/files/env.bin": payload(3_000, 3),
    "/files/checked.bin": payload(7_000, 4),
    "/flaky/model.bin": payload(300_000, 5),
    "/flaky2/model.bin": payload(200_000, 6),
    "/norange/model.bin": payload(200_000, 7),
    "/changed/model.bin": payload(120_000, 15),
    "/changed/v2": payload(130_000, 16),
    "/busy/model.bin": payload(10_000, 8),
    "/big.bin": payload(50_000, 9),
    "/bignolen.bin": payload(50_000, 10),
    "/slow/model.bin": payload(256 * 1024, 11),
}

HUB = {
    "/org/tiny/resolve/main/config.json": b'{"model_type": "gpt2", "n_layer": 1}',
    "/org/tiny/resolve/main/model.safetensors": payload(4_000, 12),
    "/org/sharded/resolve/v1/config.json": b'{"model_type": "llama"}',
    "/org/sharded/resolve/v1/model.safetensors.index.json": (
        b'{"metadata": {"total_size": 3000}, "weight_map": {'
        b'"a.weight": "model-00001-of-00002.safetensors", '
        b'"b.weight": "model-00002-of-00002.safetensors", '
        b'"c.weight": "model-00001-of-00002.safetensors"}}'),
    "/org/sharded/resolve/v1/model-00001-of-00002.safetensors": payload(2_000, 13),
    "/org/sharded/resolve/v1/model-00002-of-00002.safetensors": payload(1_000, 14),
    "/org/noweights/resolve/main/config.json": b"{}",
}


class Handler(http.server.BaseHTTPRequestHandler):
    timeout = 20  # a stuck client cannot hold a server thread forever

    def log_message(self, fmt, *args):  # keep pytest output clean
        pass

    def record(self):
        st = self.server.state
        with st["lock"]:
            st["log"].append((self.path, self.headers.get("Range"), self.headers.get("Authorization"),
                              self.headers.get("If-Range")))
            st["count"][self.path] = st["count"].get(self.path, 0) + 1
            return st["count"][self.path]

    def send_bytes(self, data, honour_range=True, length=True, chunk=None, delay=0.0):
        rng = self.headers.get("Range")
        etag = '"%s"' % sha(data)[:16]
        if self.headers.get("If-Range") not in (None, etag):
            rng = None  # RFC 9110: the file changed, send all of it
        start = 0
        if rng and honour_range:
            assert rng.startswith("bytes=") and rng.endswith("-"), rng
            start = int(rng[6:-1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        step = chunk or len(body) or 1
        for i in range(0, len(body), step):
            self.wfile.write(body[i:i + step])
            if delay:
                self.wfile.flush()
                time.sleep(delay)

    def drop_halfway(self, data):
        """Promises the whole file, sends half, closes the connection."""
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", '"%s"' % sha(data)[:16])
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self):
        n = self.record()
        p = self.path
        if p in HUB:
            return self.send_bytes(HUB[p])
        if p in self.server.extra:
            return self.send_bytes(self.server.extra[p])
        if p.startswith("/flaky") and p in FILES:
            return self.drop_halfway(FILES[p]) if n == 1 else self.send_bytes(FILES[p])
        if p == "/changed/model.bin":  # a new version appears after the first, dropped, try
            return self.drop_halfway(FILES[p]) if n == 1 else self.send_bytes(FILES["/changed/v2"])
        if p == "/norange/model.bin":
            return self.drop_halfway(FILES[p]) if n == 1 else self.send_bytes(FILES[p], honour_range=False)
        if p == "/busy/model.bin" and n == 1:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if p == "/bignolen.bin":
            return self.send_bytes(FILES[p], length=False, chunk=4096)
        if p == "/slow/model.bin":
            return self.send_bytes(FILES[p], chunk=16 * 1024, delay=0.04)
        if p in FILES:
            return self.send_bytes(FILES[p])
        if p.startswith("/loop/"):
            self.send_response(302)
            self.send_header("Location", "/loop/b" if p == "/loop/a" else "/loop/a")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if p == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if p == "/moved/plain.bin":
            self.send_response(301)
            self.send_header("Location", "/files/plain.bin")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.state = {"lock": threading.Lock(), "log": [], "count": {}}
    srv.extra = {}
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join(timeout=10)


def count(srv, path):
    with srv.state["lock"]:
        return srv.state["count"].get(path, 0)


def requests(srv, path):
    with srv.state["lock"]:
        return [e for e in srv.state["log"] if e[0] == path]


def total(srv):
    with srv.state["lock"]:
        return len(srv.state["log"])


def fetch(args, cache, env=None, check=True):
    e = dict(os.environ)
    e.pop("HF_TOKEN", None)
    e.pop("ONNXTUNE_HUB_URL", None)
    e.update(env or {})
    cmd = [binary(), "fetch", *args] + (["--cache", str(cache)] if cache else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=e)
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in p.stderr, p.stderr
    assert "\r" not in p.stderr, "progress bar drawn on a stderr that is not a terminal"
    if check:
        assert p.returncode == 0, p.stderr
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read()


def leftovers(cache):
    """Temporary and partial files anywhere in the cache."""
    out = []
    for root, _, files in os.walk(cache):
        out += [os.path.join(root, f) for f in files if ".partial-" in f or ".tmp-" in f]
    return out


def test_full_download(server, tmp_path):
    url = server.base + "/files/plain.bin"
    p = fetch([url], tmp_path)
    path = p.stdout.strip()
    assert path == str(tmp_path / "models" / sha(url.encode()) / "plain.bin")
    assert read(path) == FILES["/files/plain.bin"]
    # content-addressed: the same bytes under blobs/<sha256>, the ref names them
    blob = tmp_path / "blobs" / sha(FILES["/files/plain.bin"])
    assert os.path.samefile(blob, path)
    assert read(tmp_path / "refs" / sha(url.encode())).split(b"\n")[0] == sha(FILES["/files/plain.bin"]).encode()
    assert not leftovers(tmp_path)


def test_cached_url_makes_no_request(server, tmp_path):
    url = server.base + "/files/cached.bin"
    first = fetch([url], tmp_path).stdout
    assert count(server, "/files/cached.bin") == 1
    before = total(server)
    second = fetch([url], tmp_path).stdout
    assert second == first
    assert total(server) == before
    assert read(first.strip()) == FILES["/files/cached.bin"]


def test_cache_from_environment(server, tmp_path):
    url = server.base + "/files/env.bin"
    p = fetch([url], None, env={"ONNXTUNE_CACHE": str(tmp_path / "c")})
    assert p.stdout.strip().startswith(str(tmp_path / "c" / "models"))
    assert read(p.stdout.strip()) == FILES["/files/env.bin"]


def test_redirect_followed(server, tmp_path):
    url = server.base + "/moved/plain.bin"
    p = fetch([url], tmp_path)
    assert read(p.stdout.strip()) == FILES["/files/plain.bin"]


def test_dropped_connection_resumes(server, tmp_path):
    path = "/flaky/model.bin"
    data = FILES[path]
    p = fetch([server.base + path], tmp_path)
    assert read(p.stdout.strip()) == data
    reqs = requests(server, path)
    assert len(reqs) == 2
    assert reqs[0][1] is None
    assert reqs[1][1] == f"bytes={len(data) // 2}-"  # resumed where the drop left it
    assert not leftovers(tmp_path)


def test_resume_across_runs(server, tmp_path):
    """An interrupted fetch (no retries) leaves its partial file; the next run resumes it."""
    path = "/flaky2/model.bin"
    data = FILES[path]
    p = fetch([server.base + path, "--retries", "0"], tmp_path, check=False)
    assert p.returncode == 1 and path in p.stderr
    partial = [f for f in leftovers(tmp_path) if ".partial-" in f and not f.endswith(".validator")]
    assert len(partial) == 1 and os.path.getsize(partial[0]) == len(data) // 2
    assert not os.path.exists(tmp_path / "models")  # nothing at a final path
    p = fetch([server.base + path], tmp_path)
    assert read(p.stdout.strip()) == data
    reqs = requests(server, path)
    assert [r[1] for r in reqs] == [None, f"bytes={len(data) // 2}-"]
    assert reqs[1][3] == '"%s"' % sha(data)[:16]  # If-Range: the ETag of the first response
    assert not leftovers(tmp_path)


def test_resume_after_file_changed_takes_new_file(server, tmp_path):
    """If-Range: when the file changed on the server, the resume gets all of the new file,
    not the old half spliced onto the new one."""
    path = "/changed/model.bin"
    p = fetch([server.base + path, "--retries", "0"], tmp_path, check=False)
    assert p.returncode == 1
    p = fetch([server.base + path], tmp_path)
    assert read(p.stdout.strip()) == FILES["/changed/v2"]
    assert requests(server, path)[1][1] is not None


def test_resume_ignored_by_server_restarts(server, tmp_path):
    """A 200 answer to a Range request is the whole file: the partial file is discarded."""
    path = "/norange/model.bin"
    p = fetch([server.base + path], tmp_path)
    assert read(p.stdout.strip()) == FILES[path]
    reqs = requests(server, path)
    assert len(reqs) == 2 and reqs[1][1] is not None


def test_transient_error_retried(server, tmp_path):
    path = "/busy/model.bin"
    p = fetch([server.base + path], tmp_path)
    assert read(p.stdout.strip()) == FILES[path]
    assert count(server, path) == 2


def test_not_found(server, tmp_path):
    p = fetch([server.base + "/nope/missing.onnx"], tmp_path, check=False)
    assert p.returncode == 1
    assert "404" in p.stderr and "/nope/missing.onnx" in p.stderr
    assert count(server, "/nope/missing.onnx") == 1  # a 404 is not retried
    assert not leftovers(tmp_path)
    assert not os.path.exists(tmp_path / "models" / sha((server.base + "/nope/missing.onnx").encode()) / "missing.onnx")


def test_redirect_loop(server, tmp_path):
    p = fetch([server.base + "/loop/a"], tmp_path, check=False)
    assert p.returncode == 1
    assert "redirects" in p.stderr and "/loop/a" in p.stderr
    n = count(server, "/loop/a") + count(server, "/loop/b")
    assert 10 <= n <= 12  # curl stops after 10 redirects, and does not retry


def test_redirect_to_file_scheme_refused(server, tmp_path):
    p = fetch([server.base + "/to-file"], tmp_path, check=False)
    assert p.returncode == 1
    assert "http or https" in p.stderr


@pytest.mark.parametrize("path", ["/big.bin", "/bignolen.bin"])
def test_oversize(server, tmp_path, path):
    p = fetch([server.base + path, "--max-bytes", "20000"], tmp_path, check=False)
    assert p.returncode == 1
    assert "20000 bytes" in p.stderr and path in p.stderr
    assert not leftovers(tmp_path)
    assert not os.path.exists(tmp_path / "models" / sha((server.base + path).encode()))
    # within the limit it downloads
    p = fetch([server.base + path, "--max-bytes", "50000"], tmp_path)
    assert read(p.stdout.strip()) == FILES[path]


def test_checksum(server, tmp_path):
    path = "/files/checked.bin"
    data = FILES[path]
    wrong = sha(data + b"x")
    p = fetch([f"{server.base}{path}#sha256={wrong}"], tmp_path, check=False)
    assert p.returncode == 1
    assert "sha256 mismatch" in p.stderr and wrong in p.stderr and sha(data) in p.stderr
    assert not leftovers(tmp_path)
    assert not os.path.exists(tmp_path / "blobs" / sha(data))
    p = fetch([f"{server.base}{path}#sha256={sha(data).upper()}"], tmp_path)
    assert read(p.stdout.strip()) == data


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/m.onnx", "gopher://127.0.0.1/1"])
def test_other_schemes_refused(tmp_path, url):
    p = fetch([url], tmp_path, check=False)
    assert p.returncode == 1 and "only http and https" in p.stderr
    assert not os.path.exists(tmp_path / "blobs")


def test_concurrent_fetches_download_once(server, tmp_path):
    path = "/slow/model.bin"
    url = server.base + path
    cmd = [binary(), "fetch", url, "--cache", str(tmp_path)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [pr.communicate(timeout=RUN_TIMEOUT) for pr in procs]
    for pr, (out, err) in zip(procs, outs):
        assert pr.returncode == 0, err
    assert outs[0][0] == outs[1][0]
    assert read(outs[0][0].strip()) == FILES[path]
    assert count(server, path) == 1
    assert not leftovers(tmp_path)


def test_hub_single_file_model(server, tmp_path):
    hub = server.base
    p = fetch(["hf://org/tiny", "--hub-url", hub], tmp_path, env={"HF_TOKEN": "secret-token"})
    d = p.stdout.strip()
    assert os.path.isdir(d)
    assert read(os.path.join(d, "config.json")) == HUB["/org/tiny/resolve/main/config.json"]
    assert read(os.path.join(d, "model.safetensors")) == HUB["/org/tiny/resolve/main/model.safetensors"]
    auth = [r[2] for r in requests(server, "/org/tiny/resolve/main/config.json")]
    assert auth == ["Bearer secret-token"]
    before = total(server)
    assert fetch(["hf://org/tiny", "--hub-url", hub], tmp_path).stdout.strip() == d
    assert total(server) == before
    # one file of a repository, through $ONNXTUNE_HUB_URL
    p = fetch(["hf://org/tiny@main/config.json"], tmp_path, env={"ONNXTUNE_HUB_URL": hub})
    assert read(p.stdout.strip()) == HUB["/org/tiny/resolve/main/config.json"]


def test_hub_sharded_model(server, tmp_path):
    p = fetch(["hf://org/sharded@v1", "--hub-url", server.base], tmp_path)
    d = p.stdout.strip()
    assert sorted(f for f in os.listdir(d) if not f.startswith(".")) == [
        "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json"]
    for name in os.listdir(d):
        if not name.startswith("."):
            assert read(os.path.join(d, name)) == HUB["/org/sharded/resolve/v1/" + name]
    assert count(server, "/org/sharded/resolve/v1/model.safetensors") == 1  # the 404 that led to the index
    assert count(server, "/org/sharded/resolve/v1/model-00001-of-00002.safetensors") == 1
    assert requests(server, "/org/sharded/resolve/v1/config.json")[0][2] is None  # no token, no header


def test_hub_without_weights(server, tmp_path):
    p = fetch(["hf://org/noweights", "--hub-url", server.base], tmp_path, check=False)
    assert p.returncode == 1
    assert "neither model.safetensors nor model.safetensors.index.json" in p.stderr


def test_onnx_with_external_data(server, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    onnx.save_model(m, str(src / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="data/weights.bin", size_threshold=0)
    server.extra["/onnx/model.onnx"] = read(src / "model.onnx")
    server.extra["/onnx/data/weights.bin"] = read(src / "data" / "weights.bin")
    p = fetch([server.base + "/onnx/model.onnx"], tmp_path / "cache")
    path = p.stdout.strip()
    assert os.path.basename(path) == "model.onnx"
    assert read(os.path.join(os.path.dirname(path), "data", "weights.bin")) == read(src / "data" / "weights.bin")
    # the fetched layout loads: the external data resolves beside the model
    r = subprocess.run([binary(), "inspect", path], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stderr
    before = total(server)
    assert fetch([server.base + "/onnx/model.onnx"], tmp_path / "cache").stdout.strip() == path
    assert total(server) == before


def test_usage_errors(tmp_path):
    e = dict(os.environ)
    p = subprocess.run([binary(), "fetch"], capture_output=True, text=True, timeout=RUN_TIMEOUT, env=e)
    assert p.returncode == 2
    p = subprocess.run([binary(), "fetch", "--max-bytes", "-5", "http://127.0.0.1:9/x"], capture_output=True,
                       text=True, timeout=RUN_TIMEOUT, env=e)
    assert p.returncode == 2
    p = subprocess.run([binary(), "fetch", "--help"], capture_output=True, text=True, timeout=RUN_TIMEOUT, env=e)
    assert p.returncode == 0
    for opt in ("--cache", "--hub-url", "--max-bytes", "--retries"):
        assert opt in p.stdout
    assert "default" in p.stdout
