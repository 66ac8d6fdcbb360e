"""`run LADDER --workers N`: several processes on one ladder study, each claiming the next run the plan wants; a
worker with nothing to claim waits while others run (their results unlock the next rung) and none enqueues a run
twice."""
import subprocess
import sys
import time
from collections import Counter

import optuna
from optuna.trial import TrialState

from archsearch.ladder.runner import LadderRun

SMOKE = "search_spaces/smoke_ladder.yaml"


def test_two_worker_processes_finish_the_smoke_ladder_each_run_once(root, tmp_path):
    out = tmp_path / "w"
    r = subprocess.run([sys.executable, "-m", "archsearch", "run", SMOKE, "--data", "tests/fixtures/wikitext",
                        "--out", str(out), "--workers", "2"], capture_output=True, text=True, cwd=root)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "ladder: starting 2 worker processes" in r.stdout
    assert "16 run(s) this time, 16 finished, 0 wanted still" in r.stdout
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name="smoke_ladder", storage=f"sqlite:///{out / 'ladder.db'}").trials
    assert len(trials) == 16 and all(t.state == TrialState.COMPLETE for t in trials)  # nothing enqueued twice
    assert len({t.user_attrs["job"] for t in trials}) == 16
    assert len(Counter(t.user_attrs["worker"] for t in trials)) == 2  # both processes trained runs
    assert "16 of 16 finished runs were evaluated again" in (out / "report.md").read_text()


def test_a_worker_with_nothing_to_claim_waits_while_others_run_and_one_alone_stops(root, tmp_path, monkeypatch):
    monkeypatch.chdir(root)
    run = LadderRun(SMOKE, tmp_path / "q", None, None, "tests/fixtures/wikitext", echo=lambda line: None)
    start = time.monotonic()
    claimed = []
    while (t := run._next(start, None, wait=False)) is not None:  # claim the small rung's grid (2 families x 2 rates), train none
        claimed.append(t.user_attrs["job"])
    assert len(claimed) == 4 and all("/small/" in j for j in claimed)
    # the rest waits on these runs: a worker waits for them, a process alone (or past its time limit) stops
    assert run._next(start, None, wait=True) == "wait"
    assert run._next(start, 60.0, wait=True) == "wait"
    assert run._next(start - 61.0, 60.0, wait=True) is None
    assert run._next(start, None, wait=False) is None
    # a run that nothing will end (its process gone, or on another host of a storage without heartbeats) is not
    # waited for
    for t in run.study.trials:
        run.storage.set_trial_user_attr(t._trial_id, "worker", "otherhost:1")
    assert run._next(start, None, wait=True) == "wait"  # sqlite has heartbeats: the other host's runs will end
    journal = LadderRun(SMOKE, tmp_path / "j", f"journal:{tmp_path / 'j.log'}", None, "tests/fixtures/wikitext",
                        echo=lambda line: None)
    while journal._next(start, None, wait=False) is not None:
        pass
    assert journal._next(start, None, wait=True) == "wait"  # this process's own runs
    for t in journal.study.trials:
        journal.storage.set_trial_user_attr(t._trial_id, "worker", "otherhost:1")
    assert journal._next(start, None, wait=True) is None
