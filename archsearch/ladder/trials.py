"""Which trial a ladder run is known by. A run (a job: family, rung, rate, seed) is normally one trial, but two
workers sharing a storage can both enqueue it, and then it trains twice. The trial that finished last speaks for the
run everywhere (the plan, the report's tables, the check against the saved weights, each trial having its own weights
file), and each other trial of the job is left out."""
from __future__ import annotations

from datetime import datetime

from optuna.trial import TrialState

from ..search.recovery import INTERRUPTED, counted


def _last_finished(t) -> tuple:
    return t.state == TrialState.COMPLETE, t.datetime_complete or datetime.min, t.number


def job_trials(trials) -> dict[str, object]:
    """{job: its trial} over the finished trials that count: the complete trial that finished last, else (every
    trial of the job failed for good) the last failed one. An interrupted run has no trial here (it is queued
    again)."""
    out = {}
    for t in counted(trials):
        job = t.user_attrs.get("job")
        if job is None or t.state == TrialState.PRUNED:
            continue
        if t.state == TrialState.FAIL and t.user_attrs.get("failed_reason") == INTERRUPTED:
            continue
        if job not in out or _last_finished(t) > _last_finished(out[job]):
            out[job] = t
    return out


def repeated_jobs(trials) -> dict[str, int]:
    """{job: how many complete trials it has} for the jobs that trained more than once."""
    n: dict[str, int] = {}
    for t in counted(trials):
        if t.state == TrialState.COMPLETE and "job" in t.user_attrs:
            n[t.user_attrs["job"]] = n.get(t.user_attrs["job"], 0) + 1
    return {job: k for job, k in n.items() if k > 1}
