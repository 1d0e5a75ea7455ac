"""End-to-end tests of the `onnxtune serve` HTTP API (issue 6) on a live loopback server.

Clients: `requests`, the `curl` binary (subprocess) and the `openai` Python SDK pointed at
base_url. Jobs are tiny (samples/gpt2-tiny, 6 steps, checkpoints at 2, 4, 6; conftest.TINY) so
the whole file runs in well under a minute on two cores.

  flow      upload -> create -> poll until succeeded; events in order with a loss per step (the
            same losses as `onnxtune run` with the same options); checkpoints 2, 4, 6 with their
            train_loss and train_mean_token_accuracy, and valid_loss/valid_mean_token_accuracy
            (and full_valid_*) of the job's validation_file; artifacts model.onnx (whole, and Range requests answered 206 with the right
            bytes) and model.safetensors; the downloaded merged ONNX runs in ONNX Runtime (finite
            logits [2, 16, 512], equal to the logits of the CLI's export of the same job).
  lists     jobs pagination (limit, after, has_more; newest first), events pagination.
  stream    ?stream=true is text/event-stream of "data: " events that ends when the job ends.
  misc      Idempotency-Key, cancel (a 5000-step job: cancelled, checkpoint kept, child gone, the
            worker runs the next job), /metrics in Prometheus text, GET / is HTML.
  bad input each answered with the right 4xx and {"error": {message, type, param, code}}, and the
            server keeps serving: malformed JSON, wrong types, unknown fields and options (named),
            missing/unknown training_file, path-traversal ids and artifact names, file:// ftp://
            and out-of-root models, oversize and malformed uploads, API keys, 404, 405.
"""
import json
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest
import requests

from conftest import (REPO, SAMPLE_DATA, SAMPLE_INPUT_IDS, SAMPLE_MODEL, TERMINAL, TINY, api, assert_error,
                      assert_serving, create_job, get_job, job_body, list_all, metric_points, onnxtune_bin,
                      processes_under, raw_request, upload, wait_for, wait_job)

JOB_OPTS = dict(TINY, export=["onnx", "safetensors", "peft"])
SEED = 42
REL_TOL = 1e-4   # losses and logits printed/serialised by the server vs the CLI's own run


def rel_err(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, "shape %s, expected %s" % (got.shape, ref.shape)
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))


def ort_logits(model):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"input_ids": np.load(SAMPLE_INPUT_IDS)})[0]


def monotonic_direction(values, what):
    """+1 if strictly increasing, -1 if strictly decreasing; fails otherwise."""
    if len(values) < 2:
        return 1
    if all(a < b for a, b in zip(values, values[1:])):
        return 1
    if all(a > b for a, b in zip(values, values[1:])):
        return -1
    pytest.fail("%s are not in order: %s" % (what, values))


# ---------------------------------------------------------------------------------------------
# module fixtures: one uploaded file and one finished tiny job on the shared server

@pytest.fixture(scope="module")
def training_file(server):
    doc = upload(server).json()
    assert doc.get("object") == "file" and str(doc.get("id", "")).startswith("file-"), doc
    assert doc.get("purpose") == "fine-tune", doc
    assert doc.get("bytes") == os.path.getsize(SAMPLE_DATA), doc
    return doc["id"]


@pytest.fixture(scope="module")
def validation_file(server):
    """The sample's last 10 rows (3 micro-batches of 4, the last wrapping around)."""
    with open(SAMPLE_DATA, "rb") as f:
        rows = [ln for ln in f.read().split(b"\n") if ln.strip()]
    doc = upload(server, content=b"\n".join(rows[-10:]) + b"\n", filename="valid.jsonl").json()
    assert str(doc.get("id", "")).startswith("file-"), doc
    return doc["id"]


@pytest.fixture(scope="module")
def done_job(server, training_file, validation_file):
    job = create_job(server, training_file, JOB_OPTS, seed=SEED, validation_file=validation_file)
    assert job["status"] in ("validating_files", "queued", "running", "succeeded"), job
    assert job.get("training_file") == training_file, job
    assert job.get("validation_file") == validation_file, job
    job = wait_job(server, job["id"])
    assert job["status"] == "succeeded", "job ended %s: %s" % (job["status"], job.get("error"))
    return job


