"""Fairness after the search: the top-k architectures and the best of each family are trained again with fresh seeds,
the verdict's pairs with more (`verdict_seeds`), and each run is scored from its saved weights on the validation and
the test split: the search selects on validation, the report states test-split numbers of runs that took no part in
the selection. Fidelity, when the budget asks for it: trials spread over the screen's ranking are trained again
`factor` times longer, and the report gives the rank correlation between the two budgets.

Each (trial, seed, scale) run is a trial of a second Optuna study, `NAME.seeds`, in the same storage: enqueued once, claimed
by whichever worker (on any host) moves it from WAITING to RUNNING first, so runs are shared out without duplicates
and a resumed study keeps every finished run; a run whose host is lost stops beating (an RDB storage's heartbeat) and
is failed and queued again by the next run's recovery."""
from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FixedTrial, TrialState

from ..errors import SpecError
from ..saved import PREFIX
from . import interrupts
from .families import Quality, family, verdict_pairs
from .objective import DIVERGED, Objective, TrialFailed, result_quality, worker_id
from .recovery import INTERRUPTED, SUPERSEDED, counted, heartbeat, superseded
from .run_folder import (FAILED_REASON, LR, MIXERS, SCALE, SEED, SOURCE, SPEC_FILE, TRAIN_TOKENS, WORKER,
                         run_weights_path, trial_spec)
from .space import retrain_settings
from .time_limit import pick


def _complete(study) -> list:
    done = [t for t in counted(study.trials) if t.state == TrialState.COMPLETE and t.values]
    return sorted(done, key=lambda t: t.values[0])


def verdict_trials(study) -> list:
    """The trials the verdicts compare, chosen on validation: the best PAM-containing architecture and the best PAM-free
    one at equal or lower cost, and (an iso-time study) the best of each at equal training time."""
    q = Quality(study)
    done = [t for t in _complete(study) if q.key in t.user_attrs]
    return list({t.number: t for _, pair in verdict_pairs(study, done, q) for t in pair if t}.values())


def selected(study, top_k: int) -> list:
    """The top-k complete trials by the first objective, each family's best by validation quality (the trial the
    report's family table shows), and the verdicts' trials, each once."""
    done = _complete(study)
    chosen = done[:top_k]
    q = Quality(study)
    rated = sorted((t for t in done if q.key in t.user_attrs), key=q.of)
    for fam in sorted({family(t.user_attrs.get(MIXERS, [])) for t in rated}):
        chosen.append(next(t for t in rated if family(t.user_attrs.get(MIXERS, [])) == fam))
    chosen += verdict_trials(study)
    return list({t.number: t for t in chosen}.values())


def spread(study, n: int) -> list:
    """n complete trials evenly spaced over the ranking by quality, the best and the worst included."""
    q = Quality(study)
    done = sorted((t for t in counted(study.trials) if t.state == TrialState.COMPLETE and q.key in t.user_attrs),
                  key=q.of)
    if len(done) <= n:
        return done
    return [done[round(i * (len(done) - 1) / (n - 1))] for i in range(n)]


FIDELITY_SEED = 100  # the longer-budget runs' seed, from the search's: neither its own (whose initialisation and
# data order the screen's run had: a shared seed's luck would agree with itself) nor a fresh 1x run's


def fidelity_set(study, n: int) -> list:
    """The trials trained again at the longer budget: n spread over the screen's ranking, and the verdicts' trials
    (near-ties, whose order the spread's wide range would not test)."""
    return list({t.number: t for t in spread(study, n) + verdict_trials(study)}.values())


def jobs(study, space, budget=None) -> list[tuple[int, int, float]]:
    """(source trial, seed, budget scale) of every run wanted: fresh seeds (never the search's own) at the search's
    budget, and the fidelity runs (a seed of their own, `factor` times the budget)."""
    top_k, seeds, verdict_seeds = retrain_settings(space, budget)
    base = space.search.seed
    verdict = {t.number for t in verdict_trials(study)}
    wanted = [(t.number, base + i, 1.0) for t in selected(study, top_k)
              for i in range(1, 1 + (verdict_seeds if t.number in verdict else seeds))]
    fidelity = getattr(budget, "fidelity", None)
    if fidelity:
        wanted += [(t.number, base + FIDELITY_SEED, float(fidelity["factor"]))
                   for t in fidelity_set(study, fidelity["trials"])]
    return wanted


def job_key(t) -> tuple:
    return t.user_attrs.get(SOURCE), t.user_attrs.get(SEED), t.user_attrs.get(SCALE, 1.0)


def failures(seeds_study) -> dict[tuple, str]:
    """{(source, seed, scale): why} of the runs that diverged and never finished since: a property of the
    architecture at that seed, so the run is not tried again (a mean over the seeds that converged on a retry would
    favour the unstable side). Other failures (out of memory beside another worker, an error, a lost host) are the
    machine's: the next call runs them again."""
    trials = seeds_study.get_trials(deepcopy=False) if seeds_study is not None else []
    gone = superseded(trials)
    finished = {job_key(t) for t in trials if t.state == TrialState.COMPLETE}
    return {job_key(t): t.user_attrs[FAILED_REASON] for t in trials
            if t.state == TrialState.FAIL and t.number not in gone and job_key(t) not in finished
            and str(t.user_attrs.get(FAILED_REASON, "")).startswith(DIVERGED)}


