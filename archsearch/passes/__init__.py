"""The pass pipeline: pure functions IR → IR, run in this one literal order."""
from __future__ import annotations

from ..errors import Loc, SpecError, unknown
from ..ir import IR
from .cost import cost
from .shapes import shapes
from .validate import validate

PASSES = (("validate", validate), ("shapes", shapes), ("cost", cost))


def run_passes(ir: IR, dump_after: str | None = None, echo=print) -> IR:
    """Run every pass in order; with `dump_after`, echo the IR's text dump after that pass."""
    names = [name for name, _ in PASSES]
    if dump_after is not None and dump_after not in names:
        raise unknown(Loc("--dump-after"), "pass", dump_after, names)
    for name, fn in PASSES:
        ir = fn(ir)
        if name == dump_after:
            echo(ir.dump())
    return ir


__all__ = ["PASSES", "run_passes", "validate", "shapes", "cost", "SpecError"]
