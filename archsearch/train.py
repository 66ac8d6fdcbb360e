"""Budgeted training: a function, not a trainer object. The budget is in tokens; batch size is a token count
(gradient accumulation makes up the rest); AdamW (fused on CUDA) without decay on norms, biases, gains and scalars;
linear warm-up then cosine or warmup-stable-decay; gradient clipping; bf16 autocast on GPU (the memories accumulate
their state in fp32); optional torch.compile (of the model with its loss) and, on GPU, each micro-step replayed as a CUDA graph (graph_step.py);
seeded; intermediate evaluations reported to a callback that may stop the run (search pruning); a NaN/inf loss
stops the run with its reason; checkpoint and resume, and a deadline at which a run pauses into its checkpoint."""
from __future__ import annotations

import math
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .context import autocast_for, resolve_device
from .graph_step import GraphedMicroStep, LMLoss, compile_afresh, micro_loss
from .loss_queue import LossQueue
from .progress import Progress
from .task_and_train import TrainConfig


LOOP = "overlapped"  # the default loop's name, recorded with a ladder run's speed: GPU-seconds compare only within
# one loop; "waited" (overlap=False) reads every step's loss before the update, as the trainer did until 2026-12-05,
# whose runs carry no name


@dataclass
class TrainResult:
    status: str  # completed | diverged | stopped | paused (at the deadline, into its checkpoint)
    reason: str
    steps: int
    tokens: int
    seconds: float
    tokens_per_s: float  # steady state: evaluations and the first step (graph capture, compilation) left out
    train_loss: float
    peak_memory_bytes: int
    device: str
    evals: list = field(default_factory=list)
    loop: str = LOOP  # the loop that timed tokens_per_s: LOOP or "waited"
    form: str = "eager"  # the form of the step that timed it (form_of): GPU-seconds compare only within one


def form_of(compiled: bool, graphed: bool) -> str:
    """A training step's form, as speed records name it: "compile+graph", "compile", "graph" or "eager"."""
    return "+".join(name for name, on in (("compile", compiled), ("graph", graphed)) if on) or "eager"


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: norms, biases, gains, residual scalars and other vectors are not decayed."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine to lr·min_lr_ratio, or (wsd) the full rate until the last `decay` of the steps and
    a linear fall to the same floor over them."""
    warm = max(1, int(cfg.warmup * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    floor = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "wsd":
        start = max(warm, total - max(1, round(cfg.decay * total)))
        progress = (step - start + 1) / max(1, total - start)
        return cfg.lr if step < start else cfg.lr - (cfg.lr - floor) * min(progress, 1.0)
    progress = (step - warm) / max(1, total - warm)
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def plan(cfg: TrainConfig, seq_len: int) -> tuple[int, int, int]:
    """(sequences per forward, forwards per step, steps) for the token budget."""
    micro = cfg.micro_batch or max(1, cfg.batch_tokens // seq_len)
    accum = max(1, round(cfg.batch_tokens / (micro * seq_len)))
    steps = max(1, math.ceil(cfg.tokens / (micro * accum * seq_len)))
    return micro, accum, steps


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # peak RSS of the process on CPU


def _rate(steady: list, tokens: int, seconds: float) -> float:
    """Tokens/s of the steady steps; all of the run's (first step included) until there is a second step."""
    return steady[1] / steady[0] if steady[0] else tokens / max(seconds, 1e-9)


def _smooth(loss_avg: float, read: list) -> tuple[float, tuple | None]:
    """The running loss (an exponential average) with the losses `read` [(step, loss)] folded in, oldest first, up to
    the first that is not finite: (average, None), or (average, (step, loss)) of that one."""
    for at, loss in read:
        if not math.isfinite(loss):
            return loss_avg, (at, loss)
        loss_avg = loss if math.isnan(loss_avg) else 0.9 * loss_avg + 0.1 * loss
    return loss_avg, None


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a kill mid-write leaves the previous checkpoint intact


