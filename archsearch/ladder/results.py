"""A ladder study's results gathered per (family, rung): the grid's validation perplexities, the chosen rate, and
the fresh seeds' test numbers and costs. Plain data for the report and its plots."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from optuna.trial import TrialState

from ..train import LOOP
from .config import Ladder
from .plan import best_rate, rate
from .retime import retimed, rung_forms, timing_of, with_form
from .specs import holds_pam
from .trials import job_trials


COSTS = ("gpu_seconds", "tokens_per_s", "train_flops", "train_seconds", "peak_memory_bytes")


@dataclass
class Cell:
    family: str
    rung: str
    non_embedding: int
    params: int
    tokens: int
    pam: bool  # the architecture holds a PAM layer
    grid: dict = field(default_factory=dict)  # lr → validation ppl (None: failed)
    best_lr: float | None = None
    seeds: list = field(default_factory=list)  # user attrs of the finished seed runs
    runs: list = field(default_factory=list)  # user attrs of every finished run (speed does not depend on the rate)
    basis: tuple | None = None  # the (card, loop, form) the study's GPU-seconds stand on (results.basis)

    @property
    def best_val(self) -> float | None:
        return None if self.best_lr is None else self.grid.get(self.best_lr)

    def values(self, key: str) -> list[float]:
        """`key` over the seed runs; for costs (the same architecture and shapes in every run), over all runs."""
        rows = self.runs if key in COSTS else self.seeds
        return [r[key] for r in rows if key in r]

    def chosen(self) -> dict | None:
        """The rate-selecting run at the chosen rate (its validation curve, its costs)."""
        return next((r for r in self.runs if r["phase"] == "grid" and r["lr"] == self.best_lr), None)

    def mean(self, key: str) -> float:
        v = self.values(key)
        return statistics.fmean(v) if v else math.nan

    def std(self, key: str) -> float:
        v = self.values(key)
        return statistics.stdev(v) if len(v) > 1 else math.nan

    def timings(self) -> set[tuple[str, str, str]]:
        """The (card, training loop, step form) that timed the cell's runs, as the report uses them (see `basis`)."""
        return {timing_of(r) for r in self.runs}

    @property
    def on_basis(self) -> bool:
        """Its GPU-seconds stand on the study's basis: comparable with every other such cell's."""
        return self.timings() == {self.basis}

    @property
    def edge(self) -> bool:
        """The chosen rate is the lowest or highest tried: a better one may lie outside."""
        tried = sorted(self.grid)
        return self.best_lr is not None and len(tried) > 1 and self.best_lr in (tried[0], tried[-1])


def gather(ladder: Ladder, study, done: dict) -> dict[tuple[str, str], Cell]:
    sizes = study.user_attrs.get("sizes") or {}
    cells: dict[tuple[str, str], Cell] = {}
    for fam in ladder.families:
        for rung in fam.rungs:
            s = sizes.get(f"{fam.name}/{rung}")
            if s:
                cells[(fam.name, rung)] = Cell(fam.name, rung, s["non_embedding"], s["params"], s["tokens"],
                                               holds_pam(s))
    forms = rung_forms(ladder)  # for the records from before they named their step form
    again = retimed(study, forms)
    ours = [(cells[key], t, with_form(t.user_attrs, forms, f"{key[0]}/{key[1]}"))
            for job, t in job_trials(study.get_trials(deepcopy=False)).items()
            if job in done and (key := (t.user_attrs.get("family"), t.user_attrs.get("rung"))) in cells]
    base = basis(ours, again)
    for cell in cells.values():
        cell.basis = base
    for cell, t, a in ours:
        entry = again.get(f"{cell.family}/{cell.rung}")
        if (t.state == TrialState.COMPLETE and timing_of(a) != base and entry
                and timing_of(entry) == base):  # `archsearch retime`'s figure, on the basis's card, loop and form
            a = {**a, "tokens_per_s": entry["tokens_per_s"], "gpu_seconds": a["tokens"] / entry["tokens_per_s"],
                 "loop": entry["loop"], "form": entry["form"], "card": entry["card"], "trained_on": a.get("card"),
                 "retimed": True}
        if t.state == TrialState.COMPLETE:
            cell.runs.append(dict(a))
        if a["phase"] == "grid":
            cell.grid[float(a["lr"])] = a.get("val_ppl") if t.state == TrialState.COMPLETE else None
        elif t.state == TrialState.COMPLETE:
            cell.seeds.append(dict(a))
    for cell in cells.values():
        cell.best_lr = best_rate(ladder, done, cell.family, cell.rung)
        # seeds run at an earlier choice (before a rate added beyond the grid's edge won) are not this rate's
        cell.seeds = sorted((r for r in cell.seeds if rate(r["lr"]) == cell.best_lr), key=lambda r: r["seed"])
    return cells


def basis(ours: list, again: dict) -> tuple[str, str, str] | None:
    """The (card, training loop, step form) the report's GPU-seconds stand on, GPU-seconds of two cards, two loops or
    two forms being incomparable: one timed by the trainer's current loop (train.LOOP) before one of a loop that left
    the GPU idle, then the triple ("pair" below) that times the most cells, a cell offering the one that timed all
    its finished runs and that of its `archsearch retime` figure; a tie goes to the one of more re-timings, then of
    the latest one (the newer measure), then to the first by name, so the report is the same every time. `ours`:
    (cell, trial, its record with its form); `again`: the re-timings, with theirs."""
    own: dict[str, set] = {}
    for cell, t, a in ours:
        if t.state == TrialState.COMPLETE:
            own.setdefault(f"{cell.family}/{cell.rung}", set()).add(timing_of(a))
    score: dict[tuple, list] = {}  # pair → [cells, re-timings, latest re-timing's time]
    for key, pairs in own.items():
        offers = set(pairs) if len(pairs) == 1 else set()
        if key in again:
            offers.add(timing_of(again[key]))
        for pair in offers:
            score.setdefault(pair, [0, 0, 0.0])[0] += 1
        if key in again:
            s = score[timing_of(again[key])]
            s[1] += 1
            s[2] = max(s[2], again[key].get("time", 0.0))
    return min(score, key=lambda pair: (pair[1] != LOOP, -score[pair][0], -score[pair][1], -score[pair][2], pair)) \
        if score else None


def best_of(cells: list[Cell]) -> Cell | None:
    """The cell of lowest validation perplexity at its chosen rate (selection never looks at the test split, nor
    waits for it: a winner whose seeds have not run yet shows no test numbers rather than ceding to the runner-up)."""
    rated = [c for c in cells if c.best_val is not None]
    return min(rated, key=lambda c: c.best_val) if rated else None


def complete(ladder: Ladder, c: Cell) -> bool:
    """All the cell's seed runs have finished: only such cells make a family's line (a partial mean would move)."""
    return 0 < ladder.seeds <= len(c.seeds)


def line_of(ladder: Ladder, cells: dict[tuple[str, str], Cell], family: str) -> list[Cell]:
    """A family's ladder line: its complete cells, smallest first."""
    return sorted((c for (f, _), c in cells.items() if f == family and complete(ladder, c)),
                  key=lambda c: c.non_embedding)
