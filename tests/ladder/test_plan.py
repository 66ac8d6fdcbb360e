"""The ladder's plan, pure: which runs it wants given the finished ones."""
import textwrap

import pytest

from archsearch.errors import SpecError
from archsearch.ladder.config import load_ladder
from archsearch.ladder.plan import Done, Job, best_rate, dropped, rates_of, wanted

LADDER = """
ladder:
  name: t
  lr_grid: [1.0e-3, 3.0e-3, 1.0e-2]
  seeds: 2
  drop_behind: 1.5
  rungs:
    a: {params: 100}
    b: {params: 300, rates: around}
    c: {params: 900, rates: around}
families:
  x: {spec: {model: {d_model: 8}}, rungs: {a: {}, b: {}, c: {}}}
  y: {spec: {model: {d_model: 8}}, rungs: {a: {}, b: {}}}
"""


def _ladder(tmp_path, text=LADDER):
    path = tmp_path / "l.yaml"
    path.write_text(textwrap.dedent(text))
    return load_ladder(path)


def _finish(done, jobs, ppl):
    for j in jobs:
        done[j.key] = Done(j, ppl(j))


def test_grid_first_then_seeds_at_the_best_rate_then_around_the_choice(tmp_path):
    lad = _ladder(tmp_path)
    done = {}
    first = wanted(lad, done)
    assert [(j.family, j.rung, j.lr, j.phase) for j in first] == [
        ("x", "a", 1e-3, "grid"), ("x", "a", 3e-3, "grid"), ("x", "a", 1e-2, "grid"),
        ("y", "a", 1e-3, "grid"), ("y", "a", 3e-3, "grid"), ("y", "a", 1e-2, "grid")]
    _finish(done, first, lambda j: {1e-3: 30.0, 3e-3: 20.0, 1e-2: 25.0}[j.lr])
    nxt = [j for j in wanted(lad, done) if j.key not in done]
    seeds = [j for j in nxt if j.phase == "seeds"]
    assert {(j.family, j.lr, j.seed) for j in seeds} == {("x", 3e-3, 1), ("x", 3e-3, 2), ("y", 3e-3, 1), ("y", 3e-3, 2)}
    assert nxt.index(seeds[0]) < min(nxt.index(j) for j in nxt if j.rung == "b")  # a rung's seeds before the next rung
    # rung b: the choice of a and the neighbour a scored better (25 above against 30 below)
    assert rates_of(lad, done, "x", "b") == [3e-3, 1e-2]


def test_around_follows_the_evidence(tmp_path):
    lad = _ladder(tmp_path)
    done = {}
    _finish(done, [j for j in wanted(lad, done)], lambda j: {1e-3: 25.0, 3e-3: 20.0, 1e-2: 30.0}[j.lr])
    assert rates_of(lad, done, "x", "b") == [1e-3, 3e-3]  # a scored the rate below its choice better
    # a rate that failed below counts as worse: the other side
    failed_up = {**done, **{k: Done(d.job, None) for k, d in done.items() if d.job.lr == 1e-3}}
    assert rates_of(lad, failed_up, "x", "b") == [3e-3, 1e-2]
    # b measured one side of its choice only, so c follows the ladder's trend:
    # b kept a's rate (the top of what it tried): c looks above
    kept = dict(done)
    _finish(kept, [j for j in wanted(lad, kept) if j.rung == "b" and j.phase == "grid"],
            lambda j: 10.0 if j.lr == 3e-3 else 12.0)
    assert best_rate(lad, kept, "x", "b") == 3e-3 and rates_of(lad, kept, "x", "c") == [3e-3, 1e-2]
    # b went down: c goes on down, one grid step beyond the grid's end
    fell = dict(done)
    _finish(fell, [j for j in wanted(lad, fell) if j.rung == "b" and j.phase == "grid"],
            lambda j: 10.0 if j.lr == 1e-3 else 12.0)
    assert rates_of(lad, fell, "x", "c") == [0.0003162, 1e-3]


def test_a_family_far_behind_or_failed_climbs_no_further(tmp_path):
    lad = _ladder(tmp_path)
    done = {}
    _finish(done, wanted(lad, done), lambda j: (10.0 if j.family == "x" else 16.0) if j.lr == 3e-3 else None)
    assert all(j.family == "x" for j in wanted(lad, done) if j.rung == "b")
    assert "more than 1.5×" in dropped(lad, done)["y"]
    failed = {}
    _finish(failed, wanted(lad, failed), lambda j: None if j.family == "y" else 10.0)
    assert dropped(lad, failed)["y"] == "every rate failed at a"
    assert not [j for j in wanted(lad, failed) if j.family == "y" and j.phase == "seeds"]


