"""Which runs a ladder wants, given the runs finished so far (pure: no torch, no storage).

Per rung, from the lowest: each family trains at each of its rates with the ladder's seed (scored on validation; a
best rate at the edge of those adds the next rate beyond it, up to the rung's `extend` times), then at its best rate
with `seeds` fresh seeds (scored on the test split; the selecting run is not among them). An `around` rung's rates wait
for the family's choice at the rung below; `drop_behind` keeps a family that is far behind at a rung from climbing
further, which waits for the grid at that rung of every family that reached it. At a rung with `finalists`, once every
family's rates there have run, the best PAM-containing and the best PAM-free family (the pair the report's answer
compares), and any within `finalists_within` of its side's best, each whose best rate is at an edge, add the next rate
beyond it, for that many rounds; the rung's seeds wait until those rates have run, so that they follow the final
choice."""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import wraps

from .config import Ladder

PHASES = ("grid", "seeds")

# One question to the plan (wanted, best_rate, …) asks the same rung-wide questions many times over (whether each
# family reached a rung needs the rung's best; a rung's finalists need every family's rates): within one question,
# whose finished runs cannot change, each is answered once.
_scope = threading.local()


def _question(fn):
    """A public entry point: the memo below lives as long as the outermost call."""
    @wraps(fn)
    def call(*args, **kwargs):
        if getattr(_scope, "memo", None) is not None:
            return fn(*args, **kwargs)
        _scope.memo = {}
        try:
            return fn(*args, **kwargs)
        finally:
            _scope.memo = None
    return call


def _memo(fn):
    @wraps(fn)
    def call(ladder, done, *args):
        memo = getattr(_scope, "memo", None)
        if memo is None:
            return fn(ladder, done, *args)
        key = (fn.__name__, id(ladder), id(done), args)
        if key not in memo:
            memo[key] = fn(ladder, done, *args)
        return memo[key]
    return call


@dataclass(frozen=True)
class Job:
    family: str
    rung: str
    lr: float
    seed: int
    phase: str  # grid: selects the rate on validation; seeds: reported on the test split

    @property
    def key(self) -> str:
        return f"{self.family}/{self.rung}/lr={self.lr:.4g}/seed={self.seed}"

    def attrs(self) -> dict:
        return {"job": self.key, "family": self.family, "rung": self.rung, "lr": self.lr, "seed": self.seed,
                "phase": self.phase}


@dataclass(frozen=True)
class Done:
    """A finished run: its validation perplexity, or None when it failed (diverged, out of memory)."""

    job: Job
    val_ppl: float | None


def rate(x: float) -> float:
    """A learning rate as keys and specs write it: 4 significant digits."""
    return float(f"{x:.4g}")


@_question
def best_rate(ladder: Ladder, done: dict[str, Done], family: str, rung: str) -> float | None:
    """The rate of (family, rung) with the lowest validation perplexity, once all its rates have finished, and at a
    rung with finalists the rung's rounds too (None before, or when every one failed)."""
    rates = rates_of(ladder, done, family, rung)
    if rates is None or (ladder.rung(rung).finalists and not _rung_rates(ladder, done, rung)[1]):
        return None
    return _best_of(ladder, done, family, rung, rates)


def _best_of(ladder: Ladder, done: dict[str, Done], family: str, rung: str, rates: list[float]) -> float | None:
    runs = [done.get(Job(family, rung, lr, ladder.seed, "grid").key) for lr in rates]
    if any(r is None for r in runs):
        return None
    ok = [r for r in runs if r.val_ppl is not None and math.isfinite(r.val_ppl)]
    return min(ok, key=lambda r: r.val_ppl).job.lr if ok else None


