"""The language-model loss over the logits in two passes (blocks.fused_loss on a GPU): the forward reads each row of
logits once (online max and sum of exponentials: its log-sum-exp and the row's loss), the backward reads it once more
and writes its gradient. At 16,384 × 50,304 bf16 logits on an H200 the two take 0.48 + 0.83 ms, where compiled torch
(inductor) took 3.96 ms in three kernels over the 50,257-wide slice (rows of odd width: no vector loads), whose
gradient then had to be padded back to the full rows (docs/performance.md).

The logits may be wider than the vocabulary (the model pads them to a multiple of 64 for cuBLAS,
runtime.SequenceModel.logits): columns ≥ `vocab` are left out of the softmax and get a zero gradient, so the loss
needs no slice of them and its gradient no zero-padded copy. Arithmetic in fp32; the gradient keeps the logits'
dtype. Rows whose target is `ignore_index` have zero loss and zero gradient; a target outside the vocabulary gives a
nan loss (torch's raises a device-side assert), which the trainer reports as a diverged run.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["cross_entropy"]  # the kernels; TWINS (__init__.py) names their torch twins

BLOCK = 4096  # columns per loop step: 13 steps over a padded GPT-2 row


@triton.jit
def _row_block(base, start, V, WIDTH, BLOCK: tl.constexpr):
    """Columns start… of one row in fp32, −inf past the vocabulary. Loaded up to the row's width (a multiple of 16
    where the model pads it) and only then masked to the vocabulary: a load masked at an odd bound is not
    vectorised."""
    cols = start + tl.arange(0, BLOCK)
    x = tl.load(base + cols, mask=cols < WIDTH, other=0.0).to(tl.float32)
    return cols, tl.where(cols < V, x, -float("inf"))


@triton.jit
def ce_fwd(x_ptr, stride, y_ptr, loss_ptr, lse_ptr, V, WIDTH, IGNORE: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = x_ptr + row * stride
    m = -float("inf")
    s = 0.0
    for start in range(0, WIDTH, BLOCK):
        cols, x = _row_block(base, start, V, WIDTH, BLOCK)
        m_new = tl.maximum(m, tl.max(x, 0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), 0)
        m = m_new
    lse = m + tl.log(s)
    target = tl.load(y_ptr + row)
    known = (target >= 0) & (target < V)  # a target outside the vocabulary makes the loss nan (a diverged run)
    picked = tl.load(base + tl.where(known, target, 0)).to(tl.float32)
    tl.store(loss_ptr + row, tl.where(target == IGNORE, 0.0, tl.where(known, lse - picked, float("nan"))))
    tl.store(lse_ptr + row, lse)


@triton.jit
def ce_bwd(x_ptr, stride, y_ptr, lse_ptr, dloss_ptr, dx_ptr, V, WIDTH, IGNORE: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = x_ptr + row * stride
    out = dx_ptr + row * WIDTH
    target = tl.load(y_ptr + row)
    g = tl.where(target != IGNORE, tl.load(dloss_ptr + row), 0.0)
    lse = tl.load(lse_ptr + row)
    for start in range(0, WIDTH, BLOCK):
        cols, x = _row_block(base, start, V, WIDTH, BLOCK)
        d = g * (tl.exp(x - lse) - tl.where(cols == target, 1.0, 0.0))
        tl.store(out + cols, d.to(dx_ptr.dtype.element_ty), mask=cols < WIDTH)  # exp(-inf) = 0 past the vocabulary


def _rows(logits: torch.Tensor) -> torch.Tensor:
    x = logits.reshape(-1, logits.shape[-1])
    return x if x.stride(-1) == 1 else x.contiguous()


# torch.library custom ops, so torch.compile keeps the model and its loss in one graph (see memory.py)
@torch.library.custom_op("archsearch::cross_entropy_fwd", mutates_args=())
def cross_entropy_fwd(logits: torch.Tensor, y: torch.Tensor, vocab: int,
                      ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [..., W ≥ vocab], targets [...] → each row's loss and its log-sum-exp (fp32, flat)."""
    x = _rows(logits)
    n = x.shape[0]
    loss = torch.empty(n, device=x.device, dtype=torch.float32)
    lse = torch.empty_like(loss)
    ce_fwd[(n,)](x, x.stride(0), y.reshape(-1).contiguous(), loss, lse, vocab, x.shape[1], IGNORE=ignore_index,
                 BLOCK=BLOCK)
    return loss, lse


@cross_entropy_fwd.register_fake
def _(logits, y, vocab, ignore_index):
    n = y.numel()
    return logits.new_empty(n, dtype=torch.float32), logits.new_empty(n, dtype=torch.float32)


@torch.library.custom_op("archsearch::cross_entropy_bwd", mutates_args=())
def cross_entropy_bwd(logits: torch.Tensor, y: torch.Tensor, lse: torch.Tensor, dloss: torch.Tensor, vocab: int,
                      ignore_index: int) -> torch.Tensor:
    """The logits' gradient (their shape and dtype, contiguous) given each row's loss gradient `dloss`."""
    x = _rows(logits)
    n, width = x.shape
    dx = torch.empty(n, width, device=x.device, dtype=x.dtype)
    ce_bwd[(n,)](x, x.stride(0), y.reshape(-1).contiguous(), lse, dloss.contiguous(), dx, vocab, width,
                 IGNORE=ignore_index, BLOCK=BLOCK)
    return dx.view(logits.shape)


@cross_entropy_bwd.register_fake
def _(logits, y, lse, dloss, vocab, ignore_index):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup(ctx, inputs, output):
    logits, y, ctx.vocab, ctx.ignore_index = inputs
    ctx.save_for_backward(logits, y, output[1])


def _backward(ctx, dloss, dlse):  # the log-sum-exp is kept for this backward only: no gradient flows through it
    logits, y, lse = ctx.saved_tensors
    return cross_entropy_bwd(logits, y, lse, dloss, ctx.vocab, ctx.ignore_index), None, None, None


cross_entropy_fwd.register_autograd(_backward, setup_context=_setup)


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, vocab: int, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy of logits [..., W] (columns ≥ `vocab` left out) against targets [...], over the targets
    that are not `ignore_index` (nan where none is, as F.cross_entropy)."""
    loss, _ = cross_entropy_fwd(logits, y, vocab, ignore_index)
    return loss.sum() / (y != ignore_index).sum()
