"""PAM's decode step (one token per sequence) as two Triton kernels between the norm and the output projection. In a
compiled decode step inductor emits six or more kernels per PAM layer for this (the norm with the qkv reduction, the
decay and GSP gate maps, RoPE and scale glue, the state update, the read); these two cover the same work:

1. project: x [B, 2n] (the normed input, [re | im]) times W_qkv = Wr + i·Wi [3·H·d, n] (ComplexLinear's parameters,
   each weight read once and used for both halves: sublayer.complex_dot) → [B, 6·H·d] fp32 in the block matrix's
   row order ([re | im] × [q | k | v] × H × d), with complex RoPE at the token's position on Q and K (the position
   is read from a device tensor, as a graphed decoder keeps it) and the 1/√d scale on Q. Each program owns a few
   channels of one (q/k/v, head), their rows of Wr and Wi, so RoPE is an epilogue; ≥ 100 programs on the 100M
   model's 1,152 complex rows, so that the GEMV can stream the weights near memory bandwidth.
2. state: one program per (sequence, head, block of STATE_ROWS state rows), so that a batch-1 step has more than
   one program per head (6 heads were 6 programs, 7.2 µs on an H200): the decay γ (data: σ(−(w·x + b)); fixed: exp
   of the buffer; none: 1) and GSP's p = σ(W_p|z| + b_p) per head or per channel, γ' = mean(p + (1 − p)γ) and
   V' = (1 − p)V, which each program of the head computes; then, on its rows, S ← γ'S + V'Kᴴ (Kᵀ without the
   conjugate) in place on the fp32 state and y = S Q, written as [B, 2·H·d] = [Re heads | Im heads] (PAM._merge's
   order) in the output projection's dtype.

pam_sublayer_step does the whole pre-norm residual sublayer, x + s·PAM(complex_norm(x)), in three kernels: project
with the norm as its prologue (sublayer.py; the programs of its first channel block also write the normed row, for
the state kernel's gates), state, and the output projection with the scaled residual add (sublayer.residual_linear).

Arithmetic in fp32 whatever the inputs' dtype; the state stays fp32. Forward only: a decode step has no gradient.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .sublayer import (await_inputs, complex_dot, dependents, inverse_rms, launch, normed, pdl, residual_op, tiles,
                       weights)

__all__ = ["pam_step", "pam_sublayer_step"]  # the kernels; TWINS (__init__.py) names their torch twins

PROJECT_CHANNELS = 2  # channels of one (q/k/v, head) per projection program: 576 programs on the 100M's 1,152
PROJECT_TILE = 2048  # batch rows × channels × complex input columns per loop iteration, for Wr's and Wi's loads
PROJECT_WARPS = 2  # the tiles benchmarks/decode_tiles.py found quickest on the H200 (docs/performance.md)
GATE_TILE = 2048  # gate rows × input columns the state kernel's gate maps hold per loop iteration (per-channel GSP
# at d = 64 with 128 columns spilled registers when compiled for sm_90)
STATE_ROWS = 16  # state rows per state program (registers: 2 × rows × d fp32): 4 programs a head at d = 64
STATE_WARPS = 4
DECAY = {"none": 0, "data": 1, "fixed": 2}


@triton.jit
def _input_tile(x_ptr, nw_ptr, z_ptr, inv, b, bm, zm, k, km, N, NORM: tl.constexpr):
    """project's input at columns k, normed with NORM; the rows zm of the normed input also stored to z, for the state
    kernel's gates."""
    xr, xi = normed(x_ptr, nw_ptr, inv, b, bm, k, km, N, NORM)
    if NORM:
        at = z_ptr + b[:, None].to(tl.int64) * (2 * N) + k[None, :]
        m = zm[:, None] & km[None, :]
        tl.store(at, xr, mask=m)
        tl.store(at + N, xi, mask=m)
    return xr, xi


