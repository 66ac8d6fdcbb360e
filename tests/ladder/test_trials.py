"""A run trained twice (two workers enqueued it): one trial speaks for it everywhere, the one whose weights are saved."""
from datetime import datetime, timedelta

import optuna
from optuna.trial import FrozenTrial, TrialState

from archsearch.ladder.config import load_ladder
from archsearch.ladder.plan import Job
from archsearch.ladder.results import gather
from archsearch.ladder.runner import finished
from archsearch.ladder.trials import job_trials, repeated_jobs

T0 = datetime(2026, 12, 4, 12, 0, 0)


def _add(study, job: Job, state, minutes: int, **attrs):
    end = T0 + timedelta(minutes=minutes)
    study.add_trial(FrozenTrial(number=0, state=state, value=attrs.get("val_ppl") if state == TrialState.COMPLETE
                                else None, values=None, datetime_start=end - timedelta(minutes=1),
                                datetime_complete=end, params={}, distributions={}, user_attrs={**job.attrs(), **attrs},
                                system_attrs={}, intermediate_values={}, trial_id=0))


LADDER = """
ladder:
  name: t
  lr_grid: [1.0e-3]
  seeds: 1
  rungs:
    a: {params: 100}
families:
  f: {spec: {model: {d_model: 8}}, rungs: {a: {}}}
"""


def test_the_trial_that_finished_last_speaks_for_a_run_trained_twice(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    grid, seed = Job("f", "a", 1e-3, 0, "grid"), Job("f", "a", 1e-3, 1, "seeds")
    _add(study, grid, TrialState.COMPLETE, 20, val_ppl=30.0)  # lower number, finished later: its weights are saved
    _add(study, grid, TrialState.COMPLETE, 10, val_ppl=40.0)
    _add(study, seed, TrialState.COMPLETE, 30, val_ppl=31.0, test_ppl=32.0)
    _add(study, seed, TrialState.FAIL, 40)  # a later duplicate that failed does not undo a finished run
    _add(study, seed, TrialState.COMPLETE, 35, val_ppl=31.5, test_ppl=33.0)
    trials = study.get_trials(deepcopy=False)
    chosen = job_trials(trials)
    assert chosen[grid.key].user_attrs["val_ppl"] == 30.0 and chosen[seed.key].user_attrs["test_ppl"] == 33.0
    assert finished(study)[grid.key].val_ppl == 30.0
    assert repeated_jobs(trials) == {grid.key: 2, seed.key: 2}
    (tmp_path / "l.yaml").write_text(LADDER)
    study.set_user_attr("sizes", {"f/a": {"non_embedding": 100, "params": 120, "tokens": 1000, "mixers": []}})
    cell = gather(load_ladder(tmp_path / "l.yaml"), study, finished(study))[("f", "a")]
    assert cell.best_val == 30.0 and cell.values("test_ppl") == [33.0]  # counted once, not twice
