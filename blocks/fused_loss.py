"""The language model's loss: mean next-token cross-entropy in fp32 over logits [..., W ≥ vocab] as the model leaves
them with keep_padding (columns ≥ vocab, the GPU's padding for aligned GEMMs, are left out). Where
fastpath.use_kernels() says so, two passes over the padded logits by Triton (blocks/kernels/cross_entropy.py);
elsewhere `cross_entropy` below, its torch twin.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import fastpath


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, vocab: int, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy, in fp32, of logits [..., W] (columns ≥ `vocab` left out) against targets [...], over the
    targets that are not `ignore_index`. The torch twin of kernels/cross_entropy.cross_entropy."""
    return F.cross_entropy(logits[..., :vocab].float().flatten(0, -2), y.flatten(), ignore_index=ignore_index)


def lm_loss(logits: torch.Tensor, y: torch.Tensor, vocab: int) -> torch.Tensor:
    if fastpath.use_kernels(logits.device):
        return fastpath.kernel("cross_entropy", logits.device).cross_entropy(logits, y, vocab)
    return cross_entropy(logits, y, vocab)
