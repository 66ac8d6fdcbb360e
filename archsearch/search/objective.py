"""One trial: sample a spec, compile and cost it (constraints checked before any tensor exists), build it, measure
it, train it with pruning on intermediate validation loss, and turn quality and costs into the objective."""
from __future__ import annotations

import math
import os
import socket
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import optuna
import torch
import yaml

from ..build import build
from ..context import RunContext, device_name, run_context
from ..errors import Loc, SpecError
from ..lower import lower
from ..measure import measure
from ..passes import run_passes
from ..saved import train_then_score
from ..spec import parse
from ..train import plan
from . import interrupts
from .recovery import INTERRUPTED
from .run_folder import (BASELINE, CARD, FAILED_DETAIL, FAILED_REASON, LR, LR_GRID_QUALITY, MIXERS, PRUNED_REASON,
                         REFERENCE, SEED, SPEC_FILE, TRAIN_TOKENS, VAL_LOSS_CURVE, VOCAB, WORKER, trial_spec_path,
                         weights_path)
from .sampling import lr_grid, sample, sample_lr
from .space import Space, lr_distribution, pareto_costs


def quality(metrics: dict, name: str) -> float:
    """The quality term, minimised: log perplexity, loss, or 1 − accuracy."""
    if name == "accuracy":
        return 1.0 - metrics["accuracy"]
    return math.log(metrics["ppl"]) if name == "ppl" else metrics["loss"]


def result_quality(result: dict, name: str, prefix: str = "val_") -> float:
    """The quality term of a run's results (keys `val_…` or `test_…`, as fit() returns them)."""
    return quality({k[len(prefix):]: v for k, v in result.items() if k.startswith(prefix)}, name)


def weighted(q: float, costs: dict, reference: dict, weights: dict) -> float:
    """Scale-free: quality + Σ w·log(cost / the reference architecture's cost, measured in the same study)."""
    return q + sum(w * math.log(max(costs[c], 1e-12) / max(reference[c], 1e-12)) for c, w in (weights or {}).items())


def iso_time_tokens(train_cfg, seq_len: int, seconds: float, latency_ms: float) -> int:
    """Iso-time: the tokens of as many optimiser steps as fit in `seconds` of measured training-step time (the
    forward + backward latency `measure` gives; at least one step)."""
    micro, accum, _ = plan(train_cfg, seq_len)
    return max(1, math.floor(seconds * 1000.0 / latency_ms)) * micro * accum * seq_len


def worker_id() -> str:
    """host:pid of this process, kept on every trial so that a later run can tell a dead worker's trial."""
    return f"{socket.gethostname()}:{os.getpid()}"


DIVERGED = "diverged"  # how the reason of a run that diverged begins (retrain.failures: never tried again)


class TrialFailed(Exception):
    """A training run that ended without a result: the reason is recorded on the trial."""

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


