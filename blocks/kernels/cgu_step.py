"""A CGU sublayer's decode step, x ← x + s·CGU(complex_norm(x)) for one token per sequence, as two Triton kernels
(a compiled decode step runs about five for it: the norm, the gate/up GEMV, the gate product, the down GEMV and the
scaled residual add, with the weights' casts under autocast):

1. gate_up: the norm as a prologue (sublayer.py: each program re-reads the row and computes its RMS), then the
   gate/up GEMV on CGU.gate_up's parameters Wr, Wi [2h, n] (rows [g | u]; its block matrix's rows are
   [gr | ur | gi | ui]), each program owning CGU_CHANNELS hidden channels with their g and u rows of both, so that
   the CGU's middle is its epilogue: h = g·σ(|g| + c)/|g| · modReLU(u), complex (as cgu.py's forward) → h [B, 2h]
   = [hr | hi] in the down projection's compute dtype.
2. sublayer.residual_linear: x + s·(W_down h), the scaled residual add as the down GEMV's epilogue.

Arithmetic in fp32 whatever the inputs' dtype. Forward only: a decode step has no gradient.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .sublayer import (await_inputs, complex_dot, dependents, inverse_rms, launch, normed, pdl, residual_op, tiles,
                       weights)

__all__ = ["cgu_sublayer_step"]  # the kernels; TWINS (__init__.py) names their torch twins

CGU_CHANNELS = 1  # hidden channels per program (their g and u rows of Wr and Wi): 1,152 programs on the 100M model
GATE_UP_TILE = 512  # batch rows × channels × columns per loop iteration, for each of the four weight loads
GATE_UP_WARPS = 2  # the tiles benchmarks/decode_tiles.py found quickest on the H200 (docs/performance.md)


@triton.jit
def gate_up(x_ptr, nw_ptr, wr_ptr, wi_ptr, mb_ptr, gb_ptr, h_ptr, B, N, H, eps, HAS_GB: tl.constexpr,
            BB: tl.constexpr, BJ: tl.constexpr, BK: tl.constexpr, PDL: tl.constexpr):
    dependents(PDL)
    c = tl.program_id(0) * BJ + tl.arange(0, BJ)  # hidden channels: rows c (g) and H + c (u) of Wr and Wi
    b = tl.program_id(1) * BB + tl.arange(0, BB)
    cm, bm = c < H, b < B
    k = tl.arange(0, BK)  # the first tile of columns (at batch 1 on the 100M model, all of them)
    km = k < N
    wgr, wgi = weights(wr_ptr, wi_ptr, c, cm, k, km, N)
    wur, wui = weights(wr_ptr, wi_ptr, H + c, cm, k, km, N)
    await_inputs(PDL)
    inv = inverse_rms(x_ptr, b, bm, 2 * N, eps, BB, BK)
    xr, xi = normed(x_ptr, nw_ptr, inv, b, bm, k, km, N, True)
    gr, gi = complex_dot(xr, xi, wgr, wgi)
    ur, ui = complex_dot(xr, xi, wur, wui)
    for k0 in range(BK, N, BK):
        k = k0 + tl.arange(0, BK)
        km = k < N
        xr, xi = normed(x_ptr, nw_ptr, inv, b, bm, k, km, N, True)
        wr, wi = weights(wr_ptr, wi_ptr, c, cm, k, km, N)
        re, im = complex_dot(xr, xi, wr, wi)
        gr += re
        gi += im
        wr, wi = weights(wr_ptr, wi_ptr, H + c, cm, k, km, N)
        re, im = complex_dot(xr, xi, wr, wi)
        ur += re
        ui += im
    # the CGU's middle, as cgu.cgu_fwd computes it (|·| with blocks.complex.EPS_MAG)
    mg = tl.sqrt(gr * gr + gi * gi + 1e-8)
    mu = tl.sqrt(ur * ur + ui * ui + 1e-8)
    z = mg
    if HAS_GB:
        z += tl.load(gb_ptr + c, mask=cm, other=0.0).to(tl.float32)[None, :]
    mb = tl.load(mb_ptr + c, mask=cm, other=0.0).to(tl.float32)[None, :]
    k = tl.sigmoid(z) / mg * tl.maximum(mu + mb, 0.0) / mu
    out = h_ptr + b[:, None].to(tl.int64) * (2 * H) + c[None, :]
    m = bm[:, None] & cm[None, :]
    ty = h_ptr.dtype.element_ty
    tl.store(out, (k * (gr * ur - gi * ui)).to(ty), mask=m)
    tl.store(out + H, (k * (gr * ui + gi * ur)).to(ty), mask=m)


# a torch.library custom op, so torch.compile keeps a decode step around it in one graph (see memory.py)
@torch.library.custom_op("archsearch::cgu_step_gate_up", mutates_args=())
def gate_up_op(x: torch.Tensor, norm_weight: torch.Tensor, eps: float, wr: torch.Tensor, wi: torch.Tensor,
               modrelu_bias: torch.Tensor, gate_bias: torch.Tensor | None, h_dtype: torch.dtype) -> torch.Tensor:
    b = x.shape[0]
    hidden, n = wr.shape[0] // 2, wr.shape[1]
    h = torch.empty(b, 2 * hidden, device=x.device, dtype=h_dtype)
    bb, bk = tiles(b, CGU_CHANNELS, n, GATE_UP_TILE)
    grid = (triton.cdiv(hidden, CGU_CHANNELS), triton.cdiv(b, bb))
    on = pdl(x, wr, wi)
    gate_up[grid](x.contiguous(), norm_weight, wr.contiguous(), wi.contiguous(), modrelu_bias,
                  modrelu_bias if gate_bias is None else gate_bias, h, b, n, hidden, eps,
                  HAS_GB=gate_bias is not None, BB=bb, BJ=CGU_CHANNELS, BK=bk, PDL=on, num_warps=GATE_UP_WARPS,
                  **launch(on))
    return h


@gate_up_op.register_fake
def _(x, norm_weight, eps, wr, wi, modrelu_bias, gate_bias, h_dtype):
    return x.new_empty(x.shape[0], wr.shape[0], dtype=h_dtype)


def cgu_sublayer_step(x, norm_weight, eps: float, wr_gate_up, wi_gate_up, modrelu_bias, gate_bias, wr_down, wi_down,
                      scale, h_dtype: torch.dtype | None = None):
    """x + scale·CGU(complex_rms_norm(x)) for one token x [B, 2n]: the norm's σ [n] and eps, CGU.gate_up's Wr, Wi
    [2h, n], modReLU's bias [h], the gate's bias [h] or None, CGU.down's Wr, Wi [n, h], the scale (0-d tensor) or
    None. → x' [B, 2n] in x's dtype; the hidden h is rounded to h_dtype (default x's) between the kernels."""
    # eps / 2: the RMS is over the 2n real values, as complex_rms_norm's
    h = gate_up_op(x, norm_weight, eps / 2, wr_gate_up, wi_gate_up, modrelu_bias, gate_bias, h_dtype or x.dtype)
    return residual_op(x, h, wr_down, wi_down, scale)
