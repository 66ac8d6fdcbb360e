"""PAM's inputs to the memory kernels in one kernel forward and one backward (in eager torch, the head
permutes, complex RoPE on Q and K, the 1/√d scale, GSP's value scale and the [re | im] concatenations are ~20
elementwise ops, each a pass over the activations, and as many again backward).

From the complex projection y = W_qkv z, [B·T, 6·H·d] laid out [re | im] × [q | k | v] × H × d, and RoPE's
cos/sin [T, d], to q, k, v [B, H, T, 2d] as [re | im] (what complex_pair_memory takes):
  q = s·[Re(Q e^{iθt}) | σ·Im(Q e^{iθt})],  k = [Re | Im](K e^{iθt}),  v = keep ⊙ [Vr | Vi]
with s = 1/√d, σ = ±1 (the pair kernels' sign) and keep = GSP's (1 − p) per head or per channel ([B, H, T, 1 or d]).
Arithmetic in fp32; q, k, v keep y's dtype (bf16 under autocast).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["complex_qkv"]  # the kernels; TWINS (__init__.py) names their torch twins

BLOCK_T = 32


@triton.jit
def _offsets(T, H, d, KW: tl.constexpr, BT: tl.constexpr, BD: tl.constexpr):
    """This program's rows (positions of one batch element and head) and columns, and where they live."""
    bh = tl.program_id(1).to(tl.int64)
    b, h = bh // H, bh % H
    t = tl.program_id(0) * BT + tl.arange(0, BT)
    j = tl.arange(0, BD)
    mask = (t < T)[:, None] & (j < d)[None, :]
    y_at = (b * T + t)[:, None] * (6 * H * d) + h * d + j[None, :]  # + (part·3 + which)·H·d
    out_at = (bh * T + t)[:, None] * (2 * d) + j[None, :]  # + d for the imaginary half
    rope_at = t[:, None] * d + j[None, :]
    if KW == 1:
        keep_at = (bh * T + t)[:, None] + 0 * j[None, :]
    else:
        keep_at = (bh * T + t)[:, None] * d + j[None, :]
    return mask, y_at, out_at, rope_at, keep_at, bh * T + t, t < T


@triton.jit
def _rotate(src, re_at, im_at, dst, out_re, out_im, mask, c, s, scale, SIGN_IN: tl.constexpr,
            SIGN_OUT: tl.constexpr):
    """scale · (re + i·im)(c + i·s) from src to dst, the imaginary input read with SIGN_IN and the output's imaginary
    half written with SIGN_OUT. With s = −sin θ it is the transposed rotation (the backward's)."""
    re = tl.load(src + re_at, mask=mask, other=0.0).to(tl.float32)
    im = SIGN_IN * tl.load(src + im_at, mask=mask, other=0.0).to(tl.float32)
    ty = dst.dtype.element_ty
    tl.store(dst + out_re, (scale * (re * c - im * s)).to(ty), mask=mask)
    tl.store(dst + out_im, (SIGN_OUT * scale * (re * s + im * c)).to(ty), mask=mask)


@triton.jit
def qkv_fwd(y_ptr, cos_ptr, sin_ptr, keep_ptr, q_ptr, k_ptr, v_ptr, T, H, d, scale, KW: tl.constexpr,
            SIGN: tl.constexpr, HAS_KEEP: tl.constexpr, BT: tl.constexpr, BD: tl.constexpr):
    mask, y_at, out_at, rope_at, keep_at, _, _ = _offsets(T, H, d, KW, BT, BD)
    hd = H * d
    c = tl.load(cos_ptr + rope_at, mask=mask, other=0.0)
    s = tl.load(sin_ptr + rope_at, mask=mask, other=0.0)
    _rotate(y_ptr, y_at, y_at + 3 * hd, q_ptr, out_at, out_at + d, mask, c, s, scale, 1.0, SIGN)
    _rotate(y_ptr, y_at + hd, y_at + 4 * hd, k_ptr, out_at, out_at + d, mask, c, s, 1.0, 1.0, 1.0)
    vr = tl.load(y_ptr + y_at + 2 * hd, mask=mask, other=0.0).to(tl.float32)
    vi = tl.load(y_ptr + y_at + 5 * hd, mask=mask, other=0.0).to(tl.float32)
    if HAS_KEEP:
        keep = tl.load(keep_ptr + keep_at, mask=mask, other=0.0).to(tl.float32)
        vr, vi = vr * keep, vi * keep
    tl.store(v_ptr + out_at, vr.to(v_ptr.dtype.element_ty), mask=mask)
    tl.store(v_ptr + out_at + d, vi.to(v_ptr.dtype.element_ty), mask=mask)


