"""The chunked gated memory as one autograd op over the Triton kernels, in two variants:

- chunked_memory(q, k, v, log_g): linear_core's contract (q [B, H, G, T, dk], k [B, H, T, dk], v [B, H, T, dv],
  log_g [B, H, T] → y [B, H, G, T, dv] in fp32), G query groups sharing one state;
- complex_pair_memory(q, k, v, log_g, sigma): PAM's split-real complex read (q, k, v [B, H, T, 2d] holding
  [re | im]; the second query group is derived inside the kernels) → y [B, H, T, 2d] = [Re | Im] in fp32.

Forward in two launches and backward in four (the last sums and scans the decay's gradient). The state
accumulates in fp32; matmul inputs stay in the inputs' dtype (bf16 under autocast).
"""
from __future__ import annotations

import torch
import triton

from . import memory_bwd, memory_fwd
from .tuning import direct, enabled, fastest, launch, tuning_on

CHUNK = 64  # the chunk length, unless tuning picks one of CHUNKS
CHUNKS = (32, 64, 128)
_TUNED_CHUNK: dict = {}


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"  # fp32 inputs mean a check run: no TF32 rounding


class ChunkedMemory(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, log_g, sigma, chunk: int):
        """sigma None: q [B, H, G, T, dk] in groups; ±1: a complex pair, q [B, H, T, dk]."""
        pair = sigma is not None
        b, h, t, dk = k.shape
        g = 2 if pair else q.shape[2]
        dv = v.shape[-1]
        dtype = q.dtype
        qf = q.reshape((b * h if pair else b * h * g), t, dk).contiguous()
        kf, vf = k.to(dtype).reshape(b * h, t, dk).contiguous(), v.to(dtype).reshape(b * h, t, dv).contiguous()
        gf = log_g.float().reshape(b * h, t).contiguous()
        n = triton.cdiv(t, chunk)
        states = torch.empty(b * h, n, dk, dv, device=q.device, dtype=torch.float32)
        rows = b * h if pair else b * h * g
        y = torch.empty(rows, t, dv, device=q.device, dtype=torch.float32)
        kw = dict(C=chunk, PREC=_precision(dtype))
        launch(memory_fwd.fwd_states, lambda m: (triton.cdiv(dk, m["BK"]), triton.cdiv(dv, m["BV"]), b * h),
               kf, vf, gf, states, t, n, K=dk, V=dv, **kw)
        kw |= dict(G=g, K=dk, V=dv, PAIR=pair, SIGMA=float(sigma or 1.0))
        launch(memory_fwd.fwd_output, lambda m: (triton.cdiv(dv, m["BV"]), n, rows), qf, kf, vf, gf, states, y, t, n,
               **kw)
        ctx.save_for_backward(qf, kf, vf, gf, states)
        ctx.kw, ctx.shape, ctx.dtypes = kw, (b, h, g, t, dk, dv), (q.dtype, k.dtype, v.dtype, log_g.dtype)
        ctx.q_shape = q.shape
        return y.view(b, h, t, dv) if pair else y.view(b, h, g, t, dv)

    @staticmethod
    def backward(ctx, dy):
        qf, kf, vf, gf, states = ctx.saved_tensors
        b, h, g, t, dk, dv = ctx.shape
        kw, n = ctx.kw, states.shape[1]
        dyf = dy.float().reshape(-1, t, dv).contiguous()  # the kernels round it to the inputs' dtype
        dstates = torch.empty_like(states)
        launch(memory_bwd.bwd_states, lambda m: (triton.cdiv(dk, m["BK"]), triton.cdiv(dv, m["BV"]), b * h),
               qf, dyf, gf, dstates, t, n, **kw)
        dvf = torch.empty_like(vf)
        launch(memory_bwd.bwd_dv, lambda m: (triton.cdiv(dv, m["BV"]), n, b * h), qf, kf, dyf, gf, dstates, dvf, t,
               n, **kw)
        dqf, dkf = torch.empty_like(qf), torch.empty_like(kf)
        # one row of d c per key tile: under autotuning sized for the smallest tile any config uses (unused rows
        # stay zero; the autotuner resets them between trials), else exactly the direct launch's tiles
        tiles = triton.cdiv(dk, 32 if enabled(kw["PREC"]) else direct("bwd_dqk", kw["PREC"])["BK"])
        dc = (torch.zeros if enabled(kw["PREC"]) else torch.empty)(tiles, b * h, t, device=qf.device,
                                                                    dtype=torch.float32)
        launch(memory_bwd.bwd_dqk, lambda m: (triton.cdiv(dk, m["BK"]), n, b * h), qf, kf, vf, gf, states, dyf,
               dstates, dqf, dkf, dc, b * h, t, n, **kw)
        dlog_g = torch.empty(b * h, t, device=qf.device, dtype=torch.float32)
        memory_bwd.bwd_decay[(b * h,)](dc, dlog_g, b * h, t, NK=tiles, BT=256)
        qd, kd, vd, gd = ctx.dtypes
        return (dqf.view(ctx.q_shape).to(qd), dkf.view(b, h, t, dk).to(kd), dvf.view(b, h, t, dv).to(vd),
                dlog_g.view(b, h, t).to(gd), None, None)


def _chunk(q, k, v, log_g, sigma) -> int:
    """CHUNK, or with tuning on the fastest of CHUNKS for this input shape, timed once on these inputs (forward, and
    backward where gradients are wanted) and remembered."""
    if not tuning_on():
        return CHUNK
    grad = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v, log_g))
    key = (tuple(q.shape), tuple(k.shape), tuple(v.shape), q.dtype, sigma is not None, grad, q.device)
    if key not in _TUNED_CHUNK:
        def run(chunk):
            with torch.enable_grad():
                xs = [x.detach().requires_grad_(grad) for x in (q, k, v, log_g)]
                y = ChunkedMemory.apply(*xs, sigma, chunk)
                if grad:
                    y.backward(torch.ones_like(y))
        _TUNED_CHUNK[key] = fastest(CHUNKS, run, q.device)
    return _TUNED_CHUNK[key]


@torch.compiler.disable  # an opaque op to torch.compile: it runs between compiled graphs
def chunked_memory(q, k, v, log_g, chunk: int | None = None) -> torch.Tensor:
    """y [B, H, G, T, dv] (fp32) = the gated memory's output, by the Triton kernels. chunk: a power of two ≥ 16;
    None: CHUNK, or tuned (ARCHSEARCH_KERNEL_TUNING=1)."""
    return ChunkedMemory.apply(q, k, v, log_g, None, chunk or _chunk(q, k, v, log_g, None))


@torch.compiler.disable
def complex_pair_memory(q, k, v, log_g, sigma: float, chunk: int | None = None) -> torch.Tensor:
    """PAM's read: y [B, H, T, 2d] = [Re | Im] of Σ_i (Π γ') ⟨K_i, Q_t⟩ V_i (sigma +1; −1: Σ K·Q), q = [qr | σ·qi]."""
    if q.shape[-1] % 2 or q.shape[-1] != v.shape[-1]:
        raise ValueError(f"a complex pair needs q, k, v of one even width 2d, got {q.shape[-1]} and {v.shape[-1]}")
    return ChunkedMemory.apply(q, k, v, log_g, sigma, chunk or _chunk(q, k, v, log_g, sigma))
