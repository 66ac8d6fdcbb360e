"""Baselines: the architectures a study enqueues before sampling (each pure family, listed hybrids), at fixed
parameters the entry names and the middle of every other range, so that they share width and rate; an entry says
what its size is matched to (inner width, decode state), and the report repeats it."""
from __future__ import annotations

from ..errors import Loc, SpecError
from ..yamlloc import loc_of


def baseline_entry(entry) -> tuple[str | list, dict]:
    """(mixers, fixed parameters) of one `baselines` entry: a name, a list of names (one per layer) or
    {mixers: name or list, params: {parameter: value}, matched: "what its size is matched to"}."""
    if isinstance(entry, dict):
        return entry["mixers"], dict(entry.get("params") or {})
    return entry, {}


def baseline_matched(entry) -> str | None:
    """What the entry says its size is matched to (e.g. "inner width = d_model"), for the report."""
    return entry.get("matched") if isinstance(entry, dict) else None


def baseline_label(entry) -> str:
    mixers, params = baseline_entry(entry)
    label = mixers if isinstance(mixers, str) else "+".join(mixers)
    return label + "".join(f" {k}={v}" for k, v in params.items())


def check_baselines(value, loc: Loc) -> None:
    if not isinstance(value, list):
        raise SpecError(loc, "expected a list of baselines")
    for i, entry in enumerate(value):
        eloc = loc_of(value, i, loc)
        if isinstance(entry, dict):
            if "mixers" not in entry or set(entry) - {"mixers", "params", "matched"}:
                raise SpecError(eloc, "expected {mixers: NAME or [NAME, ...], params: {parameter: value}, matched: "
                                      "TEXT}")
            if not isinstance(entry.get("matched", ""), str):
                raise SpecError(loc_of(entry, "matched", eloc), "expected a sentence saying what the size matches")
            if not isinstance(entry.get("params") or {}, dict):
                raise SpecError(loc_of(entry, "params", eloc), "expected a mapping {parameter: value}")
            entry, eloc = entry["mixers"], loc_of(entry, "mixers", eloc)
        names = [entry] if isinstance(entry, str) else entry
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise SpecError(eloc, "expected a mixer name or a non-empty list of them (one per layer)")


class CentreTrial:
    """Stands in for an Optuna trial and answers every suggestion with the middle of its range (the geometric middle
    on a log scale, the middle option of a choice), unless `fixed` names the parameter. Used to place the baselines
    at the space's size: the same width and depth for every family."""

    def __init__(self, fixed: dict | None = None):
        self.fixed, self.params = dict(fixed or {}), {}
        self.outside: dict[str, object] = {}  # fixed values the space's distribution does not contain

    def _keep(self, name, value, contains):
        if name in self.fixed and not contains(self.fixed[name]):
            self.outside[name] = self.fixed[name]
        value = self.fixed.get(name, value)
        self.params[name] = value
        return value

    def suggest_int(self, name, low, high, step=1, log=False):
        return self._keep(name, low + ((high - low) // step // 2) * step, range(low, high + 1, step).__contains__)

    def suggest_float(self, name, low, high, log=False):
        return self._keep(name, (low * high) ** 0.5 if log else (low + high) / 2, lambda v: low <= v <= high)

    def suggest_categorical(self, name, choices):
        return self._keep(name, choices[(len(choices) - 1) // 2], lambda v: v in choices)
