"""Where and at what shape a spec's model runs: the device, the autocast, and the batch × length of an optimiser step,
worked out from a train section and the model's length, and checked, in one place for every caller (`train`, the
search's trials, `profile`, the check of saved weights)."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from .errors import Loc, SpecError
from .task_and_train import TrainConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' asked for, but no CUDA device is visible")
    return dev


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def autocast_for(device: torch.device, precision: str):
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def step_shape(cfg: TrainConfig, model_seq_len: int) -> tuple[int, int]:
    """(sequences, length) of one optimiser step: the training length (default the model's) and batch_tokens of it."""
    seq_len = cfg.seq_len or model_seq_len
    return max(1, cfg.batch_tokens // seq_len), seq_len


@dataclass(frozen=True)
class RunContext:
    device: torch.device
    precision: str  # the train section's: auto (bf16 on a GPU) | fp32 | bf16
    batch: int  # sequences per optimiser step
    seq_len: int  # the training and evaluation length, at most the model's

    def autocast(self):
        """The autocast context of the run's forwards (a new one each call: one object must not be entered twice)."""
        return autocast_for(self.device, self.precision)


def run_context(cfg: TrainConfig, model_seq_len: int, where: Loc) -> RunContext:
    """The context of a run of `cfg` on a model of length `model_seq_len`. SpecError at `where` (the setting that gave
    the training length) when the training length exceeds the model's, and at --device when the device asked for is
    not there."""
    batch, seq_len = step_shape(cfg, model_seq_len)
    if seq_len > model_seq_len:
        raise SpecError(where, f"{seq_len} exceeds model.seq_len {model_seq_len}")
    try:
        device = resolve_device(cfg.device)
    except (ValueError, RuntimeError) as e:
        raise SpecError(Loc("--device"), str(e)) from None
    return RunContext(device, cfg.precision, batch, seq_len)
