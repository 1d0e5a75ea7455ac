"""Fixtures for the end-to-end tests of `onnxtune serve` (issue 6): live servers on loopback.

A `Server` starts

    $ONNXTUNE_BIN serve --host 127.0.0.1 --port <free port> --data-dir <tmp> --workers 1
                        --model-root <repo>/samples --model-root <repo>/tests/models [extra args]

($ONNXTUNE_BIN defaults to <repo>/build/onnxtune), waits for GET /healthz (bounded), and stops it
at teardown with SIGTERM, then SIGKILL after a timeout. Its stdout and stderr go to files in the
test's temporary directory; the tail of stderr is attached to the report of every failed test that
had a server running, and a sanitizer report in it fails the test at teardown.

Training jobs are child processes of the server. At every teardown (and in the durability test
right after a SIGKILL) `kill_strays(data_dir)` SIGKILLs, by pid, each process whose command line or
working directory names the server's data directory: only processes these tests caused.

Helpers shared by the suites: `api(server, method, path, ...)` (requests with the API key),
`raw_request` (http.client, sends a path byte for byte: no dot-segment removal), `assert_error`
(the {"error": {message, type, param, code}} shape), `wait_for` (bounded polling),
`wait_job(server, id, statuses)`, `list_all(server, path)` (follows has_more/after), and
`metric_points(events)` ((step, loss) pairs of the job's metrics events).
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import time

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SAMPLE_DIR = os.path.join(REPO, "samples", "gpt2-tiny")
SAMPLE_MODEL = os.path.join(SAMPLE_DIR, "model.onnx")
SAMPLE_DATA = os.path.join(SAMPLE_DIR, "train.jsonl")
SAMPLE_INPUT_IDS = os.path.join(SAMPLE_DIR, "input_ids.npy")
MODEL_ROOTS = (os.path.join(REPO, "samples"), os.path.join(REPO, "tests", "models"))
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")
TERMINAL = ("succeeded", "failed", "cancelled")
# A job that trains in well under a second on two cores: 6 steps, checkpoints at 2, 4, 6.
TINY = {"steps": 6, "batch_size": 4, "seq_len": 32, "lora_r": 4, "save_every": 2, "threads": 1}

_LIVE = []  # servers running now, for the failure report hook


def onnxtune_bin():
    p = os.environ.get("ONNXTUNE_BIN") or os.path.join("build", "onnxtune")
    return p if os.path.isabs(p) else os.path.join(REPO, p)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_strays(data_dir, keep=()):
    """SIGKILL every process (but `keep` and us) whose cmdline or cwd names data_dir; returns pids."""
    data_dir = os.path.realpath(data_dir)
    killed = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == os.getpid() or pid in keep:
            continue
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().decode("utf-8", "replace")
            try:
                cwd = os.readlink("/proc/%d/cwd" % pid)
            except OSError:
                cwd = ""
        except OSError:
            continue
        if data_dir in cmd or cwd == data_dir or cwd.startswith(data_dir + "/"):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
    return killed


def processes_under(data_dir, keep=()):
    """Pids (but `keep` and us) whose cmdline names data_dir, zombies left out."""
    data_dir = os.path.realpath(data_dir)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid() or int(name) in keep:
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().decode("utf-8", "replace")
            with open("/proc/%s/stat" % name) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if data_dir in cmd and state != "Z":
            found.append(int(name))
    return found


class Server:
    """One `onnxtune serve` process. start() blocks until /healthz answers 200 (or fails the test)."""

    def __init__(self, data_dir, log_dir, api_key=None, extra_args=(), name="serve"):
        self.data_dir = os.path.realpath(str(data_dir))
        self.log_dir = str(log_dir)
        self.api_key = api_key
        self.extra_args = [str(a) for a in extra_args]
        self.name = name
        self.proc = None
        self.port = None
        self.starts = 0
        os.makedirs(self.data_dir, exist_ok=True)
        self.key_file = None
        if api_key is not None:
            self.key_file = os.path.join(self.log_dir, "%s.key" % name)
            with open(self.key_file, "w") as f:
                f.write(api_key + "\n")
            os.chmod(self.key_file, 0o600)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def headers(self):
        return {"Authorization": "Bearer %s" % self.api_key} if self.api_key else {}

    def command(self):
        cmd = [onnxtune_bin(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--data-dir", self.data_dir, "--workers", "1"]
        for root in MODEL_ROOTS:
            cmd += ["--model-root", root]
        if self.key_file:
            cmd += ["--api-key-file", self.key_file]
        return cmd + self.extra_args

    def start(self, timeout=20.0):
        binary = onnxtune_bin()
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            pytest.fail("onnxtune binary not found at %s: build it or set $ONNXTUNE_BIN" % binary, pytrace=False)
        self.starts += 1
        self.port = free_port()
        self.stdout_path = os.path.join(self.log_dir, "%s.%d.stdout" % (self.name, self.starts))
        self.stderr_path = os.path.join(self.log_dir, "%s.%d.stderr" % (self.name, self.starts))
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=self.log_dir)
        _LIVE.append(self)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("onnxtune serve exited with %d before answering /healthz\ncommand: %s\nstderr:\n%s"
                            % (self.proc.returncode, " ".join(self.command()), self.stderr()), pytrace=False)
            try:
                r = requests.get(self.url + "/healthz", headers=self.headers, timeout=1.0)
                if r.status_code == 200:
                    return self
                last = "HTTP %d %s" % (r.status_code, r.text[:200])
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        self.stop()
        pytest.fail("onnxtune serve did not answer GET /healthz with 200 within %.0f s (last: %s)\nstderr:\n%s"
                    % (timeout, last, self.stderr()), pytrace=False)

    def stderr(self, tail=6000):
        try:
            with open(self.stderr_path, "rb") as f:
                data = f.read()
        except (OSError, AttributeError):
            return ""
        return data[-tail:].decode("utf-8", "replace")

    def kill9(self, kill_orphans=True):
        """SIGKILL the server only, then (unless told not to) SIGKILL the job processes it left behind."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self in _LIVE:
            _LIVE.remove(self)
        return kill_strays(self.data_dir) if kill_orphans else []

    def stop(self, timeout=10.0):
        """SIGTERM, SIGKILL after `timeout`; kills strays; returns the exit status (None if killed)."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                rc = None
        kill_strays(self.data_dir)
        if self in _LIVE:
            _LIVE.remove(self)
        return rc

    def sanitizer_report(self):
        text = self.stderr(tail=10 ** 9)
        return text if any(m in text for m in SANITIZER_MARKERS) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in list(_LIVE):
            rep.sections.append(("onnxtune serve stderr (port %s, pid %s)" % (srv.port, srv.proc.pid), srv.stderr()))


def _finish(srv):
    srv.stop()
    report = srv.sanitizer_report()
    assert report is None, "sanitizer report in onnxtune serve stderr:\n%s" % report[-6000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The shared server of a test module (no API key)."""
    base = tmp_path_factory.mktemp("serve")
    srv = Server(base / "data", base, name="shared").start()
    yield srv
    _finish(srv)


