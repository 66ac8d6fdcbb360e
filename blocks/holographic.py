"""Vector-state holographic memory (PAM.md, "the vector-state holographic model"): what PAM replaced.

binding 'complex': per head a complex vector state h ∈ C^b; write h_t = γ'_t h_{t−1} + k_t ⊙ v'_t with unit-modulus
(phase) keys; read y_t = conj(q_t) ⊙ h_t with a unit-modulus query (unbinding). binding 'hrr': the real variant,
binding by circular convolution and unbinding by circular correlation via FFTs, keys with unit-modulus spectra.
n stored pairs leave n − 1 cross terms of random phase: retrieval quality falls as O(1/√n), so recall needs n ≪ b.
Forms: recurrent (reference) and parallel (a decayed cumulative sum by masked matmuls, no loop over T).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from . import linear_core
from .complex import ComplexLinear, complex_mul, magnitude, split
from .gates import DecayGSP


def fft_flops(n: int) -> int:
    """FLOPs of one real FFT (rfft or irfft) of length n: the usual 2.5·n·log2(n) estimate."""
    return int(round(2.5 * n * math.log2(n))) if n > 1 else 0


def unit(re: torch.Tensor, im: torch.Tensor):
    mag = magnitude(re, im)
    return re / mag, im / mag


def bind(kr, ki, vr, vi) -> torch.Tensor:
    """k/|k| ⊙ v, split-real: [..., b] pairs → [..., 2b]."""
    ur, ui = complex_mul(*unit(kr, ki), vr, vi)
    return torch.cat([ur, ui], -1)


def unbind(hstate: torch.Tensor, qr, qi) -> torch.Tensor:
    """conj(q/|q|) ⊙ h for a split-real state [..., 2b] → [..., 2b]."""
    qr, qi = unit(qr, qi)
    hr, hi = hstate.chunk(2, -1)
    yr, yi = complex_mul(linear_core.acc(qr), -linear_core.acc(qi), hr, hi)
    return torch.cat([yr, yi], -1)


class Holographic(nn.Module):
    """Vector-state memory: elementwise complex (or circular-convolution) binding, decay, GSP, unbinding."""

    name = "holographic"
    test_configs = (
        {"heads": 2, "head_dim": 8, "chunk": 16},
        {"heads": 2, "head_dim": 16, "chunk": 16, "binding": "hrr"},
        {"heads": 2, "head_dim": 8, "chunk": 8, "decay": "none", "gsp": "off"},
    )
    kind = "mixer"

    @dataclass(frozen=True)
    class Config:
        heads: int = 4
        head_dim: int = 64
        binding: Literal["complex", "hrr"] = "complex"
        decay: Literal["data", "none"] = "data"
        decay_bias: float = -4.0
        gsp: Literal["head", "off"] = "head"
        gsp_bias: float = -3.0
        mode: Literal["auto", "recurrent", "parallel"] = "auto"
        chunk: int = 64
        init: Literal["orthogonal", "gaussian"] = "orthogonal"

    @staticmethod
    def check(cfg: "Holographic.Config", d_model: int) -> list:
        for name in ("heads", "head_dim", "chunk"):
            if getattr(cfg, name) < 1:
                return [(name, f"must be >= 1, got {getattr(cfg, name)}")]
        if cfg.binding == "complex" and d_model % 2:
            return [("binding", f"complex binding views the stream as complex and needs an even d_model, got {d_model}")]
        return []

    @staticmethod
    def cost(cfg: "Holographic.Config", d_model: int, seq_len: int) -> dict:
        h, b = cfg.heads, cfg.head_dim
        inner = h * b
        if cfg.binding == "complex":
            n = d_model // 2
            gate_args = (2 * n, n, h, b, cfg.decay, cfg.gsp)
            params = 2 * n * 3 * inner + DecayGSP.param_count(*gate_args) + 2 * inner * n
            flops = 8 * n * 3 * inner + DecayGSP.flops(*gate_args) + 8 * inner * n
            return {"params": params, "flops": flops, "state_bytes": 2 * inner * 4}
        gate_args = (d_model, d_model, h, b, cfg.decay, cfg.gsp)
        params = 4 * d_model * inner + DecayGSP.param_count(*gate_args)
        flops = 8 * d_model * inner + DecayGSP.flops(*gate_args) + 6 * h * fft_flops(b)
        return {"params": params, "flops": flops, "state_bytes": inner * 4}

    def __init__(self, cfg: "Holographic.Config", *, d_model: int):
        super().__init__()
        self.cfg = cfg
        h, b = cfg.heads, cfg.head_dim
        self.heads, self.head_dim = h, b
        if cfg.binding == "complex":
            n = d_model // 2
            self.qkv = ComplexLinear(n, 3 * h * b, cfg.init)
            self.out = ComplexLinear(h * b, n, cfg.init)
            gate_in = (2 * n, n)
        else:
            self.qkv = nn.Linear(d_model, 3 * h * b, bias=False)
            self.out = nn.Linear(h * b, d_model, bias=False)
            for lin in (self.qkv, self.out):
                nn.init.normal_(lin.weight, 0.0, 0.02)
            gate_in = (d_model, d_model)
        self.gates = DecayGSP(*gate_in, h, b, decay=cfg.decay, decay_bias=cfg.decay_bias, gsp=cfg.gsp,
                              gsp_bias=cfg.gsp_bias)

    # ---------------------------------------------------------------- binding and unbinding, per variant
    def _write(self, x: torch.Tensor):
        """x [B, T, D] → the bound pair u [B, H, T, F] (F = 2b complex split-real, b for hrr), query, log γ'."""
        bsz, t, _ = x.shape
        h, b = self.heads, self.head_dim
        if self.cfg.binding == "complex":
            y = self.qkv(x).view(bsz, t, 2, 3, h, b).permute(2, 3, 0, 4, 1, 5)
            (qr, kr, vr), (qi, ki, vi) = y[0], y[1]
            log_g, keep = self.gates(x, magnitude(*split(x)))
            if keep is not None:
                vr, vi = vr * keep.to(vr.dtype), vi * keep.to(vi.dtype)
            return bind(kr, ki, vr, vi), (qr, qi), log_g
        q, k, v = self.qkv(x).view(bsz, t, 3, h, b).permute(2, 0, 3, 1, 4)
        log_g, keep = self.gates(x, x)
        if keep is not None:
            v = v * keep.to(v.dtype)
        kf = torch.fft.rfft(linear_core.acc(k), dim=-1)
        qf = torch.fft.rfft(linear_core.acc(q), dim=-1)
        u = torch.fft.irfft(kf / kf.abs().clamp_min(1e-8) * torch.fft.rfft(linear_core.acc(v), dim=-1), n=b, dim=-1)
        return u, qf / qf.abs().clamp_min(1e-8), log_g

    def _read(self, hstate: torch.Tensor, query) -> torch.Tensor:
        """Unbind: conj(q) ⊙ h (complex), or circular correlation with q (hrr). Returns [B, H, T, F]."""
        if self.cfg.binding == "complex":
            return unbind(hstate, *query)
        return torch.fft.irfft(query.conj() * torch.fft.rfft(hstate, dim=-1), n=self.head_dim, dim=-1)

    def _merge(self, y: torch.Tensor, dtype) -> torch.Tensor:
        bsz, h, t, f = y.shape
        if self.cfg.binding == "complex":
            yr, yi = y.chunk(2, -1)
            flat = torch.cat([yr.transpose(1, 2).reshape(bsz, t, -1), yi.transpose(1, 2).reshape(bsz, t, -1)], -1)
        else:
            flat = y.transpose(1, 2).reshape(bsz, t, h * f)
        return self.out(flat.to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, query, log_g = self._write(x)
        if self.cfg.mode == "recurrent":
            state, outs = torch.zeros_like(u[:, :, 0]), []
            for t in range(u.shape[2]):
                state = log_g[:, :, t, None].exp() * state + u[:, :, t]
                outs.append(state)
            hstate = torch.stack(outs, 2)
        else:
            hstate = linear_core.decayed_cumsum(u, log_g, self.cfg.chunk)
        return self._merge(self._read(hstate, query), x.dtype)

    def init_state(self, batch: int, device=None, dtype=None):
        """The fp32 vector state [B, H, F] (F = 2b split-real complex, or b for hrr)."""
        width = self.head_dim * (2 if self.cfg.binding == "complex" else 1)
        return torch.zeros(batch, self.heads, width, device=device)

    def step(self, x_t: torch.Tensor, state):
        u, query, log_g = self._write(x_t[:, None])
        state = log_g[:, :, 0, None].exp() * state + u[:, :, 0]
        y = self._read(state[:, :, None], query)
        return self._merge(y, x_t.dtype)[:, 0], state
