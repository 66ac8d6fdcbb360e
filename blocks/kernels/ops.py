"""The kernel modules by name (MODULES, what blocks/fastpath.py hands out), and inductor's fallback for every custom op
they define, registered while torch.compile traces a model that calls them, before inductor lowers one.

torch.compile runs a custom op it has no lowering for as a fallback kernel, which inductor registers the first time it
lowers the op, after logging the op and its arguments. An argument's text is the IR of everything it was computed from,
written out again along every path to it, so it grows exponentially with the depth of a chain of custom ops. torch 2.11
(the GPU machines') builds that text whether or not the log is shown; 2.13 builds it only when inductor logs at INFO. A
fused decode step of the paper's 100M model (16 layers, five custom ops each) meets the head's two ops first after all
80: on an H100, building its compiled graph was still inside that text after 100 s (benchmarks/decode.py printed no
number in 306 s). On CPU with inductor's INFO log, the same skeleton at width 16 wrote 4.7 MB to stderr at 2 layers,
185 MB at 4, and at 6 had not finished after 200 s. Registered here, the fallback is the one inductor would make (the
same layout constraint, from the op's tags or the default for custom ops), and nothing is written.

Only under the compiler: registering imports inductor (1.3 s on a 2-core CPU machine), which eager use of the kernels
never needs. It uses torch's private inductor API; where that fails (another torch version), it warns and registers
nothing, and inductor makes its fallbacks as before.
"""
from __future__ import annotations

import functools
import warnings

import torch

from . import cgu, cgu_step, complex_qkv, cross_entropy, head_step, memory, pam_step, sublayer

MODULES = {"cgu": cgu, "cgu_step": cgu_step, "complex_qkv": complex_qkv, "cross_entropy": cross_entropy,
           "head_step": head_step, "memory": memory, "pam_step": pam_step, "sublayer": sublayer}

NAMESPACE = "archsearch"


@functools.cache
def custom_ops() -> tuple[torch._ops.OpOverload, ...]:
    """Every custom op of this package's namespace (all defined once MODULES' modules are imported), as the overloads
    inductor lowers."""
    names = [n.split("::")[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith(f"{NAMESPACE}::")]
    return tuple(getattr(getattr(torch.ops, NAMESPACE), n.split(".")[0]).default for n in names)


@torch.compiler.assume_constant_result  # dynamo runs it as it traces (not into the graph): before inductor lowers
def register_fallbacks() -> int:
    """Inductor's fallback, with the layout constraint its own would have, for each custom op without a lowering yet;
    returns how many it registered."""
    try:
        from torch._inductor.lowering import lowerings, make_fallback, tag_to_layout_constraint
        from torch._library.utils import get_layout_constraint_tag

        new = [op for op in custom_ops() if op not in lowerings]
        for op in new:
            tag = get_layout_constraint_tag(op, with_default=True)
            make_fallback(op, layout_constraint=tag_to_layout_constraint(tag))
    except Exception as e:  # another torch's inductor: it makes its own fallbacks, logging each op's arguments
        warnings.warn(f"blocks/kernels/ops.py: inductor's fallbacks not registered ({type(e).__name__}: {e}); a "
                      f"compile of a deep chain of custom ops may stall", stacklevel=2)
        return 0
    return len(new)