@pytest.fixture
def make_server(tmp_path):
    """Factory for servers with their own data dir and options; all stopped at teardown."""
    made = []

    def make(api_key=None, extra_args=(), data_dir=None, start=True):
        i = len(made)
        srv = Server(data_dir or tmp_path / ("data%d" % i), tmp_path, api_key=api_key, extra_args=extra_args,
                     name="srv%d" % i)
        made.append(srv)
        return srv.start() if start else srv

    yield make
    for srv in made:
        _finish(srv)


# ---------------------------------------------------------------------------------------------
# HTTP helpers

def api(srv, method, path, expect=None, **kw):
    """requests.request against srv with its API key; asserts the status when `expect` is given."""
    headers = dict(srv.headers)
    headers.update(kw.pop("headers", {}) or {})
    kw.setdefault("timeout", 30)
    r = requests.request(method, srv.url + path, headers=headers, **kw)
    if expect is not None:
        ok = r.status_code in expect if isinstance(expect, (tuple, list, set)) else r.status_code == expect
        assert ok, "%s %s: expected HTTP %s, got %d: %s" % (method, path, expect, r.status_code, r.text[:2000])
    return r


def raw_request(srv, method, path, body=None, headers=None, timeout=30):
    """http.client request sending `path` exactly as given; returns (status, headers, bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    try:
        h = dict(srv.headers)
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def assert_error(status, body, codes, what, mentions=()):
    """A 4xx in `codes` whose JSON body is {"error": {"message", "type", "param", "code"}}."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    assert status in codes, "%s: expected HTTP %s, got %d: %s" % (what, codes, status, body[:1000])
    try:
        doc = json.loads(body)
    except ValueError:
        raise AssertionError("%s: error body is not JSON: %r" % (what, body[:500]))
    assert isinstance(doc, dict) and isinstance(doc.get("error"), dict), "%s: no error object: %s" % (what, doc)
    err = doc["error"]
    for key in ("message", "type", "param", "code"):
        assert key in err, "%s: error object lacks %r: %s" % (what, key, err)
    assert isinstance(err["message"], str) and err["message"], "%s: empty error message: %s" % (what, err)
    for m in mentions:
        assert m in err["message"] or m == err.get("param"), \
            "%s: error message should name %r: %s" % (what, m, err)
    return err