@pytest.fixture(scope="module")
def cli_reference(tmp_path_factory):
    """The same job run offline by `onnxtune run`: (per-step log lines, exported model.onnx path)."""
    d = tmp_path_factory.mktemp("cli_ref")
    cfg = dict(JOB_OPTS, model=SAMPLE_MODEL, data=SAMPLE_DATA, seed=SEED, export=["onnx"])
    with open(d / "job.json", "w") as f:
        json.dump(cfg, f)
    proc = subprocess.run([onnxtune_bin(), "run", "--config", str(d / "job.json"), "--out", str(d / "out"),
                           "--log-json", str(d / "log.jsonl")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, "onnxtune run failed: %s" % proc.stderr
    with open(d / "log.jsonl") as f:
        log = [json.loads(line) for line in f if line.strip()]
    log = [r for r in log if "step" in r]  # step lines; not the run's one {"memory": ...} line
    return log, str(d / "out" / "export" / "model.onnx")


# ---------------------------------------------------------------------------------------------
# the main flow, with requests

def test_status_page_is_html(server):
    r = api(server, "GET", "/", expect=200)
    assert r.headers.get("Content-Type", "").startswith("text/html"), r.headers
    assert re.search(r"<html", r.text, re.I), r.text[:500]
    assert "/v1/fine_tuning/jobs" in r.text, "status page does not load the jobs list"


def test_files_list_get_content_delete(server, training_file):
    listed = list_all(server, "/v1/files")
    assert training_file in [f["id"] for f in listed], listed
    doc = api(server, "GET", "/v1/files/%s" % training_file, expect=200).json()
    assert doc["id"] == training_file and doc["object"] == "file" and doc["filename"] == "train.jsonl", doc
    content = api(server, "GET", "/v1/files/%s/content" % training_file, expect=200).content
    assert content == open(SAMPLE_DATA, "rb").read(), "file content differs from the upload"

    other = upload(server, content=b'{"input_ids": [1, 2, 3]}\n', filename="small.jsonl").json()
    gone = api(server, "DELETE", "/v1/files/%s" % other["id"], expect=200).json()
    assert gone.get("id") == other["id"] and gone.get("deleted") is True, gone
    r = api(server, "GET", "/v1/files/%s" % other["id"])
    assert_error(r.status_code, r.text, (404,), "GET deleted file")
    assert other["id"] not in [f["id"] for f in list_all(server, "/v1/files")]


def test_job_object(done_job, cli_reference):
    job = done_job
    assert job["object"] == "fine_tuning.job" and job["model"] == SAMPLE_MODEL, job
    assert isinstance(job["created_at"], int) and isinstance(job["finished_at"], int), job
    assert job["finished_at"] >= job["created_at"], job
    assert job.get("error") in (None, {}), job
    assert isinstance(job.get("fine_tuned_model"), str) and job["fine_tuned_model"], job
    assert isinstance(job.get("result_files"), list), job
    assert isinstance(job.get("hyperparameters"), dict) and job["hyperparameters"].get("n_epochs") == 1, job
    assert job.get("seed") == SEED, job
    log, _ = cli_reference
    assert job.get("trained_tokens") == log[-1]["tokens"], \
        "trained_tokens %r, `onnxtune run` trained %d tokens" % (job.get("trained_tokens"), log[-1]["tokens"])


def test_events_in_order_with_losses(server, done_job, cli_reference):
    events = list_all(server, "/v1/fine_tuning/jobs/%s/events" % done_job["id"])
    for ev in events:
        assert ev.get("object") == "fine_tuning.job.event" and ev.get("id"), ev
        assert ev.get("level") in ("info", "warn", "error") and isinstance(ev.get("message"), str), ev
        is_metrics = isinstance(ev.get("data"), dict) and "step" in ev["data"]
        assert ev.get("type") == ("metrics" if is_metrics else "message"), ev
    pts = metric_points(events)
    steps = [s for s, _ in pts]
    direction = monotonic_direction(steps, "metrics event steps in list order")
    ordered = pts if direction > 0 else pts[::-1]
    assert [s for s, _ in ordered] == list(range(1, TINY["steps"] + 1)), "steps %s" % steps
    stamps = [e["created_at"] for e in events]
    assert stamps == sorted(stamps, reverse=direction < 0), "created_at out of order: %s" % stamps
    log, _ = cli_reference
    for (step, loss), ref in zip(ordered, log):
        assert np.isfinite(loss), (step, loss)
        assert abs(loss - ref["loss"]) <= REL_TOL * abs(ref["loss"]), \
            "step %d: service loss %r, `onnxtune run` loss %r" % (step, loss, ref["loss"])
    # pagination of events: pages of 2 cover the same list without overlap
    paged = list_all(server, "/v1/fine_tuning/jobs/%s/events" % done_job["id"], limit=2)
    assert [e["id"] for e in paged] == [e["id"] for e in events]
    first = api(server, "GET", "/v1/fine_tuning/jobs/%s/events" % done_job["id"], expect=200, params={"limit": 2}).json()
    assert len(first["data"]) == 2 and first["has_more"] is (len(events) > 2), first


def test_checkpoints(server, done_job, cli_reference):
    cps = list_all(server, "/v1/fine_tuning/jobs/%s/checkpoints" % done_job["id"])
    steps = sorted(c.get("step_number") for c in cps)
    assert steps == [2, 4, 6], "checkpoint steps %s, expected [2, 4, 6] (save_every 2)" % steps
    log, _ = cli_reference
    for c in cps:
        assert c.get("object") == "fine_tuning.job.checkpoint" and c.get("id"), c
        assert c.get("fine_tuning_job_id") == done_job["id"], c
        assert isinstance(c.get("created_at"), int), c
        m = c.get("metrics") or {}
        assert isinstance(m.get("train_loss"), (int, float)), "checkpoint without metrics.train_loss: %s" % c
        ref = log[c["step_number"] - 1]["loss"]
        assert abs(m["train_loss"] - ref) <= REL_TOL * abs(ref), \
            "checkpoint %d train_loss %r, step loss %r" % (c["step_number"], m["train_loss"], ref)
        # the validation run does not change training: the token accuracy is the CLI's too
        ref_acc = log[c["step_number"] - 1]["train_mean_token_accuracy"]
        assert abs(m.get("train_mean_token_accuracy", -1) - ref_acc) <= 1e-6, c
        # the job's validation_file is evaluated (whole: eval_batches 0) at every checkpoint
        for key in ("valid_loss", "valid_mean_token_accuracy", "full_valid_loss", "full_valid_mean_token_accuracy"):
            assert isinstance(m.get(key), (int, float)), "checkpoint without metrics.%s: %s" % (key, c)
        assert np.isfinite(m["valid_loss"]) and m["valid_loss"] > 0, c
        assert 0 <= m["valid_mean_token_accuracy"] <= 1, c
        assert m["full_valid_loss"] == m["valid_loss"], c
        assert m["full_valid_mean_token_accuracy"] == m["valid_mean_token_accuracy"], c
        if m.get("step") is not None:
            assert m["step"] == c["step_number"], c


def test_artifacts_whole_range_and_ort(server, done_job, cli_reference, tmp_path):
    base = "/v1/fine_tuning/jobs/%s/artifacts/" % done_job["id"]
    whole = api(server, "GET", base + "model.onnx", expect=200)
    body = whole.content
    assert len(body) > 100000, "model.onnx is only %d bytes" % len(body)
    if "Content-Length" in whole.headers:
        assert int(whole.headers["Content-Length"]) == len(body)
    assert whole.headers.get("Accept-Ranges", "bytes") == "bytes", whole.headers

    r = api(server, "GET", base + "model.onnx", expect=206, headers={"Range": "bytes=100-1123"})
    assert r.content == body[100:1124], "Range bytes=100-1123 returned the wrong bytes"
    assert r.headers.get("Content-Range") == "bytes 100-1123/%d" % len(body), r.headers
    r = api(server, "GET", base + "model.onnx", expect=206, headers={"Range": "bytes=%d-" % (len(body) - 10)})
    assert r.content == body[-10:], "open-ended Range returned the wrong bytes"
    r = api(server, "GET", base + "model.onnx", headers={"Range": "bytes=%d-" % (len(body) + 10)})
    assert r.status_code == 416, "unsatisfiable Range: expected 416, got %d" % r.status_code

    path = tmp_path / "merged.onnx"
    path.write_bytes(body)
    logits = ort_logits(str(path))
    assert logits.shape == (2, 16, 512) and np.all(np.isfinite(logits)), logits.shape
    _, cli_model = cli_reference
    assert rel_err(logits, ort_logits(cli_model)) < 1e-5, "service model differs from `onnxtune run`'s export"
    assert not np.array_equal(logits, ort_logits(SAMPLE_MODEL)), "merged model equals the base model"

    st = api(server, "GET", base + "model.safetensors", expect=200).content
    hlen = int.from_bytes(st[:8], "little")
    assert 8 + hlen <= len(st) and json.loads(st[8:8 + hlen]), "model.safetensors has no valid header"


# ---------------------------------------------------------------------------------------------
# curl

def curl(*args, timeout=60):
    exe = shutil.which("curl")
    if exe is None:
        pytest.skip("SKIP: the curl binary is not installed")
    proc = subprocess.run([exe, "-sS", "--max-time", "30", "-w", "\n%{http_code}"] + [str(a) for a in args],
                          capture_output=True, timeout=timeout)
    assert proc.returncode == 0, "curl %s failed: %s" % (" ".join(map(str, args)), proc.stderr.decode())
    out, _, code = proc.stdout.rpartition(b"\n")
    return int(code), out


def test_curl_flow(server, tmp_path):
    code, out = curl("-F", "purpose=fine-tune", "-F", "file=@%s" % SAMPLE_DATA, server.url + "/v1/files")
    assert code == 200, out
    file_id = json.loads(out)["id"]
    (tmp_path / "body.json").write_text(json.dumps(job_body(file_id, JOB_OPTS)))
    code, out = curl("-H", "Content-Type: application/json", "--data-binary", "@%s" % (tmp_path / "body.json"),
                     server.url + "/v1/fine_tuning/jobs")
    assert code in (200, 201), out
    job_id = json.loads(out)["id"]

    def done():
        c, o = curl(server.url + "/v1/fine_tuning/jobs/" + job_id)
        assert c == 200, o
        j = json.loads(o)
        return j if j["status"] in TERMINAL else None

    job = wait_for(done, 120, "job %s (curl) to finish" % job_id, interval=0.2)
    assert job["status"] == "succeeded", job
    url = server.url + "/v1/fine_tuning/jobs/%s/artifacts/model.onnx" % job_id
    code, _ = curl("-o", tmp_path / "m.onnx", url)
    assert code == 200
    code, _ = curl("-r", "0-99", "-o", tmp_path / "head.bin", url)
    assert code == 206
    whole = (tmp_path / "m.onnx").read_bytes()
    assert (tmp_path / "head.bin").read_bytes() == whole[:100]
    logits = ort_logits(str(tmp_path / "m.onnx"))
    assert logits.shape == (2, 16, 512) and np.all(np.isfinite(logits))


# ---------------------------------------------------------------------------------------------
# the openai SDK

def sdk(srv, api_key="test"):
    from openai import OpenAI
    return OpenAI(base_url=srv.url + "/v1", api_key=srv.api_key or api_key, max_retries=0, timeout=30)


def test_openai_sdk_flow(server):
    client = sdk(server)
    with open(SAMPLE_DATA, "rb") as f:
        fobj = client.files.create(file=f, purpose="fine-tune")
    assert fobj.id.startswith("file-") and fobj.bytes == os.path.getsize(SAMPLE_DATA), fobj
    assert client.files.content(fobj.id).read() == open(SAMPLE_DATA, "rb").read()
    job = client.fine_tuning.jobs.create(
        model=SAMPLE_MODEL, training_file=fobj.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
        extra_body={"onnxtune": JOB_OPTS})
    assert job.id.startswith("ftjob-") and job.object == "fine_tuning.job", job

    def done():
        j = client.fine_tuning.jobs.retrieve(job.id)
        return j if j.status in TERMINAL else None

    job = wait_for(done, 120, "SDK job %s to finish" % job.id, interval=0.2)
    assert job.status == "succeeded", job
    page = client.fine_tuning.jobs.list(limit=1)
    assert len(page.data) == 1 and page.data[0].id == job.id, "newest job first: %s" % page.data
    events = client.fine_tuning.jobs.list_events(job.id, limit=100)
    pts = metric_points([e.model_dump() for e in events.data])
    assert sorted(s for s, _ in pts) == list(range(1, TINY["steps"] + 1)), pts
    cps = client.fine_tuning.jobs.checkpoints.list(job.id)
    assert sorted(c.step_number for c in cps.data) == [2, 4, 6], cps.data
    assert all(c.metrics.train_loss is not None for c in cps.data), cps.data


def test_openai_sdk_cancel(make_server):
    srv = make_server()
    client = sdk(srv)
    with open(SAMPLE_DATA, "rb") as f:
        fid = client.files.create(file=f, purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model=SAMPLE_MODEL, training_file=fid,
                                         extra_body={"onnxtune": dict(TINY, steps=5000, save_every=10)})
    cps = wait_for(lambda: client.fine_tuning.jobs.checkpoints.list(job.id).data, 60,
                   "a checkpoint of the long job", interval=0.1)
    seen = max(c.step_number for c in cps)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
    out = client.fine_tuning.jobs.cancel(job.id)
    assert out.id == job.id and out.status in ("cancelled", "running"), out
    final = wait_job(srv, job.id, timeout=30)
    assert final["status"] == "cancelled", final
    assert isinstance(final.get("finished_at"), int), final
    after = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id).data]
    assert after and max(after) >= seen, "checkpoints after cancel: %s (had step %d)" % (after, seen)
    assert max(after) < 5000, "the job was not stopped: checkpoint %d" % max(after)
    wait_for(lambda: not processes_under(srv.data_dir, keep=(srv.proc.pid,)), 10,
             "the cancelled job's process to exit")
    # cancelling again is idempotent (200, still cancelled) or refused (400/409)
    r = api(srv, "POST", "/v1/fine_tuning/jobs/%s/cancel" % job.id)
    if r.status_code == 200:
        assert r.json()["status"] == "cancelled", r.text
    else:
        assert_error(r.status_code, r.text, (400, 409), "cancel a cancelled job")
    # the worker slot is free again; a finished job cannot be cancelled
    nxt = create_job(srv, fid)
    assert wait_job(srv, nxt["id"])["status"] == "succeeded"
    r = api(srv, "POST", "/v1/fine_tuning/jobs/%s/cancel" % nxt["id"])
    if r.status_code == 200:
        assert r.json()["status"] == "succeeded", "cancel of a succeeded job answered %s" % r.text
    else:
        assert_error(r.status_code, r.text, (400, 409), "cancel a succeeded job")
    assert get_job(srv, nxt["id"])["status"] == "succeeded"