@_question
def rates_of(ladder: Ladder, done: dict[str, Done], family: str, rung: str) -> list[float] | None:
    """The rates (family, rung) trains at, or None while they depend on a rung below that has not chosen yet. A best
    rate at the edge of those tried adds the next one beyond it (the rung's `extend` times at most), so that the
    chosen rate is a minimum the grid brackets, not the end of a slope; at a rung with finalists, so may the rung's
    best of each side."""
    here = _rung_rates(ladder, done, rung)[0] if ladder.rung(rung).finalists else {}
    return list(here[family]) if here.get(family) is not None else _own_rates(ladder, done, family, rung)


def _own_rates(ladder: Ladder, done: dict[str, Done], family: str, rung: str) -> list[float] | None:
    rates = _first_rates(ladder, done, family, rung)
    if rates is None:
        return None
    for _ in range(ladder.rung(rung).extend):
        best = _best_of(ladder, done, family, rung, rates)
        if best is None or len(rates) < 2 or best not in (rates[0], rates[-1]):
            break
        rates = sorted(rates + [_neighbour(ladder, best, +1 if best == rates[-1] else -1)])
    return rates


@_memo
def _rung_rates(ladder: Ladder, done: dict[str, Done], rung: str) -> tuple[dict[str, list[float] | None], bool]:
    """({family: its rates} for the families that reached the rung, whether its finalists' rounds are over). Each
    round waits for every rate so far; then the best family of each side (by validation at its best rate), and each
    within the rung's `finalists_within` of it, whose best rate is at an edge of its rates adds the next one beyond
    it. A round's choice depends only on the rounds before it, so replaying them from the finished runs gives the
    same rates."""
    if ladder.pam_cells is None:
        raise ValueError(f"rung '{rung}' has finalists: the plan needs to know which families hold a PAM layer "
                         "(specs.with_sides)")
    i = ladder.index(rung)
    here = [f.name for f in ladder.families if rung in f.rungs and reached(ladder, done, f.name, i)]
    rates = {f: _own_rates(ladder, done, f, rung) for f in here}

    def all_run():
        return all(r is not None and all(Job(f, rung, lr, ladder.seed, "grid").key in done for lr in r)
                   for f, r in rates.items())

    for _ in range(ladder.rung(rung).finalists):
        if not all_run():
            return rates, False
        grew = False
        for side in (True, False):
            best = {f: _best_of(ladder, done, f, rung, rates[f]) for f in here
                    if (f"{f}/{rung}" in ladder.pam_cells) == side}
            scored = [(done[Job(f, rung, lr, ladder.seed, "grid").key].val_ppl, f) for f, lr in best.items()
                      if lr is not None]
            if not scored:
                continue
            near = min(v for v, _ in scored) * (1 + ladder.rung(rung).finalists_within)
            for v, f in scored:
                lr, mine = best[f], rates[f]
                if v <= near and len(mine) >= 2 and lr in (mine[0], mine[-1]):
                    rates[f] = sorted(mine + [_neighbour(ladder, lr, +1 if lr == mine[-1] else -1)])
                    grew = True
        if not grew:
            break
    return rates, all_run()


def _first_rates(ladder: Ladder, done: dict[str, Done], family: str, rung: str) -> list[float] | None:
    r = ladder.rung(rung)
    if r.rates == "grid":
        return [rate(x) for x in ladder.lr_grid]
    i = ladder.index(rung)
    below = ladder.rungs[i - 1].name
    centre = best_rate(ladder, done, family, below)
    if centre is None:
        return None
    lower, upper = _neighbour(ladder, centre, -1), _neighbour(ladder, centre, +1)
    if ladder.around == 3:
        return [lower, rate(centre), upper]
    return sorted([rate(centre), upper if _looks_up(ladder, done, family, i, centre) else lower])


