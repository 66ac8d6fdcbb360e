"""Forward kernels of the chunked gated memory y_t = q_t · S_t, S_t = g_t S_{t−1} + k_tᵀ v_t (linear_core's notation).

Layout (contiguous): q [BH·G, T, K] (G query groups per state), k [BH, T, K], v [BH, T, V], g = log decay [BH, T]
(fp32), states h [BH, N, K, V] (fp32, the state entering each chunk of C tokens), y [BH·G, T, V] (fp32).
Inside a chunk, b = cumsum of g from the chunk's start (inclusive), so exp(b_t − b_i) is the decay from i to t.
Two launches: the chunk states (a loop over chunks per program, parallel over state tiles), then every chunk's
output at once (parallel over chunks).
"""
from __future__ import annotations

import triton
import triton.language as tl

from .tuning import PRUNE, configs


@triton.jit
def _chunk_decay(g_ptr, bh, n, T, C: tl.constexpr):
    """Positions of chunk n, their in-range mask, b (cumulative log decay within the chunk) and the chunk's total."""
    t = n * C + tl.arange(0, C)
    in_t = t < T
    g = tl.load(g_ptr + bh * T + t, mask=in_t, other=0.0)
    b = tl.cumsum(g, 0)
    return t, in_t, b, tl.sum(g, 0)


@triton.autotune(configs=configs("states"), key=["K", "V", "C"], prune_configs_by=PRUNE)
@triton.jit
def fwd_states(k_ptr, v_ptr, g_ptr, h_ptr, T, N, K: tl.constexpr, V: tl.constexpr, C: tl.constexpr,
               BK: tl.constexpr, BV: tl.constexpr, PREC: tl.constexpr):
    i_k, i_v, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    ok = i_k * BK + tl.arange(0, BK)
    ov = i_v * BV + tl.arange(0, BV)
    in_k, in_v = ok < K, ov < V
    state = tl.zeros([BK, BV], dtype=tl.float32)
    for n in range(N):
        h_off = ((bh * N + n) * K + ok[:, None]) * V + ov[None, :]
        tl.store(h_ptr + h_off, state, mask=in_k[:, None] & in_v[None, :])
        t, in_t, b, total = _chunk_decay(g_ptr, bh, n, T, C)
        k = tl.load(k_ptr + (bh * T + t[:, None]) * K + ok[None, :], mask=in_t[:, None] & in_k[None, :], other=0.0)
        v = tl.load(v_ptr + (bh * T + t[:, None]) * V + ov[None, :], mask=in_t[:, None] & in_v[None, :], other=0.0)
        k_end = (k * tl.exp(total - b)[:, None]).to(v.dtype)  # each key decayed to the chunk's end
        state = state * tl.exp(total) + tl.dot(tl.trans(k_end), v, input_precision=PREC)


@triton.autotune(configs=configs("output"), key=["K", "V", "C", "G"], prune_configs_by=PRUNE)
@triton.jit
def fwd_output(q_ptr, k_ptr, v_ptr, g_ptr, h_ptr, y_ptr, T, N, G: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
               C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PREC: tl.constexpr):
    i_v, n, bhg = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    bh = bhg // G
    t, in_t, b, _ = _chunk_decay(g_ptr, bh, n, T, C)
    ov = i_v * BV + tl.arange(0, BV)
    in_v = ov < V
    inter = tl.zeros([C, BV], dtype=tl.float32)
    scores = tl.zeros([C, C], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        ok = i_k * BK + tl.arange(0, BK)
        in_k = ok < K
        q = tl.load(q_ptr + (bhg * T + t[:, None]) * K + ok[None, :], mask=in_t[:, None] & in_k[None, :], other=0.0)
        k = tl.load(k_ptr + (bh * T + t[:, None]) * K + ok[None, :], mask=in_t[:, None] & in_k[None, :], other=0.0)
        h = tl.load(h_ptr + ((bh * N + n) * K + ok[:, None]) * V + ov[None, :], mask=in_k[:, None] & in_v[None, :],
                    other=0.0)
        inter += tl.dot(q, h.to(q.dtype), input_precision=PREC)
        scores += tl.dot(q, tl.trans(k), input_precision=PREC)
    c = tl.arange(0, C)
    causal = c[:, None] >= c[None, :]
    scores *= tl.exp(tl.where(causal, b[:, None] - b[None, :], float("-inf")))
    v = tl.load(v_ptr + (bh * T + t[:, None]) * V + ov[None, :], mask=in_t[:, None] & in_v[None, :], other=0.0)
    y = inter * tl.exp(b)[:, None] + tl.dot(scores.to(v.dtype), v, input_precision=PREC)
    tl.store(y_ptr + (bhg * T + t[:, None]) * V + ov[None, :], y, mask=in_t[:, None] & in_v[None, :])
