"""The report's check that its numbers are its weights': every complete trial's and every re-training run's saved
weights are loaded into a freshly built model (of the trial's exact spec file) and evaluated again, and the result
is compared with the number the study recorded. The outcome is kept in the study (user attribute `saved_check`), so a
report written where the weights are not (a copy of the study) still states it."""
from __future__ import annotations

from optuna.trial import TrialState

from ..saved import PREFIX, WeightsFileEvaluator
from .families import Quality
from .retrain import job_key
from .run_folder import SAVED_CHECK, run_weights_path, trial_spec, weights_path

REL_TOL = 1e-4  # the same weights, data and kernels: differences beyond rounding mean a different model was scored


def _evaluator(out):
    evaluate = WeightsFileEvaluator()
    return lambda t, path, splits: evaluate(trial_spec(out, t), path, splits)


def check_saved(study, seeds, out, recheck: bool = False) -> dict:
    """{label: {"metric", "recorded", "again"}} for every trial and run whose weights are here, merged into (and
    stored as) the study's earlier check; `recheck`: every one whose weights are here is evaluated anew (in this
    process: a check made in a fresh process, not the training one), not only those not checked before."""
    q = Quality(study)
    done = dict(study.user_attrs.get(SAVED_CHECK) or {})
    evaluate = _evaluator(out)
    todo, trials = [], study.trials
    for t in trials:
        if t.state == TrialState.COMPLETE and q.key in t.user_attrs:
            todo.append((f"trial {t.number}", t, weights_path(out, t.number), "validation", t.user_attrs[q.key]))
    for j in seeds.trials if seeds is not None else ():
        source, seed, scale = job_key(j)
        split = "test" if scale == 1.0 else "validation"  # as retrain._run_one scores it
        key = PREFIX[split] + q.short
        if j.state == TrialState.COMPLETE and key in j.user_attrs:
            todo.append((f"run {j.number} (trial {source} seed {seed}" + (f" ×{scale:g}" if scale != 1.0 else "") + ")",
                         trials[source], run_weights_path(out, source, seed, scale), split, j.user_attrs[key]))
    labels = {label for label, *_ in todo}
    done = {k: v for k, v in done.items() if k in labels}  # no longer complete: not reported
    for label, t, path, split, recorded in todo:
        if label in done and done[label]["recorded"] != recorded:
            del done[label]  # the label holds another run's number now (a retried run): its check is not this one's
        if (label in done and not recheck) or not path.is_file():
            continue
        again = evaluate(t, path, (split,))[PREFIX[split] + q.short]
        done[label] = {"metric": PREFIX[split] + q.short, "recorded": recorded, "again": again}
    if done != (study.user_attrs.get(SAVED_CHECK) or {}):
        study.set_user_attr(SAVED_CHECK, done)
    return done


def mismatches(check: dict) -> list[str]:
    return [k for k, v in check.items() if abs(v["again"] - v["recorded"]) > REL_TOL * abs(v["recorded"])]


def section(study, seeds, check: dict) -> list[str]:
    """The report's lines on the check."""
    n_trials = sum(t.state == TrialState.COMPLETE for t in study.trials)
    n_runs = sum(j.state == TrialState.COMPLETE for j in (seeds.trials if seeds is not None else ()))
    lines = ["", "## Checked from the saved weights", ""]
    if not check:
        return lines + ["No saved weights were found next to this study, and it records no earlier check: its numbers "
                        "have not been re-evaluated."]
    worst = max(abs(v["again"] - v["recorded"]) / max(abs(v["recorded"]), 1e-30) for v in check.values())
    bad = mismatches(check)
    lines.append(f"{len(check)} number{'s' if len(check) != 1 else ''} ({sum(k.startswith('trial') for k in check)} "
                 f"of {n_trials} complete trials, "
                 f"{sum(k.startswith('run') for k in check)} of {n_runs} re-training runs) were evaluated again from "
                 f"their saved weights in a freshly built model; largest relative difference from the recorded "
                 f"number {worst:.2g} (tolerance {REL_TOL:g}).")
    if bad:
        lines += ["", f"**{len(bad)} numbers do not match their weights; do not use them:** " + ", ".join(
            f"{k} recorded {check[k]['recorded']:.6g}, again {check[k]['again']:.6g}" for k in bad) + "."]
    return lines
