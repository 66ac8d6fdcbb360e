"""The chunked gated memory as one autograd op over the Triton kernels: linear_core's contract (q [B, H, G, T, dk],
k [B, H, T, dk], v [B, H, T, dv], log_g [B, H, T] → y [B, H, G, T, dv] in fp32), forward in two launches and
backward in three, plus a reverse cumulative sum for the decay's gradient. The state accumulates in fp32; matmul
inputs stay in the inputs' dtype (bf16 under autocast).
"""
from __future__ import annotations

import torch
import triton

from . import memory_bwd, memory_fwd

CHUNK = 64


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"  # fp32 inputs mean a check run: no TF32 rounding


def _flat(q, k, v, log_g):
    b, h, g, t, dk = q.shape
    dtype = q.dtype
    return (q.reshape(b * h * g, t, dk).contiguous(), k.to(dtype).reshape(b * h, t, dk).contiguous(),
            v.to(dtype).reshape(b * h, t, v.shape[-1]).contiguous(), log_g.float().reshape(b * h, t).contiguous())


class ChunkedMemory(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, log_g, chunk: int):
        b, h, g, t, dk = q.shape
        dv = v.shape[-1]
        qf, kf, vf, gf = _flat(q, k, v, log_g)
        n = triton.cdiv(t, chunk)
        states = torch.empty(b * h, n, dk, dv, device=q.device, dtype=torch.float32)
        y = torch.empty(b * h * g, t, dv, device=q.device, dtype=torch.float32)
        prec = _precision(qf.dtype)
        memory_fwd.fwd_states[lambda m: (triton.cdiv(dk, m["BK"]), triton.cdiv(dv, m["BV"]), b * h)](
            kf, vf, gf, states, t, n, K=dk, V=dv, C=chunk, PREC=prec)
        memory_fwd.fwd_output[lambda m: (triton.cdiv(dv, m["BV"]), n, b * h * g)](
            qf, kf, vf, gf, states, y, t, n, G=g, K=dk, V=dv, C=chunk, PREC=prec)
        ctx.save_for_backward(qf, kf, vf, gf, states)
        ctx.shape, ctx.chunk, ctx.dtypes = (b, h, g, t, dk, dv), chunk, (q.dtype, k.dtype, v.dtype, log_g.dtype)
        return y.view(b, h, g, t, dv)

    @staticmethod
    def backward(ctx, dy):
        qf, kf, vf, gf, states = ctx.saved_tensors
        b, h, g, t, dk, dv = ctx.shape
        chunk, n = ctx.chunk, states.shape[1]
        dyf = dy.to(qf.dtype).reshape(b * h * g, t, dv).contiguous()
        prec = _precision(qf.dtype)
        dstates = torch.empty_like(states)
        memory_bwd.bwd_states[lambda m: (triton.cdiv(dk, m["BK"]), triton.cdiv(dv, m["BV"]), b * h)](
            qf, dyf, gf, dstates, t, n, G=g, K=dk, V=dv, C=chunk, PREC=prec)
        dvf = torch.empty_like(vf)
        memory_bwd.bwd_dv[lambda m: (triton.cdiv(dv, m["BV"]), n, b * h)](
            qf, kf, dyf, gf, dstates, dvf, t, n, G=g, K=dk, V=dv, C=chunk, PREC=prec)
        dqf, dkf = torch.empty_like(qf), torch.empty_like(kf)
        # one row of d c per key tile; sized for the smallest tile any config uses, unused rows stay zero
        dc = torch.zeros(triton.cdiv(dk, 32), b * h, t, device=qf.device, dtype=torch.float32)
        memory_bwd.bwd_dqk[lambda m: (triton.cdiv(dk, m["BK"]), n, b * h)](
            qf, kf, vf, gf, states, dyf, dstates, dqf, dkf, dc, b * h, t, n, G=g, K=dk, V=dv, C=chunk, PREC=prec)
        dc = dc.sum(0)
        dlog_g = dc.flip(-1).cumsum(-1).flip(-1)  # d log g_j = Σ_{t ≥ j} d c_t
        qd, kd, vd, gd = ctx.dtypes
        return (dqf.view(b, h, g, t, dk).to(qd), dkf.view(b, h, t, dk).to(kd), dvf.view(b, h, t, dv).to(vd),
                dlog_g.view(b, h, t).to(gd), None)


@torch.compiler.disable  # an opaque op to torch.compile: it runs between compiled graphs
def chunked_memory(q, k, v, log_g, chunk: int = CHUNK) -> torch.Tensor:
    """y [B, H, G, T, dv] (fp32) = the gated memory's output, by the Triton kernels. chunk: a power of two ≥ 16."""
    return ChunkedMemory.apply(q, k, v, log_g, chunk)
