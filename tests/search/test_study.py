"""The search end to end on CPU: the smoke space and its resume, parallel workers on one journal, constraints before
allocation, failures recorded, best-of-grid learning rates (runs stopped mid-trial: test_stopped_runs.py)."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from archsearch import cli, saved as saved_module
from archsearch.search import objective as objective_module
from archsearch.search.study import run_search


def _run(root, out, *extra):
    r = subprocess.run([sys.executable, "-m", "archsearch", "run", str(root / "search_spaces/smoke.yaml"),
                        "--out", str(out), *extra], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def _run_stopped_as_it_ends(root, out, *extra):
    """`_run`, with a scheduler's SIGTERM arriving 0.2 s after the run prints its report line, when all is recorded and
    the process is on its way out: it must end as a finished (or, by a hair, an interrupted) run does, not killed."""
    p = subprocess.Popen([sys.executable, "-m", "archsearch", "run", str(root / "search_spaces/smoke.yaml"),
                          "--out", str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    for line in p.stdout:
        lines.append(line)
        if line.startswith("report: "):  # a moment later: the interpreter is tearing down (torch's ~1 s of it)
            time.sleep(0.2)
            p.send_signal(signal.SIGTERM)
    text = "".join(lines)
    assert p.wait() in (0, 130) and "Traceback" not in text, (p.returncode, text[-2000:])
    return text


def _load(out, name="smoke"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def _quiet(*a, **k):
    pass


@pytest.fixture(autouse=True)
def _no_plots(monkeypatch):
    """The reports of the studies run in this process leave out their plots (about 1.5 s a report), which nothing here
    looks at: test_report checks those of a real `archsearch run`, whose process this does not reach."""
    from archsearch.search import report

    monkeypatch.setattr(report, "_plot", lambda *a, **k: False)
    monkeypatch.setattr(report, "_history", lambda *a, **k: None)


def test_smoke_space_end_to_end_then_resume(root, tmp_path, small_corpus, smoke_study):
    first_out, _, first = smoke_study  # `run --trials 2 --data …` (conftest.py), shared with report and export tests
    assert "no GPU: using the cpu budget" in first
    assert "study 'smoke': 2 trials" in first and "best per family" in first
    study = _load(first_out)
    t0, t1 = study.trials
    assert t0.user_attrs["baseline"] == "softmax_attention" and t0.state == TrialState.COMPLETE
    assert t1.user_attrs["baseline"] == "pam" and t1.state == TrialState.COMPLETE
    for key in ("params", "flops_per_token", "state_bytes", "latency_train_ms", "latency_prefill_ms",
                "latency_decode_ms", "flops_train_step", "val_ppl", "val_bpb", "tokens_per_s", "card", "seed", "lr",
                "spec_file", "worker"):
        assert key in t0.user_attrs, key
    # baselines sit at the space's size: the same width, depth and rate for both families
    shared = {k: v for k, v in t0.params.items() if "block" not in k}
    assert shared == {k: v for k, v in t1.params.items() if "block" not in k and "config.pam" not in k}
    assert (first_out / "trials/trial_0000.yaml").is_file()
    assert study.user_attrs["reference"]["params"] == t0.user_attrs["params"]
    # fairness: both trials (each its family's best) re-trained with fresh seeds 1 and 2, scored on the test split
    assert "fairness: re-training 4 run(s)" in first
    seeds = _load(first_out, "smoke.seeds")
    assert sorted((j.user_attrs["source"], j.user_attrs["seed"]) for j in seeds.trials) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert all(j.state == TrialState.COMPLETE and j.user_attrs["test_ppl"] > 1 for j in seeds.trials)
    report = (first_out / "report.md").read_text()
    assert "over 2 fresh seeds" in report or "(n = 2)" in report
    assert "2 of 2 complete trials, 4 of 4 re-training runs) were evaluated again" in report
    out = tmp_path / "smoke"  # resumed in a copy: the other tests read the finished two-trial study
    shutil.copytree(first_out, out)
    second = _run_stopped_as_it_ends(root, out, "--trials", "3", "--profile-top", "1", "--data", small_corpus)
    assert "resuming study 'smoke': 2 finished trial(s) kept, 1 to go" in second
    tables = list((out / "profiles").glob("trial_*/table.txt"))  # the best trial, profiled: nodes, then top ops
    assert len(tables) == 1 and "per step: forward" in tables[0].read_text() and "top 20 of" in tables[0].read_text()
    again = _load(out)
    assert len(again.trials) == 3
    assert again.trials[0].value == t0.value and again.trials[0].params == t0.params  # kept, not repeated
    assert len(_load(out, "smoke.seeds").trials) >= 4  # earlier runs kept; only the new best get new ones


def test_fewer_trials_than_baselines_leaves_the_rest_queued_and_still_retrains(root, tmp_path, small_corpus):
    # two baselines are enqueued; a budget of one trial must not wait for the second, which nobody will start
    space = tmp_path / "one_seed.yaml"  # one re-training run shows it as well as the space's two
    space.write_text((root / "search_spaces/smoke.yaml").read_text().replace(
        "retrain: {top_k: 1, seeds: 2, verdict_seeds: 2}", "retrain: {top_k: 1, seeds: 1, verdict_seeds: 1}"))
    lines = []

    def echo(line):
        lines.append(line)
        assert "waiting for" not in line, line  # fails at once where a wait would never end

    run_search(str(space), out=tmp_path / "o", trials=1, data=small_corpus, echo=echo)
    text = "\n".join(lines)
    assert "2 trials — 1 complete, 0 pruned, 0 fail, 1 queued and not run" in text
    assert "fairness: re-training 1 run(s)" in text


def test_re_training_trains_the_trials_spec_file_not_the_space_as_it_reads_now(root, tmp_path, small_corpus,
                                                                               monkeypatch):
    space = tmp_path / "one_seed.yaml"
    space.write_text((root / "search_spaces/smoke.yaml").read_text().replace(
        "retrain: {top_k: 1, seeds: 2, verdict_seeds: 2}", "retrain: {top_k: 1, seeds: 1, verdict_seeds: 1}"))
    run_search(str(space), out=tmp_path / "o", trials=1, data=small_corpus, echo=_quiet, retrain_after=False)

    def resampled(*a, **k):
        raise AssertionError("re-training sampled the space again")

    monkeypatch.setattr(objective_module.Objective, "spec_of", resampled)  # as if the space had been edited since
    study = run_search(str(space), out=tmp_path / "o", trials=1, data=small_corpus, echo=_quiet)
    (run,) = [j for j in _load(tmp_path / "o", "smoke.seeds").trials if j.state == TrialState.COMPLETE]
    source = study.trials[run.user_attrs["source"]]
    assert run.user_attrs["lr"] == source.user_attrs["lr"]  # recorded with the run, as its tokens are


def test_two_workers_on_one_journal_share_the_trials(root, tmp_path, small_corpus):
    out = tmp_path / "w"
    text = _run(root, out, "--trials", "4", "--workers", "2", "--no-retrain", "--data", small_corpus)
    # the reference is measured in a worker too: the coordinator runs no GPU work beside its workers
    assert f"reference: starting 1 worker process on journal:{out / 'study.journal'} (" in text
    assert "[worker 0] measuring the reference architecture" in text
    assert f"search: starting 2 worker processes on journal:{out / 'study.journal'} (" in text
    assert "CPU thread(s) each)" in text
    assert "[worker 0]" in text and "[worker 1]" in text and not (out / "study.db").exists()
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = optuna.load_study(study_name="smoke", storage=JournalStorage(JournalFileBackend(str(out / "study.journal"))))
    trials = study.trials
    assert study.user_attrs["reference"]["family"] == "softmax_attention"
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for t in trials)
    assert 4 <= len(trials) <= 5  # a worker may finish the trial it started as the other reached the total
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran trials
    assert sorted(t.user_attrs["baseline"] for t in trials if "baseline" in t.user_attrs) == ["pam", "softmax_attention"]
    keys = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(keys)) == len(keys)  # no trial ran twice
    # `report` reads the journal: the CLI in this process (test_report runs the command in a process of its own)
    (out / "report.md").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert "study 'smoke'" in (out / "report.md").read_text()


def _first_trial_of_smoke_with(root, tmp_path, corpus: str, old: str, new: str):
    """The first trial of a one-trial smoke study whose space has `old` replaced by `new`, and its grid's results."""
    space = tmp_path / "grid.yaml"
    space.write_text((root / "search_spaces/smoke.yaml").read_text().replace(old, new))
    t = run_search(str(space), out=tmp_path / "o", trials=1, retrain_after=False, data=corpus, echo=_quiet).trials[0]
    return t, t.user_attrs["lr_grid_quality"]


