"""One call from a spec file (or text) to a checked, costed IR: parse ▸ build ▸ validate ▸ shapes ▸ cost; and the
IR's costs as the table `archsearch compile` prints."""
from __future__ import annotations

from dataclasses import replace

from .build import build
from .ir import IR
from .passes import run_passes
from .spec import Spec, load_spec, parse_text


def compile_spec(spec: Spec | str, *, vocab: int | None = None, seq_len: int | None = None,
                 dump_after: str | None = None, echo=print) -> IR:
    """A path (or a parsed Spec) → IR after all passes; `seq_len` replaces the spec's model.seq_len (benchmarks run
    one architecture at other lengths). Raises SpecError for any bad input."""
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    if seq_len is not None:
        spec = replace(spec, model=replace(spec.model, seq_len=seq_len))
    return run_passes(build(spec, vocab=vocab), dump_after=dump_after, echo=echo)


def compile_text(text: str, *, file: str = "<spec>", vocab: int | None = None) -> IR:
    return compile_spec(parse_text(text, file), vocab=vocab)


def _thousands(n: int) -> str:
    return f"{n:,}"


def cost_table(ir) -> str:
    """Per-node analytic costs and totals, as printed by `compile`."""
    rows = [("node", "block", "params", "FLOPs/token", "state bytes")]
    for n in ir.nodes():
        if n.op == "input":
            continue
        what = n.block if n.op == "block" else (f"add ×{n.scale}" if n.op == "add" and n.scale is not None else n.op)
        if n.op == "output":
            what = "logits (tied)" if ir.model.tied else "logits"
        rows.append((n.name, what, _thousands(n.meta["params"]), _thousands(n.meta["flops"]), _thousands(n.meta["state_bytes"])))
    rows.append(("total", "", _thousands(ir.meta["params"]), _thousands(ir.meta["flops"]), _thousands(ir.meta["state_bytes"])))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for i, r in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * (sum(widths) + 8))
        lines.append("  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)
