"""The decode step's head as GEMVs with the complex norm as their prologue (sublayer.py's helpers). In a compiled
decode step of the paper's model the head (complex norm → complex linear → complex norm → the tied logits) runs as
its four ops (inductor puts each norm, a reduction, in a kernel of its own; each product is a GEMM that cannot read
its weights before the kernel before it has finished). Here it is two kernels, each reading its first tile of
weights before it waits (PDL, sublayer.py):

- normed_complex_linear: W·CN(x) for a ComplexLinear's Wr, Wi [m, n], out [B, 2m] = [re | im]: sublayer.residual's
  kernel without the residual and with the norm as its prologue; each program LINEAR_ROWS complex rows.
- normed_linear: w·CN(x) for a real w [M, 2n]: the tied logits Re⟨E, z⟩ against the embedding table [V, 2n]; each
  program HEAD_ROWS rows of w, the table read in its own dtype (an fp32 table is not cast to bf16 every step, as
  autocast's F.linear does).

Every program recomputes the row's inverse RMS from x (a few KB), as the sublayer kernels do. Arithmetic in fp32
whatever the inputs' dtype; out in out_dtype. Forward only: a decode step has no gradient.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .sublayer import await_inputs, dependents, inverse_rms, launch, normed, pdl, residual, tiles

__all__ = ["normed_complex_linear", "normed_linear"]  # the kernels; TWINS (__init__.py) names their torch twins

# Tiles: the quickest of benchmarks/decode_tiles.py's sweep (bf16 weights, batch 1, cold in L2, PDL) on an H100;
# the sweep checks each tile's output against the last tiles'.
LINEAR_ROWS = 2  # complex rows per program: 192 programs on the head's 384-row Wr and Wi (2.88 → 2.17 µs)
LINEAR_TILE = 4096  # batch rows × complex rows × complex columns per loop iteration, both weights' loads together
LINEAR_WARPS = 2
HEAD_ROWS = 4  # rows of the table per logits program: 12,565 programs on GPT-2's 50,257 tokens (34.2 → 28.9 µs)
HEAD_TILE = 8192  # batch rows × table rows × complex columns per loop iteration, the two halves' loads together
HEAD_WARPS = 2


@triton.jit
def _table_halves(w_ptr, j, jm, k, km, N):
    """Rows j of w [M, 2N] at columns k and N + k (the parts that meet x's real and imaginary halves) as [1, BJ, BK]
    fp32 tiles."""
    at = w_ptr + j[:, None].to(tl.int64) * (2 * N) + k[None, :]
    m = jm[:, None] & km[None, :]
    return (tl.load(at, mask=m, other=0.0).to(tl.float32)[None, :, :],
            tl.load(at + N, mask=m, other=0.0).to(tl.float32)[None, :, :])


@triton.jit
def logits(x_ptr, nw_ptr, w_ptr, out_ptr, B, M, N, eps, BB: tl.constexpr, BJ: tl.constexpr, BK: tl.constexpr,
           PDL: tl.constexpr):
    dependents(PDL)
    j = tl.program_id(0) * BJ + tl.arange(0, BJ)
    b = tl.program_id(1) * BB + tl.arange(0, BB)
    jm, bm = j < M, b < B
    k = tl.arange(0, BK)
    km = k < N
    wa, wb = _table_halves(w_ptr, j, jm, k, km, N)
    await_inputs(PDL)
    inv = inverse_rms(x_ptr, b, bm, 2 * N, eps, BB, BK)
    xr, xi = normed(x_ptr, nw_ptr, inv, b, bm, k, km, N, True)
    acc = tl.sum(wa * xr[:, None, :] + wb * xi[:, None, :], 2)
    for k0 in range(BK, N, BK):
        k = k0 + tl.arange(0, BK)
        km = k < N
        xr, xi = normed(x_ptr, nw_ptr, inv, b, bm, k, km, N, True)
        wa, wb = _table_halves(w_ptr, j, jm, k, km, N)
        acc += tl.sum(wa * xr[:, None, :] + wb * xi[:, None, :], 2)
    m = bm[:, None] & jm[None, :]
    tl.store(out_ptr + b[:, None].to(tl.int64) * M + j[None, :], acc.to(out_ptr.dtype.element_ty), mask=m)


# torch.library custom ops, so torch.compile keeps a decode step around them in one graph (see memory.py)
@torch.library.custom_op("archsearch::head_normed_complex_linear", mutates_args=())
def linear_op(x: torch.Tensor, norm_weight: torch.Tensor, eps: float, wr: torch.Tensor, wi: torch.Tensor,
              out_dtype: torch.dtype) -> torch.Tensor:
    b = x.shape[0]
    m, n = wr.shape
    out = torch.empty(b, 2 * m, device=x.device, dtype=out_dtype)
    bb, bk = tiles(b, 2 * LINEAR_ROWS, n, LINEAR_TILE)
    on = pdl(x, wr, wi)
    residual[(triton.cdiv(m, LINEAR_ROWS), triton.cdiv(b, bb))](
        x, x.contiguous(), norm_weight.contiguous(), wr.contiguous(), wi.contiguous(), x, out, b, m, n, eps,
        HAS_RESIDUAL=False, HAS_SCALE=False, NORM=True, BB=bb, BJ=LINEAR_ROWS, BK=bk, PDL=on,
        num_warps=LINEAR_WARPS, **launch(on))
    return out


@linear_op.register_fake
def _(x, norm_weight, eps, wr, wi, out_dtype):
    return x.new_empty(x.shape[0], 2 * wr.shape[0], dtype=out_dtype)


@torch.library.custom_op("archsearch::head_normed_linear", mutates_args=())
def logits_op(x: torch.Tensor, norm_weight: torch.Tensor, eps: float, w: torch.Tensor,
              out_dtype: torch.dtype) -> torch.Tensor:
    b = x.shape[0]
    m, n = w.shape[0], w.shape[1] // 2
    out = torch.empty(b, m, device=x.device, dtype=out_dtype)
    bb, bk = tiles(b, 2 * HEAD_ROWS, n, HEAD_TILE)
    on = pdl(x, w)
    logits[(triton.cdiv(m, HEAD_ROWS), triton.cdiv(b, bb))](
        x.contiguous(), norm_weight.contiguous(), w.contiguous(), out, b, m, n, eps, BB=bb, BJ=HEAD_ROWS, BK=bk,
        PDL=on, num_warps=HEAD_WARPS, **launch(on))
    return out


@logits_op.register_fake
def _(x, norm_weight, eps, w, out_dtype):
    return x.new_empty(x.shape[0], w.shape[0], dtype=out_dtype)


def _check(x: torch.Tensor, norm_weight: torch.Tensor, columns: int, what: str) -> None:
    if x.dim() != 2 or x.shape[1] != 2 * norm_weight.shape[0] or columns != x.shape[1]:
        raise ValueError(f"{what}: x {tuple(x.shape)} against a norm of {norm_weight.shape[0]} complex channels and "
                         f"weights of {columns} real columns")


def normed_complex_linear(x, norm_weight, eps: float, wr, wi, out_dtype: torch.dtype | None = None):
    """W·complex_rms_norm(x) for one token x [B, 2n] per sequence: the norm's σ [n] and eps, W = Wr + i·Wi [m, n]
    (a ComplexLinear's parameters) → [B, 2m] in out_dtype (default x's)."""
    _check(x, norm_weight, 2 * wr.shape[1], "normed_complex_linear")
    return linear_op(x, norm_weight, eps / 2, wr, wi, out_dtype or x.dtype)  # eps / 2: over the 2n real values


def normed_linear(x, norm_weight, eps: float, w, out_dtype: torch.dtype | None = None):
    """w·complex_rms_norm(x) for one token x [B, 2n] per sequence and a real w [M, 2n] (a tied head's embedding
    table) → [B, M] in out_dtype (default x's)."""
    _check(x, norm_weight, w.shape[1], "normed_linear")
    return logits_op(x, norm_weight, eps / 2, w, out_dtype or x.dtype)
