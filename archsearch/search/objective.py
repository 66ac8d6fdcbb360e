"""One trial: sample a spec, compile and cost it (constraints checked before any tensor exists), build it, measure
it, train it with pruning on intermediate validation loss, and turn quality and costs into the objective."""
from __future__ import annotations

import math
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import optuna
import torch
import yaml

from ..lower import lower
from ..build import build
from ..errors import SpecError
from ..experiment import device_name
from ..measure import measure
from ..passes import run_passes
from ..spec import parse
from ..train import autocast_for, resolve_device, train
from .space import Space, sample, sample_lr


def quality(metrics: dict, name: str) -> float:
    """The quality term, minimised: log perplexity, loss, or 1 − accuracy."""
    if name == "accuracy":
        return 1.0 - metrics["accuracy"]
    return math.log(metrics["ppl"]) if name == "ppl" else metrics["loss"]


def weighted(q: float, costs: dict, reference: dict, weights: dict) -> float:
    """Scale-free: quality + Σ w·log(cost / the reference architecture's cost, measured in the same study)."""
    return q + sum(w * math.log(max(costs[c], 1e-12) / max(reference[c], 1e-12)) for c, w in (weights or {}).items())


class Objective:
    def __init__(self, space: Space, task, profile, out: Path, device: str | None = None, progress=False):
        self.space, self.task, self.profile, self.out = space, task, profile, out
        self.device, self.progress = device, progress
        self.reference_family = (space.search.baselines or [None])[0]

    # ------------------------------------------------------------------------------------------ one trial
    def spec_of(self, trial):
        doc = sample(self.space, trial, self.profile)
        spec = parse(doc, f"{self.space.file}#trial{trial.number}")
        lr = sample_lr(self.space, trial, spec.train.lr)
        p = self.profile
        train_cfg = replace(spec.train, tokens=p.tokens, batch_tokens=p.batch_tokens, lr=lr,
                            seq_len=p.seq_len or spec.train.seq_len, seed=self.space.search.seed,
                            device=self.device or spec.train.device)
        return replace(spec, train=train_cfg), doc

    def costs(self, spec) -> tuple[object, dict]:
        ir = run_passes(build(spec, vocab=self.task.vocab_size))
        return ir, {"params": ir.meta["params"], "flops_per_token": ir.meta["flops"],
                    "state_bytes": ir.meta["state_bytes"]}

    def violation(self, costs: dict) -> str | None:
        s = self.space.search
        for key, limit in (("params", s.max_params), ("state_bytes", s.max_state_bytes),
                           ("latency_train_ms", s.max_latency_ms)):
            if limit is not None and key in costs and costs[key] > limit:
                return f"{key} {costs[key]:,.6g} exceeds the limit {limit:,.6g}"
        return None

    def __call__(self, trial: optuna.Trial):
        spec, doc = self.spec_of(trial)
        path = self.out / "trials" / f"trial_{trial.number:04d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        exact = {**doc, "task": asdict(spec.task), "train": asdict(spec.train)}  # `archsearch train` reruns it
        path.write_text(yaml.safe_dump(exact, sort_keys=False))
        trial.set_user_attr("spec_file", str(path))
        trial.set_user_attr("mixers", mixers(spec))
        try:
            ir, costs = self.costs(spec)
        except SpecError as e:
            return self.prune(trial, f"invalid: {e}")
        for k, v in costs.items():
            trial.set_user_attr(k, v)
        reason = self.violation(costs)
        if reason:  # rejected in milliseconds, before any tensor is allocated
            return self.prune(trial, reason)
        return self.run(trial, spec, ir, costs)

    def run(self, trial, spec, ir, costs):
        device = resolve_device(spec.train.device)
        trial.set_user_attr("card", device_name(device))
        trial.set_user_attr("seed", spec.train.seed)
        trial.set_user_attr("lr", spec.train.lr)
        seq_len = spec.train.seq_len or ir.model.seq_len
        try:
            torch.manual_seed(spec.train.seed)
            model = lower(ir)
            amp = autocast_for(device, spec.train.precision)
            batch = max(1, spec.train.batch_tokens // seq_len)
            measured = measure(model, ir.model.vocab, batch, seq_len, device, amp)
            costs.update(measured)
            for k, v in measured.items():
                trial.set_user_attr(k, v)
            reason = self.violation(costs)
            if reason:
                return self.prune(trial, reason)
            # baselines always train to the end: every study holds each family's full measurement
            pruning = self.space.search.objective == "weighted" and "baseline" not in trial.user_attrs

            curve = []

            def on_eval(step, tokens, metrics):
                curve.append((step, metrics["loss"]))
                trial.set_user_attr("val_loss_curve", curve)
                if self.space.search.objective == "pareto":  # Optuna takes no reports from multi-objective trials
                    return False
                trial.report(metrics["loss"], step)
                return pruning and trial.should_prune()

            result = train(model, self.task, spec.train, seq_len=seq_len, on_eval=on_eval, progress=self.progress,
                           label=f"trial {trial.number}")
        except torch.OutOfMemoryError:
            return self.fail(trial, "out of memory")
        except (RuntimeError, ValueError) as e:  # a block error: recorded, and the study goes on
            return self.fail(trial, f"{e.__class__.__name__}: {str(e).splitlines()[0]}",
                             traceback.format_exc(limit=3))
        trial.set_user_attr("tokens_per_s", result.tokens_per_s)
        trial.set_user_attr("train_seconds", result.seconds)
        if result.status == "diverged":
            return self.fail(trial, f"diverged: {result.reason}")
        if result.status == "stopped":
            trial.set_user_attr("pruned_reason", f"pruned on intermediate validation loss at step {result.steps}")
            raise optuna.TrialPruned()
        final = self.task.evaluate(model, seq_len, device, autocast=amp)
        for k, v in final.items():
            trial.set_user_attr(f"val_{k}", v)
        q = quality(final, self.space.search.quality)
        if self.space.search.objective == "pareto":
            return (q, *(costs[c] for c in (self.space.search.pareto_costs or ["latency_train_ms"])))
        reference = trial.study.user_attrs.get("reference")
        if reference is None and trial.user_attrs.get("baseline") == self.reference_family:
            trial.study.set_user_attr("reference", dict(costs))  # the reference architecture, measured in this study
            reference = costs
        return weighted(q, costs, reference or costs, self.space.search.weights)

    @staticmethod
    def prune(trial, reason: str):
        trial.set_user_attr("pruned_reason", reason)
        raise optuna.TrialPruned(reason)

    @staticmethod
    def fail(trial, reason: str, detail: str | None = None):
        trial.set_user_attr("failed_reason", reason)
        if detail:
            trial.set_user_attr("failed_detail", detail)
        return float("nan")  # Optuna records a NaN objective as FAIL; the study goes on


def mixers(spec) -> list[str]:
    """The sequence-mixer block of each layer (for the fraction of PAM layers and the family of a trial)."""
    if spec.stack is None:
        return []
    from .. import registry

    out = []
    for i in range(spec.stack.depth):
        out += [s.blocks[i].name for s in spec.stack.sublayers if registry.get(s.blocks[i].name).kind == "mixer"]
    return out
