"""Decay and gated state protection (GSP), shared by the matrix- and vector-state memories (PAM.md §3–4).

decay: dt = softplus(w·x + b), γ = exp(−dt), w ~ N(0, 0.02²), b init −4 (γ ≈ 0.982): a scalar per head and step.
GSP:   p = σ(W_p u + b_p), b_p init −3, per head or per (head, channel); γ' = γ(1 − p) + p and V' = (1 − p)·V.
       With p per channel, the decay uses the channel mean of γ(1 − p) + p and V' is scaled per channel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import fastpath
from .linear_core import acc


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """layer(x). On one token of a compiled decode step (fastpath.compiled_decode) as a product and sum in fp32, which
    inductor can fuse into the kernel that makes x: as GEMMs, these two few-column maps cast their weights to bf16 in
    kernels of their own and ran tuned templates, ~10 of a 100M PAM layer's ~43 µs of decode step on an H200
    (docs/performance.md)."""
    if fastpath.compiled_decode() and x.shape[-2] == 1:
        return (acc(x)[..., None, :] * acc(layer.weight)).sum(-1) + acc(layer.bias)
    return layer(x)


class DecayGSP(nn.Module):
    def __init__(self, decay_in: int, gsp_in: int, heads: int, head_dim: int, *, decay: str, decay_bias: float,
                 gsp: str, gsp_bias: float, fixed: torch.Tensor | None = None):
        super().__init__()
        self.heads, self.head_dim, self.mode = heads, head_dim, decay
        self.decay = nn.Linear(decay_in, heads) if decay == "data" else None
        if self.decay is not None:
            nn.init.normal_(self.decay.weight, 0.0, 0.02)
            nn.init.constant_(self.decay.bias, decay_bias)
        self.register_buffer("fixed_log_g", fixed, persistent=False)
        width = {"head": heads, "channel": heads * head_dim, "off": 0}[gsp]
        self.gsp = nn.Linear(gsp_in, width) if width else None
        if self.gsp is not None:
            nn.init.normal_(self.gsp.weight, 0.0, 0.02)
            nn.init.constant_(self.gsp.bias, gsp_bias)

    @staticmethod
    def param_count(decay_in: int, gsp_in: int, heads: int, head_dim: int, decay: str, gsp: str) -> int:
        width = {"head": heads, "channel": heads * head_dim, "off": 0}[gsp]
        return (heads * (decay_in + 1) if decay == "data" else 0) + width * (gsp_in + 1)

    @staticmethod
    def flops(decay_in: int, gsp_in: int, heads: int, head_dim: int, decay: str, gsp: str) -> int:
        width = {"head": heads, "channel": heads * head_dim, "off": 0}[gsp]
        return 2 * decay_in * heads * (decay == "data") + 2 * gsp_in * width

    def forward(self, x_decay: torch.Tensor, x_gsp: torch.Tensor):
        """Inputs [..., T, ·] → log γ' [..., H, T] and the value scale (1 − p) as [..., H, T, 1 or d] or None."""
        affine = lambda layer: None if layer is None else (lambda x: linear(layer, x))  # noqa: E731
        log_g, keep = gate_values(x_decay, x_gsp, self.heads, affine(self.decay), self.fixed_log_g, affine(self.gsp))
        return log_g.movedim(-1, -2), None if keep is None else keep.movedim(-2, -3)


def gate_values(x_decay: torch.Tensor, x_gsp: torch.Tensor, heads: int, decay, fixed_log_g, gsp):
    """The decay and GSP maths on plain tensors (DecayGSP's, and the fused PAM decode step's twin's): `decay` and
    `gsp` map their input to the gates' pre-activations (x → W x + b), or are None where the gate is off;
    `fixed_log_g` [H] or None. Inputs [..., ·] → log γ' [..., H] and the value scale (1 − p) as [..., H, 1 or d] or
    None."""
    lead = x_decay.shape[:-1]
    if decay is not None:
        # −softplus(z), as logsigmoid(−z) because AOTAutograd traced softplus's backward with strides eager does not
        # produce, and compiled training failed (the class of pytorch/pytorch #120035)
        log_g = F.logsigmoid(-acc(decay(x_decay)))
    elif fixed_log_g is not None:
        log_g = fixed_log_g.expand(*lead, heads)
    else:
        log_g = torch.zeros(*lead, heads, device=x_decay.device, dtype=acc(x_decay).dtype)
    if gsp is None:
        return log_g, None
    p = torch.sigmoid(acc(gsp(x_gsp))).view(*lead, heads, -1)  # [..., H, 1 or d]
    return torch.log((p + (1 - p) * log_g.exp()[..., None]).mean(-1)), 1 - p