# ---------------------------------------------------------------------------------------------
# lists, stream, idempotency, metrics

def test_jobs_pagination(server, training_file):
    ids = [create_job(server, training_file)["id"] for _ in range(3)]
    for i in ids:
        wait_job(server, i)
    first = api(server, "GET", "/v1/fine_tuning/jobs", expect=200, params={"limit": 2}).json()
    assert first["object"] == "list" and len(first["data"]) == 2 and first["has_more"] is True, first
    assert [j["id"] for j in first["data"]] == ids[::-1][:2], "newest first: %s vs created %s" % (
        [j["id"] for j in first["data"]], ids)
    everything = list_all(server, "/v1/fine_tuning/jobs", limit=1)
    got = [j["id"] for j in everything]
    assert len(got) == len(set(got)), "duplicates across pages: %s" % got
    assert got[:3] == ids[::-1], got
    last = api(server, "GET", "/v1/fine_tuning/jobs", expect=200, params={"limit": 1, "after": got[-1]}).json()
    assert last["data"] == [] and last["has_more"] is False, last
    for bad in ("0", "-1", "abc"):
        r = api(server, "GET", "/v1/fine_tuning/jobs", params={"limit": bad})
        assert_error(r.status_code, r.text, (400,), "limit=%s" % bad)


def test_events_stream(server, training_file):
    job = create_job(server, training_file, dict(TINY, steps=40, save_every=10))
    url = server.url + "/v1/fine_tuning/jobs/%s/events" % job["id"]
    deadline = time.monotonic() + 90
    data, ended = [], False
    with requests.get(url, params={"stream": "true"}, stream=True, timeout=(5, 30), headers=server.headers) as r:
        assert r.status_code == 200, r.text[:500]
        assert r.headers.get("Content-Type", "").startswith("text/event-stream"), r.headers
        for line in r.iter_lines(decode_unicode=True):
            assert time.monotonic() < deadline, "stream still open after 90 s"
            if line and line.startswith("data: "):
                payload = line[len("data: "):]
                if payload.strip() == "[DONE]":
                    continue
                data.append(json.loads(payload))
        ended = True
    assert ended
    status = get_job(server, job["id"])["status"]
    assert status in TERMINAL, "stream ended while the job is %s" % status
    assert data, "no data: events in the stream"
    streamed = sorted(s for s, _ in metric_points(data))
    listed = sorted(s for s, _ in metric_points(list_all(server, "/v1/fine_tuning/jobs/%s/events" % job["id"])))
    assert streamed == listed == list(range(1, 41)), "streamed steps %s, listed %s" % (streamed, listed)