def test_best_of_grid_learning_rate(root, tmp_path, small_corpus):
    t, tried = _first_trial_of_smoke_with(root, tmp_path, small_corpus, "lr: {log: [1.0e-3, 3.0e-3]}", "lr: {grid: [0.0003, 0.003]}")
    assert set(tried) == {"0.0003", "0.003"} and t.user_attrs["lr"] == float(min(tried, key=tried.get))
    assert "lr" not in t.params  # a grid is not a searched parameter


def test_a_baseline_grid_records_its_chosen_rate_and_curve_for_the_sampler_and_pruner(root, tmp_path, small_corpus):
    t, tried = _first_trial_of_smoke_with(root, tmp_path, small_corpus, "cpu: {trials: 4,",
                                          "cpu: {trials: 4, baseline_lr_grid: [0.001, 0.003],")
    assert t.user_attrs["baseline"] == "softmax_attention" and set(tried) == {"0.001", "0.003"}
    assert t.params["lr"] == t.user_attrs["lr"] == float(min(tried, key=tried.get))  # what TPE learns from
    curve = t.user_attrs["val_loss_curve"]  # the chosen rate's, reported as the pruner's intermediate values
    assert len(curve) == 2 and t.intermediate_values == {k: loss for k, (_, loss) in enumerate(curve, 1)}


