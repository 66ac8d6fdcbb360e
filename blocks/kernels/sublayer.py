"""What the fused decode steps of pre-norm residual sublayers, x ← x + s·block(norm(x)) for one token, share
(cgu_step.py, pam_step.py): the complex norm as a GEMV's prologue, the complex GEMV on a ComplexLinear's own
parameters, and the block's last GEMV with the scaled residual add as its epilogue.

- The weights: Wr and Wi [m, n] as ComplexLinear keeps them, not the block matrix [[Wr, −Wi], [Wi, Wr]] that holds
  each weight twice. For z = [xr | xi], yr = Wr·xr − Wi·xi and yi = Wi·xr + Wr·xi: a program loads each weight
  element once and uses it twice (complex_dot), so a GEMV streams 2mn weights, not 4mn.
- The norm: complex_rms_norm(x) = x · [σ | σ]·√½ / RMS(x) over the real row of 2n values (blocks/complex.py).
  The row of a decode step is a few KB, so every program of the GEMV that follows re-reads it and computes its RMS
  itself (inverse_rms, then normed per column block): no kernel and no tensor for the normed row.
- residual_linear: out = r + s·(W h) for r [B, 2m], h [B, 2k], W = Wr + i·Wi [m, k] and the learned scale s (a 0-d
  tensor, read by the kernel: it is a parameter) or none. Each program owns RESIDUAL_ROWS complex rows (their real
  and imaginary outputs) for up to 8 sequences. Its kernel also serves the decode head's W·CN(h) (head_step.py):
  no residual, the norm as a prologue.

Arithmetic in fp32 whatever the inputs' dtype; out in r's dtype.

Programmatic dependent launch (PDL, Hopper and newer): each kernel lets the next one launch as soon as it starts
(`dependents`), and the GEMVs read their first tile of weights before they wait for the kernel before them to finish
(`await_inputs`): parameters, which no kernel of a decode step writes (the state kernel reads nothing before it).
Everything a step's earlier kernels write (the residual row, q, k, v, the state, the position) is read after the
wait. So a GEMV's weights stream in while the kernel before it runs, instead of after a launch gap. `ARCHSEARCH_PDL=0`
launches them one after the other, as other kernels.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

try:  # griddepcontrol, sm_90+; absent from Triton builds without the CUDA backend
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait
except ImportError:  # pragma: no cover
    gdc_launch_dependents = gdc_wait = None

__all__ = ["residual_linear"]  # the kernels; TWINS (__init__.py) names their torch twins

RESIDUAL_ROWS = 1  # complex rows per program (2 outputs): 384 programs on the 100M model's 384-row projections
RESIDUAL_TILE = 4096  # batch rows × weight rows (Wr's and Wi's) × columns one program holds per loop iteration
RESIDUAL_WARPS = 4  # the tiles benchmarks/decode_tiles.py found quickest on the H200 (docs/performance.md)


def pdl(t: torch.Tensor, *weights: torch.Tensor) -> bool:
    """Whether a decode kernel launches with programmatic dependent launch for a tensor on t's device: an NVIDIA GPU
    (a CUDA build of torch, not ROCm's) of compute capability 9 or more, Triton's griddepcontrol, ARCHSEARCH_PDL not
    0, and the weights it reads before its wait contiguous (else the op's own copy, the kernel just before, writes
    them). Weights that a step's earlier kernel computes must not be passed. (Triton's interpreter, on CPU, runs
    neither instruction.)"""
    return (t.is_cuda and torch.version.cuda is not None and gdc_wait is not None
            and os.environ.get("ARCHSEARCH_PDL", "1") != "0" and all(w.is_contiguous() for w in weights)
            and torch.cuda.get_device_capability(t.device)[0] >= 9)


def launch(on: bool) -> dict:
    """The launch option of PDL where it is on, and none where it is off: an older Triton without the option or
    another backend (AMD's) rejects any keyword it does not know."""
    return {"launch_pdl": True} if on else {}


@triton.jit
def dependents(PDL: tl.constexpr):
    """Let the next kernel on the stream launch now (with PDL); it waits for this one in `await_inputs`."""
    if PDL:
        gdc_launch_dependents()


@triton.jit
def await_inputs(PDL: tl.constexpr):
    """Wait until the kernels before this one have finished and their writes are visible (with PDL). Before it a
    kernel reads parameters only."""
    if PDL:
        gdc_wait()


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
def halves(x_ptr, b, bm, k, km, n):
    """(xr, xi) [BB, BK] = x[b, k], x[b, n + k] of x [B, 2n] for complex columns k < n, in fp32."""
    at = x_ptr + b[:, None].to(tl.int64) * (2 * n) + k[None, :]
    m = bm[:, None] & km[None, :]
    return tl.load(at, mask=m, other=0.0).to(tl.float32), tl.load(at + n, mask=m, other=0.0).to(tl.float32)


@triton.jit
def normed(x_ptr, nw_ptr, inv, b, bm, k, km, n, NORM: tl.constexpr):
    """halves(x) with NORM complex-normed: both times σ[k]·√½ and the row's inverse RMS `inv`."""
    xr, xi = halves(x_ptr, b, bm, k, km, n)
    if NORM:
        s = tl.load(nw_ptr + k, mask=km, other=0.0).to(tl.float32) * 0.7071067811865476  # √½
        s = inv[:, None] * s[None, :]
        xr, xi = xr * s, xi * s
    return xr, xi


@triton.jit
def weights(wr_ptr, wi_ptr, j, jm, k, km, n):
    """Rows j, columns k of Wr and Wi [m, n] as [1, BJ, BK] fp32 tiles, for complex_dot."""
    at = j[:, None].to(tl.int64) * n + k[None, :]
    m = jm[:, None] & km[None, :]
    wr = tl.load(wr_ptr + at, mask=m, other=0.0).to(tl.float32)
    wi = tl.load(wi_ptr + at, mask=m, other=0.0).to(tl.float32)
    return wr[None, :, :], wi[None, :, :]


@triton.jit
def complex_dot(xr, xi, wr, wi):
    """(Re, Im) [BB, BJ] of Σ over the columns of (wr + i·wi)(xr + i·xi), x [BB, BK], w [1, BJ, BK]: each weight
    element read once, used twice."""
    xr, xi = xr[:, None, :], xi[:, None, :]
    return tl.sum(wr * xr - wi * xi, 2), tl.sum(wi * xr + wr * xi, 2)


@triton.jit
def residual(r_ptr, h_ptr, nw_ptr, wr_ptr, wi_ptr, s_ptr, out_ptr, B, M, K, eps, HAS_RESIDUAL: tl.constexpr,
             HAS_SCALE: tl.constexpr, NORM: tl.constexpr, BB: tl.constexpr, BJ: tl.constexpr, BK: tl.constexpr,
             PDL: tl.constexpr):
    """out = r + s·(W h), or without HAS_RESIDUAL s·(W h); with NORM h complex-normed first (σ at nw, eps)."""
    dependents(PDL)
    j = tl.program_id(0) * BJ + tl.arange(0, BJ)
    b = tl.program_id(1) * BB + tl.arange(0, BB)
    jm, bm = j < M, b < B
    k = tl.arange(0, BK)  # the first tile of columns (at batch 1 on the 100M model, all of them)
    km = k < K
    wr, wi = weights(wr_ptr, wi_ptr, j, jm, k, km, K)
    await_inputs(PDL)
    if NORM:
        inv = inverse_rms(h_ptr, b, bm, 2 * K, eps, BB, BK)
    else:
        inv = tl.zeros([BB], dtype=tl.float32)
    hr, hi = normed(h_ptr, nw_ptr, inv, b, bm, k, km, K, NORM)
    acc_re, acc_im = complex_dot(hr, hi, wr, wi)
    for k0 in range(BK, K, BK):
        k = k0 + tl.arange(0, BK)
        km = k < K
        hr, hi = normed(h_ptr, nw_ptr, inv, b, bm, k, km, K, NORM)
        wr, wi = weights(wr_ptr, wi_ptr, j, jm, k, km, K)
        re, im = complex_dot(hr, hi, wr, wi)
        acc_re += re
        acc_im += im
    if HAS_SCALE:
        s = tl.load(s_ptr).to(tl.float32)
        acc_re *= s
        acc_im *= s
    at = b[:, None].to(tl.int64) * (2 * M) + j[None, :]  # out [B, 2M] = [re | im]
    m = bm[:, None] & jm[None, :]
    if HAS_RESIDUAL:
        acc_re += tl.load(r_ptr + at, mask=m, other=0.0).to(tl.float32)
        acc_im += tl.load(r_ptr + at + M, mask=m, other=0.0).to(tl.float32)
    ty = out_ptr.dtype.element_ty
    tl.store(out_ptr + at, acc_re.to(ty), mask=m)
    tl.store(out_ptr + at + M, acc_im.to(ty), mask=m)


def tiles(batch: int, rows: int, columns: int, tile: int) -> tuple[int, int]:
    """(BB, BK) of a one-token GEMV whose programs hold `rows` weight rows each per loop iteration: up to 8
    sequences, and as many columns as fill `tile` (at least 16, at most the row's)."""
    bb = min(8, triton.next_power_of_2(batch))
    return bb, max(16, min(triton.next_power_of_2(columns), tile // (bb * rows)))


# a torch.library custom op, so torch.compile keeps a decode step around it in one graph (see memory.py)
@torch.library.custom_op("archsearch::residual_linear", mutates_args=())
def residual_op(r: torch.Tensor, h: torch.Tensor, wr: torch.Tensor, wi: torch.Tensor,
                scale: torch.Tensor | None) -> torch.Tensor:
    b = h.shape[0]
    m, k = wr.shape
    out = torch.empty_like(r)
    bb, bk = tiles(b, 2 * RESIDUAL_ROWS, k, RESIDUAL_TILE)
    grid = (triton.cdiv(m, RESIDUAL_ROWS), triton.cdiv(b, bb))
    on = pdl(r, wr, wi)
    residual[grid](r.contiguous(), h.contiguous(), r, wr.contiguous(), wi.contiguous(), r if scale is None else scale,
                   out, b, m, k, 0.0, HAS_RESIDUAL=True, HAS_SCALE=scale is not None, NORM=False, BB=bb,
                   BJ=RESIDUAL_ROWS, BK=bk, PDL=on, num_warps=RESIDUAL_WARPS, **launch(on))
    return out


@residual_op.register_fake
def _(r, h, wr, wi, scale):
    return torch.empty_like(r)


def residual_linear(r: torch.Tensor, h: torch.Tensor, wr: torch.Tensor, wi: torch.Tensor,
                    scale: torch.Tensor | None) -> torch.Tensor:
    """r + scale·(W h) for one token per sequence, W = Wr + i·Wi [m, k] (a ComplexLinear's parameters) on split-real
    rows: r [B, 2m], h [B, 2k], scale a 0-d tensor or None (1)."""
    return residual_op(r, h, wr, wi, scale)