@triton.jit
def project(x_ptr, nw_ptr, z_ptr, wr_ptr, wi_ptr, theta_ptr, pos_ptr, out_ptr, B, N, H, d, scale, eps,
            NORM: tl.constexpr, BB: tl.constexpr, BJ: tl.constexpr, BK: tl.constexpr, PDL: tl.constexpr):
    dependents(PDL)
    per_head = tl.cdiv(d, BJ)
    block = tl.program_id(0)  # (q/k/v · H + head) · per_head + channel block
    group = block // per_head
    j = (block % per_head) * BJ + tl.arange(0, BJ)
    row = group * d + j  # of Wr and Wi; the output's real column, its imaginary one 3·H·d further
    b = tl.program_id(1) * BB + tl.arange(0, BB)
    jm, bm = j < d, b < B
    k = tl.arange(0, BK)  # the first tile of columns (at batch 1 on the 100M model, all of them)
    km = k < N
    wr, wi = weights(wr_ptr, wi_ptr, row, jm, k, km, N)
    await_inputs(PDL)
    if NORM:
        inv = inverse_rms(x_ptr, b, bm, 2 * N, eps, BB, BK)
    else:
        inv = tl.zeros([BB], dtype=tl.float32)
    zm = bm & (tl.zeros([BB], dtype=tl.int32) + block == 0)  # the first channel block's programs keep the normed row
    xr, xi = _input_tile(x_ptr, nw_ptr, z_ptr, inv, b, bm, zm, k, km, N, NORM)
    acc_re, acc_im = complex_dot(xr, xi, wr, wi)
    for k0 in range(BK, N, BK):
        k = k0 + tl.arange(0, BK)
        km = k < N
        xr, xi = _input_tile(x_ptr, nw_ptr, z_ptr, inv, b, bm, zm, k, km, N, NORM)
        wr, wi = weights(wr_ptr, wi_ptr, row, jm, k, km, N)
        re, im = complex_dot(xr, xi, wr, wi)
        acc_re += re
        acc_im += im
    which = group // H  # 0 q, 1 k, 2 v
    angle = tl.load(pos_ptr).to(tl.float32) * tl.load(theta_ptr + j, mask=jm, other=0.0)
    c = tl.where(which < 2, tl.cos(angle), 1.0)[None, :]  # V is not rotated
    s = tl.where(which < 2, tl.sin(angle), 0.0)[None, :]
    sc = tl.where(which == 0, scale, 1.0)
    at = b[:, None] * (6 * H * d) + row[None, :]
    m = bm[:, None] & jm[None, :]
    tl.store(out_ptr + at, sc * (acc_re * c - acc_im * s), mask=m)
    tl.store(out_ptr + at + 3 * H * d, sc * (acc_re * s + acc_im * c), mask=m)


@triton.jit
def _dot_rows(x_ptr, w_ptr, rows, rm, N, MAG: tl.constexpr, BN: tl.constexpr):
    """Σ_k w[rows, k]·u_k over k < N for one sequence's input u: x itself (N = 2n), or with MAG its magnitudes
    |z_k| = sqrt(x_k² + x_{n+k}² + 1e-8) (N = n, as blocks.complex.magnitude)."""
    acc = rows.to(tl.float32) * 0.0
    for k0 in range(0, N, BN):
        k = k0 + tl.arange(0, BN)
        km = k < N
        u = tl.load(x_ptr + k, mask=km, other=0.0).to(tl.float32)
        if MAG:
            im = tl.load(x_ptr + N + k, mask=km, other=0.0).to(tl.float32)
            u = tl.where(km, tl.sqrt(u * u + im * im + 1e-8), 0.0)
        w = tl.load(w_ptr + rows[:, None] * N + k[None, :], mask=rm[:, None] & km[None, :], other=0.0)
        acc += tl.sum(w.to(tl.float32) * u[None, :], 1)
    return acc


