"""Measured costs: every key present and positive, and the decode step timed from the state after the context."""
import time

import torch

from archsearch.build import build
from archsearch.lower import lower
from archsearch.measure import decode_ms, measure, time_ms
from archsearch.passes import run_passes
from archsearch.spec import parse

SPEC = {"model": {"d_model": 32, "seq_len": 24, "vocab": 40},
        "stack": {"depth": 2, "sublayers": [{"block": ["softmax_attention", "pam"], "config": {"softmax_attention": {"heads": 2}, "pam": {"heads": 2, "head_dim": 8}}},
                                            {"block": "mlp"}]}}


def _model():
    torch.manual_seed(0)
    return lower(run_passes(build(parse(SPEC))))


def test_measure_reports_every_cost():
    model = _model()
    out = measure(model, 40, 2, 16, torch.device("cpu"), repeats=2, decode_context=20)
    for key in ("latency_train_ms", "latency_prefill_ms", "latency_decode_ms", "flops_train_step"):
        assert out[key] > 0, key
    assert out["decode_context"] == 20 and model.training  # the training mode is restored


def test_decode_steps_through_the_context(monkeypatch):
    model = _model()
    seen = []
    real = model.step

    def spy(ids, state):
        cache = state.get("l0__softmax_attention")
        seen.append(cache[2] if cache else None)
        return real(ids, state)

    monkeypatch.setattr(model, "step", spy)
    decode_ms(model, 40, 7, torch.device("cpu"), repeats=2)
    assert seen[:7] == list(range(7)) and set(seen[7:]) == {7}  # each timed step starts from the same 7-token state


def test_cpu_latency_is_the_fastest_repeat_so_other_processes_cannot_inflate_it():
    """Contention only adds time: three of five repeats stretched by 50 ms must not move the CPU measurement, which the
    median would (a search compares trials timed minutes apart)."""
    calls = iter(range(100))
    stretched = {2, 3, 5}  # after two warm-up calls: repeats 1, 2 and 4

    def fn():
        if next(calls) in stretched:
            time.sleep(0.05)

    assert time_ms(fn, torch.device("cpu"), repeats=5, warmup=2) < 25


def test_a_step_the_trainer_compiles_is_timed_compiled(monkeypatch):
    # `train.compile` trains the model compiled with its loss: its latency (and a search's iso-time budget, set from
    # it) must be the compiled step's, not the eager one's. A stand-in for the compiler counts the timed calls.
    import archsearch.measure

    calls = []

    def compiled(fn, **options):
        def run(x, y):
            calls.append(x.shape)
            return fn(x, y)
        return run

    monkeypatch.setattr(archsearch.measure, "compile_afresh", compiled)
    measure(_model(), 40, 2, 16, torch.device("cpu"), repeats=3, compile=True)
    assert len(calls) == 2 + 3  # the warm-up runs and the timed repeats, all through the compiled step
    calls.clear()
    measure(_model(), 40, 2, 16, torch.device("cpu"), repeats=3)
    assert not calls
