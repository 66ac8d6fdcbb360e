"""Measured costs of a built model: latency (training step, prefill, and one decode step at a given context; after
warm-up, the median of repeats timed by CUDA events on GPU, the fastest repeat by the wall clock on CPU), peak memory
of a training step, and FLOPs counted over one training step."""
from __future__ import annotations

import statistics
import time
from contextlib import nullcontext

import torch

from blocks.complex import frozen_weights

from . import flops
from .graph_step import GraphedMicroStep, LMLoss, compile_afresh, micro_loss


def time_ms(fn, device: torch.device, repeats: int = 5, warmup: int = 2) -> float:
    """ms per call of fn. On CPU the fastest repeat, not the median: another process on the same cores only ever adds
    time, and a search compares trials timed minutes apart (one contended step decided a verdict's pair once)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times) if device.type == "cuda" else min(times)


def decode_ms(model: torch.nn.Module, vocab: int, context: int, device: torch.device, amp=None,
              repeats: int = 5) -> float:
    """Latency of one decode step at batch 1 after `context` tokens: the state is built by stepping through the
    context (the same path generation takes), then the next step is timed from that state."""
    amp = amp or nullcontext()
    was_training = model.training
    model.eval()
    ids = torch.randint(0, vocab, (context + 1,), device=device)
    with torch.no_grad(), amp, frozen_weights(model):  # decoding's best form: complex weights built once
        state = model.init_state(1, device=device)
        for t in range(context):
            _, state = model.step(ids[t:t + 1], state)
        # a KV cache is written in place at the current position, so repeating the step from one state is exact
        ms = time_ms(lambda: model.step(ids[context:], state), device, repeats)
    model.train(was_training)
    return ms


def measure(model: torch.nn.Module, vocab: int, batch: int, seq_len: int, device: torch.device, amp=None,
            repeats: int = 5, decode_context: int | None = None, cuda_graph: bool = False,
            compile: bool = False) -> dict:
    """Costs of one training step (forward + backward) and one prefill at [batch, seq_len]; with `decode_context`,
    also one decode step at batch 1 after that many tokens. The training step is timed in the form the trainer runs
    it: with `compile`, compiled with its loss (the warm-up runs compile it); with `cuda_graph` (on a GPU), replayed as
    a CUDA graph. FLOPs are counted on an eager step."""
    amp = amp or nullcontext()
    model.to(device).train()
    ids = torch.randint(0, vocab, (batch, seq_len), device=device)
    loss_fn = LMLoss(model)
    timed_fn = compile_afresh(loss_fn) if compile else loss_fn  # as train.train compiles it; loss_fn stays eager

    def train_step():
        micro_loss(loss_fn, amp, ids, ids, 1)
        model.zero_grad(set_to_none=True)

    def prefill():
        with torch.no_grad(), amp:
            model(ids)

    graphed = GraphedMicroStep(timed_fn, amp, 1, "measure") if cuda_graph and device.type == "cuda" else None

    def timed_step():
        if graphed:
            graphed(ids, ids)
            model.zero_grad(set_to_none=False)  # the graph adds into the gradients it was captured with
        else:
            micro_loss(timed_fn, amp, ids, ids, 1)
            model.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out = {"latency_train_ms": time_ms(timed_step, device, repeats),
           "latency_prefill_ms": time_ms(prefill, device, repeats)}
    out["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    counted, _ = flops.count(train_step, model=model)
    out["flops_train_step"] = counted
    out["measure_batch"], out["measure_seq_len"] = batch, seq_len
    if decode_context:
        out["latency_decode_ms"] = decode_ms(model, vocab, decode_context, device, amp, repeats)
        out["decode_context"] = decode_context
    return out
