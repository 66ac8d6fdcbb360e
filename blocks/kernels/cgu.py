"""The complex gated unit's elementwise middle as one kernel forward and one backward (in eager torch it is
~20 elementwise ops, each a pass over the [tokens, 4h] activations, plus zero-filled gradients for every slice).

y = [gr | ur | gi | ui] (the fused gate/up projection, [N, 4h]) → [hr | hi] ([N, 2h]):
  u' = modReLU(u) = u · relu(|u| + b)/|u|,  g' = g · σ(|g| + c)/|g|,  h = g' u'   (complex product)
so h = k·(g u) with k = σ(|g| + c)/|g| · relu(|u| + b)/|u|. The backward recomputes everything from y (nothing but
y is saved) and returns dy and the biases' gradients (per-tile partial sums, added up in torch).
Arithmetic in fp32; y, h and dy keep y's dtype (bf16 under autocast).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["cgu_gate"]  # the kernels; TWINS (__init__.py) names their torch twins

BLOCK_N, BLOCK_H = 16, 128
BWD_N, BWD_H, BWD_WARPS = 4, 128, 4  # the backward holds ~30 fp32 values an element: small tiles (H200: 0.155 ms at
# 16,384 × 1,152, against 0.201 ms at the forward's 16 × 128; 8 × 64 0.156, 16 × 128 with 8 warps 0.168)


@triton.jit
def _tile(y_ptr, b_ptr, c_ptr, N, H, HAS_C: tl.constexpr, BN: tl.constexpr, BH: tl.constexpr):
    rows = tl.program_id(0) * BN + tl.arange(0, BN)
    cols = tl.program_id(1) * BH + tl.arange(0, BH)
    mask = (rows < N)[:, None] & (cols < H)[None, :]
    base = rows.to(tl.int64)[:, None] * (4 * H) + cols[None, :]
    gr = tl.load(y_ptr + base, mask=mask, other=0.0).to(tl.float32)
    ur = tl.load(y_ptr + base + H, mask=mask, other=0.0).to(tl.float32)
    gi = tl.load(y_ptr + base + 2 * H, mask=mask, other=0.0).to(tl.float32)
    ui = tl.load(y_ptr + base + 3 * H, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=cols < H, other=0.0).to(tl.float32)[None, :]
    mg = tl.sqrt(gr * gr + gi * gi + 1e-8)  # |g| as blocks.complex.magnitude (EPS_MAG)
    mu = tl.sqrt(ur * ur + ui * ui + 1e-8)
    z = mg
    if HAS_C:
        z += tl.load(c_ptr + cols, mask=cols < H, other=0.0).to(tl.float32)[None, :]
    return rows, cols, mask, gr, ur, gi, ui, b, mg, mu, tl.sigmoid(z)


@triton.jit
def cgu_fwd(y_ptr, b_ptr, c_ptr, h_ptr, N, H, HAS_C: tl.constexpr, BN: tl.constexpr, BH: tl.constexpr):
    rows, cols, mask, gr, ur, gi, ui, b, mg, mu, sig = _tile(y_ptr, b_ptr, c_ptr, N, H, HAS_C, BN, BH)
    k = sig / mg * tl.maximum(mu + b, 0.0) / mu
    out = rows.to(tl.int64)[:, None] * (2 * H) + cols[None, :]
    tl.store(h_ptr + out, (k * (gr * ur - gi * ui)).to(h_ptr.dtype.element_ty), mask=mask)
    tl.store(h_ptr + out + H, (k * (gr * ui + gi * ur)).to(h_ptr.dtype.element_ty), mask=mask)


@triton.jit
def cgu_bwd(y_ptr, b_ptr, c_ptr, dh_ptr, dy_ptr, db_ptr, dc_ptr, N, H, HAS_C: tl.constexpr, BN: tl.constexpr,
            BH: tl.constexpr):
    rows, cols, mask, gr, ur, gi, ui, b, mg, mu, sig = _tile(y_ptr, b_ptr, c_ptr, N, H, HAS_C, BN, BH)
    out = rows.to(tl.int64)[:, None] * (2 * H) + cols[None, :]
    dhr = tl.load(dh_ptr + out, mask=mask, other=0.0).to(tl.float32)
    dhi = tl.load(dh_ptr + out + H, mask=mask, other=0.0).to(tl.float32)
    a = sig / mg  # gate scale
    live = mu + b > 0.0
    s = tl.where(live, (mu + b) / mu, 0.0)  # modReLU scale
    p, q = gr * ur - gi * ui, gr * ui + gi * ur  # g·u
    dk = dhr * p + dhi * q
    dp, dq = a * s * dhr, a * s * dhi
    dgr, dgi = dp * ur + dq * ui, dq * ur - dp * ui
    dur, dui = dp * gr + dq * gi, dq * gr - dp * gi
    dz = dk * s * sig * (1.0 - sig) / mg  # through σ(z), z = |g| + c
    dmg = dz - dk * s * a / mg  # and through the 1/|g|
    dgr += dmg * gr / mg
    dgi += dmg * gi / mg
    ds = dk * a
    dmu = tl.where(live, -ds * b / (mu * mu), 0.0)
    dur += dmu * ur / mu
    dui += dmu * ui / mu
    base = rows.to(tl.int64)[:, None] * (4 * H) + cols[None, :]
    ty = dy_ptr.dtype.element_ty
    tl.store(dy_ptr + base, dgr.to(ty), mask=mask)
    tl.store(dy_ptr + base + H, dur.to(ty), mask=mask)
    tl.store(dy_ptr + base + 2 * H, dgi.to(ty), mask=mask)
    tl.store(dy_ptr + base + 3 * H, dui.to(ty), mask=mask)
    part = tl.program_id(0) * H + cols  # one row of partial sums per row tile
    tl.store(db_ptr + part, tl.sum(tl.where(live, ds / mu, 0.0), 0), mask=cols < H)
    if HAS_C:
        tl.store(dc_ptr + part, tl.sum(dz, 0), mask=cols < H)


def _grid(n: int, h: int, bn: int = BLOCK_N, bh: int = BLOCK_H) -> tuple:
    return triton.cdiv(n, bn), triton.cdiv(h, bh)


# torch.library custom ops, so torch.compile keeps a model around them in one graph (see memory.py)
@torch.library.custom_op("archsearch::cgu_fwd", mutates_args=())
def cgu_fwd_op(y: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    h = y.shape[-1] // 4
    y2 = y.reshape(-1, 4 * h).contiguous()
    out = torch.empty(y2.shape[0], 2 * h, device=y.device, dtype=y.dtype)
    cgu_fwd[_grid(y2.shape[0], h)](y2, b, b if c is None else c, out, y2.shape[0], h, HAS_C=c is not None,
                                   BN=BLOCK_N, BH=BLOCK_H)
    return out.view(*y.shape[:-1], 2 * h)


@cgu_fwd_op.register_fake
def _(y, b, c):
    return y.new_empty(*y.shape[:-1], y.shape[-1] // 2)


@torch.library.custom_op("archsearch::cgu_bwd", mutates_args=())
def cgu_bwd_op(y: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None,
               dh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dy, db and dc (empty where c is None)."""
    h = y.shape[-1] // 4
    y2 = y.reshape(-1, 4 * h).contiguous()
    n = y2.shape[0]
    grid = _grid(n, h, BWD_N, BWD_H)
    dy = torch.empty_like(y2)
    db = torch.empty(grid[0], h, device=y2.device, dtype=torch.float32)
    dc = torch.empty_like(db) if c is not None else db
    cgu_bwd[grid](y2, b, b if c is None else c, dh.reshape(n, 2 * h).contiguous(), dy, db, dc, n, h,
                  HAS_C=c is not None, BN=BWD_N, BH=BWD_H, num_warps=BWD_WARPS)
    return (dy.view(y.shape), db.sum(0).to(b.dtype),
            dc.sum(0).to(c.dtype) if c is not None else b.new_empty(0))


@cgu_bwd_op.register_fake
def _(y, b, c, dh):
    return y.new_empty(y.shape), b.new_empty(b.shape), c.new_empty(c.shape) if c is not None else b.new_empty(0)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, dh):
    y, b, c = ctx.saved_tensors
    dy, db, dc = cgu_bwd_op(y, b, c, dh)
    return dy, db, dc if c is not None else None


cgu_fwd_op.register_autograd(_backward, setup_context=_setup)


def cgu_gate(y: torch.Tensor, modrelu_bias: torch.Tensor, gate_bias: torch.Tensor | None) -> torch.Tensor:
    """[gr | ur | gi | ui] [..., 4h] → [hr | hi] [..., 2h]: modReLU on u, the σ(|g| + c) phase gate on g, their
    complex product (CGU.forward's middle, same contract)."""
    return cgu_fwd_op(y, modrelu_bias, gate_bias)
