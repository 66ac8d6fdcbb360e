"""One call from a spec file (or text) to a checked, costed IR: parse ▸ build ▸ validate ▸ shapes ▸ cost."""
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