def test_idempotency_key(server, training_file):
    key = {"Idempotency-Key": "retry-%d" % os.getpid()}
    a = create_job(server, training_file, headers=key)
    b = create_job(server, training_file, headers=key)
    c = create_job(server, training_file, headers={"Idempotency-Key": "other-%d" % os.getpid()})
    assert a["id"] == b["id"], "same Idempotency-Key gave two jobs: %s %s" % (a["id"], b["id"])
    assert c["id"] != a["id"]
    ids = [j["id"] for j in list_all(server, "/v1/fine_tuning/jobs")]
    assert ids.count(a["id"]) == 1, ids
    for j in (a, c):
        wait_job(server, j["id"])


PROM_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})? '
                       r'(-?[0-9.eE+-]+|NaN|[+-]Inf)( -?\d+)?$')


def prom(srv):
    r = api(srv, "GET", "/metrics", expect=200)
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    samples = []
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = PROM_LINE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        samples.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return samples


def test_metrics(server, done_job):
    samples = prom(server)
    by_state = re.compile(r'(?:state|status)="([^"]+)"')
    states = {by_state.search(lab).group(1): v for n, lab, v in samples if "job" in n and
              by_state.search(lab)}
    assert states.get("succeeded", 0) >= 1, "no jobs-by-state sample for succeeded: %s" % samples
    assert set(states) >= {"queued", "running", "succeeded", "failed", "cancelled"}, states
    names = {n for n, _, _ in samples}
    for part in ("request", "queue", "token"):
        assert any(part in n for n in names), "no metric named like *%s*: %s" % (part, sorted(names))
    assert any(re.search(r"(latency|duration|seconds)", n) for n in names), sorted(names)

    def requests_total(s):
        return sum(v for n, lab, v in s if "request" in n and n.endswith("_total"))

    before = requests_total(samples)
    for _ in range(5):
        api(server, "GET", "/v1/fine_tuning/jobs/%s" % done_job["id"], expect=200)
    assert requests_total(prom(server)) >= before + 5, "request counters did not grow"


