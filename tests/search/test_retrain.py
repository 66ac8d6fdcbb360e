"""Fairness re-training: which trials are chosen, how runs are shared out once (and again when a host is lost), and
the seed statistics."""
import time
import warnings

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from archsearch.search import retrain
from archsearch.search.recovery import counted, recover, retry_stale, superseded


def _study(rows):
    """rows: (value, mixers, state); each trial gets a user attr val_ppl = value."""
    study = optuna.create_study()
    for value, mixers, state in rows:
        done = state == TrialState.COMPLETE
        study.add_trial(create_trial(state=state, value=value if done else None,
                                     params={"x": value}, distributions={"x": FloatDistribution(0, 100)},
                                     user_attrs={"mixers": mixers, "val_ppl": value, "seed": 0}))
    return study


def test_top_k_then_the_best_of_each_family():
    study = _study([(5.0, ["pam", "pam"], TrialState.COMPLETE), (3.0, ["softmax_attention"], TrialState.COMPLETE),
                    (4.0, ["pam", "softmax_attention"], TrialState.COMPLETE), (1.0, ["pam"], TrialState.PRUNED),
                    (6.0, ["holographic"], TrialState.COMPLETE), (7.0, ["pam"], TrialState.COMPLETE)])
    assert [t.number for t in retrain.selected(study, 1)] == [1, 4, 2, 0]  # top-1, then holographic, hybrid, pam
    assert [t.number for t in retrain.selected(study, 2)] == [1, 2, 4, 0]


def test_a_familys_best_is_chosen_by_quality_not_by_the_weighted_objective():
    study = _study([(3.0, ["pam"], TrialState.COMPLETE), (4.0, ["pam"], TrialState.COMPLETE)])
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=5.0, params={"x": 5.0},
                                 distributions={"x": FloatDistribution(0, 100)},
                                 user_attrs={"mixers": ["pam"], "val_ppl": 1.0, "seed": 0}))  # slow, but the best ppl
    assert [t.number for t in retrain.selected(study, 1)] == [0, 2]


def test_runs_are_enqueued_once_and_claimed_once():
    seeds = optuna.create_study(study_name="s.seeds")
    assert retrain.enqueue(seeds, [(0, 1, 1.0), (0, 2, 1.0), (3, 1, 1.0)]) == 3
    assert retrain.enqueue(seeds, [(0, 1, 1.0), (0, 2, 1.0), (3, 1, 1.0), (3, 2, 1.0),
                                   (3, 1, 4.0)]) == 2  # only the new ones
    storage = seeds._storage
    job = seeds.get_trials(states=(TrialState.WAITING,))[0]
    assert storage.set_trial_state_values(job._trial_id, TrialState.RUNNING)
    assert not storage.set_trial_state_values(job._trial_id, TrialState.RUNNING)  # a second claim fails


def test_seed_statistics_are_the_fresh_seeds_test_numbers():
    study = _study([(10.0, ["pam"], TrialState.COMPLETE), (20.0, ["pam"], TrialState.COMPLETE)])
    seeds = optuna.create_study()
    for source, seed, ppl, scale in ((0, 1, 12.0, 1.0), (0, 2, 14.0, 1.0), (1, 1, 21.0, 1.0), (0, 0, 9.0, 4.0),
                                     (1, 0, 5.0, 1.0)):  # the last reuses trial 1's own seed: never counted
        seeds.add_trial(create_trial(state=TrialState.COMPLETE, value=ppl, user_attrs={
            "source": source, "seed": seed, "scale": scale, "val_ppl": ppl - 1, "test_ppl": ppl}))
    stats = retrain.seed_stats(study, seeds)
    # the search's own run (10.0, which selected the trial) and the fidelity run at 4x are not among them
    assert stats[0]["values"] == [12.0, 14.0] and stats[0]["mean"] == pytest.approx(13.0)
    assert stats[0]["std"] == pytest.approx(2 ** 0.5) and stats[0]["n"] == 2
    assert stats[1]["n"] == 1 and stats[1]["std"] != stats[1]["std"]  # one run: no spread (nan)


