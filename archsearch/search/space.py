"""Search spaces: a spec template whose values may be distributions, with the search's settings and budgets,
loaded and checked here (sampling.py walks them for an Optuna trial).

A distribution is a one-key mapping anywhere in the `spec:` section:
  {int: [lo, hi]} (optional `step`), {float: [lo, hi]}, {log: [lo, hi]}, {choice: [a, b, ...]},
  {choice: {label: a, label2: b}, name: NAME} (labelled options; every choice with the same `name` takes the same
  label, so choices in different places move together), and, as a sublayer's `block` only, {per_layer: [a, b, ...]}:
  one choice per layer of the stack.
Configs keyed by block name (`config: {pam: {...}, softmax_attention: {...}}`) are sampled only for the blocks
chosen, so their parameters are conditional on the choice. The walk follows the YAML order with `depth` first in a
stack, so the parameter names (dotted paths) are stable and a study can be resumed. No torch here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import coerce
from ..errors import Loc, SpecError, unknown
from ..yamlloc import load_file, loc_of
from .baselines import check_baselines

DISTRIBUTIONS = ("int", "float", "log", "choice", "per_layer")


@dataclass(frozen=True)
class Budget:
    """One named budget of a search (`search.budgets.NAME`, picked with `--budget NAME`; by default `gpu` on a
    GPU, else `cpu`): how long trials train and how many run, and what the space looks like at that size."""

    trials: int = 10
    tokens: int = 200_000
    batch_tokens: int = 4096
    seq_len: int | None = None
    timeout_minutes: float | None = None
    train_seconds: float | None = None  # iso-time: each trial trains this long in measured step time, not `tokens`
    fidelity: Any = None  # {trials: N, factor: F, min_rank: R}: N trials spread over the ranking trained F× longer;
    # the screen is used only where their Spearman correlation with the screen reaches R (when given)
    baseline_lr_grid: Any = None  # the enqueued baselines train at each of these rates, keeping the best
    lr: Any = None  # this budget's learning rate (a number, a distribution or {grid: [...]}), replacing search.lr
    baseline_params: Any = None  # {parameter: value} fixed for every baseline (its own `params` win): matched sizes
    baseline_matched: str | None = None  # what those sizes match (e.g. "inner width = d_model"), for the report
    retrain: Any = None  # {top_k, seeds, verdict_seeds} for this budget, replacing search.retrain
    spec: Any = None  # a partial spec template merged over `spec:` for this budget (e.g. smaller widths on CPU)


@dataclass(frozen=True)
class SearchConfig:
    name: str = "search"
    objective: Literal["weighted", "pareto"] = "weighted"
    quality: Literal["ppl", "loss", "accuracy"] = "ppl"
    weights: Any = None  # {cost name: weight} for weighted mode
    pareto_costs: Any = None  # cost names minimised next to quality in pareto mode
    sampler: Literal["tpe", "nsga2", "random", "gp"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    seed: int = 0
    lr: Any = None  # a distribution or a number: the learning rate, searched per architecture; or {grid: [...]}
    decode_context: int | None = None  # context of the measured decode step (default: the trial's seq_len − 1; 0: off)
    retrain: Any = None  # {top_k, seeds, verdict_seeds}: fresh seeds after the search (default {3, 3, 5})
    max_params: int | None = None
    max_state_bytes: int | None = None
    max_latency_ms: float | None = None
    baselines: Any = None  # enqueued first: a mixer name (a pure family), a list (one mixer per layer), or {mixers, params}
    budgets: Any = None  # {name: {...}} of Budget fields (cpu, gpu and any other name)
    profiles: Any = None  # the former name of `budgets`, still read


def pareto_costs(search: "SearchConfig") -> list[str]:
    """The costs a Pareto study minimises next to quality (training-step latency unless the space names others)."""
    return list(search.pareto_costs or ["latency_train_ms"])


COST_NAMES = ("params", "flops_per_token", "state_bytes", "latency_train_ms", "latency_prefill_ms",
              "latency_decode_ms", "peak_memory_bytes", "flops_train_step")


@dataclass(frozen=True)
class Space:
    file: str
    search: SearchConfig
    template: Any  # the located `spec:` mapping
    budgets: dict = field(default_factory=dict)


def is_dist(value) -> bool:
    return isinstance(value, dict) and bool(value) and next(iter(value)) in DISTRIBUTIONS


def options(dist) -> list:
    """The options of a choice or per_layer distribution (the values of a labelled choice)."""
    args = next(iter(dist.values()))
    return list(args.values()) if isinstance(args, dict) else list(args)


def _check_dist(value, loc: Loc) -> None:
    kind = next(iter(value))
    allowed = {kind, "step"} if kind == "int" else {kind, "name"} if kind == "choice" else {kind}
    if set(value) - allowed:
        raise SpecError(loc, f"a '{kind}' distribution takes no other key (got {sorted(set(value) - {kind})})")
    args = value[kind]
    if kind == "choice" and ("name" in value) != isinstance(args, dict):
        raise SpecError(loc, "a named choice needs labelled options {label: value, ...}, and labelled options a "
                             "'name'")
    if kind == "choice" and "name" in value and not isinstance(value["name"], str):
        raise SpecError(loc_of(value, "name", loc), f"expected a parameter name, got {value['name']!r}")
    if isinstance(args, dict) and kind == "choice":
        if not args:
            raise SpecError(loc_of(value, kind, loc), "'choice' needs at least one option")
        return
    if not isinstance(args, list) or not args:
        raise SpecError(loc_of(value, kind, loc), f"'{kind}' needs a non-empty list")
    if kind in ("int", "float", "log"):
        if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise SpecError(loc_of(value, kind, loc), f"'{kind}' needs [low, high] numbers")
        if args[0] > args[1]:
            raise SpecError(loc_of(value, kind, loc), f"low {args[0]} is above high {args[1]}")
        if kind == "log" and args[0] <= 0:
            raise SpecError(loc_of(value, kind, loc), "'log' needs a positive low end")
        if kind == "int" and not all(isinstance(a, int) for a in args):
            raise SpecError(loc_of(value, kind, loc), "'int' needs integer ends")


def _walk_check(value, loc: Loc) -> None:
    """Validate every distribution in the template up front, so a bad space fails before any trial."""
    if is_dist(value):
        _check_dist(value, loc)
        args = value[next(iter(value))]
        for i, c in (args.items() if isinstance(args, dict) else enumerate(args)):
            _walk_check(c, loc_of(args, i, loc))
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk_check(v, loc_of(value, k, loc))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk_check(v, loc_of(value, i, loc))


def _check_costs(cfg: SearchConfig, raw: dict, sloc: Loc) -> None:
    """`weights` a mapping {cost name: number}, `pareto_costs` a list of cost names, each where given."""
    wloc, ploc = loc_of(raw, "weights", sloc), loc_of(raw, "pareto_costs", sloc)
    if cfg.weights is not None:
        if not isinstance(cfg.weights, dict):
            raise SpecError(wloc, f"expected a mapping {{cost name: weight}}, got {cfg.weights!r}")
        for key, weight in cfg.weights.items():
            kloc = loc_of(raw["weights"], key, wloc)
            if key not in COST_NAMES:
                raise unknown(kloc, "cost", key, COST_NAMES)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise SpecError(kloc, f"expected a number (the cost's weight), got {weight!r}")
    if cfg.pareto_costs is not None:
        if not isinstance(cfg.pareto_costs, list):
            raise SpecError(ploc, f"expected a list of cost names, got {cfg.pareto_costs!r}")
        for key in cfg.pareto_costs:
            if not isinstance(key, str) or key not in COST_NAMES:
                raise unknown(ploc, "cost", key, COST_NAMES)


def load_space(path) -> Space:
    doc = load_file(path)
    root = getattr(doc, "loc", Loc(str(path), 1))
    if not isinstance(doc, dict):
        raise SpecError(root, "expected a mapping with 'search' and 'spec'")
    for k in doc:
        if k not in ("search", "spec"):
            raise unknown(loc_of(doc, k, root), "key", k, ("search", "spec"))
    if "spec" not in doc:
        raise SpecError(root, "missing required key 'spec' (the architecture template)")
    sloc = loc_of(doc, "search", root)
    raw = doc.get("search") or {}
    if not isinstance(raw, dict):
        raise SpecError(sloc, "expected a mapping")
    cfg = coerce.coerce(SearchConfig, raw, sloc, {k: loc_of(raw, k, sloc) for k in raw}, what="key")
    bkey, given = _budgets_key(cfg, raw, sloc)
    bloc = loc_of(raw, bkey, sloc)
    if given is not None and not isinstance(given, dict):
        raise SpecError(bloc, "expected a mapping {cpu: {...}, gpu: {...}, NAME: {...}}")
    budgets = {}
    for name, value in (given or {}).items():
        ploc = loc_of(raw[bkey], name, bloc)
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
            raise SpecError(ploc, f"a budget's name is a word (letters, digits, '_', '-'), got {name!r}")
        if not isinstance(value, dict):
            raise SpecError(ploc, "expected a mapping of budget fields")
        budgets[name] = coerce.coerce(Budget, value, ploc, {k: loc_of(value, k, ploc) for k in value}, what="key")
        if budgets[name].spec is not None:
            _walk_check(budgets[name].spec, loc_of(value, "spec", ploc))
    _check_costs(cfg, raw, sloc)
    if cfg.decode_context == 0 and "latency_decode_ms" in [*(cfg.weights or {}), *(cfg.pareto_costs or [])]:
        raise SpecError(loc_of(raw, "decode_context", sloc), "is 0 (decode not measured), but 'latency_decode_ms' "
                                                             "is a cost: drop one")
    template = doc["spec"]
    _walk_check(template, loc_of(doc, "spec", root))
    named: dict = {}
    _check_named(template, loc_of(doc, "spec", root), named)
    for name, p in budgets.items():
        if p.spec is not None:
            _check_named(p.spec, loc_of(raw[bkey][name], "spec", sloc), named)
        _check_budget(p, raw[bkey][name], loc_of(raw[bkey], name, sloc))
    if cfg.baselines is not None:
        check_baselines(cfg.baselines, loc_of(raw, "baselines", sloc))
    if cfg.lr is not None:
        _check_lr(cfg.lr, loc_of(raw, "lr", sloc))
    if cfg.retrain is not None:
        _check_retrain(cfg.retrain, loc_of(raw, "retrain", sloc))
    space = Space(str(path), cfg, template, budgets)
    for name, p in budgets.items():
        _check_grid_in_range(space, p, loc_of(raw[bkey][name], "baseline_lr_grid", sloc))
    return space


def _budgets_key(cfg: SearchConfig, raw: dict, sloc: Loc) -> tuple[str, Any]:
    """`budgets`, or its former name `profiles` (which the torch profiler's `archsearch profile` made ambiguous)."""
    if cfg.budgets is not None and cfg.profiles is not None:
        raise SpecError(loc_of(raw, "profiles", sloc), "is the former name of 'budgets': give only 'budgets'")
    return ("profiles", cfg.profiles) if cfg.profiles is not None else ("budgets", cfg.budgets)


def _check_grid_in_range(space: Space, budget: Budget, loc: Loc) -> None:
    """A baseline records the rate it trained best at as its `lr` parameter, for the sampler to learn from: every rate
    of its grid must lie in the searched range."""
    dist = lr_distribution(space, budget)
    for v in (budget.baseline_lr_grid or []) if dist is not None else []:
        if not dist.low <= v <= dist.high:
            raise SpecError(loc, f"rate {v:g} lies outside the searched lr range [{dist.low:g}, {dist.high:g}]: the "
                                 "sampler could not learn from a baseline trained at it")


def _check_lr(lr, loc: Loc) -> None:
    if isinstance(lr, dict) and set(lr) == {"grid"}:
        grid = lr["grid"]
        if not isinstance(grid, list) or not grid or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in grid):
            raise SpecError(loc_of(lr, "grid", loc), "'grid' needs a non-empty list of positive learning rates")
    elif isinstance(lr, dict):
        _walk_check(lr, loc)
        if not is_dist(lr):
            raise SpecError(loc, f"expected a number, a distribution or {{grid: [...]}}, got keys {sorted(lr)}")
    elif not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0:
        raise SpecError(loc, f"expected a positive learning rate, a distribution or {{grid: [...]}}, got {lr!r}")


