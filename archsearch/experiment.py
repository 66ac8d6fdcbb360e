"""One training run of one spec, end to end: task → vocab → compile → build → train → full evaluation → JSON."""
from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from . import tasks
from .build import build
from .context import device_name, run_context
from .errors import Loc, SpecError
from .lower import lower
from .passes import run_passes
from .saved import evaluate_saved, saved_state
from .spec import Spec, load_spec
from .train import train

RUN_FILE = "run.json"  # {fingerprint, complete}: which run a folder holds


def with_overrides(spec: Spec, **kw) -> Spec:
    """Apply CLI overrides (None means: keep the spec's value) to the task and train sections."""
    task_keys = {"data", "tokenizer", "vocab_size", "kind"}
    task = {k: v for k, v in kw.items() if k in task_keys and v is not None}
    trn = {k: v for k, v in kw.items() if k not in task_keys and v is not None}
    return replace(spec, task=replace(spec.task, **task), train=replace(spec.train, **trn))


def fingerprint(ir, spec: Spec) -> str:
    """What makes two runs the same run: the built architecture (the IR as dumped, without its file name) and the
    task and train settings."""
    arch = re.sub(r"^# IR of .*?: ", "# IR: ", ir.dump())
    settings = json.dumps({"task": asdict(spec.task), "train": asdict(spec.train)}, sort_keys=True)
    return hashlib.sha256((arch + "\n" + settings).encode()).hexdigest()[:16]


def _claim(out: Path, key: str, fresh: bool) -> dict | None:
    """Make `out` this run's folder: with --fresh clear what is there; refuse a folder that holds another run's
    checkpoint; return the saved metrics of this same run if it already completed (else None)."""
    run, checkpoint, metrics = out / RUN_FILE, out / "checkpoint.pt", out / "metrics.json"
    if fresh:
        for path in (run, checkpoint, metrics, out / "weights.pt"):
            path.unlink(missing_ok=True)
    record = json.loads(run.read_text()) if run.is_file() else {}
    if checkpoint.exists() or record:
        if record.get("fingerprint") != key:
            raise SpecError(Loc(str(out)), "holds another run (another spec or other settings, or one from before "
                                           "runs were fingerprinted): pass --fresh to start over there, or --out "
                                           "for a new folder")
        if record.get("complete") and metrics.is_file():
            return json.loads(metrics.read_text())
    out.mkdir(parents=True, exist_ok=True)
    run.write_text(json.dumps({"fingerprint": key, "complete": False}) + "\n")
    return None


def train_spec(spec: Spec | str, *, out: Path | None = None, fresh: bool = False, progress: bool = True,
               task=None, on_eval=None) -> dict:
    """Train a spec on its task and return (and write to out/metrics.json) the final measured numbers: those of the
    saved weights loaded into a freshly built model. A rerun into the same `out` resumes the same run (same
    architecture, task and train settings) from its checkpoint, or returns its saved results once complete; a
    folder holding another run is refused unless `fresh`."""
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    task = task or tasks.make(spec.task)
    ir = run_passes(build(spec, vocab=task.vocab_size))
    ctx = run_context(spec.train, ir.model.seq_len, Loc(spec.file, 0, "train.seq_len"))
    checkpoint, key = None, fingerprint(ir, spec)
    if out is not None:
        done = _claim(out, key, fresh)
        if done is not None:
            print(f"{out}: this run is complete (same spec and settings); its saved results follow. --fresh trains "
                  "it again", file=sys.stderr)
            return done
        checkpoint = out / "checkpoint.pt"
    torch.manual_seed(spec.train.seed)
    model = lower(ir)
    result = train(model, task, spec.train, seq_len=ctx.seq_len, on_eval=on_eval, checkpoint=checkpoint,
                   progress=progress, label=Path(spec.file).stem)
    t0 = time.perf_counter()
    state = saved_state(model)
    del model
    final, model = evaluate_saved(ir, state, task, ctx.seq_len, ctx.device, ctx.autocast()) \
        if result.status != "diverged" else ({}, None)
    metrics = {
        "spec": spec.file, "task": task.name, "status": result.status, "reason": result.reason,
        "params": ir.meta["params"], "flops_per_token": ir.meta["flops"], "state_bytes": ir.meta["state_bytes"],
        "seq_len": ctx.seq_len, "device": result.device, "card": device_name(ctx.device), "seed": spec.train.seed,
        "lr": spec.train.lr, "tokens": result.tokens, "steps": result.steps, "train_seconds": result.seconds,
        "tokens_per_s": result.tokens_per_s, "peak_memory_bytes": result.peak_memory_bytes,
        "train_loss": result.train_loss, "eval_seconds": time.perf_counter() - t0, **final, "evals": result.evals,
    }
    if hasattr(task, "floors"):  # recall: what a model without associative memory scores on the same sequences
        metrics["val_floors"] = task.floors(ctx.seq_len, "validation")
    if out is not None:
        if result.status != "diverged":
            torch.save(state, out / "weights.pt")
        else:  # an overlapped loop has applied the step that diverged: the weights are not worth keeping
            (out / "weights.pt").unlink(missing_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        if result.status == "completed":
            (out / RUN_FILE).write_text(json.dumps({"fingerprint": key, "complete": True}) + "\n")
    metrics["model"] = model  # the model that was scored (None when the run diverged)
    return metrics


def summary(m: dict) -> str:
    """The lines `train` prints."""
    lines = [f"{m['spec']}: {m['status']}{' (' + m['reason'] + ')' if m['reason'] else ''} on {m['task']}",
             f"  params {m['params']:,}  tokens {m['tokens']:,} in {m['train_seconds']:.1f}s "
             f"= {m['tokens_per_s']:,.0f} tok/s on {m['card']}  peak memory {m['peak_memory_bytes'] / 2**20:,.0f} MiB"]
    if "val_accuracy" in m:
        floors = m.get("val_floors") or {}
        lines.append(f"  validation accuracy {m['val_accuracy']:.4f}  loss {m['val_loss']:.4f}" + (
            f"  (memory-free floors: {floors['uniform']:.4f} uniform, {floors['positional']:.4f} positional)"
            if floors else ""))
    elif "val_ppl" in m:
        lines.append(f"  validation perplexity {m['val_ppl']:.3f}  bits/byte {m['val_bpb']:.4f}  "
                     f"({m['val_tokens']:,} tokens, non-overlapping windows of {m['seq_len']})")
    return "\n".join(lines)