def _too_small_for_any_trial(root, tmp_path, budget: str = "") -> Path:
    """The smoke space with a parameter limit no model meets: every trial is pruned before any tensor (milliseconds);
    no reference to measure either. `budget`: more settings for its cpu budget."""
    space = tmp_path / "tight.yaml"
    text = (root / "search_spaces/smoke.yaml").read_text().replace("max_params: 400000", "max_params: 1000")
    space.write_text(text.replace("  weights: {latency_train_ms: 0.1}\n", "").replace("seq_len: 64}",
                                                                                    f"seq_len: 64{budget}}}"))
    return space


def test_constraint_violations_are_pruned_before_any_tensor(root, tmp_path, monkeypatch):
    space = _too_small_for_any_trial(root, tmp_path)
    for module in (objective_module, saved_module):
        monkeypatch.setattr(module, "lower", lambda ir: pytest.fail("a model was built"))
    study = run_search(str(space), out=tmp_path / "o", trials=3, retrain_after=False, echo=_quiet)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 3
    assert all("params" in t.user_attrs["pruned_reason"] and "exceeds the limit 1,000" in t.user_attrs["pruned_reason"]
               for t in study.trials)


def test_a_search_its_time_limit_ends_says_so_and_the_same_command_continues_it(root, tmp_path):
    # a limit of about a millisecond ends the search after one trial, however quick
    space = _too_small_for_any_trial(root, tmp_path, ", timeout_minutes: 0.00002")
    lines = []
    pruned = lambda study: len(study.get_trials(states=(TrialState.PRUNED,)))  # noqa: E731
    study = run_search(str(space), out=tmp_path / "o", trials=3, retrain_after=False, echo=lines.append)
    assert pruned(study) == 1
    assert ("the search's time limit (2e-05 min, the cpu budget's timeout_minutes) ended it after 1 of 3 trials; "
            "the same command continues it") in lines
    lines.clear()
    study = run_search(str(space), out=tmp_path / "o", trials=3, retrain_after=False, echo=lines.append)
    assert pruned(study) == 2 and "ended it after 2 of 3 trials" in "\n".join(lines)
    lines.clear()
    study = run_search(str(space), out=tmp_path / "o", trials=3, retrain_after=False, timeout_minutes=60,
                       echo=lines.append)
    assert pruned(study) == 3 and not any("time limit" in line for line in lines)


