"""The trainer: schedule, parameter groups, budgets, divergence, early stop, checkpoint/resume, determinism."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from archsearch.compiler import compile_text
from archsearch.lower import lower
from archsearch.task_and_train import TrainConfig
from archsearch.tasks import LMTask
from archsearch.train import lr_at, param_groups, plan, train

from helpers import COMPILED_BATCH, COMPILED_SPEC

SPEC = COMPILED_SPEC  # shared with the compiled profile test (tests/helpers.py)
CFG = TrainConfig(tokens=32 * 32 * 8, batch_tokens=32 * COMPILED_BATCH, lr=3e-3, evals=3, eval_tokens=512, seed=0,
                  warmup=0.1)


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    stream = np.tile(rng.integers(0, 64, 50), 60)  # a repeating pattern: learnable
    return LMTask.from_streams({"train": stream, "validation": stream[:2000]}, {"validation": 2000}, 64)


def _model(seed=0):
    torch.manual_seed(seed)
    return lower(compile_text(SPEC))


def test_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(lr=1.0, warmup=0.1, min_lr_ratio=0.1)
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_no_decay_on_vectors_and_scalars():
    model = _model()
    decay, rest = param_groups(model, 0.1)
    assert all(p.ndim >= 2 for p in decay["params"]) and rest["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    undecayed = {names[id(p)] for p in rest["params"]}
    assert "scales.l0__softmax_attention__add" in undecayed and "blocks.l0__softmax_attention.qkv.bias" in undecayed


def test_budget_in_tokens_with_accumulation():
    assert plan(TrainConfig(tokens=10_000, batch_tokens=1024, micro_batch=8), 64) == (8, 2, 10)
    assert plan(TrainConfig(tokens=1000, batch_tokens=256), 64) == (4, 1, 4)


def test_training_learns_and_reports(task):
    seen = []
    result = train(_model(), task, CFG, seq_len=32, progress=False, on_eval=lambda s, t, m: seen.append(m) and False)
    assert result.status == "completed" and result.steps == 32 and result.tokens == 32 * 32 * 8
    assert len(seen) == 3 and seen[-1]["loss"] < seen[0]["loss"] < math.log(64)
    # each recorded evaluation says how far training was (its own token count is eval_tokens)
    assert [e["tokens"] for e in result.evals] == [e["step"] * 32 * 8 for e in result.evals]
    assert all(e["eval_tokens"] == seen[0]["tokens"] for e in result.evals)


def test_divergence_stops_with_a_reason(task):
    model = _model()
    with torch.no_grad():
        model.blocks["l0__swiglu"].down.weight.fill_(float("nan"))
    result = train(model, task, CFG, seq_len=32, progress=False)
    assert result.status == "diverged" and result.reason == "loss became nan at step 1" and result.steps == 0


def test_a_divergence_read_a_step_late_or_at_once_stops_at_the_same_step(task):
    """Step 3 of 8 gives a NaN loss (its learning rate is NaN from step 2's update on): both ways of reading the
    losses name step 3 and report the 2 steps before it."""
    import archsearch.train

    real = archsearch.train.lr_at
    results = []
    for overlap in (True, False):
        archsearch.train.lr_at = lambda step, total, cfg: float("nan") if step == 1 else real(step, total, cfg)
        try:
            results.append(train(_model(), task, CFG, seq_len=32, progress=False, overlap=overlap))
        finally:
            archsearch.train.lr_at = real
    for r in results:
        assert (r.status, r.reason, r.steps, r.tokens) == ("diverged", "loss became nan at step 3", 2,
                                                          2 * CFG.batch_tokens)
    assert results[0].evals == results[1].evals


def test_overlapped_steps_train_exactly_as_steps_that_wait(task):
    """The host queueing step s + 1 before reading step s's loss changes nothing but the waiting: same weights,
    same evaluations, same smoothed loss, bit for bit."""
    a, b = _model(), _model()
    ra = train(a, task, CFG, seq_len=32, progress=False)
    rb = train(b, task, CFG, seq_len=32, progress=False, overlap=False)
    assert (ra.steps, ra.train_loss, ra.evals) == (rb.steps, rb.train_loss, rb.evals)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_the_callback_can_stop_a_run(task):
    result = train(_model(), task, CFG, seq_len=32, progress=False, on_eval=lambda s, t, m: True)
    assert result.status == "stopped" and result.steps == 8


def test_resume_after_interruption_matches_an_uninterrupted_run(task, tmp_path):
    straight = _model()
    train(straight, task, CFG, seq_len=32, progress=False)

    def interrupt(step, tokens, metrics):
        raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        train(_model(), task, CFG, seq_len=32, progress=False, checkpoint=ckpt, on_eval=interrupt)
    resumed = _model(seed=123)  # different init: everything must come from the checkpoint
    result = train(resumed, task, CFG, seq_len=32, progress=False, checkpoint=ckpt)
    assert result.steps == 32
    for (n, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n


def test_a_run_past_its_deadline_pauses_into_its_checkpoint_and_resumes_to_the_same_weights(task, tmp_path):
    import time
    straight = _model()
    train(straight, task, CFG, seq_len=32, progress=False)
    ckpt = tmp_path / "ckpt.pt"
    paused = train(_model(), task, CFG, seq_len=32, progress=False, checkpoint=ckpt, deadline=time.monotonic())
    assert paused.status == "paused" and paused.steps == 1 and "paused at step 1/32" in paused.reason
    resumed = _model(seed=123)
    result = train(resumed, task, CFG, seq_len=32, progress=False, checkpoint=ckpt, deadline=time.monotonic() + 3600)
    assert result.status == "completed" and result.steps == 32 and len(result.evals) == CFG.evals
    for (n, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n


def test_a_checkpoint_of_another_model_is_not_resumed(task, tmp_path, capsys):
    ckpt = tmp_path / "ckpt.pt"
    train(lower(compile_text(SPEC.replace("d_model: 32", "d_model: 16"))), task, CFG, seq_len=32, progress=False,
          checkpoint=ckpt)
    result = train(_model(), task, CFG, seq_len=32, progress=False, checkpoint=ckpt)
    assert result.status == "completed" and result.steps == 32
    assert "is of another model or training configuration: starting afresh" in capsys.readouterr().err


def test_same_seed_same_numbers(task):
    a = train(_model(), task, dataclasses.replace(CFG, evals=1), seq_len=32, progress=False)
    b = train(_model(), task, dataclasses.replace(CFG, evals=1), seq_len=32, progress=False)
    assert a.train_loss == b.train_loss and a.evals[0]["loss"] == b.evals[0]["loss"]


def test_cuda_graph_is_ignored_on_cpu(task):
    a = train(_model(), task, dataclasses.replace(CFG, evals=1), seq_len=32, progress=False)
    b = train(_model(), task, dataclasses.replace(CFG, evals=1, cuda_graph=True), seq_len=32, progress=False)
    assert a.train_loss == b.train_loss and a.evals[0]["loss"] == b.evals[0]["loss"]


def test_compiled_training_with_its_loss_matches_eager(task, monkeypatch):
    """train.compile compiles the model together with its loss (graph_step.LMLoss): same losses and weights as eager
    training, to float rounding. And a process that trains many compiled models (a ladder's call, a search) compiles
    each: dynamo's caches of earlier models would count against its recompile limit, past which it silently runs a
    model eagerly (the 9th of the ladder's families compiled in one process did). With the limit lowered to 1, a
    second, different model compiles too."""
    from torch._dynamo.utils import counters
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    a_model, b_model = _model(), _model()
    a = train(a_model, task, dataclasses.replace(CFG, evals=1), seq_len=32, progress=False)
    b = train(b_model, task, dataclasses.replace(CFG, evals=1, compile=True), seq_len=32, progress=False)
    assert b.status == "completed" and b.train_loss == pytest.approx(a.train_loss, rel=1e-4)
    assert b.evals[0]["loss"] == pytest.approx(a.evals[0]["loss"], rel=1e-4)
    for (name, p), q in zip(a_model.named_parameters(), b_model.parameters()):
        if name.endswith("qkv.bias"):  # the key bias's gradient is zero but for rounding, which AdamW scales up
            p, q = p.view(3, -1)[[0, 2]], q.view(3, -1)[[0, 2]]
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)
    before = counters["stats"]["unique_graphs"]
    torch.manual_seed(0)
    other = lower(compile_text(SPEC.replace("depth: 1", "depth: 2")))
    train(other, task, dataclasses.replace(CFG, tokens=32 * 8, evals=1, compile=True), seq_len=32, progress=False)
    assert counters["stats"]["unique_graphs"] > before



def test_a_result_names_the_form_its_step_ran_in(task, monkeypatch):
    """The form that timed tokens_per_s (a ladder's GPU-seconds compare only within one): CUDA graphs do not apply on
    a CPU, so a run that asks for them ran eagerly; compiled is compiled (inductor itself is not what this checks)."""
    import archsearch.train

    assert train(_model(), task, CFG, seq_len=32, progress=False).form == "eager"
    graphs = dataclasses.replace(CFG, cuda_graph=True)
    assert train(_model(), task, graphs, seq_len=32, progress=False).form == "eager"
    monkeypatch.setattr(archsearch.train, "compile_afresh", lambda fn, **kw: fn)
    compiled = dataclasses.replace(graphs, compile=True)
    assert train(_model(), task, compiled, seq_len=32, progress=False).form == "compile"


@pytest.mark.parametrize("before, blends", [("eager", True), ("graph", False)])
def test_a_resumed_run_keeps_the_timing_of_its_parts_only_when_they_ran_in_one_form(task, tmp_path, before, blends):
    """A part whose CUDA graph could be captured and one whose could not (or the reverse) timed two forms: the
    resumed run's tokens/s is then its own part's alone."""
    import time
    ckpt = tmp_path / "ckpt.pt"
    paused = train(_model(), task, CFG, seq_len=32, progress=False, checkpoint=ckpt, deadline=time.monotonic())
    assert paused.status == "paused"
    state = torch.load(ckpt, weights_only=False)
    assert state["form"] == "eager"
    torch.save({**state, "steady": [1e-6, 10 ** 9], "form": before}, ckpt)  # an absurd earlier part: visible
    r = train(_model(), task, CFG, seq_len=32, progress=False, checkpoint=ckpt, deadline=time.monotonic() + 3600)
    assert r.status == "completed" and r.form == "eager"
    assert (r.tokens_per_s > 1e8) == blends  # this part alone: about 1e5 tokens/s on a CPU