@triton.jit
def qkv_bwd(y_ptr, cos_ptr, sin_ptr, keep_ptr, dq_ptr, dk_ptr, dv_ptr, dy_ptr, dkeep_ptr, T, H, d, scale,
            KW: tl.constexpr, SIGN: tl.constexpr, HAS_KEEP: tl.constexpr, BT: tl.constexpr, BD: tl.constexpr):
    mask, y_at, out_at, rope_at, keep_at, row, in_t = _offsets(T, H, d, KW, BT, BD)
    hd = H * d
    c = tl.load(cos_ptr + rope_at, mask=mask, other=0.0)
    s = tl.load(sin_ptr + rope_at, mask=mask, other=0.0)
    # the transposed rotation (and the scale, the sign) carries dq, dk back to Q, K
    _rotate(dq_ptr, out_at, out_at + d, dy_ptr, y_at, y_at + 3 * hd, mask, c, -s, scale, SIGN, 1.0)
    _rotate(dk_ptr, out_at, out_at + d, dy_ptr, y_at + hd, y_at + 4 * hd, mask, c, -s, 1.0, 1.0, 1.0)
    gr = tl.load(dv_ptr + out_at, mask=mask, other=0.0).to(tl.float32)
    gi = tl.load(dv_ptr + out_at + d, mask=mask, other=0.0).to(tl.float32)
    if HAS_KEEP:
        keep = tl.load(keep_ptr + keep_at, mask=mask, other=0.0).to(tl.float32)
        vr = tl.load(y_ptr + y_at + 2 * hd, mask=mask, other=0.0).to(tl.float32)
        vi = tl.load(y_ptr + y_at + 5 * hd, mask=mask, other=0.0).to(tl.float32)
        dkeep = gr * vr + gi * vi
        if KW == 1:  # one scale per head: summed over its channels
            tl.store(dkeep_ptr + row, tl.sum(dkeep, 1), mask=in_t)
        else:
            tl.store(dkeep_ptr + keep_at, dkeep, mask=mask)
        gr, gi = gr * keep, gi * keep
    tl.store(dy_ptr + y_at + 2 * hd, gr.to(dy_ptr.dtype.element_ty), mask=mask)
    tl.store(dy_ptr + y_at + 5 * hd, gi.to(dy_ptr.dtype.element_ty), mask=mask)


# torch.library custom ops, so torch.compile keeps a model around them in one graph (see memory.py)
@torch.library.custom_op("archsearch::complex_qkv_fwd", mutates_args=())
def qkv_fwd_op(y: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, keep: torch.Tensor | None, heads: int,
               head_dim: int, scale: float, sign: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, t = y.shape[:2]
    q, k, v = (torch.empty(b, heads, t, 2 * head_dim, device=y.device, dtype=y.dtype) for _ in range(3))
    meta, grid = _launch(y, keep, heads, head_dim, scale, sign)
    qkv_fwd[grid](y.contiguous(), cos, sin, keep.contiguous() if keep is not None else cos, q, k, v, **meta)
    return q, k, v


@qkv_fwd_op.register_fake
def _(y, cos, sin, keep, heads, head_dim, scale, sign):
    b, t = y.shape[:2]
    return tuple(y.new_empty(b, heads, t, 2 * head_dim) for _ in range(3))


@torch.library.custom_op("archsearch::complex_qkv_bwd", mutates_args=())
def qkv_bwd_op(y: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, keep: torch.Tensor | None, dq: torch.Tensor,
               dk: torch.Tensor, dv: torch.Tensor, heads: int, head_dim: int, scale: float,
               sign: float) -> tuple[torch.Tensor, torch.Tensor]:
    """dy, and dkeep (empty where keep is None)."""
    y = y.contiguous()
    dy = torch.empty_like(y)
    keep_c = keep.contiguous() if keep is not None else cos
    dkeep = torch.empty_like(keep_c) if keep is not None else cos.new_empty(0)
    meta, grid = _launch(y, keep, heads, head_dim, scale, sign)
    qkv_bwd[grid](y, cos, sin, keep_c, dq.contiguous(), dk.contiguous(), dv.contiguous(), dy, dkeep, **meta)
    return dy, dkeep


@qkv_bwd_op.register_fake
def _(y, cos, sin, keep, dq, dk, dv, heads, head_dim, scale, sign):
    return y.new_empty(y.shape), keep.new_empty(keep.shape) if keep is not None else cos.new_empty(0)


def _launch(y, keep, heads: int, head_dim: int, scale: float, sign: float) -> tuple[dict, tuple]:
    b, t = y.shape[:2]
    kw = 1 if keep is None or keep.shape[-1] == 1 else head_dim
    meta = dict(T=t, H=heads, d=head_dim, KW=kw, scale=scale, SIGN=sign, HAS_KEEP=keep is not None, BT=BLOCK_T,
                BD=triton.next_power_of_2(head_dim))
    return meta, (triton.cdiv(t, BLOCK_T), b * heads)


def _setup(ctx, inputs, output):
    y, cos, sin, keep, *ctx.args = inputs
    ctx.save_for_backward(y, cos, sin, keep)


def _backward(ctx, dq, dk, dv):
    y, cos, sin, keep = ctx.saved_tensors
    dq, dk, dv = (g if g is not None else y.new_zeros(y.shape[0], ctx.args[0], y.shape[1], 2 * ctx.args[1])
                  for g in (dq, dk, dv))
    dy, dkeep = qkv_bwd_op(y, cos, sin, keep, dq, dk, dv, *ctx.args)
    return dy, None, None, dkeep if keep is not None else None, None, None, None, None


qkv_fwd_op.register_autograd(_backward, setup_context=_setup)


def complex_qkv(y, cos, sin, keep, heads: int, head_dim: int, scale: float, sign: float):
    """y [B, T, 6·H·d] (the W_qkv projection), cos/sin [T, d] fp32, keep [B, H, T, 1 or d] or None → q, k, v
    [B, H, T, 2d] for complex_pair_memory (q scaled by `scale`, its imaginary half by `sign`)."""
    return qkv_fwd_op(y, cos.float().contiguous(), sin.float().contiguous(), keep, heads, head_dim, float(scale),
                      float(sign))
