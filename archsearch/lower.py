"""IR → nn.Module: the only bridge from the IR to torch. Modules are created here and nowhere earlier."""
from __future__ import annotations

from dataclasses import asdict

from . import registry
from .ir import IR
from .runtime import SequenceModel


def module_key(name: str) -> str:
    """nn.ModuleDict keys cannot contain dots; node names like 'l3.pam.norm' can."""
    return name.replace(".", "__")


def model_config(ir: IR) -> dict:
    """The straight-line program of a validated IR and what each block is built from, as plain data (`export`
    writes it as config.json; the exported Model rebuilds the same module from it)."""
    m = ir.model
    blocks, program, scales, index = {}, [], {}, {}
    for n in ir.nodes():
        key = module_key(n.name)
        if n.op == "block":
            dims = {"d_model": m.d_model, "seq_len": m.seq_len, "vocab": m.vocab, "layer_idx": n.layer,
                    "n_layers": m.n_layers}
            blocks[key] = {"block": n.block, "config": asdict(n.config), "dims": dims}
        if n.op == "add" and n.scale is not None:
            scales[key] = n.scale
        index[n.name] = len(program)
        program.append([n.name, n.op, [index[s] for s in n.inputs], key])
    return {"program": program, "blocks": blocks, "scales": scales, "vocab": m.vocab, "d_model": m.d_model,
            "seq_len": m.seq_len, "dropout": m.dropout, "dropout_mask": dropout_mask(ir), "tie_to": module_key("embed") if m.tied else None,
            "embed_key": module_key("embed"), "params": ir.meta["params"]}


def dropout_mask(ir: IR) -> str:
    """'auto' is 'complex' when any block views the stream as complex (a PAM model: the paper shares one mask between
    Re and Im) and 'real' otherwise (a transformer's per-channel dropout)."""
    if ir.model.dropout_mask != "auto":
        return ir.model.dropout_mask
    complex_stream = any(getattr(registry.get(n.block), "complex", False) for n in ir.nodes() if n.op == "block")
    return "complex" if complex_stream else "real"


def lower(ir: IR) -> SequenceModel:
    """Instantiate every block of a validated IR (run the passes first) in topological order."""
    cfg = model_config(ir)
    configs = {module_key(n.name): n.config for n in ir.nodes() if n.op == "block"}
    blocks = {key: registry.call_with_dims(registry.get(b["block"]), configs[key], **b["dims"])
              for key, b in cfg["blocks"].items()}
    return SequenceModel(cfg["program"], blocks, cfg["scales"], vocab=cfg["vocab"], d_model=cfg["d_model"],
                         dropout=cfg["dropout"], tie_to=cfg["tie_to"], embed_key=cfg["embed_key"],
                         dropout_mask=cfg["dropout_mask"])
