"""The study: Optuna storage (SQLite in the output folder by default, any Optuna URL), samplers and pruners as
objects, baselines enqueued first, resume by re-running, a progress line and a summary of how trials ended."""
from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from .. import registry, tasks
from ..errors import Loc, SpecError
from ..progress import fmt_duration
from ..spec import parse
from .objective import Objective
from .space import first_choice, load_space, template_for

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
HEARTBEAT_S = int(os.environ.get("ARCHSEARCH_HEARTBEAT_S", "30"))  # a killed worker's trial is failed after 3 beats


def make_sampler(name: str, seed: int):
    """TPE is multivariate with constant liar by default in Optuna 5 and handles several objectives."""
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: str, multi: bool, steps: int):
    """`steps`: optimiser steps of one trial; no trial is pruned in its first third (early losses mislead)."""
    if multi or name == "none":  # Optuna does not prune multi-objective studies
        return optuna.pruners.NopPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, steps // 3), max_resource=steps)
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=steps // 3)


def make_storage(url: str | None, out: Path):
    if url is None:
        url = f"sqlite:///{out / 'study.db'}"
    if url.startswith(("sqlite", "postgresql", "mysql")):
        # heartbeats let a later run mark a trial whose process was killed as FAIL and retry it once
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=3 * HEARTBEAT_S,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        return JournalStorage(JournalFileBackend(url[len("journal:"):]))
    raise SpecError(Loc("--storage"), f"'{url}': expected sqlite:///FILE, postgresql://…, mysql://… or journal:FILE")


def baseline_params(template: dict, family: str) -> dict:
    """Fixed parameters that make every per-layer or shared mixer choice `family` (other parameters are sampled)."""
    params = {}
    stack = template.get("stack") or {}
    depth = stack.get("depth")
    max_depth = depth if isinstance(depth, int) else max(next(iter(depth.values())))
    for i, sub in enumerate(stack.get("sublayers") or []):
        block = sub.get("block") if isinstance(sub, dict) else None
        if isinstance(block, dict) and "per_layer" in block and family in block["per_layer"]:
            params.update({f"stack.sublayers[{i}].block[{j}]": family for j in range(max_depth)})
        elif isinstance(block, dict) and "choice" in block and family in block["choice"]:
            params[f"stack.sublayers[{i}].block"] = family
    return params


def family(mixers: list[str]) -> str:
    kinds = sorted(set(mixers))
    return kinds[0] if len(kinds) == 1 else "hybrid"


def run_search(space_path: str, *, out: Path | None = None, storage: str | None = None, trials: int | None = None,
               profile: str | None = None, device: str | None = None, echo=print) -> optuna.Study:
    space = load_space(space_path)
    s = space.search
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress line below says what happened
    import torch

    chosen = profile or ("gpu" if torch.cuda.is_available() else "cpu")
    if chosen not in space.profiles:
        raise SpecError(Loc(space.file, 0, "search.profiles"), f"no '{chosen}' profile in this space")
    if profile is None:
        echo(f"{'GPU' if chosen == 'gpu' else 'no GPU'}: using the {chosen} profile of {space.file}")
    prof = space.profiles[chosen]
    n_trials = trials or prof.trials
    out = out or Path("runs") / s.name
    out.mkdir(parents=True, exist_ok=True)
    multi = s.objective == "pareto"
    directions = ["minimize"] * (1 + len(s.pareto_costs or ["latency_train_ms"])) if multi else ["minimize"]
    study = optuna.create_study(study_name=s.name, storage=make_storage(storage, out), load_if_exists=True,
                                directions=directions, sampler=make_sampler(s.sampler, s.seed),
                                pruner=make_pruner(s.pruner, multi, max(1, prof.tokens // prof.batch_tokens)))
    template = template_for(space, prof)
    template_spec = parse(first_choice(template))  # enough to read the task section
    task = tasks.make(template_spec.task)
    if not study.trials:
        for fam in (s.baselines or []):
            registry.get(fam, Loc(space.file, 0, "search.baselines"))
            study.enqueue_trial(baseline_params(template, fam), user_attrs={"baseline": fam}, skip_if_exists=True)
    done = [t for t in study.trials if t.state in FINISHED]
    remaining = max(0, n_trials - len(done))
    if done:
        echo(f"resuming study '{s.name}': {len(done)} finished trial(s) kept, {remaining} to go")
    objective = Objective(space, task, prof, out, device=device)
    start, finished = time.perf_counter(), [0]

    def progress(study, trial):
        finished[0] += 1
        elapsed = time.perf_counter() - start
        eta = elapsed / finished[0] * (remaining - finished[0])
        best = _best_text(study, multi)
        what = trial.user_attrs.get("pruned_reason") or trial.user_attrs.get("failed_reason") or \
            (f"{trial.values}" if multi else f"{trial.value:.4f}" if trial.value is not None else "")
        echo(f"trial {trial.number} ({len(done) + finished[0]}/{n_trials}) {trial.state.name.lower()}: {what} | "
             f"best {best} | elapsed {fmt_duration(elapsed)}, ETA {fmt_duration(eta)}")

    try:
        study.optimize(objective, n_trials=remaining, timeout=prof.timeout_minutes * 60 if prof.timeout_minutes else None,
                       callbacks=[progress], catch=())
    except KeyboardInterrupt:
        print("interrupted: the running trial is marked failed; re-run the same command to resume", file=sys.stderr)
    echo(summary(study))
    from .report import write_report
    echo(f"report: {write_report(study, out)}")
    return study


def _best_text(study, multi: bool) -> str:
    try:
        if multi:
            return f"{len(study.best_trials)} on the Pareto front"
        return f"{study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        return "none yet"


def summary(study) -> str:
    counts = {st.name.lower(): sum(t.state == st for t in study.trials) for st in FINISHED}
    lines = [f"study '{study.study_name}': {len(study.trials)} trials — " +
             ", ".join(f"{n} {k}" for k, n in counts.items())]
    reasons = {}
    for t in study.trials:
        r = t.user_attrs.get("pruned_reason") or t.user_attrs.get("failed_reason")
        if r:
            key = r.split(":")[0] if "exceeds" not in r else r.split(" exceeds")[0] + " over its limit"
            reasons[key] = reasons.get(key, 0) + 1
    for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {n} × {r}")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if complete and len(study.directions) == 1:
        lines.append("best per family (objective, val ppl, params, train-step ms):")
        best = {}
        for t in complete:
            fam = family(t.user_attrs.get("mixers", []))
            if fam not in best or t.value < best[fam].value:
                best[fam] = t
        for fam, t in sorted(best.items(), key=lambda kv: kv[1].value):
            ppl = t.user_attrs.get("val_ppl", float("nan"))
            lines.append(f"  {fam:18s} trial {t.number:3d}  {t.value:.4f}  ppl {ppl:.2f}  "
                         f"params {t.user_attrs.get('params', 0):,}  {t.user_attrs.get('latency_train_ms', 0):.1f} ms")
    return "\n".join(lines)