def _check_named(value, loc: Loc, seen: dict) -> None:
    """Choices that share a `name` are one parameter: they must offer the same labels."""
    if is_dist(value) and "name" in value:
        labels = list(value["choice"])
        first = seen.setdefault(value["name"], (labels, loc))
        if first[0] != labels:
            raise SpecError(loc, f"choice '{value['name']}' offers {labels} here but {first[0]} at {first[1]}: "
                                 "choices with one name need the same labels in the same order")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        _check_named(v, loc_of(value, k, loc), seen)


def _check_budget(p: Budget, raw, loc: Loc) -> None:
    if p.train_seconds is not None and not p.train_seconds > 0:
        raise SpecError(loc_of(raw, "train_seconds", loc), f"must be > 0, got {p.train_seconds}")
    if p.fidelity is not None:
        floc = loc_of(raw, "fidelity", loc)
        f = p.fidelity
        if not isinstance(f, dict) or not {"trials", "factor"} <= set(f) <= {"trials", "factor", "min_rank"}:
            raise SpecError(floc, "expected {trials: N, factor: F, min_rank: R (optional)}: N trials re-trained F "
                                  "times longer, and the Spearman correlation R the screen must reach to be used")
        r = f.get("min_rank", 0.5)
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1:
            raise SpecError(loc_of(f, "min_rank", floc), f"needs a rank correlation in (0, 1], got {r!r}")
        if not isinstance(f["trials"], int) or isinstance(f["trials"], bool) or f["trials"] < 3:
            raise SpecError(loc_of(f, "trials", floc), f"needs a whole number >= 3 (for a rank correlation), got "
                                                       f"{f['trials']!r}")
        if isinstance(f["factor"], bool) or not isinstance(f["factor"], (int, float)) or f["factor"] <= 1:
            raise SpecError(loc_of(f, "factor", floc), f"needs a number > 1, got {f['factor']!r}")
    if p.lr is not None:
        _check_lr(p.lr, loc_of(raw, "lr", loc))
    if p.retrain is not None:
        _check_retrain(p.retrain, loc_of(raw, "retrain", loc))
    if p.baseline_params is not None and not isinstance(p.baseline_params, dict):
        raise SpecError(loc_of(raw, "baseline_params", loc), "expected a mapping {parameter: value}")
    if p.baseline_lr_grid is not None:
        _check_lr({"grid": p.baseline_lr_grid}, loc_of(raw, "baseline_lr_grid", loc))


