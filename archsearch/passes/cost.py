"""cost: analytic parameters, forward FLOPs per token at seq_len, and decode state bytes per sequence, per node and
in total (definitions: docs/costs.md). Elementwise work (norms, activations, adds) is not counted as FLOPs."""
from __future__ import annotations

from .. import registry
from ..errors import SpecError
from ..ir import IR, Node

KEYS = ("params", "flops", "state_bytes")


def node_cost(ir: IR, n: Node) -> dict:
    m = ir.model
    if n.op == "input":
        return dict.fromkeys(KEYS, 0)
    if n.op == "add":
        return {"params": int(n.scale is not None), "flops": 0, "state_bytes": 0}
    if n.op == "output":  # logits: a V×D product per token; tied heads reuse the embedding table
        return {"params": 0 if m.tied else m.vocab * m.d_model, "flops": 2 * m.vocab * m.d_model, "state_bytes": 0}
    cls = registry.get(n.block, n.loc)
    got = registry.call_with_dims(cls.cost, n.config, d_model=m.d_model, seq_len=m.seq_len, vocab=m.vocab)
    if not isinstance(got, dict) or sorted(got) != sorted(KEYS) or not all(
            isinstance(got[k], int) and not isinstance(got[k], bool) and got[k] >= 0 for k in KEYS):
        raise SpecError(n.loc, f"block '{n.block}': cost() must return non-negative ints for {', '.join(KEYS)}, got {got!r}")
    return got


def cost(ir: IR) -> IR:
    new, total = {}, dict.fromkeys(KEYS, 0)
    for n in ir.nodes():
        c = node_cost(ir, n)
        new[n.name] = n.with_meta(**c)
        for k in KEYS:
            total[k] += c[k]
    return ir.replace(new, **total)
