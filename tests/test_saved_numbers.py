"""Every reported number is that of the saved weights: trained with fused AdamW (which leaves the parameters' version
counters alone, as on a GPU) through several evaluations, each family's reported metrics equal those of its saved
weights loaded into a freshly built model; and `train` never resumes another run."""
import numpy as np
import pytest
import torch

from archsearch.compiler import compile_spec
from archsearch.errors import SpecError
from archsearch.experiment import train_spec
from archsearch.lower import lower
from archsearch.spec import parse
from archsearch.tasks import LMTask

REAL = {"embedding": None, "norm": "rmsnorm", "channel": "swiglu", "head": ["rmsnorm"]}
COMPLEX = {"embedding": {"blocks": ["complex_norm"]}, "norm": "complex_norm", "channel": "cgu",
           "head": ["complex_norm", "complex_linear", "complex_norm"]}
FAMILIES = {  # mixer config and skeleton: every block family, the paper's complex skeleton included
    "pam_paper": ({"block": "pam", "config": {"heads": 2, "head_dim": 8, "chunk": 16}}, COMPLEX),
    "pam": ({"block": "pam", "config": {"heads": 2, "head_dim": 8, "chunk": 16}}, REAL),
    "linear_attention": ({"block": "linear_attention", "config": {"heads": 2, "head_dim": 8}}, REAL),
    "holographic": ({"block": "holographic", "config": {"heads": 2, "head_dim": 16}}, REAL),
    "softmax_attention": ({"block": "softmax_attention", "config": {"heads": 2}}, REAL),
}


def _doc(family: str, **train) -> dict:
    mixer, skel = FAMILIES[family]
    doc = {"model": {"d_model": 32, "seq_len": 32, "vocab": 64},
           "stack": {"depth": 2, "norm": skel["norm"], "sublayers": [mixer, {"block": skel["channel"]}]},
           "head": {"blocks": skel["head"], "tied": True},
           "train": {"tokens": 32 * 32 * 12, "batch_tokens": 32 * 8, "lr": 1e-2, "evals": 3, "eval_tokens": 512,
                     "fused": True, **train}}
    if skel["embedding"]:
        doc["embedding"] = skel["embedding"]
    return doc


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    stream = np.tile(rng.integers(0, 64, 50), 40)
    return LMTask.from_streams({"train": stream, "validation": stream[:1500], "test": stream[7:1500]},
                               {"validation": 1500, "test": 1493}, 64)


@pytest.mark.parametrize("family", FAMILIES)
def test_reported_metrics_are_the_saved_weights(family, task, tmp_path):
    spec = parse(_doc(family), f"{family}.yaml")
    m = train_spec(spec, out=tmp_path, task=task, progress=False)
    assert m["status"] == "completed" and len(m["evals"]) == 3
    torch.manual_seed(123)  # another initialisation: every number must come from the loaded weights
    fresh = lower(compile_spec(spec, vocab=64))
    fresh.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True))
    again = task.evaluate(fresh, 32, torch.device("cpu"))
    assert m["val_ppl"] == again["ppl"] and m["val_loss"] == again["loss"]
    assert m["val_ppl"] < 64  # it learned something: the weights moved after the evaluations


def _spec(**train):
    return parse(_doc("softmax_attention", **train), "run.yaml")


def test_a_completed_run_is_not_trained_again(task, tmp_path, capsys):
    first = train_spec(_spec(), out=tmp_path, task=task, progress=False)
    again = train_spec(_spec(), out=tmp_path, task=task, progress=False)
    assert "this run is complete" in capsys.readouterr().err
    assert again["val_ppl"] == first["val_ppl"] and again["train_seconds"] == first["train_seconds"]


def test_other_settings_never_resume_a_run(task, tmp_path):
    train_spec(_spec(evals=1), out=tmp_path, task=task, progress=False)
    with pytest.raises(SpecError, match="holds another run .* pass --fresh"):
        train_spec(_spec(lr=3e-3), out=tmp_path, task=task, progress=False)
    other = train_spec(_spec(lr=3e-3), out=tmp_path, task=task, progress=False, fresh=True)
    assert other["lr"] == 3e-3 and other["status"] == "completed"


def test_an_unfinished_run_resumes_from_its_checkpoint(task, tmp_path):
    whole = train_spec(_spec(), out=tmp_path / "whole", task=task, progress=False)
    calls = []

    def stop_at_second(step, tokens, metrics):
        calls.append(step)
        return len(calls) == 2
    stopped = train_spec(_spec(), out=tmp_path / "split", task=task, progress=False, on_eval=stop_at_second)
    assert stopped["status"] == "stopped"
    resumed = train_spec(_spec(), out=tmp_path / "split", task=task, progress=False)
    assert resumed["status"] == "completed" and resumed["val_ppl"] == whole["val_ppl"]


def test_wsd_keeps_the_rate_until_the_decay():
    from archsearch.task_and_train import TrainConfig
    from archsearch.train import lr_at

    cfg = TrainConfig(lr=1.0, warmup=0.1, schedule="wsd", decay=0.2, min_lr_ratio=0.1)
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[9] == 1.0 and lrs[79] == 1.0 and lrs[80] < 1.0
    assert lrs[-1] == pytest.approx(0.1) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
