"""Durability of `onnxtune serve` across SIGKILL (issue 6, "Kill -9 the server mid-job, restart").

One server, --workers 1, one data directory:
  1. upload the sample data; create job A (300 steps, a checkpoint every 20, ~20 ms a step with one
     thread) and then job B (6 steps), which waits in the queue behind A;
  2. as soon as A lists a checkpoint, while A is running and B is still queued, SIGKILL the server
     and then every process it left behind under the data directory (an orphaned job process must
     not write on behind the restarted server's back);
  3. restart on the same --data-dir: A is picked up again and resumes from its last checkpoint -
     the metrics events recorded after the restart start at <checkpoint step> + 1 (or continue the
     steps logged before the kill), never at step 1, and a step trained both before and after the
     kill has the same loss (resume is bit-exact in the trainer) - and A ends succeeded at step 300;
  4. B, queued before the kill, runs and succeeds; the job list holds exactly A and B, once each.

test_orphan_not_duplicated: the same kill, but the job process the dead server left behind is not
killed by the test: once the restarted server resumes the job, that orphan must be gone (or must
never have outlived the server), so no two trainers write the same job.
test_sigterm_restart: SIGTERM stops the server (exit 0) and its job processes; after a restart the
job resumes and succeeds; every event's level is one of OpenAI's (info, warn, error).
"""
import glob
import json
import os
import re
import time

import pytest

from conftest import (TINY, Server, processes_under, api, create_job, get_job, list_all, metric_points, upload, wait_for,
                      wait_job)

LONG = dict(TINY, steps=300, batch_size=8, seq_len=64, save_every=20)
REL_TOL = 1e-6


def events(srv, job_id):
    return list_all(srv, "/v1/fine_tuning/jobs/%s/events" % job_id)


def checkpoint_steps(srv, job_id):
    return sorted(c["step_number"] for c in list_all(srv, "/v1/fine_tuning/jobs/%s/checkpoints" % job_id))


@pytest.fixture
def servers(tmp_path):
    made = []
    yield made
    for srv in made:
        srv.stop()
        report = srv.sanitizer_report()
        assert report is None, "sanitizer report in onnxtune serve stderr:\n%s" % report[-6000:]


def test_kill9_and_restart_resumes(tmp_path, servers):
    data_dir = tmp_path / "data"
    first = Server(data_dir, tmp_path, name="before-kill")
    servers.append(first)
    first.start()
    fid = upload(first).json()["id"]
    a = create_job(first, fid, LONG)["id"]
    b = create_job(first, fid)["id"]

    steps_seen = wait_for(lambda: checkpoint_steps(first, a), 60, "a first checkpoint of job %s" % a, interval=0.05)
    status_a, status_b = get_job(first, a)["status"], get_job(first, b)["status"]
    pre_events = events(first, a)
    killed = first.kill9()
    assert status_a == "running", "job A was %s at its first checkpoint; make it longer" % status_a
    assert status_b in ("validating_files", "queued"), "job B was %s before the kill (--workers 1)" % status_b
    pre_ids = {e["id"] for e in pre_events}
    pre = dict(metric_points(pre_events))
    assert pre and min(pre) == 1, "no metrics events before the kill: %s" % pre_events[:5]

    second = Server(data_dir, tmp_path, name="after-restart")
    servers.append(second)
    second.start()
    job_a = wait_job(second, a, timeout=120)
    assert job_a["status"] == "succeeded", "job A after restart: %s" % job_a
    job_b = wait_job(second, b, timeout=60)
    assert job_b["status"] == "succeeded", "job B after restart: %s" % job_b

    all_ids = [j["id"] for j in list_all(second, "/v1/fine_tuning/jobs")]
    assert sorted(all_ids) == sorted([a, b]), "jobs after restart: %s (expected %s once each)" % (all_ids, [a, b])

    all_events = events(second, a)
    post_events = [e for e in all_events if e["id"] not in pre_ids]
    post = metric_points(post_events)
    assert post, "no metrics events after the restart"
    post_steps = [s for s, _ in post]
    first_post = min(post_steps)
    cps = checkpoint_steps(second, a)
    print("killed %s; checkpoints seen before the kill %s; metrics events before %d..%d, after the restart %d..%d"
          % (killed, steps_seen, min(pre), max(pre), first_post, max(post_steps)))
    assert first_post > 1, "job A restarted from step 1 instead of its checkpoint: %s" % post_steps[:10]
    assert first_post - 1 in cps or first_post == max(pre) + 1, \
        "after the restart job A went on at step %d; checkpoints %s, last step before the kill %d" % (
            first_post, cps, max(pre))
    all_steps = [s for s, _ in metric_points(all_events)]
    assert sorted(all_steps) == list(range(1, LONG["steps"] + 1)), \
        "metrics events should hold each step 1..%d once; missing %s, repeated %s" % (
            LONG["steps"], sorted(set(range(1, LONG["steps"] + 1)) - set(all_steps)),
            sorted({s for s in all_steps if all_steps.count(s) > 1}))
    for step, loss in post:
        if step in pre:
            assert abs(loss - pre[step]) <= REL_TOL * abs(pre[step]), \
                "step %d: loss %r before the kill, %r after the resume" % (step, pre[step], loss)
    assert any(re.search(r"resum", e.get("message", ""), re.I) for e in post_events), \
        "no event says the job resumed: %s" % [e.get("message") for e in post_events if e.get("type") != "metrics"]
    assert cps[-1] == LONG["steps"] and steps_seen[-1] in cps, cps

    # The trainer's own step log (appended by every attempt): 1..K, then C+1..300 from checkpoint C.
    logs = glob.glob(os.path.join(str(data_dir), "**", a, "**", "log.jsonl"), recursive=True)
    assert len(logs) == 1, "expected one log.jsonl of job %s under the data dir, found %s" % (a, logs)
    rows = []
    with open(logs[0]) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass  # a line cut by the SIGKILL
    rows = [r for r in rows if "step" in r]  # not the {"memory": ...} line each attempt logs
    steps = [r["step"] for r in rows]
    drops = [i for i in range(1, len(steps)) if steps[i] <= steps[i - 1]]
    # Killed right after logging its checkpoint step, the first attempt leaves nothing to
    # replay and the log runs on without a drop; otherwise exactly one drop, back to C+1.
    assert len(drops) <= 1, "expected at most one restart in the step log, found %d: %s" % (len(drops), steps)
    if not drops:
        assert steps == list(range(1, LONG["steps"] + 1)), "steps %s" % steps
    else:
        i = drops[0]
        resumed_from = steps[i] - 1
        assert steps[:i] == list(range(1, steps[i - 1] + 1)), "first attempt's steps %s" % steps[:i]
        assert steps[i:] == list(range(steps[i], LONG["steps"] + 1)), "second attempt's steps %s" % steps[i:]
        assert resumed_from > 0 and resumed_from % LONG["save_every"] == 0 and resumed_from >= steps_seen[-1], \
            "the second attempt started at step %d: not right after a checkpoint >= %d" % (steps[i], steps_seen[-1])
        first_try = {r["step"]: r["loss"] for r in rows[:i]}
        replayed = [(r["step"], first_try[r["step"]], r["loss"]) for r in rows[i:] if r["step"] in first_try]
        for step, before, after in replayed:
            assert before == after, "step %d: loss %r before the kill, %r when replayed after the resume" % (
                step, before, after)
    assert api(second, "GET", "/v1/fine_tuning/jobs/%s/artifacts/model.onnx" % a, expect=200).content