def test_a_family_dropped_below_does_not_hold_up_the_rung_above(tmp_path):
    # y stops at a (far behind); at b only x is left, so x's grid at b decides whether x climbs to c
    lad = _ladder(tmp_path, LADDER.replace("rungs: {a: {}, b: {}}}", "rungs: {a: {}, b: {}, c: {}}}"))
    done = {}
    _finish(done, wanted(lad, done), lambda j: 10.0 if j.family == "x" else 16.0)
    _finish(done, [j for j in wanted(lad, done) if j.key not in done], lambda j: 10.0)
    assert {j.rung for j in wanted(lad, done) if j.family == "x"} == {"a", "b", "c"}
    assert "(16.00 against 1.5 × 10.00 = 15.00)" in dropped(lad, done)["y"]


def test_a_family_added_later_does_not_take_back_runs_made_above(tmp_path):
    """y climbed to b within 1.5× of x; z, added to the ladder afterwards and far better at a, would have dropped y
    there: y's finished runs at b stay wanted (and y is not reported dropped), where y had not yet climbed it stops."""
    lad = _ladder(tmp_path)
    done = {}
    _finish(done, wanted(lad, done), lambda j: 10.0 if j.family == "x" else 14.0)
    _finish(done, [j for j in wanted(lad, done) if j.key not in done], lambda j: 10.0)
    made = {k for k, d in done.items() if d.job.family == "y" and d.job.rung == "b"}
    assert made
    grown = _ladder(tmp_path, LADDER + "  z: {spec: {model: {d_model: 8}}, rungs: {a: {}, b: {}}}\n")
    _finish(done, [j for j in wanted(grown, done) if j.family == "z" and j.rung == "a"], lambda j: 5.0)
    assert made <= {j.key for j in wanted(grown, done)} and "y" not in dropped(grown, done)
    fresh = {k: d for k, d in done.items() if k not in made}  # the same ladder before y ran at b: y stops at a
    assert not [j for j in wanted(grown, fresh) if j.family == "y" and j.rung == "b"]
    assert "more than 1.5×" in dropped(grown, fresh)["y"]


def test_a_rung_waits_for_every_familys_grid_when_dropping_is_on(tmp_path):
    lad = _ladder(tmp_path)
    done = {}
    _finish(done, [j for j in wanted(lad, done) if j.family == "x"], lambda j: 10.0)
    assert not [j for j in wanted(lad, done) if j.rung == "b"]  # y has not finished its grid at a


def test_a_best_rate_at_the_edge_adds_the_next_rate_beyond_it_up_to_extend_times(tmp_path):
    lad = _ladder(tmp_path, LADDER.replace("  seeds: 2\n", "  seeds: 2\n  extend: 2\n"))
    done = {}
    slope = lambda j: 1.0 / j.lr  # noqa: E731 (higher is better all the way up)
    _finish(done, [j for j in wanted(lad, done) if j.family == "x"], slope)
    assert rates_of(lad, done, "x", "a") == [1e-3, 3e-3, 1e-2, 0.03162]
    assert best_rate(lad, done, "x", "a") is None  # no seeds until the added rate has run
    assert not [j for j in wanted(lad, done) if j.family == "x" and j.phase == "seeds"]
    _finish(done, [j for j in wanted(lad, done) if j.family == "x" and j.key not in done], slope)
    assert rates_of(lad, done, "x", "a") == [1e-3, 3e-3, 1e-2, 0.03162, 0.1]  # at most `extend` added
    _finish(done, [j for j in wanted(lad, done) if j.family == "x" and j.key not in done and j.phase == "grid"],
            lambda j: 5.0 if j.lr == 0.03162 else 1.0 / j.lr + (50 if j.lr == 0.1 else 0))
    assert best_rate(lad, done, "x", "a") == 0.03162  # bracketed now: the seeds follow it
    assert {j.lr for j in wanted(lad, done) if j.family == "x" and j.phase == "seeds" and j.rung == "a"} == {0.03162}
    # the lowest edge extends downwards; an interior best adds nothing
    low = {}
    _finish(low, [j for j in wanted(lad, low) if j.family == "y"], lambda j: j.lr)
    assert rates_of(lad, low, "y", "a") == [0.0003162, 1e-3, 3e-3, 1e-2]
    assert rates_of(_ladder(tmp_path), low, "y", "a") == [1e-3, 3e-3, 1e-2]  # extend defaults to 0


