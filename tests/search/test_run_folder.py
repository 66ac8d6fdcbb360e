"""The run folder: its layout, its storage, opening it again, and the attribute keys studies on disk hold."""
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from archsearch.errors import SpecError
from archsearch.search import run_folder

# The strings studies on disk hold (docs/results/, live ladders): changing one breaks resuming and reporting them.
KEYS = {
    "VERDICT_COST": "verdict_cost", "QUALITY": "quality", "FLOORS": "floors", "ISO_TIME": "train_seconds",
    "FIDELITY_BAR": "fidelity_bar", "BUDGET": "budget",
    "DATA": "data", "REFERENCE": "reference", "SAVED_CHECK": "saved_check", "SPEC_FILE": "spec_file", "MIXERS": "mixers",
    "VOCAB": "vocab", "BASELINE": "baseline", "MATCHED": "matched", "WORKER": "worker", "CARD": "card",
    "SEED": "seed", "LR": "lr", "TRAIN_TOKENS": "train_tokens", "VAL_LOSS_CURVE": "val_loss_curve",
    "LR_GRID_QUALITY": "lr_grid_quality", "PRUNED_REASON": "pruned_reason", "FAILED_REASON": "failed_reason",
    "FAILED_DETAIL": "failed_detail", "RETRY_OF": "retry_of", "RETRIES": "retries", "SOURCE": "source",
    "SCALE": "scale", "TOKENS": "tokens_sha256", "TRAIN_SPLIT_TOKENS": "train_split_tokens",
    "STUDY_DB": "study.db", "STUDY_JOURNAL": "study.journal", "SEEDS": ".seeds",
}


def test_the_attribute_keys_keep_the_strings_of_the_studies_on_disk():
    found = {k: v for k, v in vars(run_folder).items() if k.isupper() and isinstance(v, str)}
    assert found == KEYS
    assert run_folder.LADDER_JOB == ("job", "family", "rung", "phase")
    assert set(run_folder.RETRY_KEEPS) == {"baseline", "source", "seed", "scale", "job", "family", "rung", "lr", "phase"}


def test_where_each_thing_lies(tmp_path):
    assert run_folder.trial_spec_path(tmp_path, 7) == tmp_path / "trials/trial_0007.yaml"
    assert run_folder.weights_path(tmp_path, 7) == tmp_path / "weights/trial_0007.pt"
    assert run_folder.run_weights_path(tmp_path, 7, 2, 1.0) == tmp_path / "weights/runs/trial_0007_seed2.pt"
    assert run_folder.run_weights_path(tmp_path, 7, 2, 4.0) == tmp_path / "weights/runs/trial_0007_seed2_x4.pt"
    assert run_folder.profile_path(tmp_path, 7) == tmp_path / "profiles/trial_0007"


def test_a_folder_keeps_its_storage_and_opens_again_with_its_seeds_study(tmp_path):
    assert run_folder.default_storage(tmp_path, 1) == f"sqlite:///{tmp_path / 'study.db'}"
    assert run_folder.default_storage(tmp_path, 4) == f"journal:{tmp_path / 'study.journal'}"
    with pytest.raises(SpecError, match="no study.db or study.journal here"):
        run_folder.load(tmp_path)
    store = run_folder.make_storage(run_folder.default_storage(tmp_path, 1))
    optuna.create_study(study_name="s", storage=store)
    assert run_folder.load(tmp_path)[1] is None
    optuna.create_study(study_name=run_folder.seeds_study_name("s"), storage=store)
    study, seeds = run_folder.load(tmp_path)
    assert (study.study_name, seeds.study_name) == ("s", "s.seeds")
    assert run_folder.default_storage(tmp_path, 4) == f"sqlite:///{tmp_path / 'study.db'}"  # the one already there
    with pytest.raises(SpecError, match="--storage: 'redis://x': expected"):
        run_folder.make_storage("redis://x")


def test_a_trials_spec_is_found_in_a_folder_that_moved(root, tmp_path):
    (tmp_path / "trials").mkdir()
    (tmp_path / "trials/trial_0000.yaml").write_text((root / "examples/tiny_transformer.yaml").read_text())
    t = create_trial(state=TrialState.COMPLETE, value=1.0,
                     user_attrs={"spec_file": str(Path("/elsewhere/trials/trial_0000.yaml"))})
    assert run_folder.trial_spec(tmp_path, t).model.d_model > 0
    (tmp_path / "trials/trial_0000.yaml").unlink()
    with pytest.raises(SpecError, match="spec file trial_0000.yaml is missing from trials/"):
        run_folder.trial_spec(tmp_path, t)