def start_long_job(srv):
    fid = upload(srv).json()["id"]
    a = create_job(srv, fid, LONG)["id"]
    wait_for(lambda: checkpoint_steps(srv, a), 60, "a first checkpoint of job %s" % a, interval=0.05)
    assert get_job(srv, a)["status"] == "running"
    return a


def test_orphan_not_duplicated(tmp_path, servers):
    data_dir = tmp_path / "data"
    first = Server(data_dir, tmp_path, name="before-kill")
    servers.append(first)
    first.start()
    a = start_long_job(first)
    first.kill9(kill_orphans=False)
    orphans = processes_under(str(data_dir))
    second = Server(data_dir, tmp_path, name="after-restart")
    servers.append(second)
    second.start()
    wait_for(lambda: any(re.search(r"resum", e.get("message", ""), re.I) for e in events(second, a)), 30,
             "job %s to resume after the restart" % a)
    time.sleep(0.5)
    alive = [p for p in orphans if p in processes_under(str(data_dir))]
    trainers = processes_under(str(data_dir), keep=(second.proc.pid,))
    assert not alive, "the job process %s of the killed server still runs next to the resumed attempt %s" % (
        alive, trainers)
    assert len(trainers) <= 1, "more than one process works on the data dir: %s" % trainers
    assert wait_job(second, a, timeout=120)["status"] == "succeeded"


def test_sigterm_restart(tmp_path, servers):
    data_dir = tmp_path / "data"
    first = Server(data_dir, tmp_path, name="before-term")
    servers.append(first)
    first.start()
    a = start_long_job(first)
    first.proc.terminate()
    rc = first.proc.wait(timeout=20)
    assert rc == 0, "onnxtune serve exited %d on SIGTERM" % rc
    left = processes_under(str(data_dir))
    assert not left, "job processes still running after the server stopped: %s" % left
    second = Server(data_dir, tmp_path, name="after-term")
    servers.append(second)
    second.start()
    job = wait_job(second, a, timeout=120)
    assert job["status"] == "succeeded", job
    levels = {e.get("level") for e in events(second, a)}
    assert levels <= {"info", "warn", "error"}, "event levels %s (OpenAI's are info, warn, error)" % levels
