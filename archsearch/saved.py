"""Numbers from what was saved (DESIGN §15): every final metric scores the trained state dict, as it is written to
disk, loaded into a freshly built model of the same IR. Whatever a module of the trained model might keep (a cache
the optimiser never invalidated, say) cannot reach a reported number this way."""
from __future__ import annotations

import torch

from . import tasks
from .compiler import compile_spec
from .context import autocast_for, run_context
from .errors import Loc
from .lower import lower
from .train import TrainResult, train

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


def train_then_score(ir, cfg, task, seq_len: int, device, splits: tuple[str, ...], *, on_eval=None,
                     progress: bool = True, label: str = "train", checkpoint=None,
                     deadline: float | None = None) -> tuple[TrainResult, dict | None, dict | None]:
    """Seed, build a fresh model of `ir`, train it with `cfg`, and score its saved weights in another fresh model on
    the whole of each split: (the training result, the metrics and the saved state, both None unless it completed).
    `checkpoint` and `deadline`: train's (a run that pauses at its deadline resumes from the checkpoint)."""
    torch.manual_seed(cfg.seed)
    model = lower(ir)
    result = train(model, task, cfg, seq_len=seq_len, on_eval=on_eval, progress=progress, label=label,
                   checkpoint=checkpoint, deadline=deadline)
    if result.status != "completed":
        return result, None, None
    state = saved_state(model)
    del model
    final, _ = evaluate_saved(ir, state, task, seq_len, device, autocast_for(device, cfg.precision), splits)
    return result, final, state


class WeightsFileEvaluator:
    """Metrics of a saved weights file of `spec` in a freshly built model, over whole splits: how a report checks its
    numbers again. Each task (corpus and tokenizer, or recall sequences) is built once."""

    def __init__(self):
        self._tasks = {}

    def __call__(self, spec, path, splits: tuple[str, ...]) -> dict:
        key = repr(spec.task)
        if key not in self._tasks:
            self._tasks[key] = tasks.make(spec.task)
        task = self._tasks[key]
        ir = compile_spec(spec, vocab=task.vocab_size)
        ctx = run_context(spec.train, ir.model.seq_len, Loc(spec.file, 0, "train.seq_len"))
        state = torch.load(path, map_location="cpu", weights_only=True)
        metrics, _ = evaluate_saved(ir, state, task, ctx.seq_len, ctx.device, ctx.autocast(), splits)
        return metrics
