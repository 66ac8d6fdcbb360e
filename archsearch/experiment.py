"""One training run of one spec, end to end: task → vocab → compile → build → train → full evaluation → JSON."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from . import tasks
from .build import build
from .errors import Loc, SpecError
from .lower import lower
from .passes import run_passes
from .spec import Spec, load_spec
from .train import autocast_for, resolve_device, step_shape, train


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def with_overrides(spec: Spec, **kw) -> Spec:
    """Apply CLI overrides (None means: keep the spec's value) to the task and train sections."""
    task_keys = {"data", "tokenizer", "vocab_size", "kind"}
    task = {k: v for k, v in kw.items() if k in task_keys and v is not None}
    trn = {k: v for k, v in kw.items() if k not in task_keys and v is not None}
    return replace(spec, task=replace(spec.task, **task), train=replace(spec.train, **trn))


def train_spec(spec: Spec | str, *, out: Path | None = None, fresh: bool = False, progress: bool = True,
               task=None, on_eval=None) -> dict:
    """Train a spec on its task and return (and write to out/metrics.json) the final measured numbers."""
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    task = task or tasks.make(spec.task)
    ir = run_passes(build(spec, vocab=task.vocab_size))
    _, seq_len = step_shape(spec.train, ir.model.seq_len)
    if seq_len > ir.model.seq_len:
        raise SpecError(Loc(spec.file, 0, "train.seq_len"), f"{seq_len} exceeds model.seq_len {ir.model.seq_len}")
    try:
        device = resolve_device(spec.train.device)
    except (ValueError, RuntimeError) as e:
        raise SpecError(Loc("--device"), str(e)) from None
    torch.manual_seed(spec.train.seed)
    model = lower(ir)
    checkpoint = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        checkpoint = out / "checkpoint.pt"
        if fresh and checkpoint.exists():
            checkpoint.unlink()
    result = train(model, task, spec.train, seq_len=seq_len, on_eval=on_eval, checkpoint=checkpoint,
                   progress=progress, label=Path(spec.file).stem)
    t0 = time.perf_counter()
    final = task.evaluate(model, seq_len, device, autocast=autocast_for(device, spec.train.precision)) \
        if result.status != "diverged" else {}
    metrics = {
        "spec": spec.file, "task": task.name, "status": result.status, "reason": result.reason,
        "params": ir.meta["params"], "flops_per_token": ir.meta["flops"], "state_bytes": ir.meta["state_bytes"],
        "seq_len": seq_len, "device": result.device, "card": device_name(device), "seed": spec.train.seed,
        "lr": spec.train.lr, "tokens": result.tokens, "steps": result.steps, "train_seconds": result.seconds,
        "tokens_per_s": result.tokens_per_s, "peak_memory_bytes": result.peak_memory_bytes,
        "train_loss": result.train_loss, "eval_seconds": time.perf_counter() - t0,
        **{f"val_{k}": v for k, v in final.items()}, "evals": result.evals,
    }
    if out is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        torch.save(model.state_dict(), out / "weights.pt")
    metrics["model"] = model
    return metrics


def summary(m: dict) -> str:
    """The lines `train` prints."""
    lines = [f"{m['spec']}: {m['status']}{' (' + m['reason'] + ')' if m['reason'] else ''} on {m['task']}",
             f"  params {m['params']:,}  tokens {m['tokens']:,} in {m['train_seconds']:.1f}s "
             f"= {m['tokens_per_s']:,.0f} tok/s on {m['card']}  peak memory {m['peak_memory_bytes'] / 2**20:,.0f} MiB"]
    if "val_accuracy" in m:
        lines.append(f"  test accuracy {m['val_accuracy']:.4f}  loss {m['val_loss']:.4f}")
    elif "val_ppl" in m:
        lines.append(f"  validation perplexity {m['val_ppl']:.3f}  bits/byte {m['val_bpb']:.4f}  "
                     f"({m['val_tokens']:,} tokens, non-overlapping windows of {m['seq_len']})")
    return "\n".join(lines)
