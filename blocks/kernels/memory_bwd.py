"""Backward kernels of the chunked gated memory (layout as in memory_fwd; dy like y, in the inputs' dtype).

For chunk n with entering state h_n, M[t, i] = exp(b_t − b_i) (i ≤ t) and a_g = group g's output:
  a_g  = (q_g ⊙ e^b) h_n + ((q_g kᵀ) ⊙ M) v
  dq_g = e^b ⊙ (da_g h_nᵀ) + ((da_g vᵀ) ⊙ M) k
  dk   = Σ_g ((da_g vᵀ) ⊙ M)ᵀ q_g + e^{B−b} ⊙ (v dh_nᵀ)      (dh_n: gradient of the state leaving chunk n)
  dv   = Σ_g ((q_g kᵀ) ⊙ M)ᵀ da_g + (k ⊙ e^{B−b}) dh_n
  d c_t = Σ_g q_g·dq_g − k·dk for the global c = cumsum(log g): the caller turns it into d log g by a reverse
  cumulative sum. For a complex pair, da₁ is dy with its halves swapped and signed, and group 1's query gradient
  folds back onto q's columns. Four launches: the state gradients (a reverse loop over chunks; split into segments as
  the forward's chunk states are, memory_fwd), dv, then dq, dk, d c (and its sum per chunk), then d log g (the key
  tiles' d c summed and scanned from the end, every chunk at once). dy is read in fp32 (the forward's output dtype)
  and rounded to the inputs' dtype in the kernels.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .memory_fwd import _chunk_decay, _rows, _segment_end, _segment_start, _state_tile, _swap_halves, _y_rows
from .tuning import PRUNE, configs


@triton.jit
def _group(ptr, bh, t, in_t, cols, T, G: tl.constexpr, W: tl.constexpr, g: tl.constexpr, PAIR: tl.constexpr,
           SIGN_LO: tl.constexpr):
    """Group g's query in columns `cols`: stored per group, or for a complex pair one tensor whose group 1 is read
    with its halves swapped and signed (SIGN_LO: σ)."""
    if PAIR:
        x = _rows(ptr, bh * T, t, in_t, cols, W, g == 1, SIGN_LO)
    else:
        x = _rows(ptr, (bh * G + g) * T, t, in_t, cols, W, False, 1.0)
    return x


@triton.jit
def _dy(dy_ptr, bh, t, in_t, cols, T, H, G: tl.constexpr, V: tl.constexpr, g: tl.constexpr, PAIR: tl.constexpr,
        YT: tl.constexpr):
    """Group g's output gradient da_g in columns `cols`, from dy in y's layout (memory_fwd._y_rows): per group, or
    for a complex pair one tensor whose group 1 is read with its halves swapped."""
    if PAIR:
        row0, rows = _y_rows(bh, t, T, H, YT)
        x = _rows(dy_ptr, row0, rows, in_t, cols, V, g == 1, 1.0)
    else:
        x = _rows(dy_ptr, (bh * G + g) * T, t, in_t, cols, V, False, 1.0)
    return x


# MODE as memory_fwd.fwd_states, the loop running from the last chunk: 0 each row's whole loop, 1 a segment's end
# gradient from zero (into e, eg), 2 a segment from the entering gradient carry_segments left in e.
@triton.autotune(configs=configs("bwd_states"), key=["K", "V", "C", "G", "PAIR", "N", "L", "MODE", "YT"],
                 prune_configs_by=PRUNE)
@triton.jit
def bwd_states(q_ptr, dy_ptr, g_ptr, dh_ptr, e_ptr, eg_ptr, T, N, L, H, G: tl.constexpr, K: tl.constexpr,
               V: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PAIR: tl.constexpr,
               SIGMA: tl.constexpr, PREC: tl.constexpr, MODE: tl.constexpr, YT: tl.constexpr):
    bh, row_seg, lo, hi, ok, ov, grad, decay = _segment_start(e_ptr, N, L, K, V, BK, BV, MODE)
    for j in range(hi - lo):
        n = hi - 1 - j
        if MODE != 1:
            tl.store(dh_ptr + ((bh * N + n) * K + ok[:, None]) * V + ov[None, :],
                     grad.to(dh_ptr.dtype.element_ty), mask=(ok < K)[:, None] & (ov < V)[None, :])
        t, in_t, b, total = _chunk_decay(g_ptr, bh, n, T, C)
        grad = grad * tl.exp(total)
        for g in tl.static_range(G):
            q = _group(q_ptr, bh, t, in_t, ok, T, G, K, g, PAIR, SIGMA)
            dy = _dy(dy_ptr, bh, t, in_t, ov, T, H, G, V, g, PAIR, YT).to(q_ptr.dtype.element_ty)  # dy: fp32
            grad += tl.dot(tl.trans((q * tl.exp(b)[:, None]).to(dy.dtype)), dy, input_precision=PREC)
        decay += total
    if MODE == 1:
        _segment_end(e_ptr, eg_ptr, row_seg, grad, decay, ok, ov, K, V)


@triton.autotune(configs=configs("bwd_dv"), key=["K", "V", "C", "G", "PAIR", "N", "YT"], prune_configs_by=PRUNE)
@triton.jit
def bwd_dv(q_ptr, k_ptr, dy_ptr, g_ptr, dh_ptr, dv_ptr, T, N, H, G: tl.constexpr, K: tl.constexpr,
           V: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PAIR: tl.constexpr,
           SIGMA: tl.constexpr, PREC: tl.constexpr, YT: tl.constexpr):
    i_v, n, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    t, in_t, b, total = _chunk_decay(g_ptr, bh, n, T, C)
    ov = i_v * BV + tl.arange(0, BV)
    c = tl.arange(0, C)
    decay_t = tl.exp(tl.where(c[None, :] >= c[:, None], b[None, :] - b[:, None], float("-inf")))  # Mᵀ[i, t]
    dv = tl.zeros([C, BV], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        ok = i_k * BK + tl.arange(0, BK)
        k = _rows(k_ptr, bh * T, t, in_t, ok, K, False, 1.0)
        dh = _state_tile(dh_ptr, bh, n, N, ok, ov, K, V)
        dv += tl.dot((k * tl.exp(total - b)[:, None]).to(k.dtype), dh.to(k.dtype), input_precision=PREC)
    for g in tl.static_range(G):
        scores_t = tl.zeros([C, C], dtype=tl.float32)  # (q kᵀ)ᵀ = k qᵀ
        for i_k in range(tl.cdiv(K, BK)):
            ok = i_k * BK + tl.arange(0, BK)
            k = _rows(k_ptr, bh * T, t, in_t, ok, K, False, 1.0)
            q = _group(q_ptr, bh, t, in_t, ok, T, G, K, g, PAIR, SIGMA)
            scores_t += tl.dot(k, tl.trans(q), input_precision=PREC)
        dy = _dy(dy_ptr, bh, t, in_t, ov, T, H, G, V, g, PAIR, YT).to(q_ptr.dtype.element_ty)  # dy: fp32
        dv += tl.dot((scores_t * decay_t).to(dy.dtype), dy, input_precision=PREC)
    tl.store(dv_ptr + (bh * T + t[:, None]) * V + ov[None, :], dv, mask=in_t[:, None] & (ov < V)[None, :])


@triton.autotune(configs=configs("bwd_dqk"), key=["K", "V", "C", "G", "PAIR", "N", "YT"], prune_configs_by=PRUNE,
                 reset_to_zero=["dc_ptr", "dcs_ptr"])
@triton.jit
def bwd_dqk(q_ptr, k_ptr, v_ptr, g_ptr, h_ptr, dy_ptr, dh_ptr, dq_ptr, dk_ptr, dc_ptr, dcs_ptr, BH, T, N, H,
            G: tl.constexpr, K: tl.constexpr, V: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
            PAIR: tl.constexpr, SIGMA: tl.constexpr, PREC: tl.constexpr, YT: tl.constexpr):
    i_k, n, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    t, in_t, b, total = _chunk_decay(g_ptr, bh, n, T, C)
    ok = i_k * BK + tl.arange(0, BK)
    tk = in_t[:, None] & (ok < K)[None, :]
    k = _rows(k_ptr, bh * T, t, in_t, ok, K, False, 1.0)
    c = tl.arange(0, C)
    decay = tl.exp(tl.where(c[:, None] >= c[None, :], b[:, None] - b[None, :], float("-inf")))  # M[t, i]
    dk = tl.zeros([C, BK], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        ov = i_v * BV + tl.arange(0, BV)
        v = _rows(v_ptr, bh * T, t, in_t, ov, V, False, 1.0)
        dh = _state_tile(dh_ptr, bh, n, N, ok, ov, K, V)
        dk += tl.dot(v, tl.trans(dh.to(v.dtype)), input_precision=PREC)
    dk *= tl.exp(total - b)[:, None]
    dc = tl.zeros([C], dtype=tl.float32)
    pair_dq = tl.zeros([C, BK], dtype=tl.float32)  # a complex pair's query gradient, both groups folded onto q
    for g in tl.static_range(G):
        # the columns this group's query gradient is computed in: for the pair's group 1, those that fold onto `ok`
        if PAIR and g == 1:
            kc = tl.where(ok < K, _swap_halves(ok, K), ok)  # lanes past K stay past K (masked)
            k_g = _rows(k_ptr, bh * T, t, in_t, kc, K, False, 1.0)
        else:
            kc = ok
            k_g = k
        dq = tl.zeros([C, BK], dtype=tl.float32)
        dscores = tl.zeros([C, C], dtype=tl.float32)  # da_g vᵀ
        for i_v in range(tl.cdiv(V, BV)):
            ov = i_v * BV + tl.arange(0, BV)
            dy = _dy(dy_ptr, bh, t, in_t, ov, T, H, G, V, g, PAIR, YT).to(q_ptr.dtype.element_ty)  # dy: fp32
            v = _rows(v_ptr, bh * T, t, in_t, ov, V, False, 1.0)
            h = _state_tile(h_ptr, bh, n, N, kc, ov, K, V)
            dq += tl.dot(dy, tl.trans(h.to(dy.dtype)), input_precision=PREC)
            dscores += tl.dot(dy, tl.trans(v.to(dy.dtype)), input_precision=PREC)
        dscores = (dscores * decay).to(k.dtype)
        dq = dq * tl.exp(b)[:, None] + tl.dot(dscores, k_g, input_precision=PREC)
        q = _group(q_ptr, bh, t, in_t, ok, T, G, K, g, PAIR, SIGMA)  # group g's query in columns `ok`
        dk += tl.dot(tl.trans(dscores), q, input_precision=PREC)
        if PAIR:
            if g == 1:  # q₁[j] = s_j q[(j + K/2) % K]: fold s_j · dq₁[j] onto column (j + K/2) % K = ok
                pair_dq += dq * tl.where(kc < K // 2, SIGMA, -SIGMA)[None, :]
            else:
                pair_dq += dq
        else:
            tl.store(dq_ptr + ((bh * G + g) * T + t[:, None]) * K + ok[None, :], dq, mask=tk)
            dc += tl.sum(q.to(tl.float32) * dq, 1)
    if PAIR:
        tl.store(dq_ptr + (bh * T + t[:, None]) * K + ok[None, :], pair_dq, mask=tk)
        q = _rows(q_ptr, bh * T, t, in_t, ok, K, False, 1.0)
        dc += tl.sum(q.to(tl.float32) * pair_dq, 1)
    dc -= tl.sum(k.to(tl.float32) * dk, 1)
    tl.store(dk_ptr + (bh * T + t[:, None]) * K + ok[None, :], dk, mask=tk)
    tl.store(dc_ptr + (i_k * BH + bh) * T + t, dc, mask=in_t)
    tl.store(dcs_ptr + (i_k * BH + bh) * N + n, tl.sum(dc, 0))  # this key tile's d c summed over the chunk


@triton.jit
def bwd_decay(dc_ptr, dcs_ptr, dg_ptr, BH, T, N, NK: tl.constexpr, C: tl.constexpr, BN: tl.constexpr):
    """d log g_j = Σ_{t ≥ j} d c_t, d c summed over the NK key tiles' rows: one program per chunk of a (batch, head)
    row, all at once: the chunk's d c scanned in reverse, plus the sum of every later chunk's (the chunk sums
    bwd_dqk stored, read BN at a time)."""
    n, bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    t = n * C + tl.arange(0, C)
    dc = tl.zeros([C], dtype=tl.float32)
    for k in tl.static_range(NK):
        dc += tl.load(dc_ptr + (k * BH + bh) * T + t, mask=t < T, other=0.0)
    later = tl.zeros([BN], dtype=tl.float32)
    for m0 in range(((n + 1) // BN) * BN, N, BN):
        m = m0 + tl.arange(0, BN)
        for k in tl.static_range(NK):
            later += tl.load(dcs_ptr + (k * BH + bh) * N + m, mask=(m > n) & (m < N), other=0.0)
    tl.store(dg_ptr + bh * T + t, tl.cumsum(dc, 0, reverse=True) + tl.sum(later, 0), mask=t < T)