def _looks_up(ladder: Ladder, done: dict[str, Done], family: str, i: int, centre: float) -> bool:
    """The side an `around: 2` rung tries beside the rate chosen below: where the rung below measured both neighbours,
    the one it scored better (a 6M transformer at 8e-3 scored 25.9 at 4e-3 and 49.3 at 1.6e-2: going up would spend a
    run on a rate already seen to fail); else above if the rung below kept or raised the rate of the rung before it,
    below otherwise (as usual with size)."""
    below = ladder.rungs[i - 1].name
    ppl = [_val(ladder, done, family, below, _neighbour(ladder, centre, side)) for side in (-1, +1)]
    if None not in ppl:
        return ppl[1] < ppl[0]
    before = best_rate(ladder, done, family, ladder.rungs[i - 2].name) if i >= 2 else None
    return before is not None and centre >= before


def _val(ladder: Ladder, done: dict[str, Done], family: str, rung: str, lr: float) -> float | None:
    """A grid run's validation perplexity: None if it has not run, infinite if it failed (diverged)."""
    run = done.get(Job(family, rung, lr, ladder.seed, "grid").key)
    if run is None:
        return None
    return run.val_ppl if run.val_ppl is not None and math.isfinite(run.val_ppl) else math.inf


def _neighbour(ladder: Ladder, centre: float, side: int) -> float:
    """The grid's next rate above (+1) or below (−1) `centre`; beyond the grid's ends, whole grid steps from the
    nearer end (so that steps do not compound rounding)."""
    grid = [rate(x) for x in ladder.lr_grid]
    if centre in grid and 0 <= grid.index(centre) + side < len(grid):
        return grid[grid.index(centre) + side]
    end = grid[-1] if centre >= grid[-1] else grid[0]
    steps = round(math.log(centre / end) / math.log(ladder.grid_ratio()))
    return rate(end * ladder.grid_ratio() ** (steps + side))


def _finished_grid(ladder: Ladder, done: dict[str, Done], family: str, rung: str) -> bool:
    """Every rate of (family, rung) has run, and at a rung with finalists every round is over."""
    rates = rates_of(ladder, done, family, rung)
    if rates is None or not all(Job(family, rung, lr, ladder.seed, "grid").key in done for lr in rates):
        return False
    return not ladder.rung(rung).finalists or _rung_rates(ladder, done, rung)[1]


def _best_ppl(ladder: Ladder, done: dict[str, Done], family: str, rung: str) -> float | None:
    lr = best_rate(ladder, done, family, rung)
    return None if lr is None else done[Job(family, rung, lr, ladder.seed, "grid").key].val_ppl


@_question
def reached(ladder: Ladder, done: dict[str, Done], family: str, rung_index: int) -> bool:
    """Whether `family` has come up to rung_index, or may still (a family dropped at any rung below never trains
    there, so it does not hold up the rung's comparison)."""
    return rung_index == 0 or (reached(ladder, done, family, rung_index - 1) and
                               climbs(ladder, done, family, rung_index - 1) is not False)


@_question
@_memo
def climbs(ladder: Ladder, done: dict[str, Done], family: str, rung_index: int) -> bool | None:
    """Whether `family` goes on to the rung above rung_index: True, False (failed there, or behind by more than
    drop_behind), or None while that is not known yet."""
    rung = ladder.rungs[rung_index].name
    if not _finished_grid(ladder, done, family, rung):
        return None
    mine = _best_ppl(ladder, done, family, rung)
    if mine is None:
        return False
    if ladder.drop_behind is None or _ran_above(done, family, ladder, rung_index):
        return True  # a family added to the ladder since does not take back the runs this one made above
    best = _rung_best(ladder, done, rung_index)
    return None if best is None else mine <= ladder.drop_behind * best


def _ran_above(done: dict[str, Done], family: str, ladder: Ladder, rung_index: int) -> bool:
    """Whether `family` has finished a run at the rung above rung_index: it climbed when the rung's best allowed."""
    if rung_index + 1 >= len(ladder.rungs):
        return False
    above = ladder.rungs[rung_index + 1].name
    return any(d.job.family == family and d.job.rung == above for d in done.values())