class Objective:
    def __init__(self, space: Space, task, budget, out: Path, device: str | None = None, progress=False):
        self.space, self.task, self.budget, self.out = space, task, budget, out
        self.device, self.progress = device, progress

    # ------------------------------------------------------------------------------------------ pieces
    def baseline_grid(self, trial) -> list[float] | None:
        """The learning rates an enqueued baseline trains at (keeping the best), or None."""
        if BASELINE not in (getattr(trial, "user_attrs", None) or {}):
            return None
        return [float(v) for v in self.budget.baseline_lr_grid or []] or None

    def spec_of(self, trial, label: str | None = None):
        """The trial's spec (any object with Optuna's suggest_* methods) with the budget's settings. A baseline with a
        learning-rate grid suggests no rate: the one it trains best at is recorded after the grid (record_lr)."""
        doc = sample(self.space, trial, self.budget)
        spec = parse(doc, f"{self.space.file}#{label or f'trial{trial.number}'}")
        grid = self.baseline_grid(trial)
        lr = grid[0] if grid else sample_lr(self.space, trial, spec.train.lr, self.budget)
        p = self.budget
        train_cfg = replace(spec.train, tokens=p.tokens, batch_tokens=p.batch_tokens, lr=lr,
                            seq_len=p.seq_len or spec.train.seq_len, seed=self.space.search.seed,
                            device=self.device or spec.train.device)
        return replace(spec, train=train_cfg), doc

    def costs(self, spec) -> tuple[object, dict]:
        ir = run_passes(build(spec, vocab=self.task.vocab_size))
        return ir, {"params": ir.meta["params"], "flops_per_token": ir.meta["flops"],
                    "state_bytes": ir.meta["state_bytes"]}

    @staticmethod
    def context(spec, ir) -> RunContext:
        """The device and the batch × length the trial trains at; SpecError when its length exceeds the model's."""
        return run_context(spec.train, ir.model.seq_len, Loc(spec.file, 0, "train.seq_len"))

    def measured(self, spec, ir, model, ctx: RunContext) -> dict:
        """Latency, memory and counted FLOPs of the built model, at the trial's batch and length."""
        decode_at = self.space.search.decode_context
        decode_at = ctx.seq_len - 1 if decode_at is None else min(decode_at, ir.model.seq_len - 1)
        return measure(model, ir.model.vocab, ctx.batch, ctx.seq_len, ctx.device, ctx.autocast(),
                       decode_context=decode_at, cuda_graph=spec.train.cuda_graph, compile=spec.train.compile)

    def reference_costs(self, spec) -> dict:
        """Analytic and measured costs of one architecture (the weighted objective's reference), without training."""
        ir, costs = self.costs(spec)
        ctx = self.context(spec, ir)
        torch.manual_seed(spec.train.seed)
        costs.update(self.measured(spec, ir, lower(ir), ctx))
        return costs

    def violation(self, costs: dict) -> str | None:
        s = self.space.search
        for key, limit in (("params", s.max_params), ("state_bytes", s.max_state_bytes),
                           ("latency_train_ms", s.max_latency_ms)):
            if limit is not None and key in costs and costs[key] > limit:
                return f"{key} {costs[key]:,.6g} exceeds the limit {limit:,.6g}"
        return None

    def fit(self, spec, ir, ctx: RunContext, on_eval=None, label: str = "",
            splits=("validation",)) -> tuple[dict, dict | None]:
        """Train a fresh model of `spec`; score its saved weights, loaded into a freshly built model, on the whole of
        each split (keys val_…, test_…): (results, the saved state dict). TrialFailed when it diverges, runs out of
        memory or a block raises; results hold 'stopped' (and no state) when on_eval stopped it."""
        try:
            result, final, state = train_then_score(ir, spec.train, self.task, ctx.seq_len, ctx.device, splits,
                                                    on_eval=on_eval, progress=self.progress, label=label)
            if result.status == "diverged":
                raise TrialFailed(f"{DIVERGED}: {result.reason}")
            info = {"tokens_per_s": result.tokens_per_s, "train_seconds": result.seconds}
            if result.status == "stopped":
                return {**info, "stopped": f"pruned on intermediate validation loss at step {result.steps}"}, None
        except torch.OutOfMemoryError:
            raise TrialFailed("out of memory") from None
        except (RuntimeError, ValueError) as e:  # a block error: recorded, and the study goes on
            raise TrialFailed(f"{e.__class__.__name__}: {str(e).splitlines()[0]}", traceback.format_exc(limit=3)) from None
        return {**info, **final}, state

    # ------------------------------------------------------------------------------------------ one trial
    def __call__(self, trial: optuna.Trial):
        trial.set_user_attr(WORKER, worker_id())
        try:
            with interrupts.released():  # the one place in study.optimize where Ctrl-C is raised at once
                return self.trial(trial)
        except KeyboardInterrupt:  # Optuna marks the trial failed; a resumed study runs it again
            trial.set_user_attr(FAILED_REASON, INTERRUPTED)
            raise

    def trial(self, trial: optuna.Trial):
        spec, doc = self.spec_of(trial)
        path = trial_spec_path(self.out, trial.number)
        path.parent.mkdir(parents=True, exist_ok=True)
        exact = {**doc, "task": asdict(spec.task), "train": asdict(spec.train)}  # `archsearch train` reruns it
        path.write_text(yaml.safe_dump(exact, sort_keys=False))
        trial.set_user_attr(SPEC_FILE, str(path))
        trial.set_user_attr(MIXERS, mixers(spec))
        trial.set_user_attr(VOCAB, self.task.vocab_size)
        try:
            ir, costs = self.costs(spec)
            ctx = self.context(spec, ir)
        except SpecError as e:
            return self.prune(trial, f"invalid: {e}")
        for k, v in costs.items():
            trial.set_user_attr(k, v)
        reason = self.violation(costs)
        if reason:  # rejected in milliseconds, before any tensor is allocated
            return self.prune(trial, reason)
        return self.run(trial, spec, ir, costs, ctx)

    def run(self, trial, spec, ir, costs, ctx: RunContext):
        trial.set_user_attr(CARD, device_name(ctx.device))
        trial.set_user_attr(SEED, spec.train.seed)
        try:
            torch.manual_seed(spec.train.seed)
            measured = self.measured(spec, ir, lower(ir), ctx)
        except torch.OutOfMemoryError:
            return self.fail(trial, "out of memory")
        except (RuntimeError, ValueError) as e:
            return self.fail(trial, f"{e.__class__.__name__}: {str(e).splitlines()[0]}", traceback.format_exc(limit=3))
        costs.update(measured)
        for k, v in measured.items():
            trial.set_user_attr(k, v)
        reason = self.violation(costs)
        if reason:
            return self.prune(trial, reason)
        if self.budget.train_seconds:
            spec = self.iso_time(trial, spec, ctx, costs["latency_train_ms"])
        try:
            q = self.train_for(trial, spec, ir, ctx)
        except TrialFailed as e:
            return self.fail(trial, e.reason, e.detail)
        if self.space.search.objective == "pareto":
            return (q, *(costs[c] for c in pareto_costs(self.space.search)))
        reference = trial.study.user_attrs.get(REFERENCE) or costs
        return weighted(q, costs, reference, self.space.search.weights)

    def iso_time(self, trial, spec, ctx: RunContext, latency_ms: float):
        """The spec with its token budget set to `train_seconds` of this trial's measured step time; the trial's
        spec file is rewritten to match, so `archsearch train` on it reruns the same run."""
        tokens = iso_time_tokens(spec.train, ctx.seq_len, self.budget.train_seconds, latency_ms)
        trial.set_user_attr(TRAIN_TOKENS, tokens)
        rewrite_train(trial, tokens=tokens)
        return replace(spec, train=replace(spec.train, tokens=tokens))

    def train_for(self, trial, spec, ir, ctx: RunContext) -> float:
        """Train with the trial's learning rate, or with each rate of the grid keeping the best; record the results
        (the chosen rate's curve among them) and return the best run's quality term."""
        baseline_grid = self.baseline_grid(trial)
        grid = lr_grid(self.space, self.budget) or baseline_grid
        # a grid's runs would report the same steps twice, so best-of-grid trials are not pruned; a baseline's chosen
        # curve is reported afterwards, so that the pruner compares later trials with it too
        pruning = self.space.search.objective == "weighted" and not grid
        curve = []

        def on_eval(step, tokens, metrics):
            curve.append((step, metrics["loss"]))
            if not pruning:
                return False
            trial.set_user_attr(VAL_LOSS_CURVE, curve)
            trial.report(metrics["loss"], len(curve))  # the k-th evaluation: an equal fraction of every budget
            return trial.should_prune()

        best, tried = None, {}
        for lr in grid or [spec.train.lr]:
            curve = []
            run_spec = replace(spec, train=replace(spec.train, lr=lr))
            result, state = self.fit(run_spec, ir, ctx, on_eval,
                                     label=f"trial {trial.number}" + (f" lr {lr:g}" if grid else ""))
            trial.set_user_attr("tokens_per_s", result["tokens_per_s"])
            trial.set_user_attr("train_seconds", result["train_seconds"])
            if "stopped" in result:
                trial.set_user_attr(PRUNED_REASON, result["stopped"])
                raise optuna.TrialPruned()
            q = result_quality(result, self.space.search.quality)
            tried[f"{lr:g}"] = q
            if best is None or q < best[0]:
                best = (q, lr, result, curve)
                self.save_weights(trial.number, state)
        q, lr, result, curve = best
        trial.set_user_attr(LR, lr)
        trial.set_user_attr(VAL_LOSS_CURVE, curve)
        if grid:
            rewrite_train(trial, lr=lr)
            trial.set_user_attr(LR_GRID_QUALITY, tried)
            if self.space.search.objective == "weighted":
                for k, (_, loss) in enumerate(curve, 1):
                    trial.report(loss, k)
        if baseline_grid:
            record_lr(trial, lr, lr_distribution(self.space, self.budget))
        for k, v in result.items():
            trial.set_user_attr(k, v)
        return q

    def save_weights(self, number: int, state: dict) -> None:
        """A complete trial's trained weights: what its numbers were computed from (`archsearch export`, the
        report's check)."""
        path = weights_path(self.out, number)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)

    @staticmethod
    def prune(trial, reason: str):
        trial.set_user_attr(PRUNED_REASON, reason)
        raise optuna.TrialPruned(reason)

    @staticmethod
    def fail(trial, reason: str, detail: str | None = None):
        trial.set_user_attr(FAILED_REASON, reason)
        if detail:
            trial.set_user_attr(FAILED_DETAIL, detail)
        return float("nan")  # Optuna records a NaN objective as FAIL; the study goes on


def rewrite_train(trial, **values) -> None:
    """Set train settings in the trial's spec file (the budget iso-time chose, the rate a grid chose), so that
    `archsearch train` on it reruns the trial's own run."""
    path = Path(trial.user_attrs[SPEC_FILE])
    doc = yaml.safe_load(path.read_text())
    doc["train"].update(values)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def record_lr(trial, lr: float, distribution) -> None:
    """Record the rate a baseline trained best at as its `lr` parameter, as trial.suggest_* records a sampled one, so
    that the sampler learns from the rate actually used (the grid chose it, not the sampler). A rate outside the
    searched range is kept as a user attribute only."""
    if distribution is None or "lr" in trial.params:
        return
    value = distribution.to_internal_repr(lr)
    if distribution._contains(value):
        trial.storage.set_trial_param(trial._trial_id, "lr", value, distribution)


def mixers(spec) -> list[str]:
    """The sequence-mixer block of each layer (for the fraction of PAM layers and the family of a trial)."""
    if spec.stack is None:
        return []
    from .. import registry

    out = []
    for i in range(spec.stack.depth):
        out += [s.blocks[i].name for s in spec.stack.sublayers if registry.get(s.blocks[i].name).kind == "mixer"]
    return out
