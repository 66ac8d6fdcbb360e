"""Small blocks built on the fly for tests that need a block with one particular flaw, the one small model the
compiled-path tests share, and a recorder of the kernels' custom ops."""
import dataclasses

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


def stub_block(name: str, kind: str = "channel", cost: dict | None = None, **attrs) -> type:
    """A block class with an empty Config and a fixed cost; extra class attributes or methods via attrs."""
    fixed = cost if cost is not None else {"params": 0, "flops": 0, "state_bytes": 0}

    @dataclasses.dataclass(frozen=True)
    class Config:
        pass

    body = {"name": name, "kind": kind, "Config": Config, "cost": staticmethod(lambda cfg, d_model, seq_len: fixed),
            **attrs}
    return type(f"Stub_{name}", (nn.Module,), body)


# The model every CPU test of a compiled training step compiles, at batch 8 × 32 tokens: inductor's on-disk cache
# then builds its kernels once per suite (cold, that build is most of a compiled test's time: 43 s against 6 s).
COMPILED_SPEC = """
model: {d_model: 32, seq_len: 32, vocab: 64}
stack:
  depth: 1
  norm: rmsnorm
  sublayers:
    - {block: softmax_attention, config: {heads: 2}, scale: 0.5}
    - {block: swiglu}
head: {blocks: [rmsnorm]}
"""
COMPILED_BATCH = 8


class CustomOps(TorchFunctionMode):
    """Records every archsearch:: custom op called (each one Triton kernel), with its arguments: (op, args, kwargs)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if isinstance(func, torch._ops.OpOverload) and func.namespace == "archsearch":
            self.calls.append((func, args, kwargs or {}))
        return func(*args, **(kwargs or {}))

    @property
    def names(self) -> list[str]:
        return [op.__name__.split(".")[0] for op, _, _ in self.calls]
