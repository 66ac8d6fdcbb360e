"""Trials that never finished: interrupted ones (Ctrl-C) and ones whose worker died (kill -9, a lost host) are
marked failed and re-enqueued with the same parameters, so a resumed study repeats no finished trial and loses none.

A dead worker is recognised on this host by its pid (every trial records `host:pid`), and across hosts by Optuna's
heartbeats on an RDB storage (sqlite, PostgreSQL, MySQL): Optuna beats for the trials it runs itself, `heartbeat`
for the re-training runs this package claims from the queue."""
from __future__ import annotations

import os
import socket
import threading
from contextlib import contextmanager

import optuna
from optuna.trial import TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
MAX_RETRIES = 1  # a trial that kills its worker twice is left failed instead of taking the study down in a loop
INTERRUPTED = "interrupted"
# what makes a trial the same run again: a baseline's role, a re-training run's source and seed, a ladder run's job
RETRY_KEEPS = ("baseline", "source", "seed", "job", "family", "rung", "lr", "phase")


def retry(study, trial) -> None:
    """Enqueue a fresh copy of `trial` (same parameters, same baseline role)."""
    keep = {k: v for k, v in trial.user_attrs.items() if k in RETRY_KEEPS}
    study.enqueue_trial(dict(trial.params) or dict(trial.system_attrs.get("fixed_params", {})),
                        user_attrs={**keep, "retry_of": trial.number,
                                    "retries": trial.user_attrs.get("retries", 0) + 1})


def retry_stale(study, trial) -> bool:
    """Optuna's heartbeat callback (and ours for dead local workers): `trial` has just been failed because its worker
    stopped; it is retried unless it already was. Returns whether it was."""
    if trial.user_attrs.get("retries", 0) < MAX_RETRIES:
        retry(study, trial)
        return True
    return False


def superseded(trials) -> set[int]:
    """Numbers of trials that a later trial retries."""
    return {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}


def counted(trials) -> list:
    """Trials that count towards the study's total: finished, and not retried by another trial."""
    gone = superseded(trials)
    return [t for t in trials if t.state in FINISHED and t.number not in gone]


def _dead_here(worker: str | None) -> bool:
    if not worker or ":" not in worker:
        return False
    host, pid = worker.rsplit(":", 1)
    if host != socket.gethostname() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _heartbeat_interval(storage) -> float | None:
    return getattr(storage, "get_heartbeat_interval", lambda: None)()


@contextmanager
def heartbeat(storage, trial_id: int):
    """Record a trial's heartbeat every interval while the block runs, as Optuna does for the trials it runs itself,
    so that a later run on any host can fail and retry the trial if this host is lost. Nothing without heartbeats
    (in-memory and journal storages)."""
    interval = _heartbeat_interval(storage)
    if not interval:
        yield
        return
    storage.record_heartbeat(trial_id)
    stop = threading.Event()

    def beat():
        while not stop.wait(interval):
            storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def recover(study, storage) -> int:
    """Fail the trials of dead workers (on this host by pid, on any host by a stale heartbeat), and re-enqueue those
    and the interrupted ones once. Returns how many trials were re-enqueued."""
    n = 0
    if _heartbeat_interval(storage):
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        optuna.storages.fail_stale_trials(study)  # its callback, retry_stale, re-enqueues
        n = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) - waiting
    trials = study.get_trials(deepcopy=False)
    gone = superseded(trials)
    for t in trials:
        if t.state == TrialState.RUNNING and _dead_here(t.user_attrs.get("worker")):
            # the trial id is Optuna's own handle for a trial in its storage
            storage.set_trial_user_attr(t._trial_id, "failed_reason", f"worker {t.user_attrs['worker']} died")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            n += retry_stale(study, t)
        elif t.state == TrialState.FAIL and t.user_attrs.get("failed_reason") == INTERRUPTED and t.number not in gone:
            retry(study, t)
            n += 1
    return n