def enqueue(seeds_study, wanted: list[tuple[int, int, float]]) -> int:
    """Enqueue the runs not already done, waiting, running or diverged (`failures`), and drop the waiting runs no
    longer wanted (the ranking they were chosen from has changed since). Returns how many runs were enqueued."""
    keys = set(wanted)
    storage = seeds_study._storage  # Optuna's tell() takes only running trials; a waiting one is set directly
    for t in seeds_study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        # read again just before: a worker on another host may have claimed it since (a claimed run is left alone)
        if job_key(t) not in keys and storage.get_trial(t._trial_id).state == TrialState.WAITING:
            storage.set_trial_user_attr(t._trial_id, FAILED_REASON, SUPERSEDED)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    have = {job_key(t) for t in seeds_study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)} | set(failures(seeds_study))
    new = [j for j in wanted if j not in have]
    for source, seed, scale in new:
        attrs = {SOURCE: source, SEED: seed, **({SCALE: scale} if scale != 1.0 else {})}
        seeds_study.enqueue_trial(attrs, user_attrs=attrs)
    return len(new)


def _seconds(t) -> float | None:
    return (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_start and t.datetime_complete \
        else None


def estimator(study, seeds_study):
    """How long a re-training run should take: the longest finished re-training run of its scale; else the least of
    its source trial's wall time and the longest finished run of a smaller scale, each stretched to its scale. Both
    over-estimate, since a run's compiling and evaluations do not scale; the least is the closest."""
    longest: dict[float, float] = {}
    for t in seeds_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if (s := _seconds(t)) is not None:
            scale = t.user_attrs.get(SCALE, 1.0)
            longest[scale] = max(longest.get(scale, 0.0), s)
    sources = study.get_trials(deepcopy=False)

    def expected(job) -> float | None:
        source, _, scale = job_key(job)
        if scale in longest:
            return longest[scale]
        stretched = [s * scale / sc for sc, s in longest.items() if sc < scale]
        if (s := _seconds(sources[source])) is not None:
            stretched.append(s * scale)
        return min(stretched, default=None)
    return expected


def run_jobs(seeds_study, study, storage, objective: Objective, echo=print, deadline: float | None = None) -> int:
    """Claim and run waiting runs until none is left, or (at `deadline`, a time.monotonic()) none that is expected to
    finish in time; returns how many this process ran."""
    ran = 0
    while True:
        # the search's budget first: the verdicts' seeds before the longer fidelity runs, should the time run out
        waiting = sorted(seeds_study.get_trials(deepcopy=False, states=(TrialState.WAITING,)),
                         key=lambda t: (job_key(t)[2] != 1.0, t.number))
        if not waiting:
            return ran
        job = waiting[0]
        if deadline is not None:
            left, expected = deadline - time.monotonic(), estimator(study, seeds_study)
            job = pick(waiting, expected, left)
            if job is None:
                need = expected(waiting[0])
                why = (f"the next re-training run would need about {need:.0f} s, {max(left, 0):.0f} s left"
                       if need is not None else "the limit has passed")
                echo(f"time limit: {why}; stopping here ({len(waiting)} to go; the same command resumes)")
                return ran
        with interrupts.held():  # claimed and named together: a claim without its worker would never be freed
            # the atomic claim Optuna itself uses to hand an enqueued trial to one worker
            try:
                if not storage.set_trial_state_values(job._trial_id, TrialState.RUNNING):
                    continue
            except UpdateFinishedTrialError:  # dropped as no longer wanted by another host's enqueue meanwhile
                continue
            storage.set_trial_user_attr(job._trial_id, WORKER, worker_id())
        ran += 1
        with heartbeat(storage, job._trial_id):  # lets another host retry the run if this one is lost
            _run_one(job, seeds_study, study, storage, objective, echo)


def _run_one(job, seeds_study, study, storage, objective: Objective, echo) -> None:
    source, seed, scale = job_key(job)
    what = f"trial {source} seed {seed}" + (f" at {scale:g}× the budget" if scale != 1.0 else "")
    put = lambda k, v: storage.set_trial_user_attr(job._trial_id, k, v)  # noqa: E731
    src = study.trials[source]
    try:
        if SPEC_FILE in src.user_attrs:  # what the trial trained, not the space's file as it reads now (may be edited)
            spec = trial_spec(objective.out, src)
        else:  # a study from before trials kept their spec files
            spec, _ = objective.spec_of(FixedTrial(src.params, source), label=f"trial{source}-seed{seed}")
    except SpecError as e:  # the run is claimed: it fails (the next call tries it again), the others go on
        with interrupts.held():
            put(FAILED_REASON, f"spec: {e}")
            seeds_study.tell(job.number, state=TrialState.FAIL)
        echo(f"retrain {what}: failed: {e}")
        return
    tokens = round(src.user_attrs.get(TRAIN_TOKENS, spec.train.tokens) * scale)  # iso-time: the source's budget
    spec = replace(spec, train=replace(spec.train, seed=seed, lr=src.user_attrs.get(LR, spec.train.lr),
                                       tokens=tokens, device=objective.device or spec.train.device))
    put(TRAIN_TOKENS, tokens)
    put(LR, spec.train.lr)
    ir, _ = objective.costs(spec)
    ctx = objective.context(spec, ir)
    try:  # fidelity runs are compared with the screen's validation numbers; the others are reported on test
        result, state = objective.fit(spec, ir, ctx, label=what,
                                      splits=("validation",) if scale != 1.0 else ("test",))
    except TrialFailed as e:
        put(FAILED_REASON, e.reason)
        seeds_study.tell(job.number, state=TrialState.FAIL)
        echo(f"retrain {what}: failed: {e.reason}")
        return
    except KeyboardInterrupt:
        with interrupts.held():
            put(FAILED_REASON, INTERRUPTED)
            seeds_study.tell(job.number, state=TrialState.FAIL)
        raise
    name = objective.space.search.quality
    split = "validation" if scale != 1.0 else "test"
    with interrupts.held():  # a trained run is recorded whole: a signal here waits for the tell
        path = run_weights_path(objective.out, source, seed, scale)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        for k, v in result.items():
            put(k, v)
        seeds_study.tell(job.number, result_quality(result, name, PREFIX[split]))
    echo(f"retrain {what}: {split} {name} {result[PREFIX[split] + name]:.4g}")


def failed_seeds(study, seeds_study) -> dict[int, list[tuple[int, str]]]:
    """{trial number: [(seed, why)]} of its fresh-seed runs at the search's budget that diverged (`failures`): left
    out of its mean, and said so wherever the mean is shown."""
    own = {t.number: t.user_attrs.get(SEED) for t in study.trials}
    out: dict[int, list[tuple[int, str]]] = {}
    for (source, seed, scale), why in sorted(failures(seeds_study).items()):
        if scale == 1.0 and seed != own.get(source):
            out.setdefault(source, []).append((seed, why))
    return out


def seed_stats(study, seeds_study, metric: str = "test_ppl") -> dict[int, dict]:
    """{trial number: {mean, std, n, values}} of `metric` over the trial's re-training runs at the search's budget
    (fresh seeds: the search's own run, which selected the trial, is not among them); std is nan for one run. The runs
    that diverged, which the mean leaves out: failed_seeds."""
    runs: dict[int, dict[int, float]] = {}
    own = {t.number: t.user_attrs.get(SEED) for t in study.trials}  # a selecting run's seed never counts
    for j in seeds_study.trials if seeds_study is not None else ():
        source, seed, scale = job_key(j)
        if j.state == TrialState.COMPLETE and metric in j.user_attrs and scale == 1.0 and seed != own.get(source):
            runs.setdefault(source, {}).setdefault(seed, j.user_attrs[metric])
    out = {}
    for n, by_seed in runs.items():
        vals = [by_seed[s] for s in sorted(by_seed)]
        out[n] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else float("nan"),
                  "n": len(vals), "values": vals}
    return out


