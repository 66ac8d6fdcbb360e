"""Backward kernels of the chunked gated memory (layout as in memory_fwd; dy [BH·G, T, V] in the inputs' dtype).

For chunk n with entering state h_n and M[t, i] = exp(b_t − b_i) (i ≤ t):
  y_g  = (q_g ⊙ e^b) h_n + ((q_g kᵀ) ⊙ M) v
  dq_g = e^b ⊙ (dy_g h_nᵀ) + ((dy_g vᵀ) ⊙ M) k
  dk   = Σ_g ((dy_g vᵀ) ⊙ M)ᵀ q_g + e^{B−b} ⊙ (v dh_nᵀ)      (dh_n: gradient of the state leaving chunk n)
  dv   = Σ_g ((q_g kᵀ) ⊙ M)ᵀ dy_g + (k ⊙ e^{B−b}) dh_n
  d c_t = Σ_g q_g·dq_g − k·dk for the global c = cumsum(log g): the caller turns it into d log g by a reverse
  cumulative sum. Three launches: the state gradients (a reverse loop over chunks), dv, then dq, dk and d c.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .memory_fwd import _chunk_decay
from .tuning import PRUNE, configs


@triton.autotune(configs=configs("states"), key=["K", "V", "C", "G"], prune_configs_by=PRUNE)
@triton.jit
def bwd_states(q_ptr, dy_ptr, g_ptr, dh_ptr, T, N, G: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
               C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PREC: tl.constexpr):
    i_k, i_v, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    ok = i_k * BK + tl.arange(0, BK)
    ov = i_v * BV + tl.arange(0, BV)
    in_k, in_v = ok < K, ov < V
    grad = tl.zeros([BK, BV], dtype=tl.float32)
    for j in range(N):
        n = N - 1 - j
        tl.store(dh_ptr + ((bh * N + n) * K + ok[:, None]) * V + ov[None, :], grad, mask=in_k[:, None] & in_v[None, :])
        t, in_t, b, total = _chunk_decay(g_ptr, bh, n, T, C)
        grad = grad * tl.exp(total)
        for gi in range(G):
            row = (bh * G + gi) * T + t[:, None]
            q = tl.load(q_ptr + row * K + ok[None, :], mask=in_t[:, None] & in_k[None, :], other=0.0)
            dy = tl.load(dy_ptr + row * V + ov[None, :], mask=in_t[:, None] & in_v[None, :], other=0.0)
            grad += tl.dot(tl.trans((q * tl.exp(b)[:, None]).to(dy.dtype)), dy, input_precision=PREC)


@triton.autotune(configs=configs("dv"), key=["K", "V", "C", "G"], prune_configs_by=PRUNE)
@triton.jit
def bwd_dv(q_ptr, k_ptr, dy_ptr, g_ptr, dh_ptr, dv_ptr, T, N, G: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
           C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PREC: tl.constexpr):
    i_v, n, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    t, in_t, b, total = _chunk_decay(g_ptr, bh, n, T, C)
    ov = i_v * BV + tl.arange(0, BV)
    in_v = ov < V
    c = tl.arange(0, C)
    decay_t = tl.exp(tl.where(c[None, :] >= c[:, None], b[None, :] - b[:, None], float("-inf")))  # Mᵀ[i, t]
    dv = tl.zeros([C, BV], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        ok = i_k * BK + tl.arange(0, BK)
        in_k = ok < K
        k = tl.load(k_ptr + (bh * T + t[:, None]) * K + ok[None, :], mask=in_t[:, None] & in_k[None, :], other=0.0)
        dh = tl.load(dh_ptr + ((bh * N + n) * K + ok[:, None]) * V + ov[None, :], mask=in_k[:, None] & in_v[None, :],
                     other=0.0)
        dv += tl.dot((k * tl.exp(total - b)[:, None]).to(k.dtype), dh.to(k.dtype), input_precision=PREC)
    for gi in range(G):
        row = (bh * G + gi) * T + t[:, None]
        scores_t = tl.zeros([C, C], dtype=tl.float32)  # (q kᵀ)ᵀ = k qᵀ
        for i_k in range(tl.cdiv(K, BK)):
            ok = i_k * BK + tl.arange(0, BK)
            in_k = ok < K
            k = tl.load(k_ptr + (bh * T + t[:, None]) * K + ok[None, :], mask=in_t[:, None] & in_k[None, :],
                        other=0.0)
            q = tl.load(q_ptr + row * K + ok[None, :], mask=in_t[:, None] & in_k[None, :], other=0.0)
            scores_t += tl.dot(k, tl.trans(q), input_precision=PREC)
        dy = tl.load(dy_ptr + row * V + ov[None, :], mask=in_t[:, None] & in_v[None, :], other=0.0)
        dv += tl.dot((scores_t * decay_t).to(dy.dtype), dy, input_precision=PREC)
    tl.store(dv_ptr + (bh * T + t[:, None]) * V + ov[None, :], dv, mask=in_t[:, None] & in_v[None, :])


@triton.autotune(configs=configs("dqk"), key=["K", "V", "C", "G"], prune_configs_by=PRUNE,
                 reset_to_zero=["dc_ptr"])
@triton.jit
def bwd_dqk(q_ptr, k_ptr, v_ptr, g_ptr, h_ptr, dy_ptr, dh_ptr, dq_ptr, dk_ptr, dc_ptr, BH, T, N, G: tl.constexpr,
            K: tl.constexpr, V: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
            PREC: tl.constexpr):
    i_k, n, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    t, in_t, b, total = _chunk_decay(g_ptr, bh, n, T, C)
    ok = i_k * BK + tl.arange(0, BK)
    in_k = ok < K
    tk = in_t[:, None] & in_k[None, :]
    k = tl.load(k_ptr + (bh * T + t[:, None]) * K + ok[None, :], mask=tk, other=0.0)
    c = tl.arange(0, C)
    decay = tl.exp(tl.where(c[:, None] >= c[None, :], b[:, None] - b[None, :], float("-inf")))  # M[t, i]
    dk = tl.zeros([C, BK], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        ov = i_v * BV + tl.arange(0, BV)
        in_v = ov < V
        v = tl.load(v_ptr + (bh * T + t[:, None]) * V + ov[None, :], mask=in_t[:, None] & in_v[None, :], other=0.0)
        dh = tl.load(dh_ptr + ((bh * N + n) * K + ok[:, None]) * V + ov[None, :], mask=in_k[:, None] & in_v[None, :],
                     other=0.0)
        dk += tl.dot(v, tl.trans(dh.to(v.dtype)), input_precision=PREC)
    dk *= tl.exp(total - b)[:, None]
    dc = tl.zeros([C], dtype=tl.float32)
    for gi in range(G):
        row = (bh * G + gi) * T + t[:, None]
        q = tl.load(q_ptr + row * K + ok[None, :], mask=tk, other=0.0)
        dq = tl.zeros([C, BK], dtype=tl.float32)
        dscores = tl.zeros([C, C], dtype=tl.float32)  # dy vᵀ
        for i_v in range(tl.cdiv(V, BV)):
            ov = i_v * BV + tl.arange(0, BV)
            in_v = ov < V
            dy = tl.load(dy_ptr + row * V + ov[None, :], mask=in_t[:, None] & in_v[None, :], other=0.0)
            v = tl.load(v_ptr + (bh * T + t[:, None]) * V + ov[None, :], mask=in_t[:, None] & in_v[None, :],
                        other=0.0)
            h = tl.load(h_ptr + ((bh * N + n) * K + ok[:, None]) * V + ov[None, :],
                        mask=in_k[:, None] & in_v[None, :], other=0.0)
            dq += tl.dot(dy, tl.trans(h.to(dy.dtype)), input_precision=PREC)
            dscores += tl.dot(dy, tl.trans(v.to(dy.dtype)), input_precision=PREC)
        dscores = (dscores * decay).to(k.dtype)
        dq = dq * tl.exp(b)[:, None] + tl.dot(dscores, k, input_precision=PREC)
        dk += tl.dot(tl.trans(dscores), q, input_precision=PREC)
        tl.store(dq_ptr + row * K + ok[None, :], dq, mask=tk)
        dc += tl.sum(q.to(tl.float32) * dq, 1)
    dc -= tl.sum(k.to(tl.float32) * dk, 1)
    tl.store(dk_ptr + (bh * T + t[:, None]) * K + ok[None, :], dk, mask=tk)
    tl.store(dc_ptr + (i_k * BH + bh) * T + t, dc, mask=in_t)
