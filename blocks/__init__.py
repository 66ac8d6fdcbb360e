"""Blocks: one file per block family. Each block is an nn.Module class with `name`, `kind`, a nested frozen
`Config` dataclass and a static `cost`; mixers also have `init_state` and `step` (the contract: DESIGN.md §3,
docs/blocks.md). Block files import torch and the standard library only, never archsearch, so `export` can copy
them as source.

The built-ins are listed here. To add a block, drop a file defining such a class into this folder: archsearch
registers it by its `name` (see examples/custom_block/).
"""
from .embedding import Embedding
from .mlp import MLP, SwiGLU
from .norms import LayerNorm, RMSNorm
from .softmax_attention import SoftmaxAttention

BUILTINS = (Embedding, LayerNorm, RMSNorm, MLP, SwiGLU, SoftmaxAttention)
