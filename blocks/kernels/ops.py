"""The kernel modules by name (MODULES, what blocks/fastpath.py hands out), and on import inductor's fallback for every
custom op they define, registered before torch.compile lowers one.

torch.compile runs a custom op it has no lowering for as a fallback kernel, which inductor registers the first time it
lowers the op, after logging the op and its arguments. An argument's text is the IR of everything it was computed from,
written out again along every path to it, so it grows exponentially with the depth of a chain of custom ops. torch 2.11
(the GPU machines') builds that text whether or not the log is shown; 2.13 builds it only when inductor logs at INFO. A
fused decode step of the paper's 100M model (16 layers, five custom ops each) meets the head's two ops first after all
80: on an H100 its compile stalled past 300 s (benchmarks/decode.py never printed a number), and on CPU with inductor's
INFO log the fused step of the same skeleton at width 16 wrote 4.7 MB of log at 2 layers, 185 MB at 4, and at 6 did not
finish in 200 s. Registered here the fallback is the one inductor would make (the same layout constraint, from the op's
tags or the default for custom ops), and nothing is logged.

Torch's private inductor API: where it is missing (another torch version), nothing is registered and inductor makes
its fallbacks as before.
"""
from __future__ import annotations

import torch

from . import cgu, cgu_step, complex_qkv, cross_entropy, head_step, memory, pam_step, sublayer

MODULES = {"cgu": cgu, "cgu_step": cgu_step, "complex_qkv": complex_qkv, "cross_entropy": cross_entropy,
           "head_step": head_step, "memory": memory, "pam_step": pam_step, "sublayer": sublayer}

NAMESPACE = "archsearch"


def custom_ops() -> list[torch._ops.OpOverload]:
    """Every custom op of this package's namespace registered so far, as the overloads inductor lowers."""
    names = [n.split("::")[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith(f"{NAMESPACE}::")]
    return [getattr(getattr(torch.ops, NAMESPACE), n.split(".")[0]).default for n in names]


def register() -> list[torch._ops.OpOverload]:
    """Inductor's fallback, with the layout constraint its own would have, for each custom op that has no lowering
    yet; returns the ops registered now."""
    try:
        from torch._inductor.lowering import lowerings, make_fallback, tag_to_layout_constraint
        from torch._library.utils import get_layout_constraint_tag
    except ImportError:  # another torch: inductor makes its fallbacks itself
        return []
    new = [op for op in custom_ops() if op not in lowerings]
    for op in new:
        make_fallback(op, layout_constraint=tag_to_layout_constraint(get_layout_constraint_tag(op, with_default=True)))
    return new


register()
