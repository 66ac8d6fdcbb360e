"""IR → nn.Module: the only bridge from the IR to torch. Modules are created here and nowhere earlier."""
from __future__ import annotations

from . import registry
from .ir import IR
from .runtime import SequenceModel


def module_key(name: str) -> str:
    """nn.ModuleDict keys cannot contain dots; node names like 'l3.pam.norm' can."""
    return name.replace(".", "__")


def lower(ir: IR) -> SequenceModel:
    """Instantiate every block of a validated IR (run the passes first) in topological order."""
    m = ir.model
    index, program, blocks, scales = {}, [], {}, {}
    for n in ir.nodes():
        key = module_key(n.name)
        if n.op == "block":
            cls = registry.get(n.block, n.loc)
            blocks[key] = registry.call_with_dims(cls, n.config, d_model=m.d_model, seq_len=m.seq_len,
                                                  vocab=m.vocab, layer_idx=n.layer, n_layers=m.n_layers)
        if n.op == "add" and n.scale is not None:
            scales[key] = n.scale
        index[n.name] = len(program)
        program.append((n.name, n.op, tuple(index[s] for s in n.inputs), key))
    embed_key = module_key("embed")
    return SequenceModel(program, blocks, scales, vocab=m.vocab, d_model=m.d_model, dropout=m.dropout,
                         tie_to=embed_key if m.tied else None, embed_key=embed_key)
