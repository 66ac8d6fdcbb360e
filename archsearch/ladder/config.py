"""A scaling ladder as YAML → typed, frozen data (no torch). The format is documented in docs/ladder.md.

    ladder: {name, seed, tokens_per_param | tokens, lr_grid, around, extend, finalists, finalists_within, seeds,
             tolerance, drop_behind, ratios, published,
             rungs: {NAME: {params: TARGET, rates: grid | around, extend, finalists, finalists_within, train: {...}}}}
    task: {...}    # every family's task (the spec's own task section is replaced)
    train: {...}   # laid onto every family's train section; tokens, lr and seed are the ladder's
    families: {NAME: {spec: {...} | file: PATH, rungs: {RUNG: {overrides}}}}
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import Loc, SpecError
from ..yamlloc import LDict, load_file, loc_of

RATES = ("grid", "around")


@dataclass(frozen=True)
class Rung:
    name: str
    params: float  # target non-embedding parameters
    rates: str  # grid: the whole lr_grid; around: the rate the rung below chose and its grid neighbour(s)
    extend: int  # times a best rate at the edge of those tried adds the next rate beyond it
    # rounds in which, once the rung's grids have run, the best PAM-containing and the best PAM-free family, each whose
    # best rate is at an edge, add the next rate beyond it (the two the report's answer compares)
    finalists: int = 0
    finalists_within: float = 0.0  # and every family of a side within this fraction of the side's best
    train: Mapping[str, Any] = field(default_factory=dict)  # laid onto the ladder's train settings at this rung


@dataclass(frozen=True)
class Family:
    name: str
    spec: Mapping[str, Any]  # the family's spec document (plain YAML data)
    rungs: Mapping[str, Mapping[str, Any]]  # rung name → overrides laid onto the spec
    loc: Loc


@dataclass(frozen=True)
class Ladder:
    name: str
    file: str
    seed: int
    tokens_per_param: float
    tokens: int | None  # a fixed budget for every run instead (the paper's comparison at equal tokens)
    lr_grid: tuple[float, ...]
    around: int  # rates an `around` rung trains: 2 (the rung below's and the neighbour it scored better) or 3
    seeds: int  # fresh seeds at each family's best rate, scored on the test split
    tolerance: float  # allowed relative distance of a family's non-embedding size from its rung's target
    drop_behind: float | None  # a family this many times the rung's best validation ppl climbs no further
    rungs: tuple[Rung, ...]
    families: tuple[Family, ...]
    ratios: tuple[tuple[str, str], ...]  # (family, family): the report's perplexity ratios per rung
    task: Mapping[str, Any]
    train: Mapping[str, Any]
    # published ratios the report prints beside its own: (source, {"a / b": {size label: ratio}})
    published: tuple[str, Mapping[str, Mapping[str, float]]] | None = None
    # "family/rung" whose built spec holds a PAM layer (specs.with_sides: a rung's finalists are the best of each
    # side); None until known
    pam_cells: frozenset[str] | None = None

    def rung(self, name: str) -> Rung:
        return next(r for r in self.rungs if r.name == name)

    def index(self, rung: str) -> int:
        return [r.name for r in self.rungs].index(rung)

    def family(self, name: str) -> Family:
        return next(f for f in self.families if f.name == name)

    def grid_ratio(self) -> float:
        """The grid's step (log-spaced rates): an `around` rung's neighbours are this factor away."""
        g = self.lr_grid
        return math.exp((math.log(g[-1]) - math.log(g[0])) / (len(g) - 1)) if len(g) > 1 else 3.0


def _mapping(value, loc: Loc, what: str) -> LDict | dict:
    if not isinstance(value, dict):
        raise SpecError(loc, f"{what} must be a mapping, got {type(value).__name__}")
    return value


def _only(m: dict, keys: tuple, loc: Loc, what: str) -> None:
    for k in m:
        if k not in keys:
            raise SpecError(loc_of(m, k, loc), f"unknown key '{k}' in {what}; expected one of: {', '.join(keys)}")


def _number(value, loc: Loc, what: str, lo: float = 0.0) -> float:
    if isinstance(value, str):  # YAML 1.1 reads 2.0e6 (no sign in the exponent) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > lo:
        raise SpecError(loc, f"{what} must be a number above {lo:g}, got {value!r}")
    return float(value)


def _count(value, loc: Loc, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(loc, f"{what} must be a whole number ≥ 0, got {value!r}")
    return value


def _fraction(value, loc: Loc, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise SpecError(loc, f"{what} must be a fraction in [0, 1), got {value!r}")
    return float(value)


def _rungs(value, loc: Loc, extend: int, finalists: int, within: float) -> tuple[Rung, ...]:
    m = _mapping(value, loc, "ladder.rungs")
    if not m:
        raise SpecError(loc, "ladder.rungs is empty: name at least one rung, e.g. {2m: {params: 2.0e6}}")
    out, last = [], 0.0
    for name, r in m.items():
        rl = loc_of(m, name, loc)
        r = _mapping(r, rl, f"rung '{name}'")
        _only(r, ("params", "rates", "extend", "finalists", "finalists_within", "train"), rl, f"rung '{name}'")
        if "params" not in r:
            raise SpecError(rl, f"rung '{name}' needs params (its target of non-embedding parameters)")
        params = _number(r["params"], loc_of(r, "params", rl), f"rung '{name}' params")
        if params <= last:
            raise SpecError(rl, f"rung '{name}': rungs go from small to large ({params:,.0f} after {last:,.0f})")
        rates = r.get("rates", "grid")
        if rates not in RATES or (rates == "around" and not out):
            raise SpecError(loc_of(r, "rates", rl), f"rung '{name}' rates must be one of {RATES}"
                            + ("" if out else " (the lowest rung has no rung below to be around: grid)"))
        more = _count(r.get("extend", extend), loc_of(r, "extend", rl), f"rung '{name}' extend")
        final = _count(r.get("finalists", finalists), loc_of(r, "finalists", rl), f"rung '{name}' finalists")
        near = _fraction(r.get("finalists_within", within), loc_of(r, "finalists_within", rl),
                         f"rung '{name}' finalists_within")
        train = _mapping(r.get("train") or {}, loc_of(r, "train", rl), f"rung '{name}' train")
        out.append(Rung(str(name), params, rates, more, final, near, dict(train)))
        last = params
    return tuple(out)


def _families(value, loc: Loc, base: Path, rungs: tuple[Rung, ...]) -> tuple[Family, ...]:
    m = _mapping(value, loc, "families")
    if not m:
        raise SpecError(loc, "families is empty: name at least one family with its spec and rungs")
    names = [r.name for r in rungs]
    out = []
    for name, f in m.items():
        fl = loc_of(m, name, loc)
        f = _mapping(f, fl, f"family '{name}'")
        _only(f, ("spec", "file", "rungs"), fl, f"family '{name}'")
        if ("spec" in f) == ("file" in f):
            raise SpecError(fl, f"family '{name}' needs exactly one of spec (inline) or file (a spec YAML)")
        if "file" in f:
            path = base / str(f["file"])
            if not path.is_file():
                raise SpecError(loc_of(f, "file", fl), f"family '{name}': no such spec file {path}")
            spec = load_file(path)
        else:
            spec = _mapping(f["spec"], loc_of(f, "spec", fl), f"family '{name}' spec")
        overrides = _mapping(f.get("rungs") or {}, loc_of(f, "rungs", fl), f"family '{name}' rungs")
        if not overrides:
            raise SpecError(fl, f"family '{name}' has no rungs: give each rung it climbs its overrides ({{}} for none)")
        for rung, o in overrides.items():
            if rung not in names:
                raise SpecError(loc_of(overrides, rung, fl), f"family '{name}': no rung '{rung}' in ladder.rungs "
                                                             f"({', '.join(names)})")
            _mapping(o or {}, loc_of(overrides, rung, fl), f"family '{name}' rung '{rung}'")
        climbed = [n for n in names if n in overrides]
        if climbed != names[:len(climbed)]:
            raise SpecError(fl, f"family '{name}' must climb from the lowest rung without gaps ({', '.join(names)})")
        out.append(Family(str(name), spec, {k: (v or {}) for k, v in overrides.items()}, fl))
    return tuple(out)


def _ratios(value, loc: Loc, names: list[str]) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        raise SpecError(loc, "ladder.ratios must be a list of [family, family] pairs")
    out = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2 and all(p in names for p in pair)):
            raise SpecError(loc, f"ladder.ratios: {pair!r} is not a pair of family names ({', '.join(names)})")
        out.append((str(pair[0]), str(pair[1])))
    return tuple(out)


def _published(value, loc: Loc, ratios) -> tuple[str, dict] | None:
    """`published: {source: TEXT, "a / b": {SIZE: RATIO, ...}, ...}`, each "a / b" one of `ratios` (perplexity), or
    "a / b tokens/s" for a published speed ratio."""
    if value is None:
        return None
    value = _mapping(value, loc, "ladder.published")
    if not isinstance(value.get("source"), str):
        raise SpecError(loc, "ladder.published needs 'source': where its numbers were published")
    heads = [f"{a} / {b}" for a, b in ratios]
    out = {}
    for key, row in value.items():
        if key == "source":
            continue
        if key.removesuffix(" tokens/s") not in heads:
            raise SpecError(loc_of(value, key, loc), f"ladder.published: '{key}' is not one of ladder.ratios "
                                                     f"({', '.join(heads) or 'none'}), nor one with ' tokens/s'")
        row = _mapping(row, loc_of(value, key, loc), f"ladder.published.{key}")
        out[key] = {str(k): _number(v, loc_of(row, k, loc), f"ladder.published.{key}.{k}") for k, v in row.items()}
    return value["source"], out


def load_ladder(path) -> Ladder:
    path = Path(path)
    doc = load_file(path)
    root = Loc(str(path), 1, "")
    doc = _mapping(doc, root, "a ladder file")
    _only(doc, ("ladder", "task", "train", "families"), root, "a ladder file")
    if "ladder" not in doc:
        raise SpecError(root, "a ladder file needs a 'ladder' section (see docs/ladder.md)")
    ll = loc_of(doc, "ladder", root)
    lad = _mapping(doc["ladder"], ll, "ladder")
    keys = ("name", "seed", "tokens_per_param", "tokens", "lr_grid", "around", "extend", "finalists",
            "finalists_within", "seeds", "tolerance", "drop_behind", "rungs", "ratios", "published")
    _only(lad, keys, ll, "ladder")
    for k in ("name", "lr_grid", "rungs"):
        if k not in lad:
            raise SpecError(ll, f"ladder needs '{k}'")
    grid = lad["lr_grid"]
    if not isinstance(grid, list) or not grid:
        raise SpecError(loc_of(lad, "lr_grid", ll), "ladder.lr_grid must be a non-empty list of learning rates")
    grid = tuple(sorted(_number(g, loc_of(lad, "lr_grid", ll), "a learning rate") for g in grid))
    seeds = _count(lad.get("seeds", 3), loc_of(lad, "seeds", ll), "ladder.seeds")
    extend = _count(lad.get("extend", 0), loc_of(lad, "extend", ll), "ladder.extend")
    finalists = _count(lad.get("finalists", 0), loc_of(lad, "finalists", ll), "ladder.finalists")
    within = _fraction(lad.get("finalists_within", 0), loc_of(lad, "finalists_within", ll), "ladder.finalists_within")
    around = lad.get("around", 2)
    if around not in (2, 3):
        raise SpecError(loc_of(lad, "around", ll), f"ladder.around must be 2 or 3, got {around!r}")
    drop = lad.get("drop_behind")
    rungs = _rungs(lad["rungs"], loc_of(lad, "rungs", ll), extend, finalists, within)
    for k in ("task", "train"):
        _mapping(doc.get(k) or {}, loc_of(doc, k, root), k)
    if "families" not in doc:
        raise SpecError(root, "a ladder file needs a 'families' section")
    families = _families(doc["families"], loc_of(doc, "families", root), path.parent, rungs)
    ratios = _ratios(lad.get("ratios") or [], loc_of(lad, "ratios", ll), [f.name for f in families])
    return Ladder(
        name=str(lad["name"]), file=str(path), seed=int(lad.get("seed", 0)),
        tokens_per_param=_number(lad.get("tokens_per_param", 20), loc_of(lad, "tokens_per_param", ll),
                                 "ladder.tokens_per_param"),
        tokens=None if lad.get("tokens") is None else int(_number(lad["tokens"], loc_of(lad, "tokens", ll),
                                                                    "ladder.tokens")),
        lr_grid=grid, around=around, seeds=seeds,
        tolerance=_number(lad.get("tolerance", 0.2), loc_of(lad, "tolerance", ll), "ladder.tolerance"),
        drop_behind=None if drop is None else _number(drop, loc_of(lad, "drop_behind", ll), "ladder.drop_behind", 1.0),
        rungs=rungs, families=families, ratios=ratios, task=dict(doc.get("task") or {}),
        train=dict(doc.get("train") or {}),
        published=_published(lad.get("published"), loc_of(lad, "published", ll), ratios))


def is_ladder_file(path) -> bool:
    """Whether a YAML file is a ladder (top-level `ladder:`) rather than a search space (`search:`)."""
    try:
        doc = load_file(Path(path))
    except SpecError:
        return False
    return isinstance(doc, dict) and "ladder" in doc
