"""The search end to end on CPU: the smoke space, resume, constraints before allocation, failures recorded."""
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from archsearch.search import objective as objective_module
from archsearch.search.study import run_search


def _run(root, out, *extra):
    r = subprocess.run([sys.executable, "-m", "archsearch", "run", str(root / "search_spaces/smoke.yaml"),
                        "--out", str(out), *extra], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def _load(out):
    return optuna.load_study(study_name="smoke", storage=f"sqlite:///{out / 'study.db'}")


def test_smoke_space_end_to_end_then_resume(root, tmp_path):
    out = tmp_path / "smoke"
    first = _run(root, out, "--trials", "2")
    assert "no GPU: using the cpu profile" in first
    assert "study 'smoke': 2 trials" in first and "best per family" in first
    study = _load(out)
    t0 = study.trials[0]
    assert t0.user_attrs["baseline"] == "softmax_attention" and t0.state == TrialState.COMPLETE
    assert study.trials[1].user_attrs["baseline"] == "pam" and study.trials[1].state == TrialState.COMPLETE
    for key in ("params", "flops_per_token", "state_bytes", "latency_train_ms", "latency_prefill_ms",
                "flops_train_step", "val_ppl", "val_bpb", "tokens_per_s", "card", "seed", "lr", "spec_file"):
        assert key in t0.user_attrs, key
    assert (out / "trials/trial_0000.yaml").is_file() and study.user_attrs["reference"]["params"] == t0.user_attrs["params"]
    second = _run(root, out, "--trials", "3")
    assert "resuming study 'smoke': 2 finished trial(s) kept, 1 to go" in second
    again = _load(out)
    assert len(again.trials) == 3
    assert again.trials[0].value == t0.value and again.trials[0].params == t0.params  # kept, not repeated


def test_constraint_violations_are_pruned_before_any_tensor(root, tmp_path, monkeypatch):
    space = tmp_path / "tight.yaml"
    space.write_text((root / "search_spaces/smoke.yaml").read_text().replace("max_params: 400000", "max_params: 1000"))
    monkeypatch.setattr(objective_module, "lower", lambda ir: pytest.fail("a model was built"))
    study = run_search(str(space), out=tmp_path / "o", trials=3, echo=lambda *a, **k: None)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 3
    assert all("params" in t.user_attrs["pruned_reason"] and "exceeds the limit 1,000" in t.user_attrs["pruned_reason"]
               for t in study.trials)


def test_a_diverging_trial_is_failed_and_the_study_goes_on(root, tmp_path, monkeypatch):
    real_train = objective_module.train
    calls = []

    def poisoned(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            import torch
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(objective_module, "train", poisoned)
    lines = []
    study = run_search(str(root / "search_spaces/smoke.yaml"), out=tmp_path / "o", trials=2, echo=lines.append)
    first, second = study.trials
    assert first.state == TrialState.FAIL and first.user_attrs["failed_reason"].startswith("diverged: loss became nan")
    assert second.state == TrialState.COMPLETE
    assert "1 complete, 0 pruned, 1 fail" in lines[-2] and "1 × diverged" in lines[-2]
    assert lines[-1].startswith("report: ")


def test_pareto_mode_records_quality_and_costs(root, tmp_path):
    space = tmp_path / "pareto.yaml"
    text = (root / "search_spaces/smoke.yaml").read_text()
    space.write_text(text.replace("  objective: weighted\n", "  objective: pareto\n  pareto_costs: [latency_train_ms, params]\n")
                     .replace("  sampler: tpe\n", "  sampler: nsga2\n"))
    study = run_search(str(space), out=tmp_path / "o", trials=2, echo=lambda *a, **k: None)
    assert len(study.directions) == 3 and isinstance(study.pruner, optuna.pruners.NopPruner)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert done and all(len(t.values) == 3 and t.values[2] == t.user_attrs["params"] for t in done)


def test_a_trial_spec_file_retrains_as_is(root, tmp_path):
    from archsearch.spec import load_spec

    run_search(str(root / "search_spaces/smoke.yaml"), out=tmp_path / "o", trials=1, echo=lambda *a, **k: None)
    spec = load_spec(tmp_path / "o/trials/trial_0000.yaml")
    assert spec.train.tokens == 60000 and spec.train.seq_len == 64 and spec.task.tokenizer == "bytes"
    assert [b.name for b in spec.stack.sublayers[0].blocks] == ["softmax_attention"] * spec.stack.depth
