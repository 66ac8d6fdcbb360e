"""Forward kernels of the chunked gated memory y_t = q_t · S_t, S_t = g_t S_{t−1} + k_tᵀ v_t (linear_core's notation).

Layout (contiguous): k [BH, T, K], v [BH, T, V], g = log decay [BH, T] (fp32), states h [BH, N, K, V] (the state
entering each chunk of C tokens: summed in fp32, stored in the inputs' dtype, which every reader rounds it to
anyway). Queries come in G groups sharing one state:
- plain (PAIR false): q [BH·G, T, K] and y [BH·G, T, V] (fp32, or q's dtype), one output per group;
- complex pair (PAIR true, PAM's split-real read, K = V = 2d): q [BH, T, K] holds group 0; group 1 is group 0 with
  its halves swapped and signed (σ on the first half, −σ on the second: σ = +1 scores with Kᴴ, −1 with Kᵀ), and
  y [BH, T, V] is the complex result [Re | Im] = a₀ + (∓) a₁ with a₁'s halves swapped, so no query copies and no
  recombination run outside the kernels.
Inside a chunk, b = cumsum of g from the chunk's start (inclusive), so exp(b_t − b_i) is the decay from i to t.
Two launches: the chunk states (a loop over chunks per program, parallel over state tiles), then every chunk's
output at once (parallel over chunks). Where (batch, head) rows are few and sequences long, the chunk loop leaves
most of the GPU idle; memory.py then splits it into segments of L chunks (MODE below): each segment's end state from
a zero start, all segments at once; `carry_segments` turns those into each segment's entering state (a short loop
over segments, elementwise); then each segment's chunk states from its entering state, all segments at once.
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


@triton.jit
def _swap_halves(cols, W: tl.constexpr):
    """(cols + W/2) mod W, written without `%`: a remainder's contiguity, as the compiler analyses it, may span the
    wrap-around and vectorise loads past a row's end (the suspected cause of an illegal address seen under
    autotuning); this form keeps every run of consecutive columns inside one half."""
    return cols + W // 2 - (cols // (W // 2)) * W


@triton.jit
def _rows(ptr, row0, t, in_t, cols, W: tl.constexpr, SWAP: tl.constexpr, SIGN_LO: tl.constexpr):
    """ptr[row0 + t, cols] of a [rows, W] matrix as a [C, len(cols)] tile; with SWAP, the columns' halves swapped
    and signed (SIGN_LO on the first half, −SIGN_LO on the second)."""
    mask = in_t[:, None] & (cols < W)[None, :]
    if SWAP:
        x = tl.load(ptr + (row0 + t[:, None]) * W + _swap_halves(cols, W)[None, :], mask=mask, other=0.0)
        x = x * tl.where(cols < W // 2, SIGN_LO, -SIGN_LO).to(x.dtype)[None, :]
    else:
        x = tl.load(ptr + (row0 + t[:, None]) * W + cols[None, :], mask=mask, other=0.0)
    return x


@triton.jit
def _y_rows(row, t, T, H, YT: tl.constexpr):
    """Where (batch·head) row `row`'s outputs at positions t lie in y (and their gradients in dy), as _rows' row0
    and per-position rows: y [rows, T, V], or with YT token-major y [B, T, H, V], the layout in which the heads
    merge into the output projection's input without a copy."""
    if YT:
        return (row // H) * T * H + row % H, t * H
    else:
        return row * T, t


@triton.jit
def _state_tile(h_ptr, bh, n, N, rows, cols, K: tl.constexpr, V: tl.constexpr):
    return tl.load(h_ptr + ((bh * N + n) * K + rows[:, None]) * V + cols[None, :],
                   mask=(rows < K)[:, None] & (cols < V)[None, :], other=0.0)


@triton.jit
def _segment_start(e_ptr, N, L, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                   MODE: tl.constexpr):
    """A state kernel's program: its row, (row, segment) index, chunks [lo, hi), state tile (rows ok, columns ov),
    the state its loop starts from (zero, or in MODE 2 the entering state carry_segments left in e) and a zero for
    summing the segment's log decay. Program axis 2 is (row, segment) of rows split into segments of L chunks (MODE 0:
    one segment a row, the whole loop)."""
    row_seg = tl.program_id(2).to(tl.int64)
    if MODE == 0:  # the loop as it ran before segments: 32-bit bounds, fewer registers
        bh, lo, hi = row_seg, 0, N
    else:
        S = tl.cdiv(N, L)
        bh, lo = row_seg // S, (row_seg % S) * L
        hi = tl.minimum(lo + L, N)
    ok = tl.program_id(0) * BK + tl.arange(0, BK)
    ov = tl.program_id(1) * BV + tl.arange(0, BV)
    if MODE == 2:
        state = tl.load(e_ptr + (row_seg * K + ok[:, None]) * V + ov[None, :],
                        mask=(ok < K)[:, None] & (ov < V)[None, :], other=0.0)
    else:
        state = tl.zeros([BK, BV], dtype=tl.float32)
    return bh, row_seg, lo, hi, ok, ov, state, tl.sum(tl.zeros([1], dtype=tl.float32), 0)


@triton.jit
def _segment_end(e_ptr, eg_ptr, row_seg, state, decay, ok, ov, K: tl.constexpr, V: tl.constexpr):
    """MODE 1's result: the segment's end state from a zero start (fp32), and its summed log decay (once a row)."""
    tl.store(e_ptr + (row_seg * K + ok[:, None]) * V + ov[None, :], state, mask=(ok < K)[:, None] & (ov < V)[None, :])
    if (tl.program_id(0) == 0) & (tl.program_id(1) == 0):
        tl.store(eg_ptr + row_seg, decay)


# MODE 0: each row's whole chunk loop (L = N) from a zero state, storing every chunk's entering state in h;
# MODE 1: one segment's loop from zero, storing only its end state and log decay (e, eg; fp32), nothing in h;
# MODE 2: one segment's loop from the entering state carry_segments left in e, storing every chunk's in h.
@triton.autotune(configs=configs("fwd_states"), key=["K", "V", "C", "N", "L", "MODE"], prune_configs_by=PRUNE)
@triton.jit
def fwd_states(k_ptr, v_ptr, g_ptr, h_ptr, e_ptr, eg_ptr, T, N, L, K: tl.constexpr, V: tl.constexpr,
               C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PREC: tl.constexpr, MODE: tl.constexpr):
    bh, row_seg, lo, hi, ok, ov, state, decay = _segment_start(e_ptr, N, L, K, V, BK, BV, MODE)
    for n in range(lo, hi):
        if MODE != 1:
            h_off = ((bh * N + n) * K + ok[:, None]) * V + ov[None, :]
            tl.store(h_ptr + h_off, state.to(h_ptr.dtype.element_ty), mask=(ok < K)[:, None] & (ov < V)[None, :])
        t, in_t, b, total = _chunk_decay(g_ptr, bh, n, T, C)
        k = _rows(k_ptr, bh * T, t, in_t, ok, K, False, 1.0)
        v = _rows(v_ptr, bh * T, t, in_t, ov, V, False, 1.0)
        k_end = (k * tl.exp(total - b)[:, None]).to(v.dtype)  # each key decayed to the chunk's end
        state = state * tl.exp(total) + tl.dot(tl.trans(k_end), v, input_precision=PREC)
        decay += total
    if MODE == 1:
        _segment_end(e_ptr, eg_ptr, row_seg, state, decay, ok, ov, K, V)


@triton.jit
def carry_segments(e_ptr, eg_ptr, S, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                   REVERSE: tl.constexpr):
    """e[row, s] holds segment s's end state from a zero start and eg[row, s] its summed log decay; each becomes the
    state entering segment s in the loop's order (REVERSE: from the last segment, as the backward runs):
    carry ← carry · exp(eg[s]) + e[s] after each segment, from carry = 0. Elementwise over one state tile."""
    i_k, i_v, row = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    ok = i_k * BK + tl.arange(0, BK)
    ov = i_v * BV + tl.arange(0, BV)
    mask = (ok < K)[:, None] & (ov < V)[None, :]
    carry = tl.zeros([BK, BV], dtype=tl.float32)
    for j in range(S):
        if REVERSE:
            s = S - 1 - j
        else:
            s = j
        off = ((row * S + s) * K + ok[:, None]) * V + ov[None, :]
        end = tl.load(e_ptr + off, mask=mask, other=0.0)
        tl.store(e_ptr + off, carry, mask=mask)
        carry = carry * tl.exp(tl.load(eg_ptr + row * S + s)) + end


@triton.jit
def _group_output(q_ptr, k_ptr, v_ptr, h_ptr, q_row0, bh, n, N, t, in_t, b, vcols, T, K: tl.constexpr,
                  V: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, SWAP: tl.constexpr,
                  SIGMA: tl.constexpr, PREC: tl.constexpr):
    """One query group's output in columns `vcols` of chunk n: (q ⊙ e^b) h + ((q kᵀ) ⊙ M) v, fp32 [C, BV]."""
    inter = tl.zeros([C, BV], dtype=tl.float32)
    scores = tl.zeros([C, C], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        ok = i_k * BK + tl.arange(0, BK)
        q = _rows(q_ptr, q_row0, t, in_t, ok, K, SWAP, SIGMA)
        k = _rows(k_ptr, bh * T, t, in_t, ok, K, False, 1.0)
        h = _state_tile(h_ptr, bh, n, N, ok, vcols, K, V)
        inter += tl.dot(q, h.to(q.dtype), input_precision=PREC)
        scores += tl.dot(q, tl.trans(k), input_precision=PREC)
    c = tl.arange(0, C)
    scores *= tl.exp(tl.where(c[:, None] >= c[None, :], b[:, None] - b[None, :], float("-inf")))
    v = _rows(v_ptr, bh * T, t, in_t, vcols, V, False, 1.0)
    return inter * tl.exp(b)[:, None] + tl.dot(scores.to(v.dtype), v, input_precision=PREC)


@triton.autotune(configs=configs("fwd_output"), key=["K", "V", "C", "G", "PAIR", "N", "YT"],
                 prune_configs_by=PRUNE)
@triton.jit
def fwd_output(q_ptr, k_ptr, v_ptr, g_ptr, h_ptr, y_ptr, T, N, H, G: tl.constexpr, K: tl.constexpr,
               V: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PAIR: tl.constexpr,
               SIGMA: tl.constexpr, PREC: tl.constexpr, YT: tl.constexpr):
    i_v, n, row = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)  # row: bh (PAIR) or bh·G + g
    bh = row if PAIR else row // G
    t, in_t, b, _ = _chunk_decay(g_ptr, bh, n, T, C)
    ov = i_v * BV + tl.arange(0, BV)
    if PAIR:
        a0 = _group_output(q_ptr, k_ptr, v_ptr, h_ptr, bh * T, bh, n, N, t, in_t, b, ov, T, K, V, C, BK, BV, False,
                           SIGMA, PREC)
        swapped = tl.where(ov < V, _swap_halves(ov, V), ov)  # lanes past V stay past V (masked)
        a1 = _group_output(q_ptr, k_ptr, v_ptr, h_ptr, bh * T, bh, n, N, t, in_t, b, swapped, T, K, V, C, BK, BV,
                           True, SIGMA, PREC)
        y = a0 + tl.where(ov < V // 2, -1.0, 1.0)[None, :] * a1
    else:
        y = _group_output(q_ptr, k_ptr, v_ptr, h_ptr, row * T, bh, n, N, t, in_t, b, ov, T, K, V, C, BK, BV, False,
                          SIGMA, PREC)
    y_row0, y_t = _y_rows(row, t, T, H, YT)
    tl.store(y_ptr + (y_row0 + y_t[:, None]) * V + ov[None, :], y.to(y_ptr.dtype.element_ty),
             mask=in_t[:, None] & (ov < V)[None, :])
