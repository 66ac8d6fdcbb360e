"""The ladder report's check that its numbers are its weights': each finished run's saved weights, loaded into a
freshly built model of the run's spec file, are evaluated again and compared with the recorded number. The outcome
is kept in the study (user attribute `saved_check`), so a report written where the weights are not still states it."""
from __future__ import annotations

from pathlib import Path

from optuna.trial import TrialState

from ..saved import WeightsFileEvaluator
from ..search.run_folder import SAVED_CHECK as CHECK
from ..search.verify import REL_TOL
from ..spec import load_spec
from .trials import job_trials, repeated_jobs


def recorded_metric(t) -> tuple[str, str]:
    """(split, key) of the number a run is known by: validation for a grid run, test for a seed run."""
    return ("validation", "val_ppl") if t.user_attrs.get("phase") == "grid" else ("test", "test_ppl")


def _current(entry: dict, t) -> bool:
    """Whether a stored check is of trial t as it is now (an entry from before checks named their trial counts when
    it checked the number t records)."""
    return entry.get("trial", t.number) == t.number and entry["recorded"] == t.user_attrs.get(entry["metric"])


def check_saved(study, out: Path) -> dict:
    """{job: {"metric", "trial", "recorded", "again"}} for every run whose weights are in `out`, merged into the
    stored check: the trial the run is known by (trials.py), checked again when that trial or its number changed."""
    done = dict(study.user_attrs.get(CHECK) or {})
    evaluate = WeightsFileEvaluator()
    for job, t in job_trials(study.get_trials(deepcopy=False)).items():
        if t.state != TrialState.COMPLETE or (job in done and _current(done[job], t)):
            continue
        weights, spec_file = t.user_attrs.get("weights"), t.user_attrs.get("spec_file")
        if not weights or not (out / weights).is_file() or not (out / (spec_file or "")).is_file():
            continue
        split, key = recorded_metric(t)
        metrics = evaluate(load_spec(out / spec_file), out / weights, (split,))
        done[job] = {"metric": key, "trial": t.number, "recorded": t.user_attrs[key], "again": metrics[key]}
    if done != (study.user_attrs.get(CHECK) or {}):
        study.set_user_attr(CHECK, done)
    return done


def lines(study, check: dict) -> list[str]:
    runs = {job: t for job, t in job_trials(study.get_trials(deepcopy=False)).items()
            if t.state == TrialState.COMPLETE}
    valid = {job: check[job] for job, t in runs.items() if job in check and _current(check[job], t)}
    out = ["", "## Checked from the saved weights", ""]
    if not valid:
        return out + ["No saved weights were found next to this study, and it records no check of its current runs: "
                      "their numbers have not been re-evaluated."] + _repeats(study)
    worst = max(abs(v["again"] - v["recorded"]) / max(abs(v["recorded"]), 1e-30) for v in valid.values())
    bad = [k for k, v in valid.items() if abs(v["again"] - v["recorded"]) > REL_TOL * abs(v["recorded"])]
    out.append(f"{len(valid)} of {len(runs)} finished runs were evaluated again from their saved weights in a freshly "
               f"built model; largest relative difference from the recorded number {worst:.2g} (tolerance "
               f"{REL_TOL:g}). The evaluation is the runs' own (same code, device and precision): this shows that each "
               "number is its saved weights', not that the evaluation is right.")
    if bad:
        out += ["", f"**{len(bad)} numbers do not match their weights; do not use them:** " + ", ".join(
            f"{k} recorded {valid[k]['recorded']:.6g}, again {valid[k]['again']:.6g}" for k in bad) + "."]
    return out + _repeats(study)


def _repeats(study) -> list[str]:
    again = repeated_jobs(study.get_trials(deepcopy=False))
    if not again:
        return []
    return ["", "Runs trained more than once (each is known by its last finished trial and that trial's own weights; "
            "the others are left out): " + ", ".join(f"{job} ({n}×)" for job, n in sorted(again.items())) + "."]