def assert_serving(srv):
    r = requests.get(srv.url + "/healthz", headers=srv.headers, timeout=5)
    assert r.status_code == 200, "server stopped serving: /healthz -> %d %s" % (r.status_code, r.text[:300])
    assert srv.proc.poll() is None, "server exited with %s" % srv.proc.returncode


def wait_for(fn, timeout, what, interval=0.1):
    """Calls fn() until it returns something truthy (returned) or `timeout` s pass (test fails)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.0f s waiting for %s" % (timeout, what), pytrace=False)
        time.sleep(interval)


def get_job(srv, job_id):
    return api(srv, "GET", "/v1/fine_tuning/jobs/%s" % job_id, expect=200).json()


def wait_job(srv, job_id, statuses=TERMINAL, timeout=120):
    seen = []

    def probe():
        job = get_job(srv, job_id)
        if not seen or seen[-1] != job.get("status"):
            seen.append(job.get("status"))
        return job if job.get("status") in statuses else None

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = probe()
        if job:
            return job
        time.sleep(0.1)
    pytest.fail("job %s did not reach %s within %.0f s; statuses seen: %s" % (job_id, statuses, timeout, seen),
                pytrace=False)


def list_all(srv, path, limit=100, max_pages=1000):
    """Every item of a cursor-paginated list (data, has_more, after=<last id>)."""
    items, after = [], None
    for _ in range(max_pages):
        params = {"limit": limit}
        if after:
            params["after"] = after
        doc = api(srv, "GET", path, expect=200, params=params).json()
        assert doc.get("object") == "list", "%s: object is %r, expected 'list'" % (path, doc.get("object"))
        page = doc["data"]
        items += page
        if not doc.get("has_more"):
            return items
        assert page, "%s: has_more is true on an empty page" % path
        after = page[-1]["id"]
    pytest.fail("%s: more than %d pages" % (path, max_pages))


def upload(srv, path=SAMPLE_DATA, purpose="fine-tune", content=None, filename=None, expect=200):
    data = content if content is not None else open(path, "rb").read()
    files = {"file": (filename or os.path.basename(path), data, "application/jsonl")}
    return api(srv, "POST", "/v1/files", expect=expect, files=files, data={"purpose": purpose})


def job_body(training_file, onnxtune=None, **extra):
    body = {"model": SAMPLE_MODEL, "training_file": training_file,
            "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
            "onnxtune": dict(TINY if onnxtune is None else onnxtune)}
    body.update(extra)
    return body


def create_job(srv, training_file, onnxtune=None, headers=None, **extra):
    r = api(srv, "POST", "/v1/fine_tuning/jobs", expect=(200, 201), json=job_body(training_file, onnxtune, **extra),
            headers=headers)
    job = r.json()
    assert job.get("object") == "fine_tuning.job" and str(job.get("id", "")).startswith("ftjob-"), job
    return job


def _num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def metric_points(events):
    """(step, loss) of each metrics event, in list order: data.step with data.train_loss or data.loss."""
    pts = []
    for ev in events:
        data = ev.get("data") or {}
        if not isinstance(data, dict):
            continue
        step = _num(data.get("step"))
        loss = _num(data.get("train_loss", data.get("loss")))
        if step is not None and loss is not None:
            pts.append((int(step), float(loss)))
    return pts
