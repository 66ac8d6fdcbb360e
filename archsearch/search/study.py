"""The study: set up in its run folder (run_folder.py: storage, layout, attribute keys), samplers and pruners as
objects, baselines enqueued first at the space's size, the reference architecture measured before any trial, resume
by re-running, parallel workers, the fairness re-training, then the summary (summary.py) and the report."""
from __future__ import annotations

import math
import os
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

import optuna
import torch
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from .. import registry, tasks
from ..data import corpora
from ..compiler import compile_spec
from ..context import run_context
from ..errors import Loc, SpecError
from ..spec import parse
from . import interrupts, retrain
from .baselines import CentreTrial, baseline_entry, baseline_label, baseline_matched
from .objective import Objective, mixers as spec_mixers, worker_id
from .rdb import BudgetSpent, SearchRDBStorage
from .recovery import counted, recover
from .report import write_report
from .run_folder import (BASELINE, DATA, FIDELITY_BAR, FLOORS, ISO_TIME, MATCHED, QUALITY, REFERENCE, RETRY_OF,
                         VERDICT_COST, VOCAB, default_storage, fidelity_bar, load_seeds, make_storage, profile_path,
                         same_budget, same_card, same_tokens, seeds_study_name, trial_spec)
from .sampling import first_choice, template_for, with_data
from .space import load_space, options, pareto_costs
from .summary import progress_line, summary
from .workers import worker_echo


def make_sampler(name: str, seed: int):
    """TPE is multivariate with constant liar by default in Optuna 5 and handles several objectives."""
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


PRUNING_POOL = 5  # curves the median pruner needs at a step before it prunes anything there


def make_pruner(name: str, multi: bool, evals: int):
    """Trials report their k-th intermediate evaluation as step k (of `evals`, at k/(evals+1) of the budget, so
    trials of one study are compared at equal fractions of it, in tokens or, iso-time, in time); no trial is pruned
    in its first third (early losses mislead). The median is over every complete trial's curve, the baselines' at
    their chosen rate included (objective.train_for reports it), and needs PRUNING_POOL curves at that step."""
    if multi or name == "none":  # Optuna does not prune multi-objective studies
        return optuna.pruners.NopPruner()
    first = max(1, math.ceil((evals + 1) / 3))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=first, max_resource=max(first, evals))
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNING_POOL, n_warmup_steps=first,
                                       n_min_trials=PRUNING_POOL)


def baseline_params(template: dict, entry) -> dict:
    """Fixed parameters that make every per-layer or shared mixer choice the entry's family, or (a list) each layer's
    choice the listed mixer with the depth its length; plus the entry's own `params` (other parameters are sampled)."""
    mixers, params = baseline_entry(entry)
    stack = template.get("stack") or {}
    depth = stack.get("depth")
    max_depth = depth if isinstance(depth, int) else max(next(iter(depth.values())))
    layers = [mixers] * max_depth if isinstance(mixers, str) else list(mixers)
    if not isinstance(mixers, str) and not isinstance(depth, int):
        params.setdefault("stack.depth", len(layers))
    for i, sub in enumerate(stack.get("sublayers") or []):
        block = sub.get("block") if isinstance(sub, dict) else None
        if isinstance(block, dict) and "per_layer" in block and set(layers) <= set(block["per_layer"]):
            params.update({f"stack.sublayers[{i}].block[{j}]": m for j, m in enumerate(layers)})
        elif isinstance(block, dict) and "choice" in block and isinstance(mixers, str) and mixers in options(block):
            params[f"stack.sublayers[{i}].block"] = mixers
    return params


def centre_trial(objective: Objective, template: dict, entry):
    """The entry's architecture at the budget's baseline_params and the middle of every other range (all baselines
    share width and rate; pure ones depth too): the parameters to enqueue, the spec, and {parameter: value} for the
    entry's values that the space's ranges do not contain (e.g. a hybrid deeper than the budget's depth range)."""
    centre = CentreTrial({**(objective.budget.baseline_params or {}), **baseline_params(template, entry)})
    spec, _ = objective.spec_of(centre, label=f"baseline-{baseline_label(entry)}")
    if objective.budget.baseline_lr_grid:
        centre.params.pop("lr", None)  # the grid picks it; the trial then records the rate it chose
    return centre.params, spec, centre.outside