def train(model: torch.nn.Module, task, cfg: TrainConfig, *, seq_len: int, on_eval=None,
          checkpoint: Path | None = None, progress: bool = True, label: str = "train",
          deadline: float | None = None, overlap: bool = True) -> TrainResult:
    """Train `model` on `task` for cfg.tokens tokens. on_eval(step, tokens, metrics) → True stops the run. At
    `deadline` (time.monotonic()) a run with a checkpoint file saves it and pauses; the same call resumes it.
    overlap: the host queues step s + 1 before it reads step s's loss (loss_queue.py), and batches go to the GPU from
    page-locked memory; False reads each loss before its update, as the trainer did until 2026-12-05
    (benchmarks/train_loop.py times both). A loss that is not finite stops the run as soon as it is read: the result's
    steps and tokens are those before it; with overlap its update (and the next step's) are applied by then, so the
    weights of a diverged run are not worth keeping.
    On CPU deterministic kernels are switched on for the run's duration (without them, multi-threaded CPU backward
    passes such as the embedding's accumulate in a varying order), so a seed repeats its run bit for bit at a fixed
    thread count: one thread always did in our tests, two usually, though a CI machine once gave 2e-4 apart. The
    thread count itself changes the last bits."""
    task.check_length(seq_len)  # one line naming the data, not an error inside the first batch
    device = resolve_device(cfg.device)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(before or device.type == "cpu")
    try:
        return _train(model, task, cfg, device, seq_len, on_eval, checkpoint, progress, label, deadline, overlap)
    finally:
        torch.use_deterministic_algorithms(before)


def _to_device(t: torch.Tensor, device: torch.device, pinned: bool) -> torch.Tensor:
    """A batch on its way without waiting: from pageable memory the driver may wait for the stream first."""
    if pinned and t.device.type == "cpu":
        t = t.contiguous().pin_memory()
    return t.to(device, non_blocking=True)