@_memo
def _rung_best(ladder: Ladder, done: dict[str, Done], rung_index: int) -> float | None:
    """The best validation perplexity at a rung among the families that reached it, once all their grids finished."""
    rung = ladder.rungs[rung_index].name
    here = [f.name for f in ladder.families if rung in f.rungs and reached(ladder, done, f.name, rung_index)]
    if not all(_finished_grid(ladder, done, f, rung) for f in here):
        return None
    return min((p for p in (_best_ppl(ladder, done, f, rung) for f in here) if p is not None), default=None)


@_question
def wanted(ladder: Ladder, done: dict[str, Done]) -> list[Job]:
    """Every run the ladder wants now (finished ones included), in the order to run them: rung by rung, a rung's
    grids before its seeds, families in file order, except that every family's first rates come before the rates an
    edge adds (so a ladder paid in short calls has each family at its first rates soonest), and that a rung's seeds
    start with its answer pair (the best PAM-containing and the best PAM-free family by validation, where the ladder
    knows which hold PAM), a seed of each in turn: the report's answer for the rung waits on those seeds alone, so a
    ladder paid in short calls decides it first."""
    jobs = []
    for fam in ladder.families:
        for i, rung in enumerate(ladder.rungs):
            if rung.name not in fam.rungs or (i > 0 and not climbs(ladder, done, fam.name, i - 1)):
                break
            rates = rates_of(ladder, done, fam.name, rung.name)
            if rates is None:
                break
            jobs += [Job(fam.name, rung.name, lr, ladder.seed, "grid") for lr in rates]
            best = best_rate(ladder, done, fam.name, rung.name)
            if best is not None:
                jobs += [Job(fam.name, rung.name, best, ladder.seed + k, "seeds") for k in range(1, ladder.seeds + 1)]
    order = {f.name: n for n, f in enumerate(ladder.families)}
    pairs = {r.name: answer_pair(ladder, done, r.name) for r in ladder.rungs}

    def key(j: Job):
        first = j.phase == "seeds" and j.family in pairs[j.rung]  # seed by seed, so each side has 2 after 4 runs
        added = j.phase == "grid" and j.lr not in _first_rates(ladder, done, j.family, j.rung)  # beyond an edge
        return (ladder.index(j.rung), PHASES.index(j.phase), not first, j.seed if first else 0, added,
                order[j.family], j.lr, j.seed)
    return sorted(jobs, key=key)


@_question
def answer_pair(ladder: Ladder, done: dict[str, Done], rung: str) -> set[str]:
    """The rung's best PAM-containing and best PAM-free family by validation at its best rate, among the families
    whose rate is chosen (empty where the ladder does not know which hold PAM)."""
    if ladder.pam_cells is None:
        return set()
    best = {}
    for fam in ladder.families:
        ppl = _best_ppl(ladder, done, fam.name, rung) if rung in fam.rungs else None
        if ppl is not None and math.isfinite(ppl):
            side = f"{fam.name}/{rung}" in ladder.pam_cells
            if side not in best or ppl < best[side][0]:
                best[side] = (ppl, fam.name)
    return {name for _, name in best.values()}


@_question
def dropped(ladder: Ladder, done: dict[str, Done]) -> dict[str, str]:
    """{family: why it stopped below the top of its rungs} for the report."""
    out = {}
    for fam in ladder.families:
        for i, rung in enumerate(ladder.rungs[:-1]):
            above = ladder.rungs[i + 1].name
            if rung.name in fam.rungs and above in fam.rungs and climbs(ladder, done, fam.name, i) is False:
                mine = _best_ppl(ladder, done, fam.name, rung.name)
                best = _rung_best(ladder, done, i)
                out[fam.name] = (f"every rate failed at {rung.name}" if mine is None else
                                 f"more than {ladder.drop_behind:g}× the best validation perplexity at {rung.name} "
                                 f"({mine:.2f} against {ladder.drop_behind:g} × {best:.2f} = "
                                 f"{ladder.drop_behind * best:.2f})")
                break
    return out