def test_the_verdicts_pairs_get_more_fresh_seeds(tmp_path):
    from types import SimpleNamespace as NS

    study = _study([(5.0, ["pam"], TrialState.COMPLETE), (3.0, ["softmax_attention"], TrialState.COMPLETE),
                    (4.0, ["linear_attention"], TrialState.COMPLETE)])
    study.set_user_attr("train_seconds", 3)  # iso-time: the equal-time pair is pam (0) against attention (1)
    space = NS(search=NS(seed=10, retrain={"top_k": 1, "seeds": 2, "verdict_seeds": 5}))
    wanted = retrain.jobs(study, space)
    by_trial = {n: sorted(s for t, s, _ in wanted if t == n) for n in (0, 1, 2)}
    assert by_trial == {0: [11, 12, 13, 14, 15], 1: [11, 12, 13, 14, 15], 2: [11, 12]}  # never seed 10, the search's


def test_a_retried_trial_no_longer_counts():
    study = _study([(1.0, ["pam"], TrialState.FAIL), (2.0, ["pam"], TrialState.COMPLETE)])
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=3.0, user_attrs={"retry_of": 0}))
    assert superseded(study.trials) == {0}
    assert [t.number for t in counted(study.trials)] == [1, 2]


def test_a_run_whose_host_stops_beating_is_queued_again(tmp_path, monkeypatch):
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=1,
                                         heartbeat_stale_trial_callback=retry_stale)
    seeds = optuna.create_study(study_name="s.seeds", storage=storage)
    retrain.enqueue(seeds, [(0, 1, 1.0)])
    seen = []

    def run_one(job, *args):  # outlasts the grace period, then its host is lost: the run never finishes
        time.sleep(2.5)
        seen.append(recover(seeds, storage))  # another host's recovery, while this host beats for the run

    monkeypatch.setattr(retrain, "_run_one", run_one)
    assert retrain.run_jobs(seeds, None, storage, None) == 1
    assert seen == [0]  # a beating run is left alone
    (lost,) = seeds.get_trials(states=(TrialState.RUNNING,))
    time.sleep(2.5)
    assert recover(seeds, storage) == 1
    assert seeds.trials[lost.number].state == TrialState.FAIL
    (again,) = seeds.get_trials(states=(TrialState.WAITING,))
    assert (again.user_attrs["source"], again.user_attrs["seed"], again.user_attrs["retry_of"]) == (0, 1, lost.number)
    assert retrain.enqueue(seeds, [(0, 1, 1.0)]) == 0  # not queued twice