class Setup:
    """Everything a coordinator or a worker needs: the space, budget, storage, study and objective."""

    def __init__(self, space_path: str, out: Path | None, storage: str | None, budget: str | None,
                 device: str | None, workers: int = 1, timeout_minutes: float | None = None, data: str | None = None):
        self.space = with_data(load_space(space_path), data)
        s = self.space.search
        self.budget_name = budget or ("gpu" if torch.cuda.is_available() else "cpu")
        if self.budget_name not in self.space.budgets:
            named = ", ".join(self.space.budgets) or "none"
            if budget:
                raise SpecError(Loc("--budget"), f"no '{budget}' budget in {self.space.file} (it has: {named})")
            raise SpecError(Loc(self.space.file, 0, "search.budgets"), f"no '{self.budget_name}' budget, the default "
                            f"{'with' if torch.cuda.is_available() else 'without'} a GPU (it has: {named}); pick one "
                            "with --budget NAME")
        self.auto_budget = budget is None
        self.data = data
        self.budget = self.space.budgets[self.budget_name]
        if timeout_minutes:
            self.budget = replace(self.budget, timeout_minutes=timeout_minutes)
        self.template = template_for(self.space, self.budget)
        first = parse(first_choice(self.template))  # the task and train sections need no sampling
        # the budget's length and the device, checked before anything is written (each trial checks its own length)
        p = self.budget
        train = replace(first.train, batch_tokens=p.batch_tokens, seq_len=p.seq_len or first.train.seq_len,
                        device=device or first.train.device)
        where = f"search.budgets.{self.budget_name}.seq_len" if p.seq_len else "spec.train.seq_len"
        self.context = run_context(train, first.model.seq_len, Loc(self.space.file, 0, where))
        # a corpus that is not there fails here, before the run folder is made; it is tokenised once storage opens
        corpus = corpora.load(first.task.data) if first.task.kind == "lm" else None
        self.out = out or Path("runs") / s.name
        self.out.mkdir(parents=True, exist_ok=True)
        self.url = storage or default_storage(self.out, workers)
        self.storage = make_storage(self.url)
        self.multi = s.objective == "pareto"
        directions = ["minimize"] * (1 + len(pareto_costs(s)) if self.multi else 1)
        # processes that may share a study (workers, or a storage named by URL that other hosts can reach) must not
        # draw the same samples: each seeds its sampler from its host:pid; a lone run keeps the space's seed
        shared = "ARCHSEARCH_WORKER" in os.environ or storage is not None
        seed = zlib.crc32(worker_id().encode()) if shared else s.seed
        self.study = _create(s.name, self.storage, directions=directions, sampler=make_sampler(s.sampler, seed),
                             pruner=make_pruner(s.pruner, self.multi, first.train.evals))
        before = len(self.study.get_trials(deepcopy=False))
        self._check_data(before, data)
        if before and not shared:  # a resumed run would otherwise replay the first run's random draws
            self.study.sampler = make_sampler(s.sampler, s.seed + before)
        task = tasks.make(first.task, corpus)
        same_tokens(self.study, task, Loc("--data" if data else self.space.file, 0, "" if data else "spec.task.data"))
        same_card(self.study, self.context.device, Loc("--device" if device else self.space.file, 0,
                                                        "" if device else "spec.train.device"))
        same_budget(self.study, self.budget_name, {ISO_TIME: self.budget.train_seconds,
                                                   FIDELITY_BAR: fidelity_bar(self.budget)},
                    Loc("--budget" if budget else self.space.file, 0, "" if budget else "search.budgets"))
        task.check_length(self.context.seq_len)  # data too short for the budget's windows: one line before any trial
        self.objective = Objective(self.space, task, self.budget, self.out, device=device)

    def _check_data(self, before: int, data: str | None) -> None:
        """A study keeps the corpus it started on: resuming it on another would mix the trials' numbers."""
        was = self.study.user_attrs.get(DATA)
        if before and was != data:
            started = f"--data {was}" if was else "the space's own data (no --data)"
            raise SpecError(Loc("--data"), f"study '{self.space.search.name}' in {self.out} was started with "
                                           f"{started}; resume it with the same")
        if data and not before:
            self.study.set_user_attr(DATA, data)

    def seeds_study(self):
        return _create(seeds_study_name(self.space.search.name), self.storage, directions=["minimize"])