def at_seed(study, key: tuple, offset: int) -> bool:
    """Whether a run (job_key) trained at its source trial's seed plus `offset` (FIDELITY_SEED: a fidelity run)."""
    source, seed, _ = key
    return seed == study.trials[source].user_attrs.get(SEED, 0) + offset


def fidelity_pairs(study, seeds_study, metric: str = "val_ppl", only: float | None = None,
                   worst: float = float("inf"), seed: int | None = None) -> tuple[float, list[tuple[int, float, float]]]:
    """(budget factor, [(trial, screen metric, longer-budget metric)]) of the fidelity runs that finished (`only`:
    those at that factor; `seed`: those at the search's seed plus it); a run that failed for a reason of its own (it
    diverged) counts as `worst`, the worst result there is, not as unfinished."""
    pairs, factor = [], 0.0
    lost = failures(seeds_study)
    for j in seeds_study.trials if seeds_study is not None else ():
        key = job_key(j)
        source, run_seed, scale = key
        if scale == 1.0 or scale != (only or scale):
            continue
        if seed is not None and not at_seed(study, key, seed):
            continue
        diverged = key in lost and str(j.user_attrs.get(FAILED_REASON, "")).startswith(DIVERGED)
        value = j.user_attrs.get(metric) if j.state == TrialState.COMPLETE else worst if diverged else None
        src = study.trials[source]
        if value is not None and metric in src.user_attrs:
            pairs.append((source, src.user_attrs[metric], value))
            factor = scale
    return factor, sorted(pairs)


def spearman(xs, ys) -> float:
    """Spearman's rank correlation (ties get their mean rank)."""
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r
    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else float("nan")

