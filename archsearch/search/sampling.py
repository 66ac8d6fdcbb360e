"""Sampling a search space define-by-run: the template (merged with a budget's partial template) walked in YAML
order, each distribution asked of the trial (an Optuna trial, a FixedTrial, or baselines.CentreTrial), and the learning
rate the budget or search section gives. No torch here."""
from __future__ import annotations

from dataclasses import replace

from .space import Budget, Space, is_dist, lr_setting, options


class Sampler:
    """Turns the template into a plain spec dict by asking `suggest` for each distribution (define-by-run)."""

    def __init__(self, trial):
        self.trial = trial

    def value(self, dist, path: str):
        kind, args = next(iter(dist.items()))
        t = self.trial
        if kind == "int":
            return t.suggest_int(path, args[0], args[1], step=dist.get("step", 1))
        if kind == "float":
            return t.suggest_float(path, float(args[0]), float(args[1]))
        if kind == "log":
            return t.suggest_float(path, float(args[0]), float(args[1]), log=True)
        if kind == "choice" and isinstance(args, dict):  # labelled and named: one parameter for every such choice
            return self.walk(args[t.suggest_categorical(dist["name"], list(args))], path)
        if kind == "choice":
            return self.walk(args[self.index(path, args)], path)
        raise ValueError(f"{path}: 'per_layer' applies only to a sublayer's block")

    def index(self, path: str, choices) -> int:
        labels = [c if isinstance(c, (str, int, float, bool)) else str(i) for i, c in enumerate(choices)]
        return labels.index(self.trial.suggest_categorical(path, labels))

    def walk(self, value, path: str):
        if is_dist(value):
            return self.value(value, path)
        if isinstance(value, dict):
            if "depth" in value and "sublayers" in value:
                return self.stack(value, path)
            return {k: self.walk(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def stack(self, value: dict, path: str) -> dict:
        depth = self.walk(value["depth"], f"{path}.depth")
        out = {"depth": depth}
        for k, v in value.items():
            if k == "sublayers":
                out[k] = [self.sublayer(s, depth, f"{path}.sublayers[{i}]") for i, s in enumerate(v)]
            elif k != "depth":
                out[k] = self.walk(v, f"{path}.{k}")
        return out

    def sublayer(self, value, depth: int, path: str):
        if not isinstance(value, dict):
            return self.walk(value, path)
        block = value.get("block")
        out = {k: self.walk(v, f"{path}.{k}") for k, v in value.items() if k not in ("block", "config")}
        if isinstance(block, dict) and "per_layer" in block:
            names = [self.walk(block["per_layer"][self.index(f"{path}.block[{i}]", block["per_layer"])], "")
                     for i in range(depth)]
            out["block"] = names
            chosen = dict.fromkeys(names)
        else:
            out["block"] = self.walk(block, f"{path}.block")
            chosen = None
        config = value.get("config")
        keyed = isinstance(config, dict) and config and all(not is_dist(config) and k in _names(block) for k in config)
        if keyed:
            names = chosen or {out["block"]: None}
            picked = {n: self.walk(config[n], f"{path}.config.{n}") for n in names if n in config}
            out["config"] = picked if chosen else picked.get(out["block"], {})
        elif config is not None:
            out["config"] = self.walk(config, f"{path}.config")
        return out


def _names(block) -> set:
    if is_dist(block):
        return {c for c in options(block) if isinstance(c, str)}
    return {block} if isinstance(block, str) else set()


def merge(base, over):
    """`over` laid onto `base`: mappings merge key by key, lists item by position (a distribution replaces whatever
    it lands on)."""
    if isinstance(base, dict) and isinstance(over, dict) and not is_dist(over) and not is_dist(base):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(over, list):
        return [merge(b, o) for b, o in zip(base, over)] + base[len(over):] + over[len(base):]
    return over


def first_choice(value):
    """The template with every distribution replaced by its first option (a template without any is unchanged)."""
    if is_dist(value):
        kind, args = next(iter(value.items()))
        return first_choice(options(value)[0]) if kind in ("choice", "per_layer") else args[0]
    if isinstance(value, dict):
        return {k: first_choice(v) for k, v in value.items()}
    if isinstance(value, list):
        return [first_choice(v) for v in value]
    return value


def with_data(space: Space, data: str | None) -> Space:
    """The space with `spec.task.data` replaced (`run --data`): every trial, its spec file and its re-training use
    that corpus."""
    return replace(space, template=merge(space.template, {"task": {"data": data}})) if data else space


def template_for(space: Space, budget: Budget):
    return merge(space.template, budget.spec) if budget.spec else space.template


def sample(space: Space, trial, budget: Budget | None = None) -> dict:
    """A plain spec dict for this trial (its parameters recorded by the trial)."""
    return Sampler(trial).walk(template_for(space, budget) if budget else space.template, "")


def lr_grid(space: Space, budget: Budget | None = None) -> list[float] | None:
    """The learning rates each trial trains with (keeping the best), when the space asks for best-of-grid."""
    lr = lr_setting(space, budget)
    return [float(v) for v in lr["grid"]] if isinstance(lr, dict) and "grid" in lr else None


def sample_lr(space: Space, trial, default: float, budget: Budget | None = None) -> float:
    lr = lr_setting(space, budget)
    if lr is None:
        return default
    if lr_grid(space, budget):
        return lr_grid(space, budget)[0]
    return Sampler(trial).walk(lr, "lr") if isinstance(lr, dict) else float(lr)