def _create(name: str, storage, **kw):
    """Create or load a study; two workers racing to create it both end up loading the same one."""
    # the progress lines say what happened; Optuna's own warning on a trial that raised (Ctrl-C, SIGTERM) would print
    # the interrupted stack as a traceback
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for _ in range(3):
        try:
            return optuna.create_study(study_name=name, storage=storage, load_if_exists=True, **kw)
        except optuna.exceptions.DuplicatedStudyError:
            time.sleep(0.5)
    return optuna.load_study(study_name=name, storage=storage, **{k: v for k, v in kw.items() if k != "directions"})


def prepare(setup: Setup, echo=print, workers: int = 1) -> None:
    """Baselines enqueued first (the first is the weighted objective's reference, measured before any trial: here,
    or with `workers` > 1 in a worker process, so that this coordinator runs no GPU work beside its workers)."""
    s, study = setup.space.search, setup.study
    cost = pareto_costs(s)[0] if setup.multi else next(iter(s.weights or {}), "latency_train_ms")
    if study.user_attrs.get(VERDICT_COST) != cost:
        study.set_user_attr(VERDICT_COST, cost)  # the report holds this cost equal
    if study.user_attrs.get(QUALITY) != s.quality:
        study.set_user_attr(QUALITY, s.quality)
    floors = getattr(setup.objective.task, "floors", None)
    if floors is not None:  # recall: the report says which families cleared the memory-free floors
        found = {split: floors(setup.context.seq_len, split) for split in ("validation", "test")}
        if study.user_attrs.get(FLOORS) != found:
            study.set_user_attr(FLOORS, found)
    bar = fidelity_bar(setup.budget)
    if study.user_attrs.get(FIDELITY_BAR) != bar:
        study.set_user_attr(FIDELITY_BAR, bar)  # the report says whether the screen may be used
    if study.user_attrs.get(ISO_TIME) != setup.budget.train_seconds:
        study.set_user_attr(ISO_TIME, setup.budget.train_seconds)  # iso-time: the report says so
    if not study.trials:
        for entry in (s.baselines or []):
            mixers, _ = baseline_entry(entry)
            for name in [mixers] if isinstance(mixers, str) else mixers:
                registry.get(name, Loc(setup.space.file, 0, "search.baselines"))
            params, spec, outside = centre_trial(setup.objective, setup.template, entry)
            if outside:  # e.g. a hybrid deeper than the CPU budget's depth range
                echo(f"baseline {baseline_label(entry)} skipped: outside the {setup.budget_name} budget's space ("
                     + ", ".join(f"{k} = {v}" for k, v in outside.items()) + ")")
                continue
            if not isinstance(mixers, str) and spec_mixers(spec) != list(mixers):
                echo(f"baseline {baseline_label(entry)} skipped: the {setup.budget_name} budget's space cannot build "
                     f"it (it gives {'+'.join(spec_mixers(spec))})")
                continue
            said = baseline_matched(entry) or setup.budget.baseline_matched
            matched = {MATCHED: said} if said else {}
            study.enqueue_trial(params, user_attrs={BASELINE: baseline_label(entry), **matched},
                                skip_if_exists=True)
    if not setup.multi and s.weights and REFERENCE not in study.user_attrs:
        if not (s.baselines or []):
            raise SpecError(Loc(setup.space.file, 0, "search.baselines"),
                            "the weighted objective needs a baseline: its first is the cost reference")
        if workers > 1:
            from . import workers as pool

            pool.run(setup, "reference", 1, 1, echo)
            if REFERENCE not in setup.study.user_attrs:
                raise SpecError(Loc(setup.space.file, 0, "search.baselines"),
                                "the worker measuring the reference architecture stopped before it was measured")
        else:
            measure_reference(setup, echo)


