"""The chunked gated memory as one torch.library custom op (its backward a second one) over the Triton kernels, in
two variants:

- chunked_memory(q, k, v, log_g): linear_core's contract (q [B, H, G, T, dk], k [B, H, T, dk], v [B, H, T, dv],
  log_g [B, H, T] → y [B, H, G, T, dv] in fp32), G query groups sharing one state;
- complex_pair_memory(q, k, v, log_g, sigma): PAM's split-real complex read (q, k, v [B, H, T, 2d] holding
  [re | im]; the second query group is derived inside the kernels) → y [B, H, T, 2d] = [Re | Im] in fp32.

Forward in two launches and backward in four (the last sums and scans the decay's gradient); each state kernel's
chunk loop in three where it is split into segments (_chunk_loop). The state
accumulates in fp32; matmul inputs stay in the inputs' dtype (bf16 under autocast).
"""
from __future__ import annotations

import functools

import torch
import triton

from . import memory_bwd, memory_fwd
from .tuning import direct, enabled, fastest, launch, tuning_on

__all__ = ["chunked_memory", "complex_pair_memory"]  # the kernels; TWINS (__init__.py) names their torch twins

CHUNK = 64  # the chunk length, unless tuning picks one of CHUNKS
CHUNKS = (32, 64, 128)
_TUNED_CHUNK: dict = {}


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"  # fp32 inputs mean a check run: no TF32 rounding


# Registered as torch.library custom ops so torch.compile sees them as single opaque ops with known output shapes
# (register_fake): a compiled model stays one graph around them, where @torch.compiler.disable broke it at every
# call. The forward returns its chunk states beside y (for the backward; no gradient flows into them).
@torch.library.custom_op("archsearch::memory_fwd", mutates_args=())
def memory_fwd_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_g: torch.Tensor, sigma: float,
                  chunk: int, y_in_q_dtype: bool = False,
                  token_major: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """sigma 0: q [B, H, G, T, dk] in groups; ±1: a complex pair, q [B, H, T, dk]. → (y, chunk states in q's dtype);
    y in fp32, or with y_in_q_dtype in q's (for a caller that rounds it to that dtype next; its gradient then comes
    in that dtype too, which the backward kernels round dy to anyway). token_major (a complex pair only): y [B, T,
    H, dv] rather than [B, H, T, dv], as an output projection over the merged heads reads it."""
    pair = sigma != 0.0
    _check_layout(pair, token_major)
    b, h, t, dk = k.shape
    g = 2 if pair else q.shape[2]
    dv = v.shape[-1]
    qf, kf, vf, gf = _flat(q, k, v, log_g, pair)
    n = triton.cdiv(t, chunk)
    # each chunk's entering state, summed in fp32 in the kernels but stored (its gradient too) in q's dtype: every
    # kernel that reads it rounds it to that dtype first, so no result changes, and under bf16 the largest tensors
    # the forward writes and the backward reads are halved (PAM 100M: 100 MB a layer in fp32 at B 8, T 2048)
    states = torch.empty(b * h, n, dk, dv, device=q.device, dtype=q.dtype)
    rows = b * h if pair else b * h * g
    y = torch.empty(_y_shape(q, k, v, pair, token_major), device=q.device,
                    dtype=q.dtype if y_in_q_dtype else torch.float32)
    kw = dict(C=chunk, PREC=_precision(q.dtype))
    _chunk_loop(memory_fwd.fwd_states, (kf, vf, gf), states, t, n, b * h, dk, dv, False, dict(K=dk, V=dv, **kw))
    launch(memory_fwd.fwd_output, lambda m: (triton.cdiv(dv, m["BV"]), n, rows), qf, kf, vf, gf, states, y, t, n,
           **kw, **_shape_kw(g, dk, dv, sigma), **_layout_kw(h, token_major))
    return y, states


