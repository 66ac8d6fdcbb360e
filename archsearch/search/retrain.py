"""Fairness after the search: the top-k architectures, the best of each family and the verdict's pair are trained
again with more seeds.

Each (trial, seed) run is a trial of a second Optuna study, `NAME.seeds`, in the same storage: enqueued once, claimed
by whichever worker (on any host) moves it from WAITING to RUNNING first, so runs are shared out without duplicates
and a resumed study keeps every finished run; a run whose host is lost stops beating (an RDB storage's heartbeat) and
is failed and queued again by the next run's recovery. The search's own run counts as the first seed."""
from __future__ import annotations

import statistics
from dataclasses import replace

import optuna
from optuna.trial import FixedTrial, TrialState

from .families import Quality, family, verdict_cost, verdict_pair
from .objective import Objective, TrialFailed, result_quality, worker_id
from .recovery import INTERRUPTED, counted, heartbeat
from .space import retrain_settings


SEEDS = ".seeds"  # the re-training study's name: the search's name and this


def seeds_study_name(name: str) -> str:
    return name + SEEDS


def selected(study, top_k: int) -> list:
    """The top-k complete trials by the first objective, the best of each family, and the verdict's pair (the best
    PAM-containing architecture by quality and the best PAM-free one at equal or lower cost), each once."""
    done = [t for t in counted(study.trials) if t.state == TrialState.COMPLETE and t.values]
    done.sort(key=lambda t: t.values[0])
    chosen = done[:top_k]
    for fam in sorted({family(t.user_attrs.get("mixers", [])) for t in done}):
        chosen.append(next(t for t in done if family(t.user_attrs.get("mixers", [])) == fam))
    q = Quality(study)
    chosen += [t for t in verdict_pair([t for t in done if q.key in t.user_attrs], q, verdict_cost(study)) if t]
    return list({t.number: t for t in chosen}.values())


def keep_weights(study, out, top_k: int = 3) -> None:
    """Delete saved weights of trials that are neither in the top k, nor the best of a family, nor in the verdict."""
    from .objective import weights_path

    keep = {t.number for t in selected(study, top_k)}
    folder = weights_path(out, 0).parent
    for path in folder.glob("trial_*.pt") if folder.is_dir() else ():
        if int(path.stem.split("_")[1]) not in keep:
            path.unlink(missing_ok=True)


def jobs(study, space) -> list[tuple[int, int]]:
    top_k, seeds = retrain_settings(space)
    base = space.search.seed
    return [(t.number, base + i) for t in selected(study, top_k) for i in range(1, seeds)]


def enqueue(seeds_study, wanted: list[tuple[int, int]]) -> int:
    """Enqueue the runs not already done, waiting or running."""
    have = {(t.user_attrs.get("source"), t.user_attrs.get("seed")) for t in seeds_study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)}
    new = [j for j in wanted if j not in have]
    for source, seed in new:
        seeds_study.enqueue_trial({"source": source, "seed": seed}, user_attrs={"source": source, "seed": seed})
    return len(new)


def run_jobs(seeds_study, study, storage, objective: Objective, echo=print) -> int:
    """Claim and run waiting runs until none is left; returns how many this process ran."""
    ran = 0
    while True:
        waiting = seeds_study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting:
            return ran
        job = waiting[0]
        # the atomic claim Optuna itself uses to hand an enqueued trial to one worker
        if not storage.set_trial_state_values(job._trial_id, TrialState.RUNNING):
            continue
        ran += 1
        with heartbeat(storage, job._trial_id):  # lets another host retry the run if this one is lost
            _run_one(job, seeds_study, study, storage, objective, echo)


def _run_one(job, seeds_study, study, storage, objective: Objective, echo) -> None:
    source, seed = job.user_attrs["source"], job.user_attrs["seed"]
    put = lambda k, v: storage.set_trial_user_attr(job._trial_id, k, v)  # noqa: E731
    put("worker", worker_id())
    src = study.trials[source]
    spec, _ = objective.spec_of(FixedTrial(src.params, source), label=f"trial{source}-seed{seed}")
    spec = replace(spec, train=replace(spec.train, seed=seed, lr=src.user_attrs.get("lr", spec.train.lr)))
    ir, _ = objective.costs(spec)
    try:
        result, _ = objective.fit(spec, ir, label=f"trial {source} seed {seed}")
    except TrialFailed as e:
        put("failed_reason", e.reason)
        seeds_study.tell(job.number, state=TrialState.FAIL)
        echo(f"retrain trial {source} seed {seed}: failed: {e.reason}")
        return
    except KeyboardInterrupt:
        put("failed_reason", INTERRUPTED)
        seeds_study.tell(job.number, state=TrialState.FAIL)
        raise
    for k, v in result.items():
        put(k, v)
    name = objective.space.search.quality
    seeds_study.tell(job.number, result_quality(result, name))
    echo(f"retrain trial {source} seed {seed}: {name} {result[f'val_{name}']:.4g}")


def seed_stats(study, seeds_study, metric: str = "val_ppl") -> dict[int, dict]:
    """{trial number: {mean, std, n, values}} of `metric` over the search run and its re-training runs."""
    runs: dict[int, dict[int, float]] = {}
    for t in study.trials:
        if t.state == TrialState.COMPLETE and metric in t.user_attrs:
            runs.setdefault(t.number, {})[t.user_attrs.get("seed", 0)] = t.user_attrs[metric]
    if seeds_study is not None:
        for j in seeds_study.trials:
            src = j.user_attrs.get("source")
            if j.state == TrialState.COMPLETE and metric in j.user_attrs and src in runs:
                runs[src].setdefault(j.user_attrs["seed"], j.user_attrs[metric])
    out = {}
    for n, by_seed in runs.items():
        vals = [by_seed[s] for s in sorted(by_seed)]
        if len(vals) > 1:
            out[n] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals), "n": len(vals), "values": vals}
    return out


def load_seeds(storage, name: str):
    try:
        return optuna.load_study(study_name=seeds_study_name(name), storage=storage)
    except KeyError:
        return None