# ---------------------------------------------------------------------------------------------
# bad input

@pytest.fixture(scope="module")
def outside_model(tmp_path_factory):
    """A valid ONNX model outside every --model-root."""
    d = tmp_path_factory.mktemp("outside")
    shutil.copy(SAMPLE_MODEL, d / "model.onnx")
    return str(d / "model.onnx")


def bad_create_cases(fid, outside):
    ok = job_body(fid)

    def edit(f):
        b = json.loads(json.dumps(ok))
        f(b)
        return b

    deep = (json.dumps(ok)[:-1] + ', "metadata": ' + '{"a": ' * 5000 + '1' + '}' * 5000 + '}').encode()
    return [
        ("malformed JSON", b'{"model": "x", ', (400,), ()),
        ("JSON array", b"[1, 2]", (400,), ()),
        ("n_epochs is a string", edit(lambda b: b["method"]["supervised"]["hyperparameters"].update(n_epochs="ten")),
         (400,), ("n_epochs",)),
        ("negative n_epochs", edit(lambda b: b["method"]["supervised"]["hyperparameters"].update(n_epochs=-1)),
         (400,), ("n_epochs",)),
        ("model is a number", edit(lambda b: b.update(model=5)), (400,), ("model",)),
        ("unknown top-level field", edit(lambda b: b.update(bogus_field=1)), (400,), ("bogus_field",)),
        ("unknown onnxtune option", edit(lambda b: b["onnxtune"].update(lora_rank_typo=4)), (400,),
         ("lora_rank_typo",)),
        ("onnxtune option of the wrong type", edit(lambda b: b["onnxtune"].update(lora_r="four")), (400,),
         ("lora_r",)),
        ("unsupported method type", edit(lambda b: b["method"].update(type="dpo")), (400,), ()),
        ("no training_file", edit(lambda b: b.pop("training_file")), (400,), ("training_file",)),
        ("unknown training_file id", edit(lambda b: b.update(training_file="file-doesnotexist0000")), (400, 404),
         ()),
        ("training_file path traversal", edit(lambda b: b.update(training_file="../../etc/passwd")), (400, 404),
         ()),
        ("model file:// URL", edit(lambda b: b.update(model="file:///etc/passwd")), (400,), ()),
        ("model ftp:// URL", edit(lambda b: b.update(model="ftp://x")), (400,), ()),
        ("model /etc/passwd", edit(lambda b: b.update(model="/etc/passwd")), (400, 403), ()),
        ("model escaping a root with ..",
         edit(lambda b: b.update(model=os.path.join(REPO, "samples", "..", "..", "..", "etc", "passwd"))),
         (400, 403), ()),
        ("model outside --model-root", edit(lambda b: b.update(model=outside)), (400, 403), ()),
        ("JSON nested 5000 deep", deep, (400, 413), ()),
    ]


