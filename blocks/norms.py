"""Real normalisation layers (pre-norm of residual branches, final norm of the head)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """LayerNorm over the stream width, optional bias."""

    name = "layernorm"
    kind = "norm"

    @dataclass(frozen=True)
    class Config:
        eps: float = 1e-5
        bias: bool = True

    @staticmethod
    def cost(cfg: "LayerNorm.Config", d_model: int, seq_len: int) -> dict:
        return {"params": d_model * (2 if cfg.bias else 1), "flops": 0, "state_bytes": 0}

    def __init__(self, cfg: "LayerNorm.Config", *, d_model: int):
        super().__init__()
        self.eps = cfg.eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if cfg.bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """RMSNorm over the stream width (no bias, no mean subtraction)."""

    name = "rmsnorm"
    kind = "norm"

    @dataclass(frozen=True)
    class Config:
        eps: float = 1e-6

    @staticmethod
    def cost(cfg: "RMSNorm.Config", d_model: int, seq_len: int) -> dict:
        return {"params": d_model, "flops": 0, "state_bytes": 0}

    def __init__(self, cfg: "RMSNorm.Config", *, d_model: int):
        super().__init__()
        self.eps = cfg.eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, x.shape[-1:], self.weight.to(x.dtype), self.eps)  # one dtype: the fused kernel
