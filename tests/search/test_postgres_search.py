"""The search across processes on a real PostgreSQL server (tests/pg_server.py), as the README runs it across hosts:
`run --workers 3 --storage postgresql://…`. One run of the command lives through the database going away for 3 s
while its workers train and then the kill -9 of a worker in the middle of a trial; the same command is run again.
The tests below each check one part of what happened (the scenario runs once: three worker processes start slowly
on two cores, so one scenario keeps the whole file near half a minute)."""
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from pg_server import PASSWORD, wait_until

ROOT = Path(__file__).resolve().parents[2]

N = 4  # trials: the two baselines and two sampled, one more than the workers so that one starts after another ends


def tiny_space(root, tmp):
    """The smoke space at a few seconds a trial, on a small text corpus (its validation split, scored whole by every
    trial and again by the report's check, is 2 KB), and without the weighted objective's reference run."""
    corpus = tmp / "text"
    corpus.mkdir()
    (corpus / "docs.txt").write_text((root / "README.md").read_text() + (root / "docs/search.md").read_text())
    text = (root / "search_spaces/smoke.yaml").read_text()
    for old, new in (("cpu: {trials: 4, tokens: 60000, batch_tokens: 2048, seq_len: 64}",
                      "cpu: {trials: 4, tokens: 49152, batch_tokens: 1024, seq_len: 32}"),
                     ("train: {evals: 2, eval_tokens: 8192}", "train: {evals: 1, eval_tokens: 1024}"),
                     ("  weights: {latency_train_ms: 0.1}\n", "  decode_context: 0\n"),
                     ("task: {data: embedded,", f"task: {{data: {corpus},")):
        assert old in text, old
        text = text.replace(old, new)
    space = tmp / "tiny.yaml"
    space.write_text(text)
    return space


class Reader:
    """The test's own view of the study, tolerant of the database being away."""

    def __init__(self, url):
        self.storage = optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg2://"),
                                                  engine_kwargs={"pool_pre_ping": True})

    def trials(self):
        try:
            return optuna.load_study(study_name="smoke", storage=self.storage).get_trials()
        except Exception:  # not created yet, or the database is away
            return None


def training(trials):
    return [t for t in trials or [] if t.state == TrialState.RUNNING and "card" in t.user_attrs]


def fresh(trials, seconds=1.0):
    """Trials training that started after another trial finished, less than `seconds` ago (the workers run on this
    host, on its clock)."""
    first = min((t.datetime_complete for t in trials or [] if t.state == TrialState.COMPLETE), default=None)
    return [t for t in training(trials) if first and t.datetime_start > first and
            (datetime.now() - t.datetime_start).total_seconds() < seconds]


