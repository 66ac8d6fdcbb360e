"""A worked example of a user block: a causal depthwise short convolution over time (a cheap local mixer).

Copy this file into blocks/ (or point $ARCHSEARCH_BLOCKS at this folder) and `short_conv` becomes usable in specs.
It follows the block contract: `name`, `kind`, a frozen `Config`, a static `cost`, and, being a mixer, a parallel
`forward` plus a recurrent `init_state`/`step`. It imports torch and the standard library only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


class ShortConv(nn.Module):
    """Causal depthwise convolution: y_t = Σ_{j<k} w_j ⊙ x_{t-j} (+ b)."""

    name = "short_conv"
    kind = "mixer"

    @dataclass(frozen=True)
    class Config:
        kernel: int = field(default=4, metadata={"doc": "taps, the current token included"})
        bias: bool = True

    @staticmethod
    def check(cfg: "ShortConv.Config", d_model: int) -> list:
        return [("kernel", f"must be >= 1, got {cfg.kernel}")] if cfg.kernel < 1 else []

    @staticmethod
    def cost(cfg: "ShortConv.Config", d_model: int, seq_len: int) -> dict:
        return {"params": d_model * cfg.kernel + (d_model if cfg.bias else 0),
                "flops": 2 * d_model * cfg.kernel,
                "state_bytes": 4 * d_model * (cfg.kernel - 1)}  # the last k-1 inputs, fp32

    def __init__(self, cfg: "ShortConv.Config", *, d_model: int):
        super().__init__()
        self.kernel = cfg.kernel
        self.weight = nn.Parameter(torch.randn(d_model, 1, cfg.kernel) / cfg.kernel ** 0.5)
        self.bias = nn.Parameter(torch.zeros(d_model)) if cfg.bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] → [B, T, D]
        xt = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))
        return F.conv1d(xt, self.weight, self.bias, groups=x.shape[-1]).transpose(1, 2)

    def init_state(self, batch: int, device=None, dtype=None) -> torch.Tensor:
        return torch.zeros(batch, self.weight.shape[0], self.kernel - 1, device=device, dtype=dtype or torch.float32)

    def step(self, x_t: torch.Tensor, state: torch.Tensor):  # x_t [B, D]
        window = torch.cat([state, x_t[:, :, None].to(state.dtype)], dim=-1)
        y = torch.einsum("bdk,dk->bd", window, self.weight[:, 0].to(window.dtype)).to(x_t.dtype)  # a batched matmul
        if self.bias is not None:
            y = y + self.bias
        return y, window[:, :, 1:]
