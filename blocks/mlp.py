"""Real channel mixers: the GPT-2 MLP and SwiGLU."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch.nn.functional as F
from torch import nn

_ACT = {"gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu, "silu": F.silu}


def hidden_width(expansion: float, hidden: int | None, d_model: int) -> int:
    return hidden if hidden is not None else int(round(expansion * d_model))


def init_linear(layer: nn.Linear, std: float) -> None:
    nn.init.normal_(layer.weight, 0.0, std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class MLP(nn.Module):
    """Two-layer MLP, GPT-2 style: up, activation (GELU), down."""

    name = "mlp"
    kind = "channel"

    @dataclass(frozen=True)
    class Config:
        expansion: float = field(default=4.0, metadata={"doc": "hidden width = expansion × d_model"})
        hidden: int | None = field(default=None, metadata={"doc": "hidden width; overrides expansion"})
        activation: Literal["gelu", "gelu_tanh", "relu", "silu"] = "gelu"
        bias: bool = True
        dropout: float = 0.0
        init_std: float = 0.02
        scaled_init: bool = field(default=True, metadata={"doc": "GPT-2: output init std / sqrt(2·n_layers)"})

    @staticmethod
    def check(cfg: "MLP.Config", d_model: int) -> list:
        if hidden_width(cfg.expansion, cfg.hidden, d_model) < 1:
            return [("expansion", "gives a hidden width below 1")]
        return []

    @staticmethod
    def cost(cfg: "MLP.Config", d_model: int, seq_len: int) -> dict:
        h = hidden_width(cfg.expansion, cfg.hidden, d_model)
        params = 2 * d_model * h + ((h + d_model) if cfg.bias else 0)
        return {"params": params, "flops": 4 * d_model * h, "state_bytes": 0}

    def __init__(self, cfg: "MLP.Config", *, d_model: int, n_layers: int = 1):
        super().__init__()
        h = hidden_width(cfg.expansion, cfg.hidden, d_model)
        self.act = _ACT[cfg.activation]
        self.up = nn.Linear(d_model, h, bias=cfg.bias)
        self.down = nn.Linear(h, d_model, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)
        init_linear(self.up, cfg.init_std)
        init_linear(self.down, cfg.init_std / (math.sqrt(2 * n_layers) if cfg.scaled_init else 1.0))

    def forward(self, x):
        return self.drop(self.down(self.act(self.up(x))))


class SwiGLU(nn.Module):
    """SwiGLU: down(silu(gate(x)) · up(x)), no biases by default (the SAM channel mixer)."""

    name = "swiglu"
    kind = "channel"

    @dataclass(frozen=True)
    class Config:
        expansion: float = field(default=3.0, metadata={"doc": "hidden width = expansion × d_model"})
        hidden: int | None = field(default=None, metadata={"doc": "hidden width; overrides expansion"})
        bias: bool = False
        init_std: float = 0.02
        scaled_init: bool = field(default=False, metadata={"doc": "output init std / sqrt(2·n_layers)"})

    @staticmethod
    def check(cfg: "SwiGLU.Config", d_model: int) -> list:
        return MLP.check(cfg, d_model)

    @staticmethod
    def cost(cfg: "SwiGLU.Config", d_model: int, seq_len: int) -> dict:
        h = hidden_width(cfg.expansion, cfg.hidden, d_model)
        params = 3 * d_model * h + ((2 * h + d_model) if cfg.bias else 0)
        return {"params": params, "flops": 6 * d_model * h, "state_bytes": 0}

    def __init__(self, cfg: "SwiGLU.Config", *, d_model: int, n_layers: int = 1):
        super().__init__()
        h = hidden_width(cfg.expansion, cfg.hidden, d_model)
        self.gate_up = nn.Linear(d_model, 2 * h, bias=cfg.bias)
        self.down = nn.Linear(h, d_model, bias=cfg.bias)
        init_linear(self.gate_up, cfg.init_std)
        init_linear(self.down, cfg.init_std / (math.sqrt(2 * n_layers) if cfg.scaled_init else 1.0))

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Linear(nn.Module):
    """A real linear map D → D on the stream (the SAM head's projection), no bias by default."""

    name = "linear"
    kind = "channel"

    @dataclass(frozen=True)
    class Config:
        bias: bool = False
        init_std: float = 0.02

    @staticmethod
    def cost(cfg: "Linear.Config", d_model: int, seq_len: int) -> dict:
        return {"params": d_model * d_model + (d_model if cfg.bias else 0), "flops": 2 * d_model * d_model,
                "state_bytes": 0}

    def __init__(self, cfg: "Linear.Config", *, d_model: int):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model, bias=cfg.bias)
        init_linear(self.proj, cfg.init_std)

    def forward(self, x):
        return self.proj(x)
