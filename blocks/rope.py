"""Rotary position embedding for real-valued heads (rotate-half form). A helper, not a block."""
from __future__ import annotations

import torch


def rope_angles(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape [T, head_dim] for integer positions [T]; frequencies base^(-2k/head_dim)."""
    half = head_dim // 2
    inv = base ** (-torch.arange(half, device=positions.device, dtype=torch.float32) * 2.0 / head_dim)
    ang = positions.to(torch.float32)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [..., T, head_dim] by the angles; pairs are (i, i + head_dim/2)."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


def step_positions(pos, device) -> torch.Tensor:
    """The position [1] of a decode step: a block's position counter is a Python int, or a 0-d device tensor when the
    step is captured in a CUDA graph (archsearch.decode), where it must not be copied from the host."""
    return pos.reshape(1) if isinstance(pos, torch.Tensor) else torch.tensor([pos], device=device)
