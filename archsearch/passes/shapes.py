"""shapes: annotate every node with the shape of its output; the residual stream keeps width d_model throughout."""
from __future__ import annotations

from ..errors import SpecError
from ..ir import IR


def shapes(ir: IR) -> IR:
    m = ir.model
    out, new = {}, {}
    for n in ir.nodes():
        if n.op == "input":
            shape = ("B", "T")
        elif n.op == "output":
            shape = ("B", "T", m.vocab)
        else:
            ins = [out[s] for s in n.inputs]
            if any(s != ins[0] for s in ins):
                raise SpecError(n.loc, f"inputs of '{n.name}' have different shapes: {ins}")
            if n.name != "embed" and ins[0] != ("B", "T", m.d_model):
                raise SpecError(n.loc, f"'{n.name}' reads {ins[0]}, expected a stream of width {m.d_model}")
            shape = ("B", "T", m.d_model)
        out[n.name] = shape
        new[n.name] = n.with_meta(shape=shape)
    return ir.replace(new)