def test_every_familys_first_rates_come_before_the_rates_an_edge_adds(tmp_path):
    """A ladder paid in short calls compares every family at its first rates soonest: x's best at its top edge adds
    a rate, which waits behind y's first rates although x comes first in the file."""
    lad = _ladder(tmp_path, LADDER.replace("  seeds: 2\n", "  seeds: 2\n  extend: 1\n"))
    done = {}
    _finish(done, [j for j in wanted(lad, done) if j.family == "x" and j.phase == "grid"], lambda j: 1.0 / j.lr)
    todo = [(j.family, j.lr) for j in wanted(lad, done) if j.key not in done]
    assert todo[:4] == [("y", 1e-3), ("y", 3e-3), ("y", 1e-2), ("x", 0.03162)]


FINALISTS = """
ladder:
  name: t
  lr_grid: [1.0e-3, 3.0e-3, 1.0e-2]
  seeds: 2
  rungs:
    a: {params: 100, finalists: ROUNDS}
families:
  pam_a: {spec: {model: {d_model: 8}}, rungs: {a: {}}}
  pam_b: {spec: {model: {d_model: 8}}, rungs: {a: {}}}
  free_a: {spec: {model: {d_model: 8}}, rungs: {a: {}}}
  free_b: {spec: {model: {d_model: 8}}, rungs: {a: {}}}
"""
# each family's validation perplexity by rate: pam_a best at the top edge, pam_b at the top edge too but behind, free_a
# best at the bottom edge, free_b in the middle; the rates beyond the edges keep each slope going
SLOPES = {"pam_a": lambda lr: 20 - 100 * lr, "pam_b": lambda lr: 30 - 100 * lr, "free_a": lambda lr: 15 + 100 * lr,
          "free_b": lambda lr: 16 + abs(lr - 3e-3) * 100}


def _finalists(tmp_path, rounds=1):
    from dataclasses import replace

    lad = _ladder(tmp_path, FINALISTS.replace("ROUNDS", str(rounds)))
    return replace(lad, pam_cells=frozenset({"pam_a/a", "pam_b/a"}))


def _grid(lad, done):
    todo = [j for j in wanted(lad, done) if j.key not in done and j.phase == "grid"]
    _finish(done, todo, lambda j: SLOPES[j.family](j.lr))
    return todo


def test_the_best_of_each_side_at_an_edge_adds_the_next_rate_once_the_rungs_rates_have_run(tmp_path):
    lad, done = _finalists(tmp_path), {}
    first = [j for j in wanted(lad, done) if j.phase == "grid"]
    _finish(done, [j for j in first if j.family != "free_b"], lambda j: SLOPES[j.family](j.lr))
    # free_b has not run: no family is extended yet, and none seeds (its choice may still change)
    assert all(rates_of(lad, done, f, "a") == [1e-3, 3e-3, 1e-2] for f in SLOPES)
    assert best_rate(lad, done, "pam_a", "a") is None and not [j for j in wanted(lad, done) if j.phase == "seeds"]
    _grid(lad, done)
    # the two finalists at an edge go beyond it; pam_b (at an edge, but not its side's best) and free_b do not
    assert rates_of(lad, done, "pam_a", "a") == [1e-3, 3e-3, 1e-2, 0.03162]
    assert rates_of(lad, done, "free_a", "a") == [0.0003162, 1e-3, 3e-3, 1e-2]
    assert rates_of(lad, done, "pam_b", "a") == rates_of(lad, done, "free_b", "a") == [1e-3, 3e-3, 1e-2]
    assert not [j for j in wanted(lad, done) if j.phase == "seeds"]  # the seeds wait for the added rates
    assert sorted(j.key for j in _grid(lad, done)) == ["free_a/a/lr=0.0003162/seed=0", "pam_a/a/lr=0.03162/seed=0"]
    # one round: still at the edge, they go no further, and every family seeds at its final choice
    assert rates_of(lad, done, "pam_a", "a") == [1e-3, 3e-3, 1e-2, 0.03162]
    assert {(j.family, j.lr) for j in wanted(lad, done) if j.phase == "seeds"} == {
        ("pam_a", 0.03162), ("pam_b", 1e-2), ("free_a", 0.0003162), ("free_b", 3e-3)}