@triton.jit
def _gates(x_ptr, dw_ptr, db_ptr, fixed_ptr, gw_ptr, gb_ptr, h, n, DECAY: tl.constexpr, KW: tl.constexpr,
           BKW: tl.constexpr, BN: tl.constexpr):
    """γ' (a scalar) and GSP's keep = 1 − p over [BKW] (KW of them valid: 1 per head, d per channel; all 1 without
    GSP) for head h of the sequence at x_ptr."""
    one = tl.arange(0, 2)
    if DECAY == 1:
        z = _dot_rows(x_ptr, dw_ptr, h + one, one < 1, 2 * n, False, BN)
        z += tl.load(db_ptr + h + one, mask=one < 1, other=0.0).to(tl.float32)
        g = tl.sum(tl.where(one < 1, tl.sigmoid(-z), 0.0), 0)  # exp(−softplus(z))
    elif DECAY == 2:
        g = tl.exp(tl.load(fixed_ptr + h).to(tl.float32))
    else:
        g = 1.0
    c = tl.arange(0, BKW)
    p = tl.zeros([BKW], dtype=tl.float32)
    if KW > 0:
        cm = c < KW
        u = _dot_rows(x_ptr, gw_ptr, h * KW + c, cm, n, True, BN)
        p = tl.sigmoid(u + tl.load(gb_ptr + h * KW + c, mask=cm, other=0.0).to(tl.float32))
        g = tl.sum(tl.where(cm, p + (1.0 - p) * g, 0.0), 0) / KW
    return g, 1.0 - p


@triton.jit
def state(x_ptr, qkv_ptr, dw_ptr, db_ptr, fixed_ptr, gw_ptr, gb_ptr, sr_ptr, si_ptr, y_ptr, pos_ptr, H, d, n,
          DECAY: tl.constexpr, KW: tl.constexpr, SIGN: tl.constexpr, BKW: tl.constexpr, BD: tl.constexpr,
          BR: tl.constexpr, BN: tl.constexpr, STEP_POS: tl.constexpr, PDL: tl.constexpr):
    dependents(PDL)
    await_inputs(PDL)  # its gates' weights are read with the normed row, in one loop
    if STEP_POS:  # the position counter, read by project (finished: this kernel follows it), one program adds 1
        if (tl.program_id(0) == 0) & (tl.program_id(1) == 0):
            tl.store(pos_ptr, tl.load(pos_ptr) + 1)
    bh = tl.program_id(0).to(tl.int64)
    b, h = bh // H, bh % H
    # every program of the head computes the head's gates (a few dot products of the token's row): no kernel for them
    g, keep = _gates(x_ptr + b * 2 * n, dw_ptr, db_ptr, fixed_ptr, gw_ptr, gb_ptr, h, n, DECAY, KW, BKW, BN)
    hd = H * d
    at = qkv_ptr + b * 6 * hd + h * d  # this head's channels of [re | im] × [q | k | v]
    j = tl.arange(0, BD)  # columns: the key's and the query's channels
    jm = j < d
    qr = tl.load(at + j, mask=jm, other=0.0)[None, :]
    qi = tl.load(at + 3 * hd + j, mask=jm, other=0.0)[None, :]
    kr = tl.load(at + hd + j, mask=jm, other=0.0)[None, :]
    ki = tl.load(at + 4 * hd + j, mask=jm, other=0.0)[None, :]
    ty = y_ptr.dtype.element_ty
    i = tl.program_id(1) * BR + tl.arange(0, BR)  # this program's rows: the value's channels, and y's
    im = i < d
    vr = tl.load(at + 2 * hd + i, mask=im, other=0.0)
    vi = tl.load(at + 5 * hd + i, mask=im, other=0.0)
    if KW > 1:  # keep per channel: its entries at these rows (keep is indexed by BKW = BD columns)
        k_i = tl.sum(tl.where(i[:, None] == tl.arange(0, BKW)[None, :], keep[None, :], 0.0), 1)
    else:
        k_i = tl.sum(tl.where(tl.arange(0, BKW) == 0, keep, 0.0), 0)
    vr, vi = (vr * k_i)[:, None], (vi * k_i)[:, None]
    s_at = bh * d * d + i[:, None] * d + j[None, :]
    m = im[:, None] & jm[None, :]
    sr = tl.load(sr_ptr + s_at, mask=m, other=0.0)
    si = tl.load(si_ptr + s_at, mask=m, other=0.0)
    sr = g * sr + vr * kr + SIGN * vi * ki
    si = g * si + vi * kr - SIGN * vr * ki
    tl.store(sr_ptr + s_at, sr, mask=m)
    tl.store(si_ptr + s_at, si, mask=m)
    y_at = y_ptr + b * 2 * hd + h * d + i
    tl.store(y_at, tl.sum(sr * qr - si * qi, 1).to(ty), mask=im)
    tl.store(y_at + hd, tl.sum(sr * qi + si * qr, 1).to(ty), mask=im)