def test_a_diverging_trial_is_failed_and_the_study_goes_on(root, tmp_path, monkeypatch, small_corpus):
    real_train = saved_module.train
    calls = []

    def poisoned(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            import torch
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(saved_module, "train", poisoned)
    lines = []
    study = run_search(str(root / "search_spaces/smoke.yaml"), out=tmp_path / "o", trials=2, retrain_after=False,
                       data=small_corpus, echo=lines.append)
    first, second = study.trials
    assert first.state == TrialState.FAIL and first.user_attrs["failed_reason"].startswith("diverged: loss became nan")
    assert second.state == TrialState.COMPLETE
    assert "1 complete, 0 pruned, 1 fail" in lines[-2] and "1 × diverged" in lines[-2]
    assert lines[-1].startswith("report: ")


def test_pareto_mode_records_quality_and_costs(root, tmp_path, small_corpus):
    space = tmp_path / "pareto.yaml"
    text = (root / "search_spaces/smoke.yaml").read_text()
    space.write_text(text.replace("  objective: weighted\n", "  objective: pareto\n  pareto_costs: [latency_train_ms, params]\n")
                     .replace("  sampler: tpe\n", "  sampler: nsga2\n"))
    lines = []
    study = run_search(str(space), out=tmp_path / "o", trials=2, retrain_after=False, data=small_corpus,
                       echo=lines.append)
    assert len(study.directions) == 3 and isinstance(study.pruner, optuna.pruners.NopPruner)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert done and all(len(t.values) == 3 and t.values[2] == t.user_attrs["params"] for t in done)
    t = done[0]  # the progress line names the quality as measured (not the minimised term) and each cost
    assert any(f"complete: ppl {t.user_attrs['val_ppl']:.2f}, latency_train_ms {t.values[1]:.4g}, "
               f"params {t.values[2]:.4g} |" in line for line in lines), lines


def test_the_progress_line_names_the_searchs_own_quality():
    from archsearch.search.summary import quality_text

    recall = {"val_ppl": 484.41, "val_accuracy": 0.93125, "val_loss": 6.18}  # a recall task records all three
    assert quality_text(recall, "accuracy") == "accuracy 0.9313"
    assert quality_text(recall, "ppl") == "ppl 484.41" and quality_text(recall, "loss") == "loss 6.1800"


def test_a_trial_spec_file_retrains_as_is(small_corpus, smoke_study, tmp_path):
    import json

    from archsearch.spec import load_spec

    out, study, _ = smoke_study
    spec = load_spec(out / "trials/trial_0000.yaml")
    assert spec.train.tokens == 60000 and spec.train.seq_len == 64 and spec.task.tokenizer == "bytes"
    assert spec.task.data == small_corpus  # `--data`: the trial trained on it, and its spec file says so
    assert [b.name for b in spec.stack.sublayers[0].blocks] == ["softmax_attention"] * spec.stack.depth
    # `archsearch train` on it, in a fresh process, gives the trial's number (on CPU, at one thread count; that it
    # honours a spec file's nonzero seed, the ladder's test of the same shows)
    r = subprocess.run([sys.executable, "-m", "archsearch", "train", str(out / "trials/trial_0000.yaml"), "--out",
                        str(tmp_path / "again"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads((tmp_path / "again/metrics.json").read_text())
    assert again["val_ppl"] == pytest.approx(study.trials[0].user_attrs["val_ppl"], rel=1e-3)


def test_iso_time_study_with_paper_skeleton_hybrid_seeds_and_fidelity(root, tmp_path, small_corpus):
    """Every trial trains for the same measured step time; baselines include a per-layer hybrid and the complex
    skeleton (a named choice); the fidelity runs re-train 3 trials 2x longer and the report ranks both budgets."""
    text = (root / "search_spaces/smoke.yaml").read_text()
    text = text.replace("  baselines: [softmax_attention, pam]\n",
                        "  baselines: [softmax_attention, [softmax_attention, pam], "
                        "{mixers: pam, params: {skeleton: complex}}]\n")
    text = text.replace("retrain: {top_k: 1, seeds: 2, verdict_seeds: 2}", "retrain: {seeds: 0, verdict_seeds: 0}")
    text = text.replace("cpu: {trials: 4, tokens: 60000,",
                        "cpu: {trials: 4, train_seconds: 0.25, fidelity: {trials: 3, factor: 2, min_rank: 0.5}, "
                        "tokens: 60000,")
    text = text.replace("    norm: rmsnorm\n", "    norm: {choice: {real: rmsnorm, complex: complex_norm}, name: skeleton}\n")
    space = tmp_path / "iso.yaml"
    space.write_text(text)
    lines = []
    study = run_search(str(space), out=tmp_path / "o", trials=4, data=small_corpus, echo=lines.append)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert [t.user_attrs.get("baseline") for t in study.trials[:3]] == [
        "softmax_attention", "softmax_attention+pam", "pam skeleton=complex"]
    assert study.trials[1].user_attrs["mixers"] == ["softmax_attention", "pam"]
    assert study.trials[2].params["skeleton"] == "complex"
    for t in done:  # the budget is the time, so the tokens follow each trial's measured step latency
        steps = t.user_attrs["train_tokens"] // 2048
        assert steps == max(1, int(250.0 / t.user_attrs["latency_train_ms"]))
        assert f"tokens: {t.user_attrs['train_tokens']}" in Path(t.user_attrs["spec_file"]).read_text()
    seeds = _load(tmp_path / "o", "smoke.seeds")
    runs = [j for j in seeds.trials if j.state == TrialState.COMPLETE]
    from archsearch.search.retrain import fidelity_set
    assert len(runs) == len(fidelity_set(study, 3)) >= 3 and all(j.user_attrs["scale"] == 2.0 for j in runs)
    for j in runs:
        assert j.user_attrs["train_tokens"] == 2 * study.trials[j.user_attrs["source"]].user_attrs["train_tokens"]
    report = (tmp_path / "o/report.md").read_text()
    assert "### At equal training time" in report and "(0.25 s of measured training-step time each)" in report
    assert "## Screening fidelity" in report and "Spearman rank correlation" in report
    # the bar (3 architectures, rho >= 0.5): the verdicts carry a warning exactly when the screen falls short
    qualifies = "**The screen qualifies**: ρ = " in report
    assert qualifies != ("**The screen does not qualify**" in report)
    assert qualifies != ("**These verdicts are not to be used" in report)


def test_a_listed_hybrid_deeper_than_the_depth_range_is_skipped_with_a_message(root, tmp_path):
    from archsearch.search.study import Setup, prepare

    text = (root / "search_spaces/smoke.yaml").read_text().replace(
        "  baselines: [softmax_attention, pam]\n", "  baselines: [softmax_attention, [pam, pam, softmax_attention]]\n")
    space = tmp_path / "deep.yaml"
    space.write_text(text)
    setup = Setup(str(space), tmp_path / "o", None, "cpu", "cpu")
    lines = []
    prepare(setup, echo=lines.append)
    assert [t.user_attrs["baseline"] for t in setup.study.get_trials(deepcopy=False)] == ["softmax_attention"]
    assert any("baseline pam+pam+softmax_attention skipped: outside the cpu budget's space (stack.depth = 3)" in line
               for line in lines), lines


def test_a_resumed_lone_run_does_not_replay_the_first_runs_draws(root, tmp_path):
    from archsearch.search.study import Setup

    def draws(n):
        study = Setup(str(root / "search_spaces/smoke.yaml"), tmp_path / "r", None, "cpu", "cpu").study
        out = []
        for _ in range(n):
            trial = study.ask()
            out.append(trial.suggest_float("x", 0.0, 1.0))
            study.tell(trial, out[-1])
        return out

    first = draws(2)
    again = draws(2)  # the same folder: a resume with 2 trials already in the study
    assert not set(first) & set(again)
    assert Setup(str(root / "search_spaces/smoke.yaml"), tmp_path / "fresh", None, "cpu", "cpu").study.ask() \
        .suggest_float("x", 0.0, 1.0) == first[0]  # a fresh study still starts from the space's seed


def test_data_replaces_the_spaces_corpus_and_a_resume_must_give_the_same(root, tmp_path):
    """`run --data`: every trial's spec names that corpus; the study remembers it and refuses another on resume."""
    from archsearch.errors import SpecError
    from archsearch.search.study import Setup

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "readme.txt").write_text((root / "README.md").read_text())
    space, out = str(root / "search_spaces/smoke.yaml"), tmp_path / "r"
    setup = Setup(space, out, None, "cpu", "cpu", data=str(corpus))
    assert setup.template["task"]["data"] == str(corpus)
    trial = setup.study.ask()
    setup.study.tell(trial, 1.0)
    Setup(space, out, None, "cpu", "cpu", data=str(corpus))  # the same corpus resumes
    with pytest.raises(SpecError, match=rf"--data: study 'smoke' in {out} was started with --data {corpus}; resume"):
        Setup(space, out, None, "cpu", "cpu")


def test_a_corpus_too_short_for_one_window_is_one_line_before_any_trial(root, tmp_path):
    from archsearch.errors import SpecError
    from archsearch.search.study import Setup

    corpus = tmp_path / "short"
    corpus.mkdir()
    (corpus / "a.txt").write_text("x\n" * 20)  # 90% of its lines train: 36 bytes
    with pytest.raises(SpecError, match=r"^task.data: files:.*: the train split has \d+ tokens, too few for one "
                                        r"training window of 64 \(\+1\)"):
        Setup(str(root / "search_spaces/smoke.yaml"), tmp_path / "r", None, "cpu", "cpu", data=str(corpus))


def test_budgets_are_named_and_a_missing_one_says_which_exist(root, tmp_path):
    from archsearch.errors import SpecError
    from archsearch.search.study import Setup

    space = tmp_path / "named.yaml"
    space.write_text((root / "search_spaces/smoke.yaml").read_text().replace("    gpu: {", "    wiki: {"))
    assert Setup(str(space), tmp_path / "r", None, "wiki", "cpu").budget.trials == 8
    with pytest.raises(SpecError, match=r"^--budget: no 'gpu' budget in .*named.yaml \(it has: cpu, wiki\)$"):
        Setup(str(space), tmp_path / "r", None, "gpu", "cpu")
    space.write_text(space.read_text().replace("    cpu: {", "    small: {"))
    with pytest.raises(SpecError, match=r"search.budgets: no 'cpu' budget, the default without a GPU \(it has: "
                                        r"small, wiki\); pick one with --budget NAME"):
        Setup(str(space), tmp_path / "r", None, None, "cpu")


def test_a_budget_length_beyond_the_model_stops_the_search_before_anything_is_written(root, tmp_path):
    from archsearch.errors import SpecError
    from archsearch.search.study import Setup

    space = tmp_path / "long.yaml"
    space.write_text((root / "search_spaces/smoke.yaml").read_text().replace("batch_tokens: 2048, seq_len: 64",
                                                                             "batch_tokens: 2048, seq_len: 256"))
    with pytest.raises(SpecError, match=r"search\.budgets\.cpu\.seq_len: 256 exceeds model\.seq_len 128"):
        Setup(str(space), tmp_path / "o", None, "cpu", "cpu")
    assert not (tmp_path / "o").exists()


def test_a_trial_whose_training_length_exceeds_its_models_is_pruned_as_invalid(root, tmp_path):
    from archsearch.search.study import Setup

    space = tmp_path / "lengths.yaml"  # the budget trains at 64; a model of length 32 cannot
    space.write_text((root / "search_spaces/smoke.yaml").read_text().replace(
        "seq_len: 128}\n  embedding", "seq_len: {choice: [128, 32]}}\n  embedding"))
    setup = Setup(str(space), tmp_path / "o", None, "cpu", "cpu")
    setup.study.enqueue_trial({"model.seq_len": 32})
    setup.study.optimize(setup.objective, n_trials=1)
    t = setup.study.trials[0]
    assert t.state == TrialState.PRUNED
    assert t.user_attrs["pruned_reason"].startswith("invalid: ") and \
        t.user_attrs["pruned_reason"].endswith("train.seq_len: 64 exceeds model.seq_len 32")
