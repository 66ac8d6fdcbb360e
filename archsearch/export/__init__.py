"""`archsearch export`: a trained architecture as a folder that needs only torch — model.py (readable source of the
blocks it uses, the runtime interpreter and a Model class with forward, generate and from_pretrained), config.json
and weights.pt (a plain state dict, loadable with torch.load(weights_only=True))."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from .. import registry, runtime
from ..ir import IR
from ..lower import model_config
from .source import merge, ordered
from .template import FOOTER, HEADER


def model_source(ir: IR, title: str, source: str, folder: str) -> str:
    """The text of model.py for this architecture."""
    classes = {n.block: registry.get(n.block) for n in ir.nodes() if n.op == "block"}
    modules = ordered([sys.modules[c.__module__] for c in classes.values()] + [runtime])
    header, body, final = merge(modules)
    names = ", ".join(f'"{name}": {final[c.__module__.rpartition(".")[2]][c.__name__]}'
                      for name, c in sorted(classes.items()))
    counts = {}
    for n in ir.nodes():
        if n.op == "block" and registry.get(n.block).kind == "mixer":
            counts[n.block] = counts.get(n.block, 0) + 1
    m = ir.model
    summary = (f"d_model {m.d_model}, {m.n_layers} layers ({', '.join(f'{k} ×{v}' for k, v in counts.items())}), "
               f"vocab {m.vocab}, {ir.meta['params']:,} parameters")
    top = HEADER.format(title=title, source=source, folder=folder, summary=summary)
    return top + header + "\n\n\n" + body + FOOTER.format(blocks=names, title=title)


def export(ir: IR, state_dict: dict, to: Path, *, title: str, source: str, extra: dict | None = None) -> Path:
    """Write model.py, config.json and weights.pt into `to`; returns the folder."""
    to.mkdir(parents=True, exist_ok=True)
    (to / "model.py").write_text(model_source(ir, title, source, str(to)))
    config = {**model_config(ir), **(extra or {})}
    (to / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, to / "weights.pt")
    return to