def test_a_rungs_seeds_start_with_its_answer_pair_so_the_answer_is_decided_first(tmp_path):
    """The best PAM-containing (pam_a) and PAM-free (free_a) family seed before the others, whatever the file order;
    without knowing which families hold PAM, the file order stands."""
    from dataclasses import replace

    lad, done = _finalists(tmp_path), {}
    while _grid(lad, done):
        pass
    seeds = [j.family for j in wanted(lad, done) if j.phase == "seeds"]
    assert seeds == ["pam_a", "free_a", "pam_a", "free_a", "pam_b", "pam_b", "free_b", "free_b"]  # the pair by turns
    flipped = replace(lad, pam_cells=frozenset({"free_a/a", "free_b/a"}))  # the sides swapped: the same pair
    assert [j.family for j in wanted(flipped, done) if j.phase == "seeds"][:4] == seeds[:4]
    lad = replace(_ladder(tmp_path, FINALISTS.replace("ROUNDS", "0")), pam_cells=None)
    _grid(lad, done := {})
    assert [j.family for j in wanted(lad, done) if j.phase == "seeds"][::2] == ["pam_a", "pam_b", "free_a", "free_b"]


def test_a_runner_up_within_the_margin_of_its_sides_best_is_a_finalist_too(tmp_path):
    """free_b (16.0 at 3e-3, in the middle) stays; free_c, 2% behind free_a and at an edge, tries beyond it with
    finalists_within 0.03, not with 0.01; pam_b (10 behind pam_a) never."""
    from dataclasses import replace

    text = FINALISTS.replace("  free_b:", "  free_c: {spec: {model: {d_model: 8}}, rungs: {a: {}}}\n  free_b:")
    SLOPES["free_c"] = lambda lr: 15.4 + 100 * lr  # best at 1e-3: 15.5, 2% behind free_a's 15.1
    try:
        for within, extended in ((0.03, True), (0.01, False)):
            lad = _ladder(tmp_path, text.replace("finalists: ROUNDS", f"finalists: 1, finalists_within: {within}"))
            lad, done = replace(lad, pam_cells=frozenset({"pam_a/a", "pam_b/a"})), {}
            while _grid(lad, done):
                pass
            assert (rates_of(lad, done, "free_c", "a")[0] == 0.0003162) == extended
            assert rates_of(lad, done, "free_a", "a")[0] == 0.0003162 and len(rates_of(lad, done, "pam_b", "a")) == 3
    finally:
        del SLOPES["free_c"]


def test_finalists_rounds_replay_from_the_finished_runs_and_need_the_sides(tmp_path):
    lad, done = _finalists(tmp_path, rounds=2), {}
    while _grid(lad, done):
        pass
    assert rates_of(lad, done, "pam_a", "a") == [1e-3, 3e-3, 1e-2, 0.03162, 0.1]
    assert rates_of(lad, done, "free_a", "a") == [0.0001, 0.0003162, 1e-3, 3e-3, 1e-2]
    assert best_rate(lad, done, "free_a", "a") == 0.0001
    from dataclasses import replace

    with pytest.raises(ValueError, match="the plan needs to know which families hold a PAM layer"):
        wanted(replace(lad, pam_cells=None), done)


@pytest.mark.parametrize("drop, ppl", [
    ("  drop_behind: 1.5\n", lambda j: 50.0 if j.family == "y" else 10.0 + j.lr),  # y behind at a
    ("", lambda j: None if j.family == "y" else 10.0 + j.lr),  # every rate of y failed at a
])
def test_a_family_stopped_two_rungs_below_holds_up_no_rung_above(tmp_path, drop, ppl):
    """y stops at a: it never reaches b, nor c. Counted as reached at c (it had not stopped at b, which it never
    ran), it once left c's finalists waiting for y's rates for ever, with no seeds; and any rung two above a
    `drop_behind` stop waited the same for the rung's best."""
    from dataclasses import replace

    text = LADDER.replace("  drop_behind: 1.5\n", drop).replace("    c: {params: 900, rates: around}",
                                                                 "    c: {params: 900, rates: around, finalists: 1}")
    lad = replace(_ladder(tmp_path, text.replace("rungs: {a: {}, b: {}}}", "rungs: {a: {}, b: {}, c: {}}}")),
                  pam_cells=frozenset({"x/a", "x/b", "x/c"}))
    done = {}
    while todo := [j for j in wanted(lad, done) if j.key not in done]:
        _finish(done, todo, ppl)
    assert not [k for k in done if k.startswith("y/b") or k.startswith("y/c")]
    best = best_rate(lad, done, "x", "c")
    assert best is not None and sorted(k for k in done if k.startswith("x/c/") and not k.endswith("seed=0")) == \
        [f"x/c/lr={best:.4g}/seed={s}" for s in (1, 2)]


