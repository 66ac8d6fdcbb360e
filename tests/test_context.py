"""The run context: device, autocast and batch × length worked out and checked in one place."""
import pytest
import torch

from archsearch.context import run_context
from archsearch.errors import Loc, SpecError
from archsearch.task_and_train import TrainConfig

WHERE = Loc("s.yaml", 0, "train.seq_len")


def test_the_batch_and_length_of_a_step_default_to_the_models_length():
    ctx = run_context(TrainConfig(batch_tokens=4096, device="cpu"), 128, WHERE)
    assert (ctx.device, ctx.batch, ctx.seq_len) == (torch.device("cpu"), 32, 128)
    ctx = run_context(TrainConfig(batch_tokens=100, seq_len=64, device="cpu"), 128, WHERE)
    assert (ctx.batch, ctx.seq_len) == (1, 64)  # at least one sequence


def test_autocast_is_bf16_on_a_gpu_or_when_asked_for():
    cpu = run_context(TrainConfig(device="cpu"), 128, WHERE)
    assert not isinstance(cpu.autocast(), torch.autocast)
    bf16 = run_context(TrainConfig(device="cpu", precision="bf16"), 128, WHERE)
    assert isinstance(bf16.autocast(), torch.autocast) and bf16.autocast() is not bf16.autocast()


def test_a_training_length_beyond_the_models_is_refused_where_it_was_set():
    with pytest.raises(SpecError, match=r"^s\.yaml: train\.seq_len: 256 exceeds model\.seq_len 128$"):
        run_context(TrainConfig(seq_len=256), 128, WHERE)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_a_gpu_that_is_not_there_is_refused_at_the_device_flag():
    with pytest.raises(SpecError, match=r"^--device: device 'cuda' asked for, but no CUDA device is visible$"):
        run_context(TrainConfig(device="cuda"), 128, WHERE)
