"""results.basis: the (card, training loop, step form) a ladder report's GPU-seconds stand on, when runs or
re-timings were measured on several."""
from types import SimpleNamespace

from optuna.trial import TrialState

from archsearch.ladder.results import Cell, basis

H200, H100 = "NVIDIA H200", "NVIDIA H100 80GB HBM3"


def _runs(cells: dict) -> list:
    """(cell, trial, record) of finished runs: cells {"family/rung": [(card, loop or None[, form]), …]}."""
    out = []
    for key, runs in cells.items():
        family, rung = key.split("/")
        cell = Cell(family, rung, 1, 1, 1, False)
        for card, loop, *form in runs:
            attrs = {"card": card, "form": form[0] if form else "graph", **({"loop": loop} if loop else {})}
            out.append((cell, SimpleNamespace(state=TrialState.COMPLETE, user_attrs=attrs), attrs))
    return out


def _again(cells: list, card: str, loop: str = "overlapped", at: float | None = None, form: str = "graph") -> dict:
    return {key: {"tokens_per_s": 1.0, "card": card, "loop": loop, "form": form, **({"time": at} if at else {})}
            for key in cells}


def test_the_way_that_times_the_most_cells_and_a_tie_goes_to_the_re_timing():
    ours = _runs({"a/2m": [(H200, None)] * 2, "b/2m": [(H200, None)], "a/6m": [(H200, None), (H100, "overlapped")]})
    assert basis(ours, {}) == (H200, "waited", "graph")  # two cells timed wholly on the H200 by the older loop
    # one cell re-timed by the current loop: its way sets the axis, though the waiting loop times more cells
    assert basis(ours, _again(["a/6m"], H100)) == (H100, "overlapped", "graph")
    # every cell re-timed on the H100: as many cells as any pair (all), and the newer measure
    assert basis(ours, _again(["a/2m", "b/2m", "a/6m"], H100)) == (H100, "overlapped", "graph")
    assert basis([], {}) is None


def test_a_tie_between_re_timings_goes_to_the_latest_and_is_the_same_every_time():
    ours = _runs({"a/2m": [(H200, "overlapped", "graph")], "b/2m": [(H100, "overlapped", "graph")]})
    # each cell re-timed on the other's card: both pairs time both cells, once each by a re-timing
    later_on_h100 = {**_again(["b/2m"], H200, at=1.0), **_again(["a/2m"], H100, at=2.0)}
    assert basis(ours, later_on_h100) == (H100, "overlapped", "graph")
    later_on_h200 = {**_again(["b/2m"], H200, at=3.0), **_again(["a/2m"], H100, at=2.0)}
    assert basis(ours, later_on_h200) == (H200, "overlapped", "graph")
    undated = {**_again(["b/2m"], H200), **_again(["a/2m"], H100)}  # re-timings from before they kept a time
    assert basis(ours, undated) == (H100, "overlapped", "graph")  # by name: the same whatever the hash seed


def test_two_step_forms_on_one_card_and_loop_are_two_time_axes():
    """A rung trained compiled beside rungs trained graphed only: its GPU-seconds are not on their axis until the
    lower rungs are re-timed compiled (`archsearch retime --compile`)."""
    ours = _runs({"a/2m": [(H100, "overlapped")], "b/2m": [(H100, "overlapped")],
                  "a/20m": [(H100, "overlapped", "compile+graph")]})
    assert basis(ours, {}) == (H100, "overlapped", "graph")
    compiled = _again(["a/2m", "b/2m"], H100, form="compile+graph", at=1.0)
    assert basis(ours, compiled) == (H100, "overlapped", "compile+graph")


def test_the_current_loop_sets_the_axis_before_more_cells_of_a_loop_that_idled_the_gpu():
    """Two cells re-timed compiled have replaced their graphed re-timings: the runs' own waiting-loop records then time
    more cells than any overlapped way, and must not become the axis again."""
    ours = _runs({f"{f}/2m": [(H200, None)] for f in "abc"})
    again = {**_again(["a/2m"], H100), **_again(["b/2m", "c/2m"], H100, form="compile+graph")}
    assert basis(ours, again) == (H100, "overlapped", "compile+graph")
    assert basis(ours, {}) == (H200, "waited", "graph")  # nothing timed by the current loop: the waiting one