def measure_reference(setup: Setup, echo=print) -> None:
    """The weighted objective's reference: the first baseline at the space's size, measured without training."""
    entry = setup.space.search.baselines[0]
    _, spec, _ = centre_trial(setup.objective, setup.template, entry)
    echo(f"measuring the reference architecture ({baseline_label(entry)} at the space's size)…")
    ref = setup.objective.reference_costs(spec)
    setup.study.set_user_attr(REFERENCE, {**ref, "family": baseline_label(entry)})
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # this process's trials get the memory back


def _stop_at(n_trials: int):
    def callback(study, trial):
        if len(counted(study.get_trials(deepcopy=False))) >= n_trials:
            study.stop()
    return callback


def search_loop(setup: Setup, n_trials: int, echo=print) -> None:
    """Run trials in this process until the study holds `n_trials` counted trials or the budget's time is up."""
    if len(counted(setup.study.trials)) >= n_trials:
        return
    timeout = setup.budget.timeout_minutes * 60 if setup.budget.timeout_minutes else None
    if isinstance(setup.storage, SearchRDBStorage):  # the database refuses a trial beyond the budget: exactly n
        setup.storage.limit_trials(setup.study.study_name, n_trials, RETRY_OF)
    try:
        with interrupts.held():  # a signal waits for the objective's own work (Objective.__call__) or the end
            setup.study.optimize(setup.objective, n_trials=None, timeout=timeout, catch=(),
                                 callbacks=[progress_line(setup.study, setup.space.search, setup.multi, n_trials, echo),
                                            _stop_at(n_trials), interrupts.take_waiting])
    except BudgetSpent:  # the last trials are running elsewhere
        interrupts.take_waiting()


def say_if_time_ended_it(setup: Setup, n_trials: int, searched_s: float, from_cli: bool, echo=print) -> None:
    """One line where the search's time limit, not its trial count, ended it: the summary's count is otherwise read as
    the budget's."""
    minutes = setup.budget.timeout_minutes
    done = len(counted(setup.study.trials))
    if minutes and done < n_trials and searched_s >= minutes * 60:
        limit = "--timeout-minutes" if from_cli else f"the {setup.budget_name} budget's timeout_minutes"
        echo(f"the search's time limit ({minutes:g} min, {limit}) ended it after {done} of {n_trials} trials; "
             "the same command continues it")


def retrain_loop(setup: Setup, echo=print, deadline: float | None = None) -> None:
    seeds = setup.seeds_study()
    retrain.run_jobs(seeds, setup.study, setup.storage, setup.objective, echo, deadline)


def wait_for_others(setup: Setup, echo=print, poll_s: float = 5.0) -> None:
    """Before the re-training, let trials still running elsewhere (other hosts) finish. Queued trials that nobody has
    started are not waited for: with the trial budget spent (`--trials` below the baselines' count, say) nobody will."""
    said = False
    while True:
        if isinstance(setup.storage, RDBStorage):
            optuna.storages.fail_stale_trials(setup.study)
        running = setup.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return
        if not said:
            echo(f"waiting for {len(running)} trial(s) still running elsewhere…")
            said = True
        time.sleep(poll_s)


