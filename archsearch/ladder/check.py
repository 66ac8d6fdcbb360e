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


def recorded_metric(t) -> tuple[str, str]:
    """(split, key) of the number a run is known by: validation for a grid run, test for a seed run."""
    return ("validation", "val_ppl") if t.user_attrs.get("phase") == "grid" else ("test", "test_ppl")


def check_saved(study, out: Path) -> dict:
    """{job: {"metric", "recorded", "again"}} for every run whose weights are in `out`, merged into the stored
    check."""
    done = dict(study.user_attrs.get(CHECK) or {})
    evaluate = WeightsFileEvaluator()
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        job, weights, spec_file = t.user_attrs.get("job"), t.user_attrs.get("weights"), t.user_attrs.get("spec_file")
        if job in done or not weights or not (out / weights).is_file() or not (out / (spec_file or "")).is_file():
            continue
        split, key = recorded_metric(t)
        metrics = evaluate(load_spec(out / spec_file), out / weights, (split,))
        done[job] = {"metric": key, "recorded": t.user_attrs[key], "again": metrics[key]}
    if done != (study.user_attrs.get(CHECK) or {}):
        study.set_user_attr(CHECK, done)
    return done


def lines(study, check: dict) -> list[str]:
    n = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    out = ["", "## Checked from the saved weights", ""]
    if not check:
        return out + ["No saved weights were found next to this study, and it records no earlier check: its numbers "
                      "have not been re-evaluated."]
    worst = max(abs(v["again"] - v["recorded"]) / max(abs(v["recorded"]), 1e-30) for v in check.values())
    bad = [k for k, v in check.items() if abs(v["again"] - v["recorded"]) > REL_TOL * abs(v["recorded"])]
    out.append(f"{len(check)} of {n} finished runs were evaluated again from their saved weights in a freshly built "
               f"model; largest relative difference from the recorded number {worst:.2g} (tolerance {REL_TOL:g}).")
    if bad:
        out += ["", f"**{len(bad)} numbers do not match their weights; do not use them:** " + ", ".join(
            f"{k} recorded {check[k]['recorded']:.6g}, again {check[k]['again']:.6g}" for k in bad) + "."]
    return out
