"""Complex primitives on a split-real stream: a real tensor [..., 2n] holds z = x[..., :n] + i·x[..., n:].

ComplexLinear runs as ONE real GEMM with the block matrix [[Wr, −Wi], [Wi, Wr]]; modReLU and the phase-preserving
ComplexNorm act on magnitudes. Blocks: complex_linear, complex_norm, cgu (the complex gated unit channel mixer).
No torch.complex dtypes on the hot path (no bf16 complex, poor kernels).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from . import fastpath

EPS_MAG = 1e-8
# the kernel's programs hold up to 8 sequences and each group of 8 reads the whole table again (77 MB in bf16 for
# GPT-2's vocabulary), where cuBLAS's GEMM reads it once: beyond one group the logits run as written
FUSED_LOGITS_MAX_BATCH = 8

Init = Literal["orthogonal", "gaussian"]


def split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = x.shape[-1] // 2
    return x[..., :n], x[..., n:]


def magnitude(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(re * re + im * im + EPS_MAG)


def complex_mul(ar, ai, br, bi):
    """(ar + i·ai)(br + i·bi), split-real."""
    return ar * br - ai * bi, ar * bi + ai * br


def init_complex_part(w: torch.Tensor, init: Init) -> None:
    """Paper init of one real or imaginary part (m×n) in place: orthogonal (v1) or Gaussian (v2), scale sqrt(2/(m+n))."""
    scale = math.sqrt(2.0 / sum(w.shape))
    if init == "orthogonal":
        nn.init.orthogonal_(w)
        w.mul_(scale)
    else:
        nn.init.normal_(w, 0.0, scale)


class ComplexLinear(nn.Module):
    """y = W z for W = Wr + i·Wi (m×n), no bias: 2mn parameters, 8mn real FLOPs per token.

    Init (paper v1): Wr, Wi independent random orthogonal matrices, each scaled by sqrt(2/(m+n)); v2: Gaussian with
    variance 2/(m+n).
    """

    def __init__(self, n_in: int, n_out: int, init: Init = "orthogonal", parts: int = 1):
        """`parts` > 1 fuses that many n_in → n_out/parts maps into one GEMM, each initialised as its own map."""
        super().__init__()
        self.wr = nn.Parameter(torch.empty(n_out, n_in))
        self.wi = nn.Parameter(torch.empty(n_out, n_in))
        with torch.no_grad():
            for w in (self.wr, self.wi):
                for part in w.split(n_out // parts, 0):
                    init_complex_part(part, init)

    _frozen: torch.Tensor | None = None  # set only inside frozen_weights()

    def block_matrix(self) -> torch.Tensor:
        """The real [2m, 2n] matrix acting on [xr | xi], built from the parameters on every call (a cat of two small
        matrices); inside frozen_weights() the one built on entry."""
        if self._frozen is not None:
            if torch.is_grad_enabled():
                raise RuntimeError("frozen_weights() is for inference: no gradient reaches frozen weights")
            return self._frozen
        return torch.cat([torch.cat([self.wr, -self.wi], 1), torch.cat([self.wi, self.wr], 1)], 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., 2n] → [..., 2m]
        return F.linear(x, self.block_matrix())


@contextmanager
def frozen_weights(model: nn.Module):
    """Decoding without rebuilding weights: inside this context every ComplexLinear of `model` multiplies by a block
    matrix built once on entry (a decode step multiplies one token, so rebuilding the matrix each step costs more than
    the product), and on exit the matrices are dropped. The parameters must not change inside, and no gradient flows
    (a forward with gradients raises). Yields the built matrices: a CUDA graph captured inside reads them, so whoever
    replays it keeps them (archsearch.decode.GraphedDecoder)."""
    layers = [m for m in model.modules() if isinstance(m, ComplexLinear)]
    before = [m._frozen for m in layers]  # an enclosing context's, restored on exit
    try:
        with torch.no_grad():
            for m in layers:
                m._frozen = m.block_matrix()
        yield [m._frozen for m in layers]
    finally:
        for m, b in zip(layers, before):
            if b is None:
                m.__dict__.pop("_frozen", None)
            else:
                m._frozen = b


def modrelu(re: torch.Tensor, im: torch.Tensor, bias: torch.Tensor):
    """modReLU(z) = ReLU(|z| + b) · z/|z|."""
    mag = magnitude(re, im)
    scale = F.relu(mag + bias) / mag
    return re * scale, im * scale


def complex_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """s ⊙ (|z| / RMS(|z|)) ⊙ z/|z| = s ⊙ z / RMS(|z|): phase-preserving RMSNorm over the complex features.
    Mean over the n complex features of |z|² = 2 × mean over the 2n real ones of x², so this is a real RMSNorm
    with weight [s | s]/√2 and eps/2: torch's fused rms_norm kernel, no split or concatenation of the
    activations."""
    w = torch.cat([weight, weight]).to(x.dtype) * (0.5 ** 0.5)
    return F.rms_norm(x, x.shape[-1:], w, eps / 2)


class ComplexNormBlock(nn.Module):
    """Phase-preserving complex RMSNorm: s ⊙ z / RMS(|z|), s real per complex channel (init 1)."""

    name = "complex_norm"
    kind = "norm"
    complex = True

    @dataclass(frozen=True)
    class Config:
        eps: float = 1e-6

    @staticmethod
    def cost(cfg: "ComplexNormBlock.Config", d_model: int, seq_len: int) -> dict:
        return {"params": d_model // 2, "flops": 0, "state_bytes": 0}

    def __init__(self, cfg: "ComplexNormBlock.Config", *, d_model: int):
        super().__init__()
        self.eps = cfg.eps
        self.weight = nn.Parameter(torch.ones(d_model // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return complex_rms_norm(x, self.weight, self.eps)

    def fused_logits(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor | None:
        """The decode step's logits against the head's weight w [V, D] of this norm of x [B, D] (one token), by one
        Triton kernel with the norm as its prologue (blocks/kernels/head_step.py), or None where
        fastpath.use_fused_decode says no or past FUSED_LOGITS_MAX_BATCH sequences (the runtime then runs the norm
        and the logits)."""
        if not fastpath.use_fused_decode(x.device) or x.shape[0] > FUSED_LOGITS_MAX_BATCH:
            return None
        return fastpath.kernel("head_step", x.device).normed_linear(x, self.weight, self.eps, w, compute_dtype(x))


class ComplexLinearBlock(nn.Module):
    """A complex linear map C^{D/2} → C^{D/2} on the stream (the PAM head's projection), no bias."""

    name = "complex_linear"
    kind = "channel"
    complex = True

    @dataclass(frozen=True)
    class Config:
        init: Init = "orthogonal"

    @staticmethod
    def cost(cfg: "ComplexLinearBlock.Config", d_model: int, seq_len: int) -> dict:
        n = d_model // 2
        return {"params": 2 * n * n, "flops": 8 * n * n, "state_bytes": 0}

    def __init__(self, cfg: "ComplexLinearBlock.Config", *, d_model: int):
        super().__init__()
        self.proj = ComplexLinear(d_model // 2, d_model // 2, cfg.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)

    def fused_normed_step(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        """self(norm(x)) for one token x [B, D] by one Triton kernel with the norm as its prologue
        (blocks/kernels/head_step.py), or None where it does not apply (fused_sublayer_applies)."""
        if not fused_sublayer_applies(norm, x):
            return None
        return fastpath.kernel("head_step", x.device).normed_complex_linear(x, norm.weight, norm.eps, self.proj.wr,
                                                                            self.proj.wi, compute_dtype(x))


class CGU(nn.Module):
    """Complex gated unit: g = Wg z; u = modReLU(Wup z); h = σ(|g|)·(g/|g|) ⊙ u; out = Wdown h. No biases.

    With gate 'paper' σ(|g|) ∈ [0.5, 1): the gate never closes below one half (faithful default). Gate 'biased' adds
    a learned per-channel bias inside σ (init 0), which lets the gate close.
    """

    name = "cgu"
    test_configs = ({"expansion": 2}, {"expansion": 3, "gate": "biased", "init": "gaussian", "modrelu_bias": -1.0})
    kind = "channel"
    complex = True

    @dataclass(frozen=True)
    class Config:
        expansion: int = field(default=3, metadata={"doc": "hidden complex width = expansion × D/2"})
        modrelu_bias: float = field(default=-0.1, metadata={"doc": "modReLU bias init (v1 -0.1, v2 -1.0)"})
        gate: Literal["paper", "biased"] = "paper"
        init: Init = "orthogonal"

    @staticmethod
    def check(cfg: "CGU.Config", d_model: int) -> list:
        return [("expansion", f"must be >= 1, got {cfg.expansion}")] if cfg.expansion < 1 else []

    @staticmethod
    def cost(cfg: "CGU.Config", d_model: int, seq_len: int) -> dict:
        n = d_model // 2
        h = cfg.expansion * n
        params = 3 * 2 * n * h + h + (h if cfg.gate == "biased" else 0)
        return {"params": params, "flops": 3 * 8 * n * h, "state_bytes": 0}

    def __init__(self, cfg: "CGU.Config", *, d_model: int):
        super().__init__()
        n = d_model // 2
        h = cfg.expansion * n
        self.gate_up = ComplexLinear(n, 2 * h, cfg.init, parts=2)  # Wg and Wup fused: one GEMM
        self.down = ComplexLinear(h, n, cfg.init)
        self.modrelu_bias = nn.Parameter(torch.full((h,), cfg.modrelu_bias))
        self.gate_bias = nn.Parameter(torch.zeros(h)) if cfg.gate == "biased" else None
        self.h = h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate_up(x)
        # one fused kernel each way (blocks/kernels/cgu.py). Compiled training uses it too (inductor's fusion of the
        # torch form was 0.7 ms a step slower for PAM 100M on an H200, docs/performance.md); a compiled decode step
        # keeps the torch twin, which inductor fuses with the norm and projections' casts
        if fastpath.use_kernels(y.device) and not fastpath.compiled_decode():
            return self.down(fastpath.kernel("cgu", y.device).cgu_gate(y, self.modrelu_bias, self.gate_bias))
        return self.down(gate_product(y, self.modrelu_bias, self.gate_bias))

    def fused_sublayer_step(self, norm: nn.Module, x: torch.Tensor, state, scale: torch.Tensor | None):
        """The decode step of the pre-norm residual sublayer x + scale·self(norm(x)) (x [B, D], one token) by two
        Triton kernels (blocks/kernels/cgu_step.py) → (x', state), or None where they do not apply (see
        fused_sublayer_applies): the runtime then runs the norm, the block and the add. A CGU has no state (None
        passes through)."""
        if not fused_sublayer_applies(norm, x):
            return None
        step = fastpath.kernel("cgu_step", x.device).cgu_sublayer_step
        return step(x, norm.weight, norm.eps, self.gate_up.wr, self.gate_up.wi, self.modrelu_bias, self.gate_bias,
                    self.down.wr, self.down.wi, scale, compute_dtype(x)), state


def gate_product(y: torch.Tensor, modrelu_bias: torch.Tensor, gate_bias: torch.Tensor | None) -> torch.Tensor:
    """The CGU's middle: [gr | ur | gi | ui] → [hr | hi] = (g · σ(|g| + c)/|g|) · modReLU(u), complex. The torch twin
    of kernels/cgu.cgu_gate."""
    gr, ur, gi, ui = y.chunk(4, -1)
    ur, ui = modrelu(ur, ui, modrelu_bias)
    gmag = magnitude(gr, gi)
    gate = torch.sigmoid(gmag if gate_bias is None else gmag + gate_bias) / gmag
    hr, hi = complex_mul(gr * gate, gi * gate, ur, ui)
    return torch.cat([hr, hi], -1)


def fused_sublayer_applies(norm: nn.Module, x: torch.Tensor) -> bool:
    """Whether a block's fused sublayer step may run: its norm is complex_norm (the kernels' prologue) and
    fastpath.use_fused_decode says so."""
    return isinstance(norm, ComplexNormBlock) and fastpath.use_fused_decode(x.device)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a product of x computes in: autocast's where it is on, else x's."""
    amp = torch.is_autocast_enabled(x.device.type)
    return torch.get_autocast_dtype(x.device.type) if amp else x.dtype


def complex_linear(x: torch.Tensor, wr: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
    """W z on split-real x [..., 2n] for W = Wr + i·Wi [m, n], read as the parameters (no block matrix) → [..., 2m],
    in x's dtype."""
    xr, xi = split(x)
    wr, wi = wr.to(x.dtype), wi.to(x.dtype)
    return torch.cat([F.linear(xr, wr) - F.linear(xi, wi), F.linear(xr, wi) + F.linear(xi, wr)], -1)


def residual_linear(r: torch.Tensor, h: torch.Tensor, wr: torch.Tensor, wi: torch.Tensor,
                    scale: torch.Tensor | None) -> torch.Tensor:
    """r + scale·(W h) for W = Wr + i·Wi [m, k] on split-real r [B, 2m], h [B, 2k] (scale None: 1) in at least fp32,
    r's dtype out. The torch twin of kernels/sublayer.residual_linear."""
    wide = torch.promote_types(torch.promote_types(r.dtype, h.dtype), torch.float32)
    y = complex_linear(h.to(wide), wr, wi)
    return (r.to(wide) + (y if scale is None else scale.to(wide) * y)).to(r.dtype)


def normed_complex_linear(x, norm_weight, eps: float, wr, wi, out_dtype: torch.dtype | None = None):
    """W·complex_rms_norm(x) for W = Wr + i·Wi [m, n] on x [B, 2n], in at least fp32, out in out_dtype (default
    x's). The torch twin of kernels/head_step.normed_complex_linear."""
    wide = torch.promote_types(x.dtype, torch.float32)
    return complex_linear(complex_rms_norm(x.to(wide), norm_weight, eps), wr, wi).to(out_dtype or x.dtype)


def normed_linear(x, norm_weight, eps: float, w, out_dtype: torch.dtype | None = None):
    """w·complex_rms_norm(x) for a real w [M, 2n] on x [B, 2n] (the logits against a head's weight), in at least
    fp32, out in out_dtype (default x's). The torch twin of kernels/head_step.normed_linear."""
    wide = torch.promote_types(x.dtype, torch.float32)
    return F.linear(complex_rms_norm(x.to(wide), norm_weight, eps), w.to(wide)).to(out_dtype or x.dtype)


def cgu_sublayer_step(x, norm_weight, eps: float, wr_gate_up, wi_gate_up, modrelu_bias, gate_bias, wr_down, wi_down,
                      scale, h_dtype: torch.dtype | None = None):
    """x + scale·CGU(complex_rms_norm(x)) for one token x [B, 2n] on the blocks' tensors (the CGU's ComplexLinear
    parameters, as CGU.fused_sublayer_step passes them), in at least fp32, the hidden h rounded to h_dtype (default
    x's). The torch twin of kernels/cgu_step.cgu_sublayer_step."""
    wide = torch.promote_types(x.dtype, torch.float32)
    z = complex_rms_norm(x.to(wide), norm_weight, eps)
    h = gate_product(complex_linear(z, wr_gate_up, wi_gate_up), modrelu_bias.to(wide),
                     None if gate_bias is None else gate_bias.to(wide))
    return residual_linear(x, h.to(h_dtype or x.dtype), wr_down, wi_down, scale)