BAD_CREATE_NAMES = [c[0] for c in bad_create_cases("file-x", "/x")]


@pytest.mark.parametrize("case", BAD_CREATE_NAMES)
def test_bad_create(server, training_file, outside_model, case):
    name, body, codes, mentions = [c for c in bad_create_cases(training_file, outside_model) if c[0] == case][0]
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    before = len(list_all(server, "/v1/fine_tuning/jobs"))
    r = api(server, "POST", "/v1/fine_tuning/jobs", data=data, headers={"Content-Type": "application/json"})
    assert_error(r.status_code, r.text, codes, "create with %s" % name, mentions)
    assert len(list_all(server, "/v1/fine_tuning/jobs")) == before, "a rejected create left a job behind"
    assert_serving(server)


def test_bad_uploads(server):
    lines = b'{"input_ids": [1, 2, 3]}\n{"input_ids": [4, 5]}\nnot json at all\n{"input_ids": [6]}\n'
    r = upload(server, content=lines, filename="bad.jsonl", expect=None)
    assert_error(r.status_code, r.text, (400,), "malformed JSONL upload", ("line 3",))
    r = upload(server, content=b'{"input_ids": [1]}\n', purpose="assistants", expect=None)
    assert_error(r.status_code, r.text, (400,), "purpose=assistants", ("purpose",))
    r = api(server, "POST", "/v1/files", data={"purpose": "fine-tune"}, files={"other": ("x", b"{}\n")})
    assert_error(r.status_code, r.text, (400,), "multipart without a file part", ("file",))
    r = api(server, "POST", "/v1/files", data=b'{"purpose": "fine-tune"}', headers={"Content-Type": "application/json"})
    assert_error(r.status_code, r.text, (400, 415), "upload that is not multipart")
    assert_serving(server)