RETRAIN_KEYS = ("top_k", "seeds", "verdict_seeds")


def retrain_settings(space: "Space", budget: Budget | None = None) -> tuple[int, int, int]:
    """(top_k, seeds, verdict_seeds) of the re-training after the search: the top k trials and each family's best get
    `seeds` fresh seeds, the verdict's pairs `verdict_seeds` (the selecting run is never one of them). The budget's
    `retrain` replaces the search section's."""
    r = (budget.retrain if budget is not None and budget.retrain is not None else space.search.retrain) or {}
    return int(r.get("top_k", 3)), int(r.get("seeds", 3)), int(r.get("verdict_seeds", 5))


def _check_retrain(value, loc: Loc) -> None:
    if not isinstance(value, dict):
        raise SpecError(loc, "expected a mapping {top_k: N, seeds: N}")
    for k, v in value.items():
        if k not in RETRAIN_KEYS:
            raise unknown(loc_of(value, k, loc), "key", k, RETRAIN_KEYS)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise SpecError(loc_of(value, k, loc), f"expected a whole number >= 0, got {v!r}")


def lr_setting(space: Space, budget: Budget | None = None):
    """The learning rate as the budget (else the search section) gives it: a number, a distribution or a grid."""
    return budget.lr if budget is not None and budget.lr is not None else space.search.lr


def lr_distribution(space: Space, budget: Budget | None = None):
    """The Optuna distribution a sampled `lr` is recorded under (as Sampler.value asks for it), or None."""
    from optuna.distributions import FloatDistribution

    lr = lr_setting(space, budget)
    if not is_dist(lr) or next(iter(lr)) not in ("float", "log"):
        return None
    kind, (low, high) = next(iter(lr.items()))
    return FloatDistribution(float(low), float(high), log=kind == "log")
