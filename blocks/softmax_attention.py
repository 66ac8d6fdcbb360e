"""Causal multi-head softmax attention (SDPA), optional RoPE, and a preallocated KV cache for decode."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import init_linear
from .rope import apply_rope, rope_angles

STATE_DTYPE_BYTES = 4  # the decode cache is costed in fp32, like every block's state


def _head_dim(cfg: "SoftmaxAttention.Config", d_model: int) -> int:
    return cfg.head_dim if cfg.head_dim is not None else d_model // cfg.heads


class SoftmaxAttention(nn.Module):
    """Causal multi-head softmax attention via SDPA; optional RoPE; KV-cache decode step."""

    name = "softmax_attention"
    test_configs = ({"heads": 4}, {"heads": 2, "head_dim": 8, "rope": True, "bias": False})
    kind = "mixer"

    @dataclass(frozen=True)
    class Config:
        heads: int = 8
        head_dim: int | None = field(default=None, metadata={"doc": "default d_model / heads"})
        rope: bool = field(default=False, metadata={"doc": "rotary positions on q and k"})
        rope_base: float = 10000.0
        bias: bool = True
        dropout: float = field(default=0.0, metadata={"doc": "attention-probability dropout"})
        init_std: float = 0.02
        scaled_init: bool = field(default=True, metadata={"doc": "GPT-2: output init std / sqrt(2·n_layers)"})

    @staticmethod
    def check(cfg: "SoftmaxAttention.Config", d_model: int) -> list:
        if cfg.heads < 1:
            return [("heads", f"must be >= 1, got {cfg.heads}")]
        if cfg.head_dim is None and d_model % cfg.heads:
            return [("heads", f"{cfg.heads} heads do not divide d_model {d_model} (or set head_dim)")]
        hd = _head_dim(cfg, d_model)
        if hd < 1:
            return [("head_dim", f"must be >= 1, got {hd}")]
        if cfg.rope and hd % 2:
            return [("rope", f"needs an even head dim, got {hd}")]
        if not 0.0 <= cfg.dropout < 1.0:
            return [("dropout", f"must be in [0, 1), got {cfg.dropout}")]
        return []

    @staticmethod
    def cost(cfg: "SoftmaxAttention.Config", d_model: int, seq_len: int) -> dict:
        inner = cfg.heads * _head_dim(cfg, d_model)
        params = 4 * d_model * inner + ((3 * inner + d_model) if cfg.bias else 0)
        proj = 2 * d_model * 3 * inner + 2 * inner * d_model
        # causal: token t scores and mixes t keys; mean over t = 1..T is (T+1)/2, at 2 FLOPs per MAC, twice.
        attend = 2 * inner * (seq_len + 1)
        return {"params": params, "flops": proj + attend, "state_bytes": 2 * seq_len * inner * STATE_DTYPE_BYTES}

    def __init__(self, cfg: "SoftmaxAttention.Config", *, d_model: int, seq_len: int, n_layers: int = 1):
        super().__init__()
        self.cfg, self.seq_len = cfg, seq_len
        self.heads, self.head_dim = cfg.heads, _head_dim(cfg, d_model)
        inner = self.heads * self.head_dim
        self.qkv = nn.Linear(d_model, 3 * inner, bias=cfg.bias)
        self.out = nn.Linear(inner, d_model, bias=cfg.bias)
        init_linear(self.qkv, cfg.init_std)
        init_linear(self.out, cfg.init_std / (math.sqrt(2 * n_layers) if cfg.scaled_init else 1.0))

    def _qkv(self, x: torch.Tensor, positions: torch.Tensor):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.cfg.rope:
            cos, sin = rope_angles(positions, self.head_dim, self.cfg.rope_base)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, k, v  # each [B, H, T, hd]

    def _merge(self, y: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x, torch.arange(x.shape[1], device=x.device))
        p = self.cfg.dropout if self.training else 0.0
        return self._merge(F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p))

    def init_state(self, batch: int, device=None, dtype=None):
        """(K cache, V cache, length): caches preallocated for seq_len tokens, [B, H, seq_len, hd]."""
        shape = (batch, self.heads, self.seq_len, self.head_dim)
        dtype = dtype or torch.float32
        return torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype), 0

    @staticmethod
    def cut_cache(state, length: int):
        """The state with its K and V caches cut to their first `length` entries (views of the same buffers): a step
        at a device position (_step_at) attends over the whole cache, so a decode keeps it as short as it needs."""
        k_cache, v_cache, n = state
        return k_cache[:, :, :length], v_cache[:, :, :length], n

    def step(self, x_t: torch.Tensor, state):
        k_cache, v_cache, n = state
        if isinstance(n, torch.Tensor):
            return self._step_at(x_t, k_cache, v_cache, n)
        if n >= self.seq_len:
            raise ValueError(f"KV cache is full: seq_len {self.seq_len} tokens")
        q, k, v = self._qkv(x_t[:, None], torch.tensor([n], device=x_t.device))
        k_cache[:, :, n] = k[:, :, 0].to(k_cache.dtype)
        v_cache[:, :, n] = v[:, :, 0].to(v_cache.dtype)
        y = F.scaled_dot_product_attention(q, k_cache[:, :, :n + 1].to(q.dtype), v_cache[:, :, :n + 1].to(q.dtype))
        return self._merge(y)[:, 0], (k_cache, v_cache, n + 1)

    def _step_at(self, x_t: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, n: torch.Tensor):
        """The step with the position n a 0-d tensor on the device (archsearch.decode's CUDA graph): fixed shapes and
        no host sync, so it attends over the whole cache with the entries after n masked out, and costs the cache's
        length, not the context's. The caller keeps n below the cache's length (no check without a sync)."""
        pos = n.view(1)
        q, k, v = self._qkv(x_t[:, None], pos)
        k_cache.index_copy_(2, pos, k.to(k_cache.dtype))
        v_cache.index_copy_(2, pos, v.to(v_cache.dtype))
        seen = (torch.arange(k_cache.shape[2], device=k_cache.device) <= n)[None]  # [1 query, cache]
        y = F.scaled_dot_product_attention(q, k_cache.to(q.dtype), v_cache.to(q.dtype), attn_mask=seen)
        return self._merge(y)[:, 0], (k_cache, v_cache, n + 1)
