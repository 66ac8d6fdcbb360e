"""Counted FLOPs: torch's FlopCounterMode plus formulas for what it misses (DESIGN.md, "Costs and objectives").

FlopCounterMode counts matmuls, convolutions and SDPA by shape. It misses FFTs (counted here as 2.5·n·log2(n) per
real transform of length n, the formula the holographic block's analytic cost uses) and the CPU flash-attention
kernel that SDPA dispatches to on CPU (counted here like the GPU kernels, but only the causal half of the score
matrix when is_causal is set). Elementwise work counts as 0, as in the analytic costs.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch.utils.flop_counter import FlopCounterMode

from blocks.fastpath import reference_forms
from blocks.holographic import fft_flops

aten = torch.ops.aten


def _batch(shape, dims) -> int:
    return math.prod(shape) // math.prod(shape[d] for d in dims)


def _r2c(x_shape, dim, *args, out_shape=None, **kwargs) -> int:
    n = math.prod(x_shape[d] for d in dim)
    return _batch(x_shape, dim) * fft_flops(n)


def _c2r(x_shape, dim, normalization, last_dim_size, *args, out_shape=None, **kwargs) -> int:
    return _batch(x_shape, dim) * fft_flops(last_dim_size)


def _sdpa_cpu(q_shape, k_shape, v_shape, dropout_p=0.0, is_causal=False, *args, out_shape=None, **kwargs) -> int:
    *lead, tq, dk = q_shape
    tk, dv = k_shape[-2], v_shape[-1]
    pairs = tq * (tk + 1) // 2 if is_causal and tq == tk else tq * tk
    return 2 * math.prod(lead) * pairs * (dk + dv)


EXTRA = {aten._fft_r2c: _r2c, aten._fft_c2r: _c2r, aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu}


def counter() -> FlopCounterMode:
    """A FlopCounterMode that also counts FFTs and CPU SDPA; read .get_total_flops() after the `with`."""
    return FlopCounterMode(display=False, custom_mapping=EXTRA)


@contextmanager
def _unpadded(model):
    """`model`'s logits against the vocabulary's own rows (its pad_logits setting off) inside, restored on exit."""
    before = getattr(model, "pad_logits", None)
    if before is None:
        yield
        return
    model.pad_logits = False
    try:
        yield
    finally:
        model.pad_logits = before


def count(fn, *args, model=None, **kwargs) -> tuple[int, object]:
    """(FLOPs counted while running fn(*args, **kwargs), its result), on the torch twins of every fast path
    (blocks.fastpath.reference_forms) and, for the SequenceModel `model` that fn runs, against the vocabulary's own
    rows (not the padding its logits use on a GPU): the same count on every device."""
    with reference_forms(), _unpadded(model), counter() as c:
        out = fn(*args, **kwargs)
    return c.get_total_flops(), out
