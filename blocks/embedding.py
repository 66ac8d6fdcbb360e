"""Token embedding: a real V×D table (a complex model views it as C^{V×D/2}), optional learned positions."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn


class Embedding(nn.Module):
    """Token table V×D (tied heads read `weight`), optional learned absolute positions."""

    name = "embedding"
    test_configs = ({}, {"positions": "learned"})
    kind = "embedding"

    @dataclass(frozen=True)
    class Config:
        positions: Literal["none", "learned"] = field(default="none", metadata={"doc": "absolute positions"})
        init_std: float = field(default=0.02, metadata={"doc": "std of the normal init of both tables"})

    @staticmethod
    def cost(cfg: "Embedding.Config", d_model: int, seq_len: int, vocab: int) -> dict:
        params = vocab * d_model + (seq_len * d_model if cfg.positions == "learned" else 0)
        return {"params": params, "flops": 0, "state_bytes": 0}

    def __init__(self, cfg: "Embedding.Config", *, d_model: int, vocab: int, seq_len: int):
        super().__init__()
        self.cfg, self.seq_len = cfg, seq_len
        self.weight = nn.Parameter(torch.randn(vocab, d_model) * cfg.init_std)  # read by a tied output head
        self.pos = nn.Parameter(torch.randn(seq_len, d_model) * cfg.init_std) if cfg.positions == "learned" else None

    def forward(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        x = self.weight[ids]
        if self.pos is not None:
            t = ids.shape[-1]
            if isinstance(start, torch.Tensor):  # a CUDA-graph decode step: its caller keeps start in range
                return x + self.pos[start + torch.arange(t, device=ids.device)]
            if start + t > self.seq_len:
                raise ValueError(f"sequence of {start + t} tokens exceeds the {self.seq_len} learned positions")
            x = x + self.pos[start:start + t]
        return x

    def init_state(self, batch: int, device=None, dtype=None) -> int:
        return 0  # the position of the next token

    def step(self, ids_t: torch.Tensor, pos: int) -> tuple[torch.Tensor, int]:
        return self.forward(ids_t[:, None], start=pos)[:, 0], pos + 1