def test_spearman_by_hand():
    assert retrain.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert retrain.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2, 3, 4) against (2, 1, 4, 3): d^2 sums to 4, so 1 - 6*4 / (4*15) = 0.6
    assert retrain.spearman([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
    # a tie takes the mean rank: (1.5, 1.5, 3) against (1, 2, 3) is Pearson's r of the ranks
    assert retrain.spearman([5, 5, 7], [1, 2, 3]) == pytest.approx(0.8660254, rel=1e-6)


def test_fidelity_spreads_over_the_ranking_and_pairs_the_budgets():
    study = _study([(float(v), ["pam"], TrialState.COMPLETE) for v in (9, 1, 5, 3, 7)])
    assert [t.user_attrs["val_ppl"] for t in retrain.spread(study, 3)] == [1.0, 5.0, 9.0]
    seeds = optuna.create_study()
    for source, ppl, scale in ((1, 0.5, 4.0), (2, 2.0, 4.0), (0, 3.0, 4.0), (0, 8.0, 1.0)):
        seeds.add_trial(create_trial(state=TrialState.COMPLETE, value=ppl,
                                     user_attrs={"source": source, "seed": 0, "scale": scale, "val_ppl": ppl}))
    factor, pairs = retrain.fidelity_pairs(study, seeds)
    assert factor == 4.0 and pairs == [(0, 9.0, 3.0), (1, 1.0, 0.5), (2, 5.0, 2.0)]  # the 1x run is a seed, not a pair


def test_the_screen_qualifies_only_with_every_fidelity_run_finished_and_rank_agreement_at_the_bar():
    from archsearch.search.families import Quality
    from archsearch.search.report import screen_qualifies
    study = _study([(float(v), ["pam"], TrialState.COMPLETE) for v in (1, 2, 3, 4)])
    seeds = optuna.create_study()
    q = Quality(study)
    assert screen_qualifies(study, seeds, q) == (None, "")  # no bar set: the report says nothing
    study.set_user_attr("fidelity_bar", {"min_rank": 0.8, "trials": 4, "factor": 4.0})

    def longer(source, ppl, scale=4.0, seed=retrain.FIDELITY_SEED):  # the search's seed (0) + the fidelity offset
        seeds.add_trial(create_trial(state=TrialState.COMPLETE, value=ppl, user_attrs={
            "source": source, "seed": seed, "scale": scale, "val_ppl": ppl}))

    for source, ppl in ((0, 0.5), (1, 1.0), (2, 2.5)):  # with 3 below: ranks (1, 2, 4, 3) against (1, 2, 3, 4)
        longer(source, ppl)
    longer(2, 2.5)  # the same trial re-trained twice (two hosts) counts once
    longer(3, 2.0, scale=2.0)  # a run at another factor is not one of the bar's
    longer(3, 2.0, seed=0)  # nor one at the search's own seed (it would share the screen's luck)
    ok, why = screen_qualifies(study, seeds, q)
    assert ok is False and why.startswith("3 of its 4 fidelity runs have finished")
    longer(3, 2.0)
    bar = ("Spearman ≥ 0.8 over 4 trials spread over the ranking, with the verdicts' pairs added, re-trained "
           "4× longer")
    assert screen_qualifies(study, seeds, q) == (True, f"ρ = 0.80 over 4 trials (the bar: {bar})")
    study.set_user_attr("fidelity_bar", {"min_rank": 0.9, "trials": 4, "factor": 4.0})
    assert screen_qualifies(study, seeds, q)[0] is False
    study.set_user_attr("fidelity_bar", {"min_rank": 0.8, "trials": 5, "factor": 4.0})
    assert screen_qualifies(study, seeds, q) == (False, "the search has 4 complete trials to re-train, fewer than 5 "
                                                        f"(the bar: {bar.replace('over 4', 'over 5')})")


def test_a_fidelity_run_that_diverged_ranks_last_rather_than_never_finishing():
    from archsearch.search.families import Quality
    from archsearch.search.report import screen_qualifies
    study = _study([(float(v), ["pam"], TrialState.COMPLETE) for v in (1, 2, 3)])
    study.set_user_attr("fidelity_bar", {"min_rank": 0.8, "trials": 3, "factor": 4.0})
    seeds = optuna.create_study()
    for source, state, ppl in ((0, TrialState.COMPLETE, 0.5), (1, TrialState.COMPLETE, 1.5), (2, TrialState.FAIL, None)):
        seeds.add_trial(create_trial(state=state, value=ppl, user_attrs={
            "source": source, "seed": retrain.FIDELITY_SEED, "scale": 4.0,
            **({"val_ppl": ppl} if ppl else {"failed_reason": "diverged: loss nan at step 9"})}))
    ok, why = screen_qualifies(study, seeds, Quality(study))  # the worst trial diverged: the worst at 4x too
    assert ok is True and why.startswith("ρ = 1.00 over 3 trials")


def test_the_fidelity_runs_include_the_verdicts_pair_and_use_a_seed_of_their_own():
    study = _study([(1.0, ["softmax_attention"], TrialState.COMPLETE), (1.1, ["pam"], TrialState.COMPLETE)]
                   + [(float(v), ["holographic"], TrialState.COMPLETE) for v in range(2, 9)])
    study.set_user_attr("train_seconds", 12)  # iso-time: the verdict's pair is the best with PAM and the best without
    budget = type("Budget", (), {"fidelity": {"trials": 3, "factor": 4.0}, "retrain": {"top_k": 0, "seeds": 0,
                                                                                    "verdict_seeds": 0}})()
    space = type("Space", (), {"search": type("Search", (), {"seed": 7, "retrain": None})()})()
    fidelity = [(n, seed) for n, seed, scale in retrain.jobs(study, space, budget) if scale == 4.0]
    # the spread: best (0), middle (4) and worst (8); and the verdicts' PAM side (1), a near-tie the spread misses
    assert sorted(fidelity) == [(0, 107), (1, 107), (4, 107), (8, 107)]


def test_a_queued_run_no_longer_wanted_is_dropped_and_a_failed_one_is_not_tried_again():
    seeds = optuna.create_study()
    retrain.enqueue(seeds, [(0, 1, 1.0), (1, 1, 1.0), (2, 100, 4.0)])
    first = seeds.ask()  # (0, 1): claimed and diverged
    seeds._storage.set_trial_user_attr(first._trial_id, "failed_reason", "diverged: loss nan")
    seeds.tell(first, state=TrialState.FAIL)
    assert retrain.enqueue(seeds, [(0, 1, 1.0), (1, 1, 1.0)]) == 0  # the ranking moved: (2, 100, 4) is no longer wanted
    assert [retrain.job_key(t) for t in seeds.get_trials(states=(TrialState.WAITING,))] == [(1, 1, 1.0)]
    assert retrain.failures(seeds) == {(0, 1, 1.0): "diverged: loss nan"}  # not the dropped run: it never ran
    assert retrain.enqueue(seeds, [(0, 1, 1.0), (1, 1, 1.0), (2, 100, 4.0)]) == 1  # wanted again: queued again


def test_an_interrupted_fidelity_run_is_retried_as_itself_at_its_longer_budget():
    seeds = optuna.create_study()
    seeds.add_trial(create_trial(state=TrialState.FAIL, user_attrs={
        "source": 3, "seed": 0, "scale": 4.0, "failed_reason": "interrupted"}))
    assert recover(seeds, seeds._storage) == 1
    (again,) = seeds.get_trials(states=(TrialState.WAITING,))
    assert retrain.job_key(again) == (3, 0, 4.0)  # not a 1x run at the search's own seed


def _timed(study, seconds: float, user_attrs: dict):
    """A finished trial that took `seconds` of wall time."""
    import datetime

    t = create_trial(state=TrialState.COMPLETE, value=1.0, params={"x": 1.0},
                     distributions={"x": FloatDistribution(0, 100)}, user_attrs=user_attrs)
    t.datetime_start = datetime.datetime(2026, 12, 5, 12, 0, 0)
    t.datetime_complete = t.datetime_start + datetime.timedelta(seconds=seconds)
    study.add_trial(t)


def test_a_re_training_runs_length_is_known_from_its_like():
    study = optuna.create_study()
    _timed(study, 30.0, {"mixers": ["pam"]})  # the search trial: 30 s
    seeds = optuna.create_study(study_name="s.seeds")
    retrain.enqueue(seeds, [(0, 1, 1.0), (0, 1, 4.0)])
    plain, longer = seeds.get_trials(states=(TrialState.WAITING,))
    assert retrain.estimator(study, seeds)(plain) == 30.0  # nothing re-trained yet: the source's time
    assert retrain.estimator(study, seeds)(longer) == 120.0  # times the scale
    _timed(seeds, 25.0, {retrain.SOURCE: 0, retrain.SEED: 2})
    _timed(seeds, 26.0, {retrain.SOURCE: 0, retrain.SEED: 3})
    assert retrain.estimator(study, seeds)(plain) == 26.0  # the longest finished run of its scale
    assert retrain.estimator(study, seeds)(longer) == 104.0  # ... stretched: closer than the search trial's 120
    _timed(seeds, 90.0, {retrain.SOURCE: 0, retrain.SEED: 4, retrain.SCALE: 4.0})
    assert retrain.estimator(study, seeds)(longer) == 90.0  # once one ran, its own time


def test_re_training_starts_no_run_past_the_commands_time_limit():
    study = optuna.create_study()
    _timed(study, 30.0, {"mixers": ["pam"]})
    seeds = optuna.create_study(study_name="s.seeds")
    retrain.enqueue(seeds, [(0, 1, 1.0), (0, 2, 1.0)])
    said = []
    # 20 s left, a run takes about 30: none starts (the objective is never asked), both stay queued for the next call
    assert retrain.run_jobs(seeds, study, seeds._storage, None, said.append, deadline=time.monotonic() + 20) == 0
    assert said == ["time limit: the next re-training run would need about 30 s, 20 s left; stopping here "
                    "(2 to go; the same command resumes)"]
    assert len(seeds.get_trials(states=(TrialState.WAITING,))) == 2


def test_re_training_workers_get_what_is_left_of_the_commands_limit(monkeypatch):
    from types import SimpleNamespace

    from archsearch.search import workers

    started = []
    monkeypatch.setattr(workers, "spawn", lambda cmd, *rest: started.append(cmd))
    setup = SimpleNamespace(space=SimpleNamespace(file="s.yaml"), out="o", url="sqlite:///o/s.db", budget_name="gpu",
                            objective=SimpleNamespace(device=None), budget=SimpleNamespace(timeout_minutes=60),
                            data=None)
    workers.run(setup, "retrain", 2, 10, timeout_minutes=2.5)
    workers.run(setup, "retrain", 2, 10)  # no --timeout-minutes on the command: re-training is not limited
    workers.run(setup, "search", 2, 10, timeout_minutes=2.5)  # searching keeps to the budget's time
    limits = [cmd[cmd.index("--timeout-minutes") + 1] if "--timeout-minutes" in cmd else None for cmd in started]
    assert limits == ["2.5000", None, "60.0000"]


def test_only_a_divergence_is_final_and_a_run_that_finished_since_is_not_a_failure():
    seeds = optuna.create_study()

    def ran(state, seed, reason=None):
        seeds.add_trial(create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None, user_attrs={
            "source": 0, "seed": seed, **({"failed_reason": reason} if reason else {})}))

    ran(TrialState.FAIL, 1, "out of memory")  # the machine's: beside another worker on one card
    ran(TrialState.FAIL, 2, "diverged: loss nan at step 40")
    ran(TrialState.FAIL, 3, "diverged: loss nan at step 12")  # an older study retried it, and it finished
    ran(TrialState.COMPLETE, 3)
    assert retrain.failures(seeds) == {(0, 2, 1.0): "diverged: loss nan at step 40"}
    assert retrain.enqueue(seeds, [(0, 1, 1.0), (0, 2, 1.0), (0, 3, 1.0)]) == 1  # the out-of-memory run again


def test_the_fidelity_section_counts_each_trial_once_at_the_runs_own_seed():
    from archsearch.search.families import Quality
    from archsearch.search.report import fidelity_section

    study = _study([(float(v), ["pam"], TrialState.COMPLETE) for v in (1, 2, 3)])  # a budget without a bar
    seeds = optuna.create_study()
    for seed, ppls in ((0, (3.0, 2.0, 1.0)), (retrain.FIDELITY_SEED, (0.5, 1.5, 2.5))):  # an older study's, then new
        for source, ppl in enumerate(ppls):
            seeds.add_trial(create_trial(state=TrialState.COMPLETE, value=ppl, user_attrs={
                "source": source, "seed": seed, "scale": 4.0, "val_ppl": ppl, "train_tokens": 1000}))
    text = "\n".join(fidelity_section(study, seeds, Quality(study), study.trials))
    assert "3 trials spread over the screen's ranking trained again for 4× the budget, each with a seed of its own" \
        in text and "**1.00**" in text  # the new runs only: the old same-seed ones would give -1
    assert "| 0 | pam | 1 | 0.5 | 1,000 |" in text  # the run's own tokens where the trial has none to scale
    scaled = optuna.create_study()  # sources that record 300 tokens each (iso-time)
    for t in study.trials:
        scaled.add_trial(create_trial(state=t.state, value=t.value, params=t.params, distributions=t.distributions,
                                      user_attrs={**t.user_attrs, "train_tokens": 300}))
    text = "\n".join(fidelity_section(scaled, seeds, Quality(scaled), scaled.trials))
    assert "| 0 | pam | 1 | 0.5 | 1,000 |" in text  # the run's own record, not the source's × 4
