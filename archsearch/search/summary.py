"""What a person reads about a study: a trial's quality in its own terms, the progress line after each trial, and the
summary of how trials ended with each family's best (printed after a run and at the top of the report)."""
from __future__ import annotations

import re
import time

from optuna.trial import TrialState

from ..progress import fmt_duration
from .families import family
from .recovery import FINISHED, counted, superseded
from .run_folder import FAILED_REASON, MIXERS, PRUNED_REASON, QUALITY
from .space import pareto_costs


def quality_text(attrs: dict, quality: str = "ppl") -> str:
    """A trial's measured quality as a person reads it (the search's quality: perplexity, accuracy or loss; not the
    minimised term). A recall task records a perplexity too, so the search's own quality is asked for by name."""
    if quality == "ppl" and "val_ppl" in attrs:
        return f"ppl {attrs['val_ppl']:.2f}"
    if quality == "accuracy" and "val_accuracy" in attrs:
        return f"accuracy {attrs['val_accuracy']:.4f}"
    return f"loss {attrs.get('val_loss', float('nan')):.4f}"


def pareto_text(trial, search) -> str:
    """quality, then each Pareto cost by name (the values after the minimised quality term)."""
    costs = ", ".join(f"{name} {v:.4g}" for name, v in zip(pareto_costs(search), trial.values[1:]))
    return f"{quality_text(trial.user_attrs, search.quality)}, {costs}"


def best_text(study, multi: bool) -> str:
    try:
        if multi:
            return f"{len(study.best_trials)} on the Pareto front"
        return f"{study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        return "none yet"


def progress_line(study, search, multi: bool, n_trials: int, echo):
    """An Optuna callback for `study` that echoes a line per finished trial: how it ended, the best so far, the time
    elapsed and the ETA of the `n_trials` the run aims at."""
    start = time.perf_counter()
    first = len(counted(study.get_trials(deepcopy=False)))

    def callback(study, trial):
        n_done = len(counted(study.get_trials(deepcopy=False)))
        elapsed = time.perf_counter() - start
        eta = elapsed / max(1, n_done - first) * max(0, n_trials - n_done)
        what = trial.user_attrs.get(PRUNED_REASON) or trial.user_attrs.get(FAILED_REASON) or \
            (pareto_text(trial, search) if multi and trial.values else
             f"{trial.value:.4f}" if trial.value is not None else "")
        echo(f"trial {trial.number} ({n_done}/{n_trials}) {trial.state.name.lower()}: {what} | "
             f"best {best_text(study, multi)} | elapsed {fmt_duration(elapsed)}, ETA {fmt_duration(eta)}")
    return callback


def summary(study) -> str:
    trials = study.trials
    gone = superseded(trials)
    counts = {st.name.lower(): sum(t.state == st and t.number not in gone for t in trials) for st in FINISHED}
    retried = f", {len(gone)} retried" if gone else ""
    queued = sum(t.state == TrialState.WAITING for t in trials)
    queued = f", {queued} queued and not run" if queued else ""
    lines = [f"study '{study.study_name}': {len(trials)} trials — " +
             ", ".join(f"{n} {k}" for k, n in counts.items()) + retried + queued]
    reasons = {}
    for t in trials:
        r = t.user_attrs.get(PRUNED_REASON) or t.user_attrs.get(FAILED_REASON)
        if r and t.number not in gone:
            key = r.split(":")[0] if "exceeds" not in r else r.split(" exceeds")[0] + " over its limit"
            key = re.sub(r" at step \d+$", "", key)  # one line for every trial pruned on its curve
            reasons[key] = reasons.get(key, 0) + 1
    for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {n} × {r}")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete and len(study.directions) == 1:
        lines.append("best per family (objective, quality, params, train-step ms):")
        best = {}
        for t in complete:
            fam = family(t.user_attrs.get(MIXERS, []))
            if fam not in best or t.value < best[fam].value:
                best[fam] = t
        quality = study.user_attrs.get(QUALITY, "ppl")
        for fam, t in sorted(best.items(), key=lambda kv: kv[1].value):
            a = t.user_attrs
            lines.append(f"  {fam:18s} trial {t.number:3d}  {t.value:.4f}  {quality_text(a, quality)}  "
                         f"params {a.get('params', 0):,}  {a.get('latency_train_ms', 0):.1f} ms")
    return "\n".join(lines)