def run_search(space_path: str, *, out: Path | None = None, storage: str | None = None, trials: int | None = None,
               budget: str | None = None, device: str | None = None, workers: int = 1, retrain_after: bool = True,
               timeout_minutes: float | None = None, profile_top: int = 0, data: str | None = None,
               echo=print) -> optuna.Study:
    """`archsearch run`: set the study up, search (in this process or in `workers` processes), re-train the best
    with more seeds, print the summary and write the report."""
    from . import workers as pool

    interrupts.install()
    # --timeout-minutes given: the whole command keeps to it, re-training included (a budget's own timeout_minutes
    # bounds its search only)
    deadline = None if timeout_minutes is None else time.monotonic() + timeout_minutes * 60
    setup = Setup(space_path, out, storage, budget, device, workers, timeout_minutes, data)
    if setup.auto_budget:
        echo(f"{'GPU' if setup.budget_name == 'gpu' else 'no GPU'}: using the {setup.budget_name} budget of "
             f"{setup.space.file}")
    n_trials = trials or setup.budget.trials
    requeued = recover(setup.study, setup.storage)
    done = counted(setup.study.trials)
    if done or requeued:
        echo(f"resuming study '{setup.space.search.name}': {len(done)} finished trial(s) kept"
             + (f", {requeued} unfinished re-queued" if requeued else "") + f", {max(0, n_trials - len(done))} to go")
    prepare(setup, echo, workers)
    interrupted = False
    try:
        started = time.monotonic()
        if workers > 1:
            to_go = n_trials - len(counted(setup.study.trials))  # no more workers than trials left to run
            if to_go > 0:
                pool.run(setup, "search", min(workers, to_go), n_trials, echo)
        else:
            search_loop(setup, n_trials, echo)
        say_if_time_ended_it(setup, n_trials, time.monotonic() - started, bool(timeout_minutes), echo)
        _, fresh_seeds, verdict_seeds = retrain.retrain_settings(setup.space, setup.budget)
        if retrain_after and (fresh_seeds or verdict_seeds or setup.budget.fidelity):
            wait_for_others(setup, echo)
            seeds = setup.seeds_study()
            recover(seeds, setup.storage)
            new = retrain.enqueue(seeds, retrain.jobs(setup.study, setup.space, setup.budget))
            pending = len(seeds.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            if pending:
                fid = setup.budget.fidelity
                echo(f"fairness: re-training {pending} run(s) ({new} new) with fresh seeds, scored on the test split — "
                     f"the top trials and each family's best {fresh_seeds} each, the verdicts' pairs {verdict_seeds}"
                     + (f"; fidelity: {fid['trials']} trials at {fid['factor']:g}× the budget" if fid else ""))
                if workers > 1:
                    left = None if deadline is None else max(deadline - time.monotonic(), 1e-3) / 60
                    pool.run(setup, "retrain", workers, n_trials, echo, timeout_minutes=left)
                else:
                    retrain_loop(setup, echo, deadline)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: unfinished trials are marked failed and re-queued when the same command runs again",
              file=sys.stderr)
    study = setup.study  # reads the storage afresh: holds the workers' trials too
    if profile_top and not interrupted:
        profile_trials(study, setup, profile_top, echo)
    echo(summary(study))
    report = write_report(study, setup.out, load_seeds(setup.storage, study.study_name))
    echo(f"report: {report} (every recorded quality number checked against its saved weights, where they are here)")
    if interrupted:
        raise KeyboardInterrupt
    return study


def profile_trials(study, setup: Setup, k: int, echo=print) -> None:
    """Profile the best k complete trials: OUT/profiles/trial_NNNN/ holds the trace, and table.txt the per-node table and
    the 20 most expensive ops."""
    from .. import profile

    done = sorted((t for t in counted(study.trials) if t.state == TrialState.COMPLETE and t.values),
                  key=lambda t: t.values[0])[:k]
    for t in done:
        spec = trial_spec(setup.out, t)
        ir = compile_spec(spec, vocab=t.user_attrs.get(VOCAB))
        ctx = run_context(spec.train, ir.model.seq_len, Loc(spec.file, 0, "train.seq_len"))
        folder = profile_path(setup.out, t.number)
        prof = profile.run(ir, folder, device=ctx.device, batch=ctx.batch, seq_len=ctx.seq_len, decode=8,
                           precision=spec.train.precision)
        (folder / "table.txt").write_text(profile.format_table(prof, ctx.device, ops=20) + "\n")
        echo(f"profiled trial {t.number}: {folder / 'table.txt'} and its trace")


def run_worker(space_path: str, *, out: Path, storage: str, trials: int, budget: str, device: str | None,
               phase: str, timeout_minutes: float | None = None, data: str | None = None) -> None:
    """One of `--workers N` processes: runs trials (or re-training runs) of the coordinator's study."""
    interrupts.install()
    start = time.monotonic()
    echo = worker_echo()
    setup = Setup(space_path, out, storage, budget, device, timeout_minutes=timeout_minutes, data=data)
    if phase == "search":
        search_loop(setup, trials, echo)
    elif phase == "reference":
        measure_reference(setup, echo)
    else:  # the coordinator passes what is left of its --timeout-minutes, if it was given one
        retrain_loop(setup, echo, None if timeout_minutes is None else start + timeout_minutes * 60)
