"""What the fused decode steps of pre-norm residual sublayers, x ← x + s·block(norm(x)) for one token, share
(cgu_step.py, pam_step.py): the complex norm as a GEMV's prologue, and the block's last GEMV with the scaled residual
add as its epilogue.

- The norm: complex_rms_norm(x) = x · [σ | σ]·√½ / RMS(x) over the real row of 2n values (blocks/complex.py).
  The row of a decode step is a few KB, so every program of the GEMV that follows re-reads it and computes its RMS
  itself (inverse_rms, then normed per column block): no kernel and no tensor for the normed row.
- residual_linear: out = r + s·(W h) for r [B, M], h [B, K], W [M, K] and the learned scale s (a 0-d tensor, read
  by the kernel: it is a parameter) or none. Each program owns RESIDUAL_ROWS rows of W for up to 8 sequences.

Arithmetic in fp32 whatever the inputs' dtype; out in r's dtype.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["residual_linear"]  # the kernels; TWINS (__init__.py) names their torch twins

RESIDUAL_ROWS = 4  # rows of W per program: 192 programs on the 100M model's 768-row output projections
RESIDUAL_TILE = 2048  # batch rows × W rows × columns one program holds per loop iteration


@triton.jit
def inverse_rms(x_ptr, b, bm, N2, eps, BB: tl.constexpr, BK: tl.constexpr):
    """[BB]: 1 / sqrt(mean(x²) + eps) over each row b < B of x [B, N2], in fp32."""
    ss = tl.zeros([BB], dtype=tl.float32)
    for k0 in range(0, N2, BK):
        k = k0 + tl.arange(0, BK)
        x = tl.load(x_ptr + b[:, None].to(tl.int64) * N2 + k[None, :], mask=bm[:, None] & (k < N2)[None, :],
                    other=0.0).to(tl.float32)
        ss += tl.sum(x * x, 1)
    return 1.0 / tl.sqrt(ss / N2 + eps)


@triton.jit
def normed(x_ptr, nw_ptr, inv, b, bm, k, km, N2, NORM: tl.constexpr):
    """x[b, k] [BB, BK] in fp32; with NORM, complex-normed: times σ[k mod n]·√½ and the row's inverse RMS `inv`."""
    x = tl.load(x_ptr + b[:, None].to(tl.int64) * N2 + k[None, :], mask=bm[:, None] & km[None, :],
                other=0.0).to(tl.float32)
    if NORM:
        n = N2 // 2
        s = tl.load(nw_ptr + tl.where(k < n, k, k - n), mask=km, other=0.0).to(tl.float32)  # no `%`: kernels.md
        x = x * inv[:, None] * (s * 0.7071067811865476)[None, :]  # √½
    return x


@triton.jit
def residual(r_ptr, h_ptr, w_ptr, s_ptr, out_ptr, B, M, K, HAS_SCALE: tl.constexpr, BB: tl.constexpr,
             BJ: tl.constexpr, BK: tl.constexpr):
    j = tl.program_id(0) * BJ + tl.arange(0, BJ)
    b = tl.program_id(1) * BB + tl.arange(0, BB)
    jm, bm = j < M, b < B
    acc = tl.zeros([BB, BJ], dtype=tl.float32)
    for k0 in range(0, K, BK):
        k = k0 + tl.arange(0, BK)
        km = k < K
        h = tl.load(h_ptr + b[:, None].to(tl.int64) * K + k[None, :], mask=bm[:, None] & km[None, :],
                    other=0.0).to(tl.float32)
        w = tl.load(w_ptr + j[:, None].to(tl.int64) * K + k[None, :], mask=jm[:, None] & km[None, :],
                    other=0.0).to(tl.float32)
        acc += tl.sum(h[:, None, :] * w[None, :, :], 2)
    if HAS_SCALE:
        acc *= tl.load(s_ptr).to(tl.float32)
    at = b[:, None].to(tl.int64) * M + j[None, :]
    m = bm[:, None] & jm[None, :]
    r = tl.load(r_ptr + at, mask=m, other=0.0).to(tl.float32)
    tl.store(out_ptr + at, (r + acc).to(out_ptr.dtype.element_ty), mask=m)


def tiles(batch: int, rows: int, columns: int, tile: int) -> tuple[int, int]:
    """(BB, BK) of a one-token GEMV whose programs own `rows` rows each: up to 8 sequences, and as many columns as
    fill `tile` (at least 16, at most the row's)."""
    bb = min(8, triton.next_power_of_2(batch))
    return bb, max(16, min(triton.next_power_of_2(columns), tile // (bb * rows)))


# a torch.library custom op, so torch.compile keeps a decode step around it in one graph (see memory.py)
@torch.library.custom_op("archsearch::residual_linear", mutates_args=())
def residual_op(r: torch.Tensor, h: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    b, k = h.shape
    m = w.shape[0]
    out = torch.empty_like(r)
    bb, bk = tiles(b, RESIDUAL_ROWS, k, RESIDUAL_TILE)
    grid = (triton.cdiv(m, RESIDUAL_ROWS), triton.cdiv(b, bb))
    residual[grid](r.contiguous(), h.contiguous(), w.contiguous(), r if scale is None else scale, out, b, m, k,
                   HAS_SCALE=scale is not None, BB=bb, BJ=RESIDUAL_ROWS, BK=bk)
    return out


@residual_op.register_fake
def _(r, h, w, scale):
    return torch.empty_like(r)


def residual_linear(r: torch.Tensor, h: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """r + scale·(h Wᵀ) for one token per sequence: r [B, M], h [B, K], W [M, K], scale a 0-d tensor or None (1)."""
    return residual_op(r, h, w, scale)
