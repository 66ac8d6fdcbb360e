"""Blocks: one file per block family. Each block is an nn.Module class with `name`, `kind`, a nested frozen
`Config` dataclass and a static `cost`; mixers also have `init_state` and `step` (the contract: DESIGN.md §3,
examples/custom_block/README.md). Block files import torch and the standard library only, never archsearch, so
`export` can copy them as source.

The built-ins are listed here. To add a block, drop a file defining such a class into this folder: archsearch
registers it by its `name` (see examples/custom_block/). Beside the blocks: linear_core.py (the matrix memories'
forms), fastpath.py (whether a Triton kernel or its torch twin runs, and the only door to kernels/), fused_loss.py
(the language model's loss).
"""
from .complex import CGU, ComplexLinearBlock, ComplexNormBlock
from .embedding import Embedding
from .holographic import Holographic
from .linear_attention import LinearAttention
from .mlp import MLP, Linear, SwiGLU
from .norms import LayerNorm, RMSNorm
from .pam import PAM
from .softmax_attention import SoftmaxAttention

BUILTINS = (
    Embedding, LayerNorm, RMSNorm, ComplexNormBlock,  # embedding and norms
    MLP, SwiGLU, Linear, CGU, ComplexLinearBlock,  # channel mixers and projections
    SoftmaxAttention, PAM, LinearAttention, Holographic,  # sequence mixers: the four memories
)