@pytest.mark.parametrize("change, message", [
    ("    b: {params: 300, rates: around}\n", None),
    ("    b: {params: 50, rates: around}\n", "rungs go from small to large"),
    ("    b: {params: 300, rates: sometimes}\n", "rates must be one of"),
    ("    b: {params: 300, rates: around, extend: -1}\n", "rung 'b' extend must be a whole number"),
    ("    b: {params: 300, rates: around, finalists: 1.5}\n", "rung 'b' finalists must be a whole number"),
    ("    b: {params: 300, rates: around, finalists_within: 1}\n", "rung 'b' finalists_within must be a fraction"),
])
def test_rung_errors(tmp_path, change, message):
    text = LADDER.replace("    b: {params: 300, rates: around}\n", change)
    if message is None:
        _ladder(tmp_path, text)
        return
    with pytest.raises(SpecError, match=message):
        _ladder(tmp_path, text)


@pytest.mark.parametrize("old, new, message", [
    ("rungs: {a: {}, b: {}}}", "rungs: {b: {}}}", "must climb from the lowest rung"),
    ("rungs: {a: {}, b: {}}}", "rungs: {a: {}, z: {}}}", "no rung 'z'"),
    ("  y: {spec: {model: {d_model: 8}}, ", "  y: {file: nothere.yaml, ", "no such spec file"),
    ("  seeds: 2\n", "  seeds: 2\n  ratios: [[x, w]]\n", "not a pair of family names"),
    ("  seeds: 2\n", "  seeds: 2\n  speed: 3\n", "unknown key 'speed'"),
    ("  seeds: 2\n", "  seeds: 2\n  ratios: [[x, y]]\n  published: {x / y: {5M: 2.0}}\n", "needs 'source'"),
    ("  seeds: 2\n", "  seeds: 2\n  ratios: [[x, y]]\n  published: {source: s, y / x: {5M: 2.0}}\n",
     "'y / x' is not one of ladder.ratios \\(x / y\\)"),
    ("  seeds: 2\n", "  seeds: 2\n  ratios: [[x, y]]\n  published: {source: s, x / y: {5M: big}}\n",
     "ladder.published.x / y.5M must be a number"),
    ("  lr_grid: [1.0e-3, 3.0e-3, 1.0e-2]\n", "  lr_grid: []\n", "non-empty list"),
])
def test_family_and_ladder_errors_name_the_place(tmp_path, old, new, message):
    with pytest.raises(SpecError, match=message) as e:
        _ladder(tmp_path, LADDER.replace(old, new))
    assert "l.yaml" in str(e.value)


def test_job_keys_are_stable():
    assert Job("x", "a", 0.0031622776, 3, "seeds").key == "x/a/lr=0.003162/seed=3"


def test_a_rungs_own_train_settings_reach_that_rungs_runs_only(tmp_path):
    from archsearch.ladder.specs import spec_doc
    lad = _ladder(tmp_path, LADDER.replace("    c: {params: 900, rates: around}\n",
                                           "    c: {params: 900, rates: around, train: {compile: true, evals: 2}}\n")
                  + "train: {evals: 4, cuda_graph: true}\n")
    assert spec_doc(lad, "x", "c", lr=1e-3)["train"] == {"evals": 2, "cuda_graph": True, "compile": True, "lr": 1e-3}
    assert spec_doc(lad, "x", "b", lr=1e-3)["train"] == {"evals": 4, "cuda_graph": True, "lr": 1e-3}
    with pytest.raises(SpecError, match="rung 'c' train must be a mapping"):
        _ladder(tmp_path, LADDER.replace("    c: {params: 900, rates: around}\n",
                                         "    c: {params: 900, rates: around, train: yes}\n"))
