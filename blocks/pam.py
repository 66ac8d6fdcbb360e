"""Phase-Associative Memory (PAM, arXiv 2604.05030): a complex matrix-state recurrent mixer (PAM.md, "The PAM mixer").

Per head h with head dim d (complex): [Q; K; V] = W_qkv z; complex RoPE on Q, K; γ' and V' from decay and GSP;
S_t = γ'_t S_{t−1} + V'_t K_tᴴ; y_t = S_t Q_t / √d (the full complex score ⟨K, Q⟩ = Σ conj(K)·Q, no softmax);
heads concatenated → W_o. The stream is real of width D; the block views it as C^{D/2}.

Forms (`mode`): recurrent (the per-step reference, native complex state), dual (O(T²)), chunked (chunkwise parallel,
no Python loop over chunks), triton (the chunked form as fused kernels, blocks/kernels); auto picks triton on a CUDA
GPU with Triton, else dual or chunked by length (fastpath.auto_mode). All but the recurrence run the split-real
complex product as a real matrix memory with key/value width 2d and two queries (Re and Im parts). pair_qkv and
pair_memory are the torch twins of the kernel path's two steps, in its layout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from . import fastpath, linear_core
from .complex import (ComplexLinear, complex_linear, complex_rms_norm, compute_dtype, fused_sublayer_applies,
                      magnitude, residual_linear, split)
from .gates import DecayGSP, gate_values
from .rope import step_positions


def rope_frequencies(head_dim: int, variant: str, base: float) -> torch.Tensor:
    """θ_k per complex channel: v1 base^(−k/d); v2 paired base^(−2⌊k/2⌋/d); none: zeros."""
    k = torch.arange(head_dim, dtype=torch.float64)
    if variant == "v1":
        return (base ** (-k / head_dim)).float()
    if variant == "v2":
        return (base ** (-2 * torch.div(k, 2, rounding_mode="floor") / head_dim)).float()
    return torch.zeros(head_dim)


def rotate(re, im, positions, theta):
    """(re + i·im)·e^{i·t·θ} for re, im [B, H, T, d] and positions [T]."""
    ang = positions.float()[:, None] * theta[None, :]
    cos, sin = ang.cos().to(re.dtype), ang.sin().to(re.dtype)
    return re * cos - im * sin, re * sin + im * cos


def score_queries(qr, qi, conjugate: bool):
    """Real queries whose dot products with k = [Kr | Ki] give Re and Im of the score (⟨K,Q⟩ or, without the
    conjugate, Σ K·Q)."""
    if conjugate:
        return torch.stack([torch.cat([qr, qi], -1), torch.cat([qi, -qr], -1)], 2)
    return torch.stack([torch.cat([qr, -qi], -1), torch.cat([qi, qr], -1)], 2)


def complex_memory(qr, qi, kr, ki, vr, vi, log_g, *, mode: str, chunk: int, conjugate: bool = True):
    """y = Σ_i (Π γ') ⟨K_i, Q_t⟩ V_i for split-real [B, H, T, d] inputs (Q pre-scaled); returns (yr, yi) in fp32."""
    d = qr.shape[-1]
    if mode == "recurrent":
        state = complex_state(qr.shape[0], qr.shape[1], d, qr.device, linear_core.acc(qr).dtype)
        ys = []
        for t in range(qr.shape[2]):
            y, state = complex_step(qr[:, :, t], qi[:, :, t], kr[:, :, t], ki[:, :, t], vr[:, :, t], vi[:, :, t],
                                    log_g[:, :, t], state, conjugate)
            ys.append(y)
        return torch.stack([y[0] for y in ys], 2), torch.stack([y[1] for y in ys], 2)
    k, v = torch.cat([kr, ki], -1), torch.cat([vr, vi], -1)
    if mode == "triton":  # the kernels derive the Im query themselves and return [Re | Im]
        y = fastpath.kernel("memory", qr.device).complex_pair_memory(torch.cat([qr, qi if conjugate else -qi], -1),
                                                                     k, v, log_g, 1.0 if conjugate else -1.0)
        return y[..., :d], y[..., d:]
    q = score_queries(qr, qi, conjugate)
    y = linear_core.memory(q, k, v, log_g, mode, chunk)
    re_a, im_a = y[:, :, 0], y[:, :, 1]  # (Re A)·[Vr | Vi] and (Im A)·[Vr | Vi]
    return re_a[..., :d] - im_a[..., d:], re_a[..., d:] + im_a[..., :d]


def complex_state(batch: int, heads: int, d: int, device=None, dtype=torch.float32):
    z = torch.zeros(batch, heads, d, d, device=device, dtype=dtype)
    return z, z.clone()


def complex_step(qr, qi, kr, ki, vr, vi, log_g, state, conjugate: bool = True):
    """One token of S ← γ'S + V Kᴴ (or V Kᵀ), y = S Q, native complex: 8d² FLOPs to write, 8d² to read per head.

    Eager, the products are matmuls (what the FLOP counter sees, rounded to bf16 under autocast like the kernels'
    inputs). In a compiled decode step (fastpath.compiled_decode) they are broadcast products and sums in fp32, which
    inductor fuses with the update into one kernel instead of launching eight one-row batched matmuls per layer and
    step."""
    sr, si = state
    acc = linear_core.acc
    g = acc(log_g).exp()[..., None, None]
    col, row = (lambda a: acc(a)[..., :, None]), (lambda a: acc(a)[..., None, :])  # noqa: E731
    if fastpath.compiled_decode():
        outer = lambda a, b: col(a) * row(b)  # noqa: E731
        read = lambda s, q: (s * row(q)).sum(-1)  # noqa: E731
    else:
        outer = lambda a, b: torch.matmul(col(a), row(b))  # noqa: E731
        read = lambda s, q: torch.matmul(s, col(q))[..., 0]  # noqa: E731
    sign = 1.0 if conjugate else -1.0
    sr = g * sr + outer(vr, kr) + sign * outer(vi, ki)
    si = g * si + outer(vi, kr) - sign * outer(vr, ki)
    return (read(sr, qr) - read(si, qi), read(sr, qi) + read(si, qr)), (sr, si)


def pair_qkv(y, cos, sin, keep, heads: int, head_dim: int, scale: float, sign: float):
    """PAM's projection y [B, T, 6·H·d] ([re | im] × [q | k | v] × H × d) → the pair memory's q, k, v [B, H, T, 2d]:
    q = scale·[Re | sign·Im](Q e^{iθt}), k = [Re | Im](K e^{iθt}), v = keep ⊙ [Vr | Vi], from cos/sin [T, d] and GSP's
    keep [B, H, T, 1 or d] or None. The torch twin of kernels/complex_qkv.py: fp32 arithmetic, y's dtype out."""
    b, t = y.shape[:2]
    parts = linear_core.acc(y).view(b, t, 2, 3, heads, head_dim).permute(2, 3, 0, 4, 1, 5)  # [re/im, q/k/v, ...]
    cos, sin = cos.to(parts.dtype), sin.to(parts.dtype)
    rot = lambda re, im: (re * cos - im * sin, re * sin + im * cos)  # noqa: E731
    (qr, qi), (kr, ki) = rot(parts[0, 0], parts[1, 0]), rot(parts[0, 1], parts[1, 1])
    vr, vi = parts[0, 2], parts[1, 2]
    if keep is not None:
        vr, vi = vr * keep.to(vr.dtype), vi * keep.to(vi.dtype)
    return tuple(x.to(y.dtype) for x in (scale * torch.cat([qr, sign * qi], -1), torch.cat([kr, ki], -1),
                                         torch.cat([vr, vi], -1)))


def pair_memory(q, k, v, log_g, sigma: float):
    """The complex pair memory on [re | im] halves: q = [qr | σ·qi], k, v [B, H, T, 2d], log_g [B, H, T] → [Re | Im]
    [B, H, T, 2d] in fp32 of Σ_i (Π γ') s(K_i, Q_t) V_i, s = ⟨K, Q⟩ (σ = +1) or Σ K·Q (σ = −1). The torch twin of
    kernels/memory.complex_pair_memory (the chunked form)."""
    d = q.shape[-1] // 2
    yr, yi = complex_memory(q[..., :d], sigma * q[..., d:], k[..., :d], k[..., d:], v[..., :d], v[..., d:], log_g,
                            mode="chunked", chunk=64, conjugate=sigma > 0)
    return torch.cat([yr, yi], -1)


def decode_gates(x, decay_w, decay_b, fixed_log_g, gsp_w, gsp_b, heads: int):
    """DecayGSP's gates for one token x [B, 2n] from its tensors: log γ' [B, H] and GSP's keep [B, H, 1 or d] or
    None. The two maps in at least fp32, as a compiled decode step computes them (gates.linear)."""
    acc = linear_core.acc
    wide = lambda w, b: None if w is None else (  # noqa: E731
        lambda u: F.linear(acc(u), w.to(acc(u).dtype), b.to(acc(u).dtype)))
    return gate_values(x, magnitude(*split(acc(x))), heads, wide(decay_w, decay_b), fixed_log_g, wide(gsp_w, gsp_b))


def decode_step(x, wr_qkv, wi_qkv, theta, position, decay_w, decay_b, fixed_log_g, gsp_w, gsp_b, sr, si,
                conjugate: bool, y_dtype=None):
    """PAM.step between the norm and the output projection on the block's tensors (W_qkv's Wr and Wi, RoPE's θ, the
    gates' weights or None, the fp32 state updated in place) → (y [B, 2·H·d] in y_dtype or x's, sr, si), as
    _project and complex_step compute it. The torch twin of kernels/pam_step.pam_step."""
    b, h, d = x.shape[0], sr.shape[1], sr.shape[-1]
    # as _project: [re/im, q/k/v, B, H, 1, d]
    y = complex_linear(x, wr_qkv, wi_qkv).view(b, 1, 2, 3, h, d).permute(2, 3, 0, 4, 1, 5)
    (qr, kr, vr), (qi, ki, vi) = y[0], y[1]
    positions = position.reshape(1)
    qr, qi = rotate(qr, qi, positions, theta)
    kr, ki = rotate(kr, ki, positions, theta)
    log_g, keep = decode_gates(x, decay_w, decay_b, fixed_log_g, gsp_w, gsp_b, h)
    vr, vi = vr[:, :, 0], vi[:, :, 0]
    if keep is not None:
        vr, vi = vr * keep.to(vr.dtype), vi * keep.to(vi.dtype)
    s = 1.0 / math.sqrt(d)
    (yr, yi), new = complex_step(qr[:, :, 0] * s, qi[:, :, 0] * s, kr[:, :, 0], ki[:, :, 0], vr, vi, log_g, (sr, si),
                                 conjugate)
    sr.copy_(new[0]), si.copy_(new[1])
    return torch.cat([yr.reshape(b, h * d), yi.reshape(b, h * d)], -1).to(y_dtype or x.dtype), sr, si


def sublayer_step(x, norm_weight, eps: float, wr_qkv, wi_qkv, theta, position, decay_w, decay_b, fixed_log_g,
                  gsp_w, gsp_b, sr, si, conjugate: bool, wr_out, wi_out, scale, y_dtype=None, step_position=False):
    """The pre-norm residual sublayer x + scale·PAM(complex_rms_norm(x)) for one token x [B, 2n]: the norm in at
    least fp32, decode_step on it, the output projection W_out = Wr + i·Wi [n, H·d] and the scaled add
    (residual_linear) → (x' in x's dtype, sr, si). The torch twin of kernels/pam_step.pam_sublayer_step."""
    z = complex_rms_norm(linear_core.acc(x), norm_weight, eps)
    y, sr, si = decode_step(z, wr_qkv, wi_qkv, theta, position, decay_w, decay_b, fixed_log_g, gsp_w, gsp_b, sr, si,
                            conjugate, y_dtype or x.dtype)
    if step_position:
        position.add_(1)
    return residual_linear(x, y, wr_out, wi_out, scale), sr, si


class PAM(fastpath.ModeChoice, nn.Module):
    """Phase-Associative Memory: complex matrix state per head, decay + GSP, complex RoPE, full complex score."""

    name = "pam"
    test_configs = (
        {"heads": 2, "head_dim": 8, "chunk": 16},
        {"heads": 2, "head_dim": 8, "chunk": 16, "gsp": "channel", "rope": "v2", "init": "gaussian"},
        {"heads": 3, "head_dim": 4, "chunk": 8, "decay": "none", "gsp": "off", "rope": "none", "conjugate": False},
    )
    kind = "mixer"
    complex = True

    @dataclass(frozen=True)
    class Config:
        heads: int = 6
        head_dim: int = field(default=64, metadata={"doc": "complex channels per head"})
        rope: Literal["v1", "v2", "none"] = "v1"
        rope_base: float = 10000.0
        decay: Literal["data", "none"] = "data"
        decay_bias: float = -4.0
        gsp: Literal["head", "channel", "off"] = field(default="head", metadata={"doc": "v1 head, v2 channel"})
        gsp_bias: float = -3.0
        conjugate: bool = field(default=True, metadata={"doc": "score with Kᴴ (paper); false: Kᵀ (ablation)"})
        mode: fastpath.Mode = "auto"
        chunk: int = 64
        init: Literal["orthogonal", "gaussian"] = field(default="orthogonal", metadata={"doc": "v1 / v2"})

    @staticmethod
    def check(cfg: "PAM.Config", d_model: int) -> list:
        for name in ("heads", "head_dim", "chunk"):
            if getattr(cfg, name) < 1:
                return [(name, f"must be >= 1, got {getattr(cfg, name)}")]
        return []

    @staticmethod
    def cost(cfg: "PAM.Config", d_model: int, seq_len: int) -> dict:
        n, h, d = d_model // 2, cfg.heads, cfg.head_dim
        inner = h * d
        gate_args = (2 * n, n, h, d, cfg.decay, cfg.gsp)
        params = 2 * n * 3 * inner + DecayGSP.param_count(*gate_args) + 2 * inner * n
        flops = 8 * n * 3 * inner + DecayGSP.flops(*gate_args) + 16 * h * d * d + 8 * inner * n
        return {"params": params, "flops": flops, "state_bytes": 2 * h * d * d * 4}

    def __init__(self, cfg: "PAM.Config", *, d_model: int):
        super().__init__()
        self.cfg = cfg
        n, h, d = d_model // 2, cfg.heads, cfg.head_dim
        self.heads, self.head_dim = h, d
        self.qkv = ComplexLinear(n, 3 * h * d, cfg.init)
        self.gates = DecayGSP(2 * n, n, h, d, decay=cfg.decay, decay_bias=cfg.decay_bias, gsp=cfg.gsp,
                              gsp_bias=cfg.gsp_bias)
        self.out = ComplexLinear(h * d, n, cfg.init)
        self.register_buffer("theta", rope_frequencies(d, cfg.rope, cfg.rope_base), persistent=False)

    def _project(self, x: torch.Tensor, positions: torch.Tensor):
        """x [B, T, D] → Q, K, V' as split-real [B, H, T, d] pairs and log γ' [B, H, T]."""
        b, t, _ = x.shape
        h, d = self.heads, self.head_dim
        y = self.qkv(x).view(b, t, 2, 3, h, d).permute(2, 3, 0, 4, 1, 5)  # [re/im, q/k/v, B, H, T, d]
        (qr, kr, vr), (qi, ki, vi) = y[0], y[1]
        if self.cfg.rope != "none":
            qr, qi = rotate(qr, qi, positions, self.theta)
            kr, ki = rotate(kr, ki, positions, self.theta)
        zr, zi = split(x)
        log_g, keep = self.gates(x, magnitude(zr, zi))
        if keep is not None:
            vr, vi = vr * keep.to(vr.dtype), vi * keep.to(vi.dtype)
        s = 1.0 / math.sqrt(d)
        return (qr * s, qi * s), (kr, ki), (vr, vi), log_g

    def _merge(self, yr: torch.Tensor, yi: torch.Tensor, dtype) -> torch.Tensor:
        b, h, t, d = yr.shape
        y = torch.cat([yr.transpose(1, 2).reshape(b, t, h * d), yi.transpose(1, 2).reshape(b, t, h * d)], -1)
        return self.out(y.to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.resolve_mode(x.shape[1], x.device)
        if mode == "triton":
            return self._forward_kernels(x)
        (qr, qi), (kr, ki), (vr, vi), log_g = self._project(x, torch.arange(x.shape[1], device=x.device))
        yr, yi = complex_memory(qr, qi, kr, ki, vr, vi, log_g, mode=mode, chunk=self.cfg.chunk,
                                conjugate=self.cfg.conjugate)
        return self._merge(yr, yi, x.dtype)

    def _forward_kernels(self, x: torch.Tensor) -> torch.Tensor:
        """forward by Triton kernels end to end: the projection's head split, RoPE, scale and GSP's value scale in one
        kernel (blocks/kernels/complex_qkv.py), the memory in the complex-pair kernels, its output token-major so that
        the heads merge without a copy."""
        b, t, _ = x.shape
        h, d = self.heads, self.head_dim
        angle = torch.arange(t, device=x.device, dtype=torch.float32)[:, None] * self.theta[None, :]
        log_g, keep = self.gates(x, magnitude(*split(x)))
        sign = 1.0 if self.cfg.conjugate else -1.0
        kernels = fastpath.kernel("complex_qkv", x.device)
        q, k, v = kernels.complex_qkv(self.qkv(x), angle.cos(), angle.sin(), keep, h, d, 1.0 / math.sqrt(d), sign)
        amp = torch.is_autocast_enabled(x.device.type)
        dtype = torch.get_autocast_dtype(x.device.type) if amp else x.dtype
        # y [B, T, H, 2d], each head's [Re | Im]: written in the projection's dtype when q has it (bf16 under
        # autocast), which the projection would round it to anyway, half the bytes of y and of its gradient
        y = fastpath.kernel("memory", x.device).complex_pair_memory(q, k, v, log_g, sign,
                                                                    y_in_q_dtype=q.dtype == dtype, token_major=True)
        # the projection's columns reordered from [Re heads | Im heads] to y's heads of [Re | Im]: a copy of the
        # weights, not of y and of y's gradient (a 768-wide stream at B 8, T 2048: 25 MB each, a layer)
        w = self.out.block_matrix()
        w = w.view(w.shape[0], 2, h, d).transpose(1, 2).reshape(w.shape)
        return F.linear(y.view(b, t, 2 * h * d).to(dtype), w)

    def init_state(self, batch: int, device=None, dtype=None):
        """(Re S, Im S, position): the fp32 complex state [B, H, d, d] and the next token's position."""
        return (*complex_state(batch, self.heads, self.head_dim, device), 0)

    def step(self, x_t: torch.Tensor, state):
        if fastpath.use_fused_decode(x_t.device):
            return self._fused_step(x_t, state)
        sr, si, pos = state
        (qr, qi), (kr, ki), (vr, vi), log_g = self._project(x_t[:, None], step_positions(pos, x_t.device))
        (yr, yi), (sr, si) = complex_step(qr[:, :, 0], qi[:, :, 0], kr[:, :, 0], ki[:, :, 0], vr[:, :, 0],
                                          vi[:, :, 0], log_g[:, :, 0], (sr, si), self.cfg.conjugate)
        return self._merge(yr[:, :, None], yi[:, :, None], x_t.dtype)[:, 0], (sr, si, pos + 1)

    def _step_tensors(self, pos, device) -> tuple:
        """What the fused kernels read besides the input and the state: W_qkv's Wr and Wi (the parameters: the
        kernels need no block matrix), θ, the position and the gates' tensors (decay weight and bias, fixed log γ,
        GSP weight and bias; None where off)."""
        gates = self.gates
        part = lambda layer, name: getattr(layer, name) if layer is not None else None  # noqa: E731
        return (self.qkv.wr, self.qkv.wi, self.theta, step_positions(pos, device), part(gates.decay, "weight"),
                part(gates.decay, "bias"), gates.fixed_log_g, part(gates.gsp, "weight"), part(gates.gsp, "bias"))

    def _fused_step(self, x_t: torch.Tensor, state):
        """step by the two kernels of blocks/kernels/pam_step.py: the same numbers, with the state updated in place
        (the returned state holds the same tensors). y comes out in the output projection's compute dtype (bf16
        under autocast), which it would be rounded to next anyway."""
        sr, si, pos = state
        y, sr, si = fastpath.kernel("pam_step", x_t.device).pam_step(
            x_t, *self._step_tensors(pos, x_t.device), sr, si, self.cfg.conjugate, compute_dtype(x_t))
        return self.out(y), (sr, si, pos + 1)

    def fused_sublayer_step(self, norm: nn.Module, x: torch.Tensor, state, scale: torch.Tensor | None):
        """The decode step of the pre-norm residual sublayer x + scale·self(norm(x)) (x [B, D], one token) by three
        Triton kernels (blocks/kernels/pam_step.pam_sublayer_step), the state updated in place → (x', state), or
        None where they do not apply (complex.fused_sublayer_applies): the runtime then runs the norm, the block and
        the add."""
        if not fused_sublayer_applies(norm, x):
            return None
        sr, si, pos = state
        counter = isinstance(pos, torch.Tensor)  # a graphed decode's: the state kernel advances it in place
        x, sr, si = fastpath.kernel("pam_step", x.device).pam_sublayer_step(
            x, norm.weight, norm.eps, *self._step_tensors(pos, x.device), sr, si, self.cfg.conjugate,
            self.out.wr, self.out.wi, scale, compute_dtype(x), step_position=counter)
        return x, (sr, si, pos if counter else pos + 1)
