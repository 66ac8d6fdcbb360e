"""A search stopped mid-trial both ways a run ends early, Ctrl-C (the run marks its trial failed and writes the
report) and kill -9 (nothing is cleaned up), then resumed by the same command: no finished trial lost or repeated, the
stopped trial run again once."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from archsearch.search.run_folder import trial_spec_path
from archsearch.search.study import run_search

ROOT = Path(__file__).resolve().parents[2]


def _load(out, name="smoke"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def _wait_for_trial(out, number, proc, timeout=240):
    """Return once trial `number` has started, that is once it has written its spec file (the run is one worker, so
    every earlier trial has ended). A file is polled, not the study: reading the database takes long enough on a
    2-core machine that a 2-second trial could start and end between two reads."""
    path = trial_spec_path(out, number)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before trial {number} started ({proc.returncode}): "
                        f"{proc.stderr.read()[-2000:]}")
        if path.is_file():
            return
        time.sleep(0.02)
    pytest.fail(f"trial {number} never started")


def _start(root, out, *extra, env=None):
    return subprocess.Popen([sys.executable, "-m", "archsearch", "run", str(root / "search_spaces/smoke.yaml"),
                             "--out", str(out), "--no-retrain", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture(scope="module")
def stopped_twice(tmp_path_factory, small_corpus):
    """One study stopped both ways, mid-trial each time: Ctrl-C, then (the same command resumed) kill -9, then resumed
    once more to the end. The two tests below each check one part (a study for each cost 10 s more: process starts,
    the reference, trials and reports twice)."""
    root, out = ROOT, tmp_path_factory.mktemp("stopped") / "s"
    args = ("--trials", "3", "--data", small_corpus)
    proc = _start(root, out, *args)
    _wait_for_trial(out, 1, proc)  # trial 0 (a baseline) finished, trial 1 running
    proc.send_signal(signal.SIGINT)
    _, ctrl_c_err = proc.communicate(timeout=60)
    ctrl_c = SimpleNamespace(code=proc.returncode, err=ctrl_c_err, trials=_load(out).trials,
                             report=(out / "report.md").is_file())
    # resumed: it repeats the interrupted trial, then is killed in the trial after it (unbuffered: what it printed
    # before the kill is read)
    proc = _start(root, out, *args, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    _wait_for_trial(out, 3, proc)  # trial 2 (the repeat of 1) finished, trial 3 running
    proc.kill()  # SIGKILL: no chance to clean up
    resumed_text, _ = proc.communicate()
    at_kill = _load(out).trials
    lines = []  # then to the end, in this process (`archsearch run` is run_search; both runs above were the command)
    run_search(str(root / "search_spaces/smoke.yaml"), out=out, trials=3, retrain_after=False, data=small_corpus,
               echo=lines.append)
    return SimpleNamespace(ctrl_c=ctrl_c, resumed_text=resumed_text, at_kill=at_kill,
                           text="\n".join(lines), after=_load(out).trials)


def test_ctrl_c_marks_the_running_trial_and_the_next_run_repeats_it(stopped_twice):
    ctrl_c = stopped_twice.ctrl_c
    assert ctrl_c.code == 130 and "interrupted: unfinished trials are marked failed" in ctrl_c.err
    assert "Traceback" not in ctrl_c.err, ctrl_c.err[-3000:]
    stopped = next(t for t in ctrl_c.trials if t.state == TrialState.FAIL)
    assert stopped.user_attrs["failed_reason"] == "interrupted" and ctrl_c.report
    assert "1 finished trial(s) kept, 1 unfinished re-queued, 2 to go" in stopped_twice.resumed_text
    retry = next(t for t in stopped_twice.after if t.user_attrs.get("retry_of") == stopped.number)
    assert retry.state == TrialState.COMPLETE and retry.params == stopped.params | retry.params


def test_kill_9_mid_trial_loses_no_finished_trial(stopped_twice):
    finished = {t.number: (t.params, t.value) for t in stopped_twice.at_kill if t.state == TrialState.COMPLETE}
    killed = next(t for t in stopped_twice.at_kill if t.state == TrialState.RUNNING)
    assert len(finished) == 2 and "1 unfinished re-queued" in stopped_twice.text
    after = stopped_twice.after
    for n, (params, value) in finished.items():
        assert (after[n].params, after[n].value) == (params, value)  # kept as they were, not re-run
    assert after[killed.number].state == TrialState.FAIL and "died" in after[killed.number].user_attrs["failed_reason"]
    retry = next(t for t in after if t.user_attrs.get("retry_of") == killed.number)
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params | retry.params
    assert retry.user_attrs.get("baseline") == killed.user_attrs.get("baseline")
    assert sum(t.state == TrialState.COMPLETE for t in after) == 3
