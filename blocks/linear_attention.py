"""Real-valued matrix-state memory: gated linear attention. The default is the paper's structurally matched real
ablation of PAM ("SAM"): decay softplus(w·x − 4), GSP σ(W x − 3) on the signed input, real RoPE, scores Q Kᵀ/√d with
the decay mask, no softmax. Options: fixed (RetNet-style γ_h = 1 − 2^(−5−h)) or no decay, and the classic kernelised
form (feature map elu+1 with a normaliser, no RoPE). Forms as in pam: recurrent (reference), dual, chunked, triton.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from . import fastpath, linear_core
from .gates import DecayGSP
from .rope import apply_rope, rope_angles, step_positions


def fixed_log_decay(heads: int) -> torch.Tensor:
    return torch.log1p(-(2.0 ** (-5.0 - torch.arange(heads, dtype=torch.float64)))).float()


class LinearAttention(fastpath.ModeChoice, nn.Module):
    """Gated linear attention (real matrix state per head); SAM, the real ablation of PAM, by default."""

    name = "linear_attention"
    test_configs = (
        {"heads": 2, "head_dim": 8, "chunk": 16},
        {"heads": 2, "head_dim": 8, "chunk": 16, "gsp": "channel", "decay": "fixed"},
        {"heads": 4, "head_dim": 4, "chunk": 8, "feature_map": "elu1", "rope": False, "decay": "none", "gsp": "off"},
    )
    kind = "mixer"

    @dataclass(frozen=True)
    class Config:
        heads: int = 8
        head_dim: int = 64
        rope: bool = True
        rope_base: float = 10000.0
        decay: Literal["data", "fixed", "none"] = "data"
        decay_bias: float = -4.0
        gsp: Literal["head", "channel", "off"] = "head"
        gsp_bias: float = -3.0
        feature_map: Literal["none", "elu1"] = field(default="none", metadata={"doc": "elu1: kernelised, normalised"})
        mode: fastpath.Mode = "auto"
        chunk: int = 64
        init_std: float = 0.02

    @staticmethod
    def check(cfg: "LinearAttention.Config", d_model: int) -> list:
        for name in ("heads", "head_dim", "chunk"):
            if getattr(cfg, name) < 1:
                return [(name, f"must be >= 1, got {getattr(cfg, name)}")]
        if cfg.rope and cfg.head_dim % 2:
            return [("rope", f"needs an even head_dim, got {cfg.head_dim}")]
        if cfg.rope and cfg.feature_map == "elu1":
            return [("rope", "RoPE would break the positivity the elu1 normaliser needs; set rope: false")]
        return []

    @staticmethod
    def _value_width(cfg) -> int:
        return cfg.head_dim + (cfg.feature_map == "elu1")  # the normaliser rides along as a ones column

    @staticmethod
    def cost(cfg: "LinearAttention.Config", d_model: int, seq_len: int) -> dict:
        h, d = cfg.heads, cfg.head_dim
        inner, dv = h * d, LinearAttention._value_width(cfg)
        gate_args = (d_model, d_model, h, d, cfg.decay, cfg.gsp)
        params = 4 * d_model * inner + DecayGSP.param_count(*gate_args)
        flops = 8 * d_model * inner + DecayGSP.flops(*gate_args) + 4 * h * d * dv
        return {"params": params, "flops": flops, "state_bytes": h * d * dv * 4}

    def __init__(self, cfg: "LinearAttention.Config", *, d_model: int):
        super().__init__()
        self.cfg = cfg
        h, d = cfg.heads, cfg.head_dim
        self.heads, self.head_dim = h, d
        self.qkv = nn.Linear(d_model, 3 * h * d, bias=False)
        self.out = nn.Linear(h * d, d_model, bias=False)
        for lin in (self.qkv, self.out):
            nn.init.normal_(lin.weight, 0.0, cfg.init_std)
        fixed = fixed_log_decay(h) if cfg.decay == "fixed" else None
        self.gates = DecayGSP(d_model, d_model, h, d, decay=cfg.decay, decay_bias=cfg.decay_bias, gsp=cfg.gsp,
                              gsp_bias=cfg.gsp_bias, fixed=fixed)

    def _project(self, x: torch.Tensor, positions: torch.Tensor):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # [B, H, T, d]
        if self.cfg.feature_map == "elu1":
            q, k = F.elu(q) + 1, F.elu(k) + 1
            v = torch.cat([v, torch.ones_like(v[..., :1])], -1)
        else:
            if self.cfg.rope:
                cos, sin = rope_angles(positions, self.head_dim, self.cfg.rope_base)
                q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            q = q / math.sqrt(self.head_dim)
        log_g, keep = self.gates(x, x)
        if keep is not None:  # (1 − p) per head or per channel scales the value; elu1's normaliser column stays 1
            keep = keep.expand(*keep.shape[:-1], self.head_dim)
            v = v * F.pad(keep, (0, v.shape[-1] - self.head_dim), value=1.0).to(v.dtype)
        return q[:, :, None], k, v, log_g

    def _merge(self, y: torch.Tensor, dtype) -> torch.Tensor:  # y [B, H, T, dv]
        if self.cfg.feature_map == "elu1":
            y = y[..., :-1] / y[..., -1:].clamp_min(1e-6)
        b, h, t, d = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, h * d).to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v, log_g = self._project(x, torch.arange(x.shape[1], device=x.device))
        y = linear_core.memory(q, k, v, log_g, self.resolve_mode(x.shape[1], x.device), self.cfg.chunk)
        return self._merge(y[:, :, 0], x.dtype)

    def init_state(self, batch: int, device=None, dtype=None):
        """(S, position): the fp32 state [B, H, d, dv] (dv = d, plus 1 with the elu1 normaliser)."""
        dv = self._value_width(self.cfg)
        return torch.zeros(batch, self.heads, self.head_dim, dv, device=device), 0

    def step(self, x_t: torch.Tensor, state):
        s, pos = state
        q, k, v, log_g = self._project(x_t[:, None], step_positions(pos, x_t.device))
        s, y = linear_core.step(q[:, :, :, 0], k[:, :, 0], v[:, :, 0], log_g[:, :, 0], s)
        return self._merge(y[:, :, 0, None], x_t.dtype)[:, 0], (s, pos + 1)