# torch.library custom ops, so torch.compile keeps a decode step around them in one graph (see memory.py); the state
# op declares the state it updates in place
@torch.library.custom_op("archsearch::pam_step_project", mutates_args=())
def project_op(x: torch.Tensor, wr: torch.Tensor, wi: torch.Tensor, theta: torch.Tensor, position: torch.Tensor,
               heads: int, scale: float, norm_weight: torch.Tensor | None = None,
               eps: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(qkv [B, 6·H·d] fp32, the normed x [B, 2n] fp32) with a norm weight (the complex norm as the prologue, eps
    that of the RMS over 2n reals); (qkv, an empty tensor) without."""
    b, n2 = x.shape
    d = theta.shape[0]
    out = torch.empty(b, 2 * wr.shape[0], device=x.device, dtype=torch.float32)
    z = torch.empty(b, n2 if norm_weight is not None else 0, device=x.device, dtype=torch.float32)
    bj = min(PROJECT_CHANNELS, triton.next_power_of_2(d))
    bb, bk = tiles(b, bj, n2 // 2, PROJECT_TILE)
    grid = (3 * heads * triton.cdiv(d, bj), triton.cdiv(b, bb))
    on = pdl(x, wr, wi)
    project[grid](x.contiguous(), x if norm_weight is None else norm_weight, out if norm_weight is None else z,
                  wr.contiguous(), wi.contiguous(), theta, position, out, b, n2 // 2, heads, d, scale, eps,
                  NORM=norm_weight is not None, BB=bb, BJ=bj, BK=bk, PDL=on, num_warps=PROJECT_WARPS, **launch(on))
    return out, z


@project_op.register_fake
def _(x, wr, wi, theta, position, heads, scale, norm_weight=None, eps=0.0):
    z = x.new_empty(x.shape[0], x.shape[1] if norm_weight is not None else 0, dtype=torch.float32)
    return x.new_empty(x.shape[0], 2 * wr.shape[0], dtype=torch.float32), z


@torch.library.custom_op("archsearch::pam_step_state", mutates_args=("sr", "si", "position"))
def state_op(x: torch.Tensor, qkv: torch.Tensor, decay_w: torch.Tensor | None, decay_b: torch.Tensor | None,
             fixed: torch.Tensor | None, gsp_w: torch.Tensor | None, gsp_b: torch.Tensor | None, sr: torch.Tensor,
             si: torch.Tensor, sign: float, y_dtype: torch.dtype, position: torch.Tensor | None) -> torch.Tensor:
    """y [B, 2·H·d], the state updated in place, and the position counter (one element) advanced by 1 in place
    where one is given. `position` has no default on purpose: torch 2.11's dispatcher drops a trailing argument equal
    to its default before the in-place bookkeeping indexes the mutated ones (an IndexError on CUDA)."""
    b, heads, d, _ = sr.shape
    n = x.shape[-1] // 2
    y = torch.empty(b, 2 * heads * d, device=x.device, dtype=y_dtype)
    kw = 0 if gsp_w is None else gsp_w.shape[0] // heads
    decay = DECAY["data" if decay_w is not None else "fixed" if fixed is not None else "none"]
    bd, bkw = triton.next_power_of_2(d), max(2, triton.next_power_of_2(kw))
    spare = x  # any tensor, where an optional input is absent (never read)
    br = min(STATE_ROWS, bd)
    on = pdl(x)  # the state kernel reads nothing before its wait
    state[(b * heads, triton.cdiv(d, br))](x.contiguous(), qkv, *(t.contiguous() if t is not None else spare
                                              for t in (decay_w, decay_b, fixed, gsp_w, gsp_b)),
                        sr, si, y, spare if position is None else position, heads, d, n, DECAY=decay, KW=kw,
                        SIGN=sign, BKW=bkw, BD=bd, BR=br,
                        BN=min(triton.next_power_of_2(2 * n), max(16, GATE_TILE // bkw)),
                        STEP_POS=position is not None, PDL=on, num_warps=STATE_WARPS, **launch(on))
    return y


@state_op.register_fake
def _(x, qkv, decay_w, decay_b, fixed, gsp_w, gsp_b, sr, si, sign, y_dtype, position):
    return x.new_empty(x.shape[0], 2 * sr.shape[1] * sr.shape[2], dtype=y_dtype)


def check(heads: int, head_dim: int, gsp_width: int) -> None:
    """A one-line error for a configuration the kernels do not cover."""
    if gsp_width not in (0, heads, heads * head_dim):
        raise ValueError(f"pam_step: GSP of {gsp_width} gates for {heads} heads of {head_dim} channels")


def pam_step(x, wr_qkv, wi_qkv, theta, position, decay_w, decay_b, fixed_log_g, gsp_w, gsp_b, sr, si,
             conjugate: bool, y_dtype: torch.dtype | None = None):
    """One PAM decode step from the normed input x [B, 2n]: W_qkv's Wr, Wi [3·H·d, n], RoPE's θ [d], the
    position (a long tensor of one element), the decay's weight [H, 2n] and bias [H] or None, its fixed log γ [H] or
    None, GSP's weight [H or H·d, n] and bias or None, and the fp32 state Re S, Im S [B, H, d, d], updated in place.
    → (y [B, 2·H·d] in y_dtype (default x's), for the output projection; sr; si)."""
    heads, d = sr.shape[1], sr.shape[-1]
    check(heads, d, 0 if gsp_w is None else gsp_w.shape[0])
    if not (sr.is_contiguous() and si.is_contiguous() and sr.dtype == si.dtype == torch.float32):
        raise ValueError("pam_step updates the state in place: it needs contiguous fp32 tensors")
    qkv, _ = project_op(x, wr_qkv, wi_qkv, theta.float().contiguous(), position.reshape(1), heads, 1.0 / math.sqrt(d))
    y = state_op(x, qkv, decay_w, decay_b, fixed_log_g, gsp_w, gsp_b, sr, si, 1.0 if conjugate else -1.0,
                 y_dtype or x.dtype, None)
    return y, sr, si


def pam_sublayer_step(x, norm_weight, eps: float, wr_qkv, wi_qkv, theta, position, decay_w, decay_b, fixed_log_g,
                      gsp_w, gsp_b, sr, si, conjugate: bool, wr_out, wi_out, scale, y_dtype: torch.dtype | None = None,
                      step_position: bool = False):
    """The pre-norm residual sublayer x + scale·PAM(complex_rms_norm(x)) for one token x [B, 2n] in three kernels:
    project with the norm as its prologue (it also writes the normed row, for the gates), state, and the output
    projection W_out = Wr + i·Wi [n, H·d] with the scaled residual add (sublayer.residual_linear; scale a 0-d
    tensor or None). The norm's σ [n] and eps; the other arguments as pam_step's. → (x' [B, 2n] in x's dtype, sr,
    si); y is rounded to y_dtype (default x's) between the state kernel and the output projection. step_position:
    the state kernel also advances `position` (a one-element integer tensor) by 1 in place, after project has read
    it: a graphed decode then needs no kernel of its own to count each layer's position."""
    heads, d = sr.shape[1], sr.shape[-1]
    check(heads, d, 0 if gsp_w is None else gsp_w.shape[0])
    if not (sr.is_contiguous() and si.is_contiguous() and sr.dtype == si.dtype == torch.float32):
        raise ValueError("pam_step updates the state in place: it needs contiguous fp32 tensors")
    # eps / 2: the RMS is over the 2n real values, as complex_rms_norm's
    qkv, z = project_op(x, wr_qkv, wi_qkv, theta.float().contiguous(), position.reshape(1), heads, 1.0 / math.sqrt(d),
                        norm_weight, eps / 2)
    y = state_op(z, qkv, decay_w, decay_b, fixed_log_g, gsp_w, gsp_b, sr, si, 1.0 if conjugate else -1.0,
                 y_dtype or x.dtype, position if step_position else None)
    return residual_op(x, y, wr_out, wi_out, scale), sr, si
