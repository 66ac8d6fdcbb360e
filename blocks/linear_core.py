"""Cores of matrix-state memories with a scalar decay per (head, step): the forms every fast path is tested against.

Shapes: q [B, H, G, T, dk] (G query groups sharing one state: 1 for real linear attention, 2 for PAM's split-real
complex read), k [B, H, T, dk], v [B, H, T, dv], log_g [B, H, T] = log of the decay applied before step t's write.
All forms compute y_t = q_t · S_t with S_t = g_t S_{t−1} + k_tᵀ v_t, accumulating in fp32:
- recurrent: the step recurrence, one token at a time (the reference);
- dual: the O(T²) form y = ((q kᵀ) ⊙ L) v with L[t, i] = exp(c_t − c_i) for i ≤ t, c = cumsum(log_g);
- chunked: dual inside chunks of C tokens, chunk states combined by a decay-masked matmul across chunks:
  batched matmuls only, no Python loop over chunks;
- triton: the chunked form as fused Triton kernels (blocks/kernels; GPU, or CPU under TRITON_INTERPRET=1), `chunked`
  its torch twin. Which form `auto` stands for is blocks/fastpath.py's choice.
"""
from __future__ import annotations

import torch

from . import fastpath


def acc(x: torch.Tensor) -> torch.Tensor:
    """At least fp32 for accumulation (bf16/fp16 inputs are promoted; fp64 stays fp64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def decay_matrix(log_g: torch.Tensor) -> torch.Tensor:
    """L[..., t, i] = exp(Σ_{i<j≤t} log_g_j) for i ≤ t, else 0. log_g [..., T] → [..., T, T] (fp32)."""
    c = acc(log_g).cumsum(-1)
    diff = c[..., :, None] - c[..., None, :]
    t = log_g.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=log_g.device).tril()
    return torch.where(causal, diff, float("-inf")).exp()


def decayed_cumsum(u: torch.Tensor, log_g: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """h_t = Σ_{i≤t} exp(c_t − c_i) u_i for u [B, H, T, F], log_g [B, H, T]; two levels of masked matmuls."""
    b, h, t, f = u.shape
    u, log_g = acc(u), acc(log_g)
    if t <= chunk:
        return decay_matrix(log_g) @ u
    n = -(-t // chunk)
    pad = n * chunk - t
    u = torch.nn.functional.pad(u, (0, 0, 0, pad)).view(b, h, n, chunk, f)
    lg = torch.nn.functional.pad(log_g, (0, pad)).view(b, h, n, chunk)
    inner = decay_matrix(lg) @ u  # within-chunk sums
    total = lg.sum(-1)  # log decay across each whole chunk
    carried = decayed_cumsum(inner[..., -1, :], total, chunk)  # state at the end of each chunk
    carried = torch.cat([torch.zeros_like(carried[:, :, :1]), carried[:, :, :-1]], 2)  # entering each chunk
    out = inner + lg.cumsum(-1).exp()[..., None] * carried[:, :, :, None, :]
    return out.reshape(b, h, n * chunk, f)[:, :, :t]


def recurrent(q, k, v, log_g, state=None):
    """Reference: the per-step recurrence. Returns y [B, H, G, T, dv] and the final state [B, H, dk, dv]."""
    b, h, g, t, dk = q.shape
    s = torch.zeros(b, h, dk, v.shape[-1], dtype=acc(q).dtype, device=q.device) if state is None else state
    ys = []
    for i in range(t):
        s, y = step(q[:, :, :, i], k[:, :, i], v[:, :, i], log_g[:, :, i], s)
        ys.append(y)
    return torch.stack(ys, 3), s


def step(q_t, k_t, v_t, log_g_t, s):
    """One token: S ← g·S + kᵀv, y = q·S. q_t [B, H, G, dk], k_t [B, H, dk], v_t [B, H, dv], s [B, H, dk, dv]."""
    s = acc(log_g_t).exp()[..., None, None] * s + torch.matmul(acc(k_t)[..., :, None], acc(v_t)[..., None, :])
    return s, torch.matmul(acc(q_t), s)


def dual(q, k, v, log_g):
    """O(T²) form. Returns y [B, H, G, T, dv] in fp32."""
    scores = torch.matmul(acc(q), acc(k)[:, :, None].transpose(-1, -2))  # [B, H, G, T, T]
    return torch.matmul(scores * decay_matrix(log_g)[:, :, None], acc(v)[:, :, None])


def chunked(q, k, v, log_g, chunk: int = 64):
    """Chunkwise-parallel form: O(T·C·dk + T·dk·dv + (T/C)²·dk·dv). Returns y [B, H, G, T, dv] in fp32."""
    b, h, g, t, dk = q.shape
    dv = v.shape[-1]
    if t <= chunk:
        return dual(q, k, v, log_g)
    n = -(-t // chunk)
    pad = n * chunk - t
    f = torch.nn.functional.pad
    q = f(acc(q), (0, 0, 0, pad)).view(b, h, g, n, chunk, dk)
    k = f(acc(k), (0, 0, 0, pad)).view(b, h, n, chunk, dk)
    v = f(acc(v), (0, 0, 0, pad)).view(b, h, n, chunk, dv)
    lg = f(acc(log_g), (0, pad)).view(b, h, n, chunk)
    c = lg.cumsum(-1)  # log decay from the chunk's start to each position, inclusive
    scores = torch.matmul(q, k[:, :, None].transpose(-1, -2)) * decay_matrix(lg)[:, :, None]
    y = torch.matmul(scores, v[:, :, None])  # within-chunk part [B, H, G, N, C, dv]
    to_end = (c[..., -1:] - c).exp()  # decay from each position to its chunk's end
    writes = torch.matmul((k * to_end[..., None]).transpose(-1, -2), v)  # each chunk's own state [B, H, N, dk, dv]
    states = decayed_cumsum(writes.reshape(b, h, n, dk * dv), c[..., -1], chunk).view(b, h, n, dk, dv)
    entering = torch.cat([torch.zeros_like(states[:, :, :1]), states[:, :, :-1]], 2)
    y = y + torch.matmul(q * c.exp()[..., None][:, :, None], entering[:, :, None])
    return y.reshape(b, h, g, n * chunk, dv)[:, :, :, :t]


def fused(q, k, v, log_g):
    """The chunked form by the Triton kernels (same contract as `chunked`, its twin). Raises a one-line error where
    they cannot run."""
    return fastpath.kernel("memory", q.device).chunked_memory(q, k, v, log_g)


def memory(q, k, v, log_g, mode: str, chunk: int):
    """y [B, H, G, T, dv] by the named parallel form (recurrent, dual, chunked or triton)."""
    if mode == "recurrent":
        return recurrent(q, k, v, log_g)[0]
    if mode == "dual":
        return dual(q, k, v, log_g)
    if mode == "triton":
        return fused(q, k, v, log_g)
    return chunked(q, k, v, log_g, chunk)