@memory_fwd_op.register_fake
def _(q, k, v, log_g, sigma, chunk, y_in_q_dtype=False, token_major=False):
    _check_layout(sigma != 0.0, token_major)
    b, h, t, dk = k.shape
    n = (t + chunk - 1) // chunk
    return (q.new_empty(_y_shape(q, k, v, sigma != 0.0, token_major),
                        dtype=q.dtype if y_in_q_dtype else torch.float32),
            q.new_empty(b * h, n, dk, v.shape[-1]))


@torch.library.custom_op("archsearch::memory_bwd", mutates_args=())
def memory_bwd_op(dy: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_g: torch.Tensor,
                  states: torch.Tensor, sigma: float, chunk: int,
                  token_major: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of q, k, v and log_g (each in its input's dtype and shape) from dy (in y's layout) and the
    forward's states."""
    pair = sigma != 0.0
    b, h, t, dk = k.shape
    g = 2 if pair else q.shape[2]
    dv = v.shape[-1]
    qf, kf, vf, gf = _flat(q, k, v, log_g, pair)
    kw = dict(C=chunk, PREC=_precision(q.dtype), **_shape_kw(g, dk, dv, sigma), **_layout_kw(h, token_major))
    n = states.shape[1]
    if dy.shape != _y_shape(q, k, v, pair, token_major):  # the kernels read dy by y's layout, unchecked
        raise ValueError(f"dy of shape {tuple(dy.shape)} for y of shape {_y_shape(q, k, v, pair, token_major)}")
    dyf = dy.contiguous()  # fp32 or q's dtype, as y was: the kernels round it to q's dtype
    dstates = torch.empty_like(states)
    _chunk_loop(memory_bwd.bwd_states, (qf, dyf, gf), dstates, t, n, b * h, dk, dv, True, kw)
    dvf = torch.empty_like(vf)
    launch(memory_bwd.bwd_dv, lambda m: (triton.cdiv(dv, m["BV"]), n, b * h), qf, kf, dyf, gf, dstates, dvf, t,
           n, **kw)
    dqf, dkf = torch.empty_like(qf), torch.empty_like(kf)
    # one row of d c per key tile: under autotuning sized for the smallest tile any config uses (unused rows
    # stay zero; the autotuner resets them between trials), else exactly the direct launch's tiles
    tiles = triton.cdiv(dk, 32 if enabled(kw["PREC"]) else direct("bwd_dqk", kw["PREC"])["BK"])
    new = torch.zeros if enabled(kw["PREC"]) else torch.empty
    dc = new(tiles, b * h, t, device=qf.device, dtype=torch.float32)
    dc_sums = new(tiles, b * h, n, device=qf.device, dtype=torch.float32)  # d c summed over each chunk
    launch(memory_bwd.bwd_dqk, lambda m: (triton.cdiv(dk, m["BK"]), n, b * h), qf, kf, vf, gf, states, dyf,
           dstates, dqf, dkf, dc, dc_sums, b * h, t, n, **kw)
    dlog_g = torch.empty(b * h, t, device=qf.device, dtype=torch.float32)
    memory_bwd.bwd_decay[(n, b * h)](dc, dc_sums, dlog_g, b * h, t, n, NK=tiles, C=chunk, BN=256)
    return (dqf.view(q.shape).to(q.dtype), dkf.view(k.shape).to(k.dtype), dvf.view(v.shape).to(v.dtype),
            dlog_g.view(log_g.shape).to(log_g.dtype))


@memory_bwd_op.register_fake
def _(dy, q, k, v, log_g, states, sigma, chunk, token_major=False):
    return tuple(x.new_empty(x.shape) for x in (q, k, v, log_g))


def _setup(ctx, inputs, output):
    q, k, v, log_g, sigma, chunk, _, token_major = inputs
    ctx.save_for_backward(q, k, v, log_g, output[1])
    ctx.sigma, ctx.chunk, ctx.token_major = sigma, chunk, token_major
    ctx.mark_non_differentiable(output[1])


def _backward(ctx, dy, _dstates):
    q, k, v, log_g, states = ctx.saved_tensors
    return (*memory_bwd_op(dy, q, k, v, log_g, states, ctx.sigma, ctx.chunk, ctx.token_major), None, None, None,
            None)


memory_fwd_op.register_autograd(_backward, setup_context=_setup)


# Splitting a state kernel's chunk loop into segments (memory_fwd's MODE): where (batch, head) rows × state tiles
# give fewer programs than SPLIT_BELOW waves of streaming multiprocessors, the loop runs in enough segments for
# SPLIT_WAVES programs a multiprocessor, at least MIN_SEGMENTS of at least MIN_SEGMENT chunks. It computes every
# segment's state product twice (its end state, then its chunk states from the carried entering state), so it pays
# only where the loop's length, not arithmetic, bounds the kernel: its sequential depth drops from N chunks to
# 2N/S + S. On an H100 (one process, docs/performance.md) a split of 192 programs lost 8% of the kernels' GPU time at
# T = 8k, one of 96 and 48 saved 31% at 32k: hence one wave. SPLIT_WAVES = 0 keeps the whole loop (mixers.py times
# both).
SPLIT_BELOW = 1
SPLIT_WAVES = 8
MIN_SEGMENTS = 4
MIN_SEGMENT = 16  # nothing splits below 64 chunks: at the default C = 64, T ≤ 2048 runs as measured


def segment_length(n_chunks: int, programs: int, device: torch.device) -> int:
    """Chunks per segment for a state kernel of `programs` programs over rows of n_chunks chunks (n_chunks: one
    segment, the whole loop). A device other than a CUDA GPU (the interpreter's CPU) counts as one multiprocessor."""
    sms = _multiprocessors(device)
    if not SPLIT_WAVES or not 0 < programs < SPLIT_BELOW * sms:
        return n_chunks
    segments = min(-(-SPLIT_WAVES * sms // programs), n_chunks // MIN_SEGMENT)
    return n_chunks if segments < MIN_SEGMENTS else -(-n_chunks // segments)


@functools.lru_cache(maxsize=None)
def _multiprocessors(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1


def _chunk_loop(kernel, inputs: tuple, out: torch.Tensor, t: int, n: int, rows: int, dk: int, dv: int,
                reverse: bool, kw: dict) -> None:
    """A state kernel (fwd_states, or bwd_states: reverse) over `rows` rows of n chunks into out [rows, n, dk, dv]:
    the whole loop in one launch, or split into segments (segment_length) in three."""
    tile = direct(kernel.fn.__name__, kw["PREC"])  # under tuning the default's tiles: a count to decide by
    tiles = (triton.cdiv(dk, tile["BK"]), triton.cdiv(dv, tile["BV"]))
    length = segment_length(n, tiles[0] * tiles[1] * rows, out.device)
    segments = triton.cdiv(n, length) if n else 1

    def grid(m):
        return triton.cdiv(dk, m["BK"]), triton.cdiv(dv, m["BV"]), rows * segments
    if segments == 1:
        launch(kernel, grid, *inputs, out, out, out, t, n, n, MODE=0, **kw)
        return
    ends = torch.empty(rows * segments, dk, dv, device=out.device, dtype=torch.float32)
    decays = torch.empty(rows * segments, device=out.device, dtype=torch.float32)
    launch(kernel, grid, *inputs, out, ends, decays, t, n, length, MODE=1, **kw)
    memory_fwd.carry_segments[(*tiles, rows)](ends, decays, segments, K=dk, V=dv, BK=tile["BK"], BV=tile["BV"],
                                              REVERSE=reverse)
    launch(kernel, grid, *inputs, out, ends, decays, t, n, length, MODE=2, **kw)


def _flat(q, k, v, log_g, pair: bool) -> tuple:
    """The kernels' operands: rows of [T, width], contiguous, k and v in q's dtype, the log decay in fp32."""
    b, h, t, dk = k.shape
    rows = b * h if pair else b * h * q.shape[2]
    dtype = q.dtype
    return (q.reshape(rows, t, dk).contiguous(), k.to(dtype).reshape(b * h, t, dk).contiguous(),
            v.to(dtype).reshape(b * h, t, v.shape[-1]).contiguous(), log_g.float().reshape(b * h, t).contiguous())


def _shape_kw(g: int, dk: int, dv: int, sigma: float) -> dict:
    return dict(G=g, K=dk, V=dv, PAIR=sigma != 0.0, SIGMA=float(sigma or 1.0))


def _check_layout(pair: bool, token_major: bool) -> None:
    if token_major and not pair:
        raise ValueError("token_major is for a complex pair (sigma ±1), not query groups")


def _layout_kw(heads: int, token_major: bool) -> dict:
    """y's layout for the output kernel, dy's for the backward's (memory_fwd._y_rows). Heads 1 where unused:
    Triton compiles a kernel again when an int argument changes between 1 and not 1."""
    return dict(H=heads if token_major else 1, YT=token_major)


def _y_shape(q, k, v, pair: bool, token_major: bool = False) -> tuple:
    b, h, t, _ = k.shape
    if token_major:
        return (b, t, h, v.shape[-1])
    return (b, h, t, v.shape[-1]) if pair else (b, h, q.shape[2], t, v.shape[-1])


def _chunk(q, k, v, log_g, sigma, y_in_q_dtype: bool = False, token_major: bool = False) -> int:
    """CHUNK, or with tuning on the fastest of CHUNKS for this input shape, timed once on these inputs (forward, and
    backward where gradients are wanted) in the output's dtype and layout, and remembered. Under torch.compile always
    CHUNK (the timing runs eagerly)."""
    if torch.compiler.is_compiling() or not tuning_on():
        return CHUNK
    grad = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v, log_g))
    # the split rule's settings too: a chunk timed with the loops whole is not the fastest once they split
    key = (tuple(q.shape), tuple(k.shape), tuple(v.shape), q.dtype, sigma is not None, grad, q.device,
           y_in_q_dtype, token_major, SPLIT_BELOW, SPLIT_WAVES)
    if key not in _TUNED_CHUNK:
        def run(chunk):
            with torch.enable_grad():
                xs = [x.detach().requires_grad_(grad) for x in (q, k, v, log_g)]
                y = memory_fwd_op(*xs, float(sigma or 0.0), chunk, y_in_q_dtype, token_major)[0]
                if grad:
                    y.backward(torch.ones_like(y))
        _TUNED_CHUNK[key] = fastest(CHUNKS, run, q.device)
    return _TUNED_CHUNK[key]


def chunked_memory(q, k, v, log_g, chunk: int | None = None) -> torch.Tensor:
    """y [B, H, G, T, dv] (fp32) = the gated memory's output, by the Triton kernels. chunk: a power of two ≥ 16;
    None: CHUNK, or tuned (ARCHSEARCH_KERNEL_TUNING=1)."""
    return memory_fwd_op(q, k, v, log_g, 0.0, chunk or _chunk(q, k, v, log_g, None))[0]


def complex_pair_memory(q, k, v, log_g, sigma: float, chunk: int | None = None, y_in_q_dtype: bool = False,
                        token_major: bool = False) -> torch.Tensor:
    """PAM's read: y [B, H, T, 2d] = [Re | Im] of Σ_i (Π γ') ⟨K_i, Q_t⟩ V_i (sigma +1; −1: Σ K·Q), q = [qr |
    σ·qi]; token_major: the same numbers as y [B, T, H, 2d]."""
    if q.shape[-1] % 2 or q.shape[-1] != v.shape[-1]:
        raise ValueError(f"a complex pair needs q, k, v of one even width 2d, got {q.shape[-1]} and {v.shape[-1]}")
    chunk = chunk or _chunk(q, k, v, log_g, sigma, y_in_q_dtype, token_major)
    return memory_fwd_op(q, k, v, log_g, float(sigma), chunk, y_in_q_dtype, token_major)[0]