def _train(model, task, cfg: TrainConfig, device: torch.device, seq_len: int, on_eval, checkpoint, progress,
           label, deadline, overlap) -> TrainResult:
    model.to(device).train()
    amp = autocast_for(device, cfg.precision)
    micro, accum, steps = plan(cfg, seq_len)
    fused = device.type == "cuda" if cfg.fused is None else cfg.fused
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            fused=fused)
    rng = np.random.default_rng(cfg.seed)
    eval_at = {round(k * steps / (cfg.evals + 1)) for k in range(1, cfg.evals + 1)} - {0, steps}
    step, tokens, evals, elapsed, loss_avg = 0, 0, [], 0.0, float("nan")
    steady = [0.0, 0]  # seconds and tokens of the steps after the first, evaluations left out: the throughput
    losses, loop = LossQueue(device, lag=1 if overlap else 0), LOOP if overlap else "waited"
    # read onto the CPU: the RNG states must stay CPU byte tensors; the weights and moments are copied to the device
    state = torch.load(checkpoint, map_location="cpu", weights_only=False) if checkpoint and checkpoint.is_file() \
        else None
    shapes = lambda sd: {k: tuple(v.shape) for k, v in sd.items()}  # noqa: E731
    if state is not None and (state.get("config") != asdict(cfg) or
                              shapes(state["model"]) != shapes(model.state_dict())):
        print(f"{label}: {checkpoint} is of another model or training configuration: starting afresh",
              file=sys.stderr)
        state = None
    resumed_form = None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in state:  # dropout's stream on the GPU
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        step, tokens, evals, elapsed, loss_avg = state["step"], state["tokens"], state["evals"], state["elapsed"], state["loss"]
        if state.get("loop", "waited") == loop:  # another loop's timing would blend into this one's
            steady = state.get("steady", steady)
        resumed_form = state.get("form")  # another form's too: checked once this process's step has its form
        print(f"{label}: resuming from {checkpoint} at step {step}/{steps}", file=sys.stderr)
    loss_fn = compile_afresh(LMLoss(model)) if cfg.compile else LMLoss(model)  # compiled with its loss: fused
    graphed = cfg.cuda_graph and device.type == "cuda"
    micro_step = (GraphedMicroStep(loss_fn, amp, accum, label) if graphed
                  else lambda x, y: micro_loss(loss_fn, amp, x, y, accum))
    ran_in = lambda: form_of(cfg.compile, graphed and not micro_step.eager)  # noqa: E731 (a failed capture: eager)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    bar = Progress(steps, label, enabled=progress)
    status, reason, t0 = "completed", "", time.perf_counter() - elapsed
    first = step  # the first step of this process captures the graph or compiles: not in the throughput

    def save():
        _save(checkpoint, {"model": model.state_dict(), "optim": opt.state_dict(), "rng": rng.bit_generator.state,
                           "torch_rng": torch.get_rng_state(), "step": step, "tokens": tokens, "evals": evals,
                           "elapsed": time.perf_counter() - t0, "loss": loss_avg, "config": asdict(cfg),
                           "steady": steady, "loop": loop, "form": ran_in(),
                           **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {})})

    pinned = overlap and device.type == "cuda"
    per_step = micro * accum * seq_len
    while step < steps:
        t_step = time.perf_counter()
        lr = lr_at(step, steps, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        total = torch.zeros((), device=device)
        for _ in range(accum):
            x, y = task.train_batch(micro, seq_len, rng)
            total += micro_step(_to_device(x, device, pinned), _to_device(y, device, pinned)) / accum
        losses.put(step + 1, total)
        # waiting, the loss is read before its update (a NaN is never applied); overlapped, after the next step is
        # queued, and at once before an evaluation, a save or the end (they never see a NaN)
        loss_avg, bad = _smooth(loss_avg, [] if overlap else losses.take())
        if bad is None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=not graphed)  # a graph adds into the gradient tensors it was captured with
            step += 1
            tokens += per_step
            at_eval = step in eval_at
            pause = checkpoint is not None and deadline is not None and step < steps and time.monotonic() >= deadline
            loss_avg, bad = _smooth(loss_avg, losses.take(everything=at_eval or pause or step == steps))
        if bad is not None:
            status, reason = "diverged", f"loss became {bad[1]} at step {bad[0]}"
            step, tokens = bad[0] - 1, (bad[0] - 1) * per_step
            opt.zero_grad(set_to_none=True)
            break
        if step == first + 1 and resumed_form not in (None, ran_in()):  # the part before ran in another form
            steady = [0.0, 0]
        if step > first + 1:
            steady[0] += time.perf_counter() - t_step
            steady[1] += per_step
        rate = _rate(steady, tokens, time.perf_counter() - t0)
        shown = "–" if math.isnan(loss_avg) else f"{loss_avg:.3f}"  # the first loss is read a step late
        bar.update(step, f"loss {shown} lr {lr:.2e} {rate:,.0f} tok/s")
        if at_eval:
            metrics = task.evaluate(model, seq_len, device, max_tokens=cfg.eval_tokens, autocast=amp)
            # `tokens` is the training tokens so far; the evaluation's own count is `eval_tokens`
            evals.append({**{("eval_tokens" if k == "tokens" else k): v for k, v in metrics.items()}, "step": step,
                          "tokens": tokens})
            if checkpoint is not None:
                save()
            if on_eval is not None and on_eval(step, tokens, metrics):
                status, reason = "stopped", f"stopped by the caller at step {step}"
                break
        if pause:
            save()
            status, reason = "paused", f"paused at step {step}/{steps} (its time limit), checkpoint kept"
            break
    bar.close()
    seconds = time.perf_counter() - t0
    return TrainResult(status, reason, step, tokens, seconds, _rate(steady, tokens, seconds), loss_avg,
                       _peak_memory(device), str(device), evals, loop, ran_in())
