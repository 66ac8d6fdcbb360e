"""The top and the bottom of an exported model.py: what surrounds the copied block and runtime sources."""

HEADER = '''"""{title}

Exported by archsearch from {source}. Standalone: this file imports only torch and the Python standard library.

    from model import Model
    model = Model.from_pretrained("{folder}")       # config.json + weights.pt beside this file
    logits = model(ids)                             # ids [B, T] → logits [B, T, vocab]
    out = model.generate(ids, max_new_tokens=50)    # decoding through the recurrent state / KV cache

The model is a plain torch.nn.Module: train it further, torch.compile it, or change it. Its architecture: {summary}.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
'''

FOOTER = '''

# -------------------------------------------------------------------------------------------------------------------
# The model: builds the blocks named in config.json and runs them through SequenceModel's program
# -------------------------------------------------------------------------------------------------------------------
BLOCKS = {{{blocks}}}


def _construct(cls, config: dict, dims: dict):
    """A block from its config fields, given only the dimension keywords its constructor declares."""
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        dims = {{k: v for k, v in dims.items() if k in params}}
    return cls(cls.Config(**config), **dims)


class Model(SequenceModel):
    """{title}"""

    def __init__(self, config: dict):
        blocks = {{key: _construct(BLOCKS[b["block"]], b["config"], b["dims"]) for key, b in config["blocks"].items()}}
        super().__init__(config["program"], blocks, config["scales"], vocab=config["vocab"],
                         d_model=config["d_model"], dropout=config["dropout"], tie_to=config["tie_to"],
                         embed_key=config["embed_key"], dropout_mask=config.get("dropout_mask", "real"))
        self.config = config

    @classmethod
    def from_pretrained(cls, folder=Path(__file__).parent, map_location="cpu") -> "Model":
        """The model with its trained weights, from a folder holding config.json and weights.pt."""
        folder = Path(folder)
        model = cls(json.loads((folder / "config.json").read_text()))
        state = torch.load(folder / "weights.pt", map_location=map_location, weights_only=True)
        model.load_state_dict(state)
        return model

    @torch.no_grad()
    def generate(self, ids: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
                 top_k: int | None = None) -> torch.Tensor:
        """ids [B, T] → [B, T + max_new_tokens]. The prompt is read token by token into the decode state (each
        memory's recurrent state, or attention's KV cache); then each new token costs one step. Greedy at
        temperature 0, else sampled (optionally from the top k)."""
        was_training = self.training
        self.eval()
        state = self.init_state(ids.shape[0], device=ids.device)
        out = [ids]
        for t in range(ids.shape[1]):
            logits, state = self.step(ids[:, t], state)
        for _ in range(max_new_tokens):
            if temperature <= 0:
                nxt = logits.argmax(-1)
            else:
                scaled = logits.float() / temperature
                if top_k is not None:
                    kth = scaled.topk(top_k, -1).values[:, -1:]
                    scaled = scaled.masked_fill(scaled < kth, float("-inf"))
                nxt = torch.multinomial(scaled.softmax(-1), 1)[:, 0]
            out.append(nxt[:, None])
            logits, state = self.step(nxt, state)
        self.train(was_training)
        return torch.cat(out, 1)
'''