@pytest.fixture(scope="module")
def scenario(pg, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pg-search")
    url = pg.fresh_db("workers")
    cmd = [sys.executable, "-m", "archsearch", "run", str(tiny_space(ROOT, tmp)), "--out", str(tmp / "out"),
           "--storage", url, "--workers", "3", "--trials", str(N), "--no-retrain"]
    # beats every 2 s, so the workers notice the 3 s outage; stale after 6 s, so the outage fails no live trial
    env = {**os.environ, "ARCHSEARCH_HEARTBEAT_S": "2"}
    read = Reader(url)
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        at_outage = wait_until(lambda: (lambda t: t if len(training(t)) >= 2 else None)(read.trials()), 90)
        assert at_outage, "two workers never trained at once"
        times = {"outage": time.time() - started}
        pg.stop()
        time.sleep(3)
        pg.start()
        # a trial that started training after another finished, killed in its first second of about two: it cannot
        # end (and its worker exit) between this read and the kill
        at_kill = wait_until(lambda: (lambda t: t if fresh(t) else None)(read.trials()), 90, poll=0.1)
        assert at_kill, "no trial started after one had finished"
        times["kill"] = time.time() - started
        victim = fresh(at_kill)[0]
        os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    times["first run"] = time.time() - started
    first = read.trials()
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    times["second run"] = time.time() - started
    assert second.returncode == 0, second.stderr[-2000:]
    final = read.trials()
    return SimpleNamespace(url=url, out=tmp / "out", at_outage=at_outage, at_kill=at_kill, victim=victim,
                           first=SimpleNamespace(code=proc.returncode, out=out, err=err, trials=first),
                           second=second, final=final, times=times)


def counted(trials):
    gone = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    return [t for t in trials if t.number not in gone]


def test_three_workers_finish_with_exactly_the_requested_trials_none_run_twice(scenario):
    assert "search: starting 3 worker processes on postgresql://archsearch:***@127.0.0.1:" in scenario.first.out
    done = counted(scenario.final)
    assert len(done) == N and all(t.state == TrialState.COMPLETE for t in done)  # exactly N, never N + 1
    assert len(scenario.final) == N + 1  # and the killed worker's trial, failed and retried
    # three processes share the work (the third may start too late on two cores to claim one of N trials)
    assert len({t.user_attrs["worker"] for t in scenario.first.trials}) >= 2
    assert sorted(t.user_attrs["baseline"] for t in done if "baseline" in t.user_attrs) == ["pam", "softmax_attention"]
    keys = [tuple(sorted(t.params.items())) for t in done]
    assert len(set(keys)) == N  # no trial ran twice: each queued baseline claimed once, each sample drawn once
    assert sorted(p.name for p in (scenario.out / "trials").glob("*.yaml")) == \
        [f"trial_{t.number:04d}.yaml" for t in scenario.final]


def test_kill_9_mid_trial_then_the_same_command_loses_and_repeats_nothing(scenario):
    victim, final = scenario.victim, {t.number: t for t in scenario.final}
    assert re.search(r"worker\(s\) \d \(exit -9\) stopped early", scenario.first.out), scenario.first.out + scenario.first.err
    for t in scenario.at_kill:  # every trial finished before the kill is kept as it was, not run again
        if t.state == TrialState.COMPLETE:
            assert (final[t.number].params, final[t.number].values) == (t.params, t.values)
    assert final[victim.number].state == TrialState.FAIL
    retries = [t for t in scenario.final if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE  # run again, once
    assert retries[0].params == victim.params | retries[0].params
    assert not [t for t in scenario.final if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # the orphan is failed either by a surviving worker (its heartbeats stopped) or by the next run (its pid is gone)
    again = scenario.second.stdout
    if "1 unfinished re-queued" in again:
        assert "search: starting 1 worker process on" in again  # one trial to go: no more workers than that
    else:
        assert f"{N} finished trial(s) kept, 0 to go" in again and "starting" not in again


def test_the_database_going_away_is_said_on_one_line_and_the_workers_carry_on(scenario):
    err = scenario.first.err
    lost = re.findall(r"^\[worker (\d)\] storage postgresql://archsearch:\*\*\*@127\.0\.0\.1:\d+/workers unreachable "
                      r"\((.+)\): retrying for up to 120 s$", err, re.M)
    back = re.findall(r"^\[worker (\d)\] storage postgresql://archsearch:\*\*\*@127\.0\.0\.1:\d+/workers back after "
                      r"([\d.]+) s: carrying on$", err, re.M)
    assert len(lost) >= 2 and sorted(r for r, _ in lost) == sorted(r for r, _ in back), err[-3000:]
    assert all(0 < float(s) < 20 for _, s in back), back  # a worker that noticed late saw less of the 3 s
    assert "Traceback" not in err and "Traceback" not in scenario.second.stderr
    final = {t.number: t for t in scenario.final}
    for t in training(scenario.at_outage):  # the trials that trained through the outage finished (or were killed)
        assert final[t.number].state == TrialState.COMPLETE or t.number == scenario.victim.number


def test_every_number_is_reproduced_from_its_saved_weights_and_no_password_is_printed(scenario):
    report = (scenario.out / "report.md").read_text()
    assert f"{N} numbers ({N} of {N} complete trials, 0 of 0 re-training runs) were evaluated again" in report
    for text in (scenario.first.out, scenario.first.err, scenario.second.stdout, scenario.second.stderr, report):
        assert PASSWORD not in text


def test_the_study_opens_in_optuna_dashboard(scenario, tmp_path):
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (pip install -e '.[dev]')")
    import json
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3: the dashboard is given the driver by name
    url = scenario.url.replace("postgresql://", "postgresql+psycopg2://")
    command = Path(sys.executable).parent / "optuna-dashboard"  # the command the README gives, of this Python
    proc = subprocess.Popen([str(command), url, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def get(path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return json.load(r)
        except OSError:
            return None

    try:
        studies = wait_until(lambda: get("/api/studies"), 30)
        assert studies, proc.stderr.read() if proc.poll() is not None else "the dashboard never answered"
        smoke = next(s for s in studies["study_summaries"] if s["study_name"] == "smoke")
        detail = get(f"/api/studies/{smoke['study_id']}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(detail["trials"]) == N + 1
    assert sum(t["state"] == "Complete" for t in detail["trials"]) == N
    names = {a["key"] for t in detail["trials"] for a in t["user_attrs"]}
    assert {"params", "latency_train_ms", "val_ppl", "worker"} <= names

