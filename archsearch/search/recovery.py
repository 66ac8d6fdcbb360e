"""Trials that never finished: interrupted ones (Ctrl-C) and ones whose worker died (kill -9, a lost host) are
marked failed and re-enqueued with the same parameters, so a resumed study repeats no finished trial and loses none.

A dead worker is recognised on this host by its pid (every trial records `host:pid`), and across hosts by Optuna's
heartbeats on an RDB storage (sqlite, PostgreSQL, MySQL): Optuna beats for the trials it runs itself, `heartbeat`
for the re-training runs this package claims from the queue. The retry itself (run_folder.retry_stale) is the
storage's heartbeat callback, so it lives with the storage."""
from __future__ import annotations

import os
import socket
import threading
from contextlib import contextmanager

import optuna
from optuna.trial import TrialState

from .run_folder import FAILED_REASON, RETRY_OF, WORKER, retry, retry_stale

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
INTERRUPTED = "interrupted"
SUPERSEDED = "no longer wanted"  # a queued re-training run whose trial the ranking no longer chooses


def superseded(trials) -> set[int]:
    """Numbers of trials that a later trial retries."""
    return {t.user_attrs[RETRY_OF] for t in trials if RETRY_OF in t.user_attrs}


def counted(trials) -> list:
    """Trials that count towards the study's total: finished, and not retried by another trial."""
    gone = superseded(trials)
    return [t for t in trials if t.state in FINISHED and t.number not in gone]


def _alive(pid: str) -> bool:
    """Whether process `pid` of this host runs (another user's counts as running)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass
    return True


def _dead_here(worker: str | None) -> bool:
    if not worker or ":" not in worker:
        return False
    host, pid = worker.rsplit(":", 1)
    return host == socket.gethostname() and int(pid) != os.getpid() and not _alive(pid)


def will_end(trial, storage) -> bool:
    """A RUNNING trial that will finish or be recovered: its worker is alive on this host, or it runs on another host
    and the storage's heartbeats will fail it if that host is lost (without heartbeats nothing here can tell)."""
    worker = trial.user_attrs.get(WORKER) or ""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return bool(_heartbeat_interval(storage))
    return _alive(pid)


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
        if t.state == TrialState.RUNNING and _dead_here(t.user_attrs.get(WORKER)):
            # the trial id is Optuna's own handle for a trial in its storage
            storage.set_trial_user_attr(t._trial_id, FAILED_REASON, f"worker {t.user_attrs[WORKER]} died")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            n += retry_stale(study, t)
        elif t.state == TrialState.FAIL and t.user_attrs.get(FAILED_REASON) == INTERRUPTED and t.number not in gone:
            retry(study, t)
            n += 1
    return n
