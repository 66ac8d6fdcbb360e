"""Numbers from what was saved (DESIGN §15): every final metric scores the trained state dict, as it is written to
disk, loaded into a freshly built model of the same IR. Whatever a module of the trained model might keep (a cache
the optimiser never invalidated, say) cannot reach a reported number this way."""
from __future__ import annotations

import torch

from .lower import lower

PREFIX = {"validation": "val_", "test": "test_"}  # how a split's metrics are keyed in results


def saved_state(model: torch.nn.Module) -> dict:
    """The state dict as saved: detached copies on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def rebuild(ir, state: dict, device) -> torch.nn.Module:
    """A freshly built model of `ir` holding `state` (every key, exactly), on `device`, in eval mode."""
    model = lower(ir)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def evaluate_saved(ir, state: dict, task, seq_len: int, device, autocast=None,
                   splits: tuple[str, ...] = ("validation",)) -> tuple[dict, torch.nn.Module]:
    """Metrics of `state` in a fresh model over whole splits, keyed val_… / test_…, and that model."""
    model = rebuild(ir, state, device)
    out = {}
    for split in splits:
        metrics = task.evaluate(model, seq_len, device, split=split, autocast=autocast)
        out.update({PREFIX[split] + k: v for k, v in metrics.items()})
    return out, model