def test_oversize_upload(make_server):
    srv = make_server(extra_args=["--max-upload-bytes", "4096"])
    assert os.path.getsize(SAMPLE_DATA) > 4096
    r = upload(srv, expect=None)
    assert_error(r.status_code, r.text, (413,), "32 KB upload with --max-upload-bytes 4096")
    assert_serving(srv)
    small = b"".join(open(SAMPLE_DATA, "rb").readlines()[:3])
    assert len(small) < 4096
    doc = upload(srv, content=small, filename="small.jsonl").json()
    assert doc["bytes"] == len(small)
    assert [f["id"] for f in list_all(srv, "/v1/files")] == [doc["id"]], "the rejected upload was kept"


TRAVERSAL = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "..%252F..%252Fetc%252Fpasswd", "%2Fetc%2Fpasswd",
             "..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd"]


@pytest.mark.parametrize("evil", TRAVERSAL)
def test_path_traversal(server, done_job, evil):
    paths = [("GET", "/v1/files/%s" % evil), ("GET", "/v1/files/%s/content" % evil), ("DELETE", "/v1/files/%s" % evil),
             ("GET", "/v1/fine_tuning/jobs/%s" % evil), ("GET", "/v1/fine_tuning/jobs/%s/events" % evil),
             ("POST", "/v1/fine_tuning/jobs/%s/cancel" % evil),
             ("GET", "/v1/fine_tuning/jobs/%s/artifacts/model.onnx" % evil),
             ("GET", "/v1/fine_tuning/jobs/%s/artifacts/%s" % (done_job["id"], evil)),
             ("GET", "/v1/fine_tuning/jobs/%s/artifacts/..%%2Fcheckpoints" % done_job["id"])]
    for method, path in paths:
        status, _, body = raw_request(server, method, path)
        assert b"root:" not in body, "%s %s leaked /etc/passwd" % (method, path)
        assert_error(status, body, (400, 404), "%s %s" % (method, path))
    assert_serving(server)


