"""The answer per rung of a ladder's report: the best PAM-containing family against the best PAM-free one (chosen
on validation), compared on the test split over fresh seeds at equal tokens per parameter, at equal non-embedding
size and at equal GPU time, each reading with its interval for seed noise."""
from __future__ import annotations

import math

from ..search.stats import excludes_zero, welch
from .fit import difference, neighbours, read_off, timing_margin
from .plan import climbs
from .results import Cell, best_of, line_of


def pm(c: Cell, key: str, digits: int = 2) -> str:
    n = len(c.values(key))
    if not n:
        return "–"
    sd = c.std(key)
    return f"{c.mean(key):.{digits}f}" + (f" ± {sd:.{digits}f}" if not math.isnan(sd) else "") + f" (n = {n})"


def answer(ladder, cells: dict, gone: dict, done: dict) -> list[str]:
    if not ladder.seeds:
        return ["## The comparison", "",
                "This ladder trains no fresh seeds: it compares each family's validation perplexity at its best rate "
                "(the table below)" + (" and their ratios (at the end)" if ladder.ratios else "") +
                ", not a verdict with intervals."]
    lines = ["## The answer per rung", "",
             "Per rung, the family of lowest validation perplexity (at its chosen rate) among those with a PAM layer "
             "and among those without; both compared on the test split over fresh seeds (mean ± standard deviation; "
             "the rate-selecting run is not among them). Equal tokens: every family trains for the ladder's tokens "
             "per non-embedding parameter, so the two sides differ in size as much as their architectures make them. "
             "Equal size: the PAM family's test perplexity at the PAM-free one's non-embedding parameters (so at its "
             "tokens too), read off the PAM family's ladder line, or where that size lies outside the line's measured "
             "range, the PAM-free family's line read at the PAM family's size; always PAM-containing minus PAM-free. "
             "Equal GPU time: the PAM family's test perplexity at the PAM-free one's "
             "measured training GPU-seconds, read off the PAM family's ladder line (log–log between the seed means of "
             "its measured rungs; no extrapolation), or where those GPU-seconds lie outside the line's measured "
             "range, the PAM-free family's line read at the PAM family's GPU-seconds, as at equal size; the "
             "difference, always PAM-containing minus PAM-free, has a 95% "
             "interval for seed noise (the delta method, Student's t with Welch–Satterthwaite degrees of freedom; "
             "the noise in the measured GPU-seconds is not in it). Since the timings' own error is not in the "
             "interval, each reading says how far off they may be before its interval moves across 0 (includes 0 "
             "where it excluded it, or the reverse): the smallest relative error in the GPU-seconds the line is read "
             "at (the other side's) that does so, searched outwards in steps of 0.1% up to ±50% along the measured "
             "line, the crossing then found within its step. An error shared by every cell of the line read moves "
             "only the ratio of the two sides' timings, so it is the same factor inverted; an error in one of its "
             "cells alone also moves the line between its rungs.", "",
             "| rung | PAM-containing | test ppl | PAM-free | test ppl | at equal tokens per parameter: difference (95% "
             "interval, Welch) | "
             "at equal size: the line read, its test ppl there, difference (95% interval) | "
             "at equal GPU time: the line read, its test ppl there, difference (95% interval); the timing error "
             "that moves it across 0 |", "|---|---|---|---|---|---|---|---|"]
    for i, rung in enumerate(ladder.rungs):
        # a family that stopped below this rung, or failed at every rate here, is not in its race; one still
        # choosing its rate decides it
        here = [c for (f, r), c in cells.items() if r == rung.name and not (f in gone and not c.grid)]
        choosing = [c.family for c in here if c.best_lr is None and climbs(ladder, done, c.family, i) is not False]
        if choosing:
            lines.append(f"| {rung.name} | – | – | – | – | not decided: {', '.join(choosing)} still choosing a rate | – "
                         f"| – |")
            continue
        p, q = best_of([c for c in here if c.pam]), best_of([c for c in here if not c.pam])
        if not (p and q):
            cols = [f"{c.family} | {pm(c, 'test_ppl')}" if c else "– | –" for c in (p, q)]
            lines.append(f"| {rung.name} | {cols[0]} | {cols[1]} | not both measured | – | – |")
            continue
        w = welch(p.values("test_ppl"), q.values("test_ppl"))
        diff = (f"{w['diff']:+.2f} [{w['low']:+.2f}, {w['high']:+.2f}], {w['df']:.1f} df" if w else
                "fewer than 2 seeds a side")
        lines.append(f"| {rung.name} | {p.family} | {pm(p, 'test_ppl')} | {q.family} | {pm(q, 'test_ppl')} | "
                     f"{diff} | {_equal_size(ladder, cells, p, q)} | {_equal_time(ladder, cells, p, q)} |")
    return lines


