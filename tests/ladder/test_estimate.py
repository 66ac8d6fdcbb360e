"""How long the ladder expects a run to take (what its time limit decides on), from the runs already finished in a
real Optuna study."""
import textwrap
from types import SimpleNamespace

import optuna
import pytest

from archsearch.ladder.config import load_ladder
from archsearch.ladder.plan import Job
from archsearch.ladder.runner import LadderRun

LADDER = """
ladder:
  name: t
  lr_grid: [1.0e-3, 3.0e-3]
  rungs:
    a: {params: 100}
    b: {params: 300}
    c: {params: 900, train: {compile: true}}
families:
  x: {spec: {model: {d_model: 8}}, rungs: {a: {}, b: {}, c: {}}}
  y: {spec: {model: {d_model: 8}}, rungs: {a: {}, b: {}, c: {}}}
"""
# forward FLOPs per token × tokens: y does twice x's work at every rung, and each rung 4 times the one below
SIZES = {f"{f}/{r}": {"flops_per_token": k * m, "tokens": 1000, "non_embedding": m}
         for f, k in (("x", 1), ("y", 2)) for r, m in (("a", 100), ("b", 400), ("c", 1600))}


@pytest.fixture
def run(tmp_path):
    """What LadderRun.estimate reads: the ladder, its study and its sizes."""
    (tmp_path / "l.yaml").write_text(textwrap.dedent(LADDER))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study()
    return SimpleNamespace(ladder=load_ladder(tmp_path / "l.yaml"), study=study, sizes=SIZES, card="cpu")


def _done(run, family, rung, seconds, card="cpu"):
    run.study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={
        "job": f"{family}/{rung}", "family": family, "rung": rung, "lr": 1e-3, "seed": 0, "phase": "grid",
        "wall_seconds": seconds, "card": card}))


def estimate(run, family, rung):
    return LadderRun.estimate(run, Job(family, rung, 1e-3, 0, "grid"))


def test_a_run_is_expected_to_take_what_its_like_took(run):
    assert estimate(run, "x", "a") is None  # nothing has run: unknown (the plan's next run then goes)
    _done(run, "x", "a", 10.0)
    assert estimate(run, "x", "b") == pytest.approx(40.0)  # the family's rung below, scaled by its work
    assert estimate(run, "y", "a") == pytest.approx(20.0)  # another family at the same rung, scaled
    _done(run, "x", "b", 30.0)
    _done(run, "y", "b", 50.0)
    assert estimate(run, "x", "b") == 30.0  # a run of the same family and rung: its time
    _done(run, "x", "b", 35.0)
    assert estimate(run, "x", "b") == 35.0  # the slowest of them


def test_a_rung_that_trains_differently_is_not_the_one_below_scaled(run):
    """c compiles: its time is nothing like b's scaled, so it is unknown until some family has run there; then the
    slowest peer, scaled, speaks for the others."""
    _done(run, "x", "b", 30.0)
    _done(run, "y", "b", 50.0)
    assert estimate(run, "x", "c") is None
    _done(run, "y", "c", 60.0)
    assert estimate(run, "x", "c") == pytest.approx(30.0)
    _done(run, "y", "b", 500.0)
    assert estimate(run, "x", "c") == pytest.approx(30.0)  # the rung below no longer counts


def test_runs_on_this_card_come_first(run):
    _done(run, "x", "a", 10.0, card="NVIDIA H200")
    assert estimate(run, "x", "a") == 10.0  # another card's: better than nothing
    assert estimate(run, "y", "a") == pytest.approx(20.0)
    _done(run, "y", "a", 30.0)  # this card's, at the same rung
    assert estimate(run, "x", "a") == pytest.approx(15.0)  # scaled from this card's peer, not the quicker card's run