def test_unknown_route_and_wrong_method(server, done_job):
    for path in ("/v1/nothing", "/v2/files", "/v1/fine_tuning/jobs/ftjob-doesnotexist0000",
                 "/v1/files/file-doesnotexist0000", "/v1/fine_tuning/jobs/%s/artifacts/nothing.bin" % done_job["id"]):
        r = api(server, "GET", path)
        assert_error(r.status_code, r.text, (404,), "GET %s" % path)
    for method, path in (("DELETE", "/v1/fine_tuning/jobs"), ("PUT", "/v1/files"),
                         ("GET", "/v1/fine_tuning/jobs/%s/cancel" % done_job["id"]),
                         ("POST", "/v1/fine_tuning/jobs/%s" % done_job["id"])):
        r = api(server, method, path)
        assert_error(r.status_code, r.text, (405,), "%s %s" % (method, path))
    assert_serving(server)


def test_api_key(make_server):
    srv = make_server(api_key="s3cret-%d" % os.getpid())
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0"},
                    {"Authorization": "Bearer"}, {"Authorization": "Bearer %sx" % srv.api_key}):
        for method, path in (("GET", "/v1/files"), ("GET", "/v1/fine_tuning/jobs"), ("POST", "/v1/fine_tuning/jobs"),
                             ("GET", "/v1/fine_tuning/jobs/ftjob-x/artifacts/model.onnx")):
            r = requests.request(method, srv.url + path, headers=headers, timeout=10,
                                 data=b"{" if method == "POST" else None)
            assert_error(r.status_code, r.text, (401,), "%s %s with %s" % (method, path, headers))
    api(srv, "GET", "/v1/files", expect=200)
    from openai import AuthenticationError, OpenAI
    assert sdk(srv).files.list().data == []
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0, timeout=10).files.list()
    assert_serving(srv)