def _equal_size(ladder, cells: dict, p: Cell, q: Cell) -> str:
    """PAM-containing minus PAM-free at one non-embedding size (see answer): the PAM family's line at the PAM-free
    one's size, else the PAM-free line at the PAM family's; seed noise only, as the equal-time reading's."""
    for side, size, other, sign in ((p, q.non_embedding, q, 1), (q, p.non_embedding, p, -1)):
        line = {c.non_embedding: c.values("test_ppl") for c in line_of(ladder, cells, side.family)}
        at = read_off(line, size)
        if at is None:
            continue
        d = difference(at, other.values("test_ppl"))
        head = f"{side.family} at {size / 1e6:.3g}M: {at['value']:.2f}"
        return f"{head}, no interval" if d is None else f"{head}: {_signed(d, sign)}"
    return "outside both lines' measured sizes"


def _signed(d: dict, sign: int) -> str:
    """A difference (the line read minus the other side) as PAM-containing minus PAM-free: negated, with its interval
    turned round, where the line read is the PAM-free family's (sign -1)."""
    low, high = (d["low"], d["high"]) if sign > 0 else (-d["high"], -d["low"])
    return f"{sign * d['diff']:+.2f} [{low:+.2f}, {high:+.2f}], {d['df']:.1f} df"


def _equal_time(ladder, cells: dict, p: Cell, q: Cell) -> str:
    """PAM-containing minus PAM-free at one training budget in GPU-seconds (see answer): the PAM family's line at the
    PAM-free one's GPU-seconds, else the PAM-free line at the PAM family's."""
    for side, other, sign in ((p, q, 1), (q, p, -1)):
        budget = other.mean("gpu_seconds")
        timed = _one_way(line_of(ladder, cells, side.family), other, budget)
        if timed == "mixed":
            return ("not read: GPU-seconds timed on two cards, by two training loops or in two step forms "
                    "(docs/ladder.md)")
        if timed is None:  # outside this line: the other one is tried
            continue
        at = read_off(timed, budget)
        head = f"{side.family} at {budget:.3g} s: {at['value']:.2f}"
        d = difference(at, other.values("test_ppl"))
        if d is None:
            return f"{head}, no interval"
        whose = "PAM-free" if sign > 0 else "PAM-containing"
        return f"{head}: {_signed(d, sign)}{_margin(timed, budget, other.values('test_ppl'), d, whose)}"
    return f"outside both lines' measured range ({q.mean('gpu_seconds'):.3g} s; {p.mean('gpu_seconds'):.3g} s)"


def _one_way(line: list[Cell], other: Cell, budget: float) -> dict | str | None:
    """The stretch of a ladder line that can be read at `other`'s GPU-seconds, as {GPU-seconds: test perplexities}:
    the cells around the budget timed as `other` was, on one card, by one training loop, in one step form (a loop
    that waited for every step idled the GPU an estimated 3 ms a step at 20M; compiling speeds a step up 1.8-3x, by
    each family's own factor). None where the budget lies outside the line; "mixed" where a cell the reading needs,
    or the budget itself (a mean over runs timed two ways), was timed otherwise."""
    if len(other.timings()) > 1:
        return "mixed"
    cells = sorted((c for c in line if c.values("test_ppl")), key=lambda c: c.mean("gpu_seconds"))
    xs = [c.mean("gpu_seconds") for c in cells]
    need = neighbours(xs, budget)
    if not need:
        return None
    lo, hi = xs.index(need[0]), xs.index(need[-1])
    if any(cells[i].timings() != other.timings() for i in range(lo, hi + 1)):
        return "mixed"
    while lo > 0 and cells[lo - 1].timings() == other.timings():  # the measured line around it, for the margin
        lo -= 1
    while hi < len(cells) - 1 and cells[hi + 1].timings() == other.timings():
        hi += 1
    return {xs[i]: cells[i].values("test_ppl") for i in range(lo, hi + 1)}


def _margin(points: dict, budget: float, values: list[float], d: dict | None, whose: str = "PAM-free") -> str:
    """What error in the timings would move an equal-time reading's interval across 0 (see answer): in `whose`
    side's GPU-seconds, those the line is read at."""
    if d is None:
        return ""
    e = timing_margin(points, budget, values)
    now = "excludes" if excludes_zero(d) else "includes"
    if e is None:  # searched up to ±50%, and only as far as the line reaches: say how far that was
        lo, hi = max(-0.5, min(points) / budget - 1), min(0.5, max(points) / budget - 1)
        return (f"; it {now} 0 for any error in the {whose} side's GPU-seconds from {lo:+.1%} to {hi:+.1%} "
                f"(the line's reach)")
    return (f"; {'includes' if now == 'excludes' else 'excludes'} 0 with the {whose} side's GPU-seconds "
            f"{abs(e):.1%} {'larger' if e > 0 else 'smaller'}")