def test_a_study_resumes_only_on_the_tokens_it_started_on():
    import numpy as np

    from archsearch.errors import Loc
    from archsearch.tasks import LMTask

    def task(train):
        streams = {"train": np.array(train, dtype=np.uint16), "validation": np.arange(9, dtype=np.uint16),
                   "test": np.arange(7, dtype=np.uint16)}
        return LMTask.from_streams(streams, {"train": 1, "validation": 1, "test": 1}, 16, name="toy / bpe16")

    study = optuna.create_study(study_name="s")
    run_folder.same_tokens(study, task([1, 2, 3]), Loc("--data"))
    run_folder.same_tokens(study, task([1, 2, 3]), Loc("--data"))  # the same tokens again: resumes
    with pytest.raises(SpecError, match=r"--data: toy / bpe16: these tokens are not the ones study 's' was trained"):
        run_folder.same_tokens(study, task([1, 2, 4]), Loc("--data"))  # one token differs


def test_a_study_timed_on_one_card_resumes_only_on_that_card():
    import torch

    from archsearch.errors import Loc

    cpu = torch.device("cpu")
    study = optuna.create_study(study_name="s")
    run_folder.same_card(study, cpu, Loc("--device"))  # nothing timed yet: any card
    study.add_trial(create_trial(value=1.0, user_attrs={"card": "cpu"}))
    study.add_trial(create_trial(value=1.0))  # a run from before cards were recorded says none
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"card": "NVIDIA H100 80GB HBM3"}))  # not timed
    run_folder.same_card(study, cpu, Loc("--device"))
    study.add_trial(create_trial(value=1.0, user_attrs={"card": "NVIDIA H200"}))
    with pytest.raises(SpecError, match=r"^--device: study 's' was timed on NVIDIA H200, cpu and this is cpu"):
        run_folder.same_card(study, cpu, Loc("--device"))


def test_a_run_stopped_on_purpose_keeps_its_retry_for_a_death():
    """A ladder run paused at its time limit (or stopped by Ctrl-C) is queued again as often as it is stopped; only a
    dead worker uses up the one retry, so a run paused twice and then killed is still run again."""
    from archsearch.search.recovery import INTERRUPTED, recover

    study = optuna.create_study(study_name="s")
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"job": "x/a", "failed_reason": INTERRUPTED}))
    for _ in range(2):  # paused twice
        assert recover(study, None) == 1
        t = study.get_trials(states=(TrialState.WAITING,))[0]
        assert t.user_attrs["retries"] == 0 and t.user_attrs["job"] == "x/a"
        study._storage.set_trial_user_attr(t._trial_id, "failed_reason", INTERRUPTED)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    assert recover(study, None) == 1
    t = study.get_trials(states=(TrialState.WAITING,))[0]
    study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # then its worker died
    assert run_folder.retry_stale(study, study.trials[t.number])
    again = study.get_trials(states=(TrialState.WAITING,))[0]
    assert again.user_attrs["retries"] == 1 and not run_folder.retry_stale(study, again)  # a second death: left


def test_a_study_resumes_only_under_the_budget_it_began_with():
    from archsearch.errors import Loc

    wiki = {"train_seconds": 12, "fidelity_bar": {"min_rank": 0.8, "trials": 8, "factor": 4.0}}
    gpu = {"train_seconds": 3, "fidelity_bar": None}
    study = optuna.create_study(study_name="s")
    run_folder.same_budget(study, "wiki", wiki, Loc("--budget"))  # no trials yet: nothing to hold it to
    assert "budget" not in study.user_attrs
    study.set_user_attr("train_seconds", 12)  # what the run records of its budget, and a trial
    study.add_trial(create_trial(value=1.0))
    run_folder.same_budget(study, "wiki", wiki, Loc("--budget"))
    assert study.user_attrs["budget"] == "wiki"
    with pytest.raises(SpecError, match=r"^--budget: study 's' ran under the 'wiki' budget, and this is 'gpu': "
                                        r"resume it with --budget wiki"):
        run_folder.same_budget(study, "gpu", gpu, Loc("--budget"))  # its fidelity bar and iso-time seconds would change
    older = optuna.create_study(study_name="t")  # from before the name was recorded: its settings tell
    older.set_user_attr("train_seconds", 12)
    older.add_trial(create_trial(value=1.0))
    with pytest.raises(SpecError, match=r"^--budget: study 't' ran under another budget than 'gpu' \(its "
                                        r"train_seconds differ\)"):
        run_folder.same_budget(older, "gpu", gpu, Loc("--budget"))
    run_folder.same_budget(older, "wiki", wiki, Loc("--budget"))
    assert older.user_attrs["budget"] == "wiki"
