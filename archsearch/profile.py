"""`archsearch profile`: a few training steps (and decode steps) of one architecture under torch.profiler, with CPU
and CUDA activities, shapes and memory, written with tensorboard_trace_handler for TensorBoard's profiler plugin
(torch-tb-profiler); and a per-node table of forward time and memory from a profiler range around every node, which
is where PAM's overhead shows: per block, against the other memories of the same model."""
from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function, schedule, tensorboard_trace_handler

from blocks import fastpath
from blocks.fused_loss import lm_loss

from .context import autocast_for
from .graph_step import LMLoss, compile_afresh
from .ir import IR
from .lower import lower
from .train import param_groups


@dataclass
class NodeRow:
    name: str
    block: str
    calls: int
    cpu_ms: float  # per step, the node's range on the host (includes launching its kernels)
    device_ms: float  # per step, the kernels launched inside the range (0 on CPU)
    memory_bytes: int  # per step, allocated inside the range (CUDA memory on GPU, host memory on CPU)


@dataclass
class OpRow:
    name: str  # an aten op, or a kernel launched outside any (Triton's), as "kernel NAME"
    calls: int  # per step
    ms: float  # per step: the GPU time of its kernels (on CPU: the op's own host time)


@dataclass
class Profile:
    rows: list  # NodeRow per node (training), then per node of the decode steps as "decode/NAME"
    phases: dict  # ms per step of forward, loss, backward, optimizer (and decode_step)
    ops: list  # OpRow, every op of the training steps, the most expensive first


@contextmanager
def native_stderr_silenced():
    """The profiler's native layer prints start/stop lines on stderr (fd 2); keep them off the user's terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run(ir: IR, logdir: Path, *, device: torch.device, batch: int, seq_len: int, steps: int = 3,
        decode: int = 0, precision: str = "auto", seed: int = 0, compiled: bool = False) -> Profile:
    """Profile `steps` training steps (after one wait and one warm-up step) and `decode` decode steps: per-node
    rows, per-phase totals and per-op totals (ms per step). `compiled`: the training steps run what `train.compile`
    runs, the model and its loss compiled together (graph_step.LMLoss, compiled during the unprofiled steps), so
    forward and loss are one phase; its fused kernels have no per-node ranges, so the node rows are left out and the
    op table lists inductor's kernels by name."""
    torch.manual_seed(seed)
    model = lower(ir).to(device).train()
    model.trace_ops = not compiled
    compiled_loss = compile_afresh(LMLoss(model)) if compiled else None
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, fused=device.type == "cuda")  # as train.py
    amp = autocast_for(device, precision)
    ids = torch.randint(0, ir.model.vocab, (batch, seq_len + 1), device=device)  # timing ignores token values
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    logdir.mkdir(parents=True, exist_ok=True)

    def train_step():
        if compiled:
            with record_function("forward + loss"), amp:
                loss = compiled_loss(ids[:, :-1], ids[:, 1:])
        else:
            with record_function("forward"), amp:
                logits = model(ids[:, :-1], keep_padding=True)
            with record_function("loss"):
                loss = lm_loss(logits, ids[:, 1:], model.vocab)
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)

    with native_stderr_silenced(), profile(activities=activities, schedule=schedule(wait=1, warmup=1, active=steps),
                                           on_trace_ready=tensorboard_trace_handler(str(logdir)), record_shapes=True,
                                           profile_memory=True) as prof:
        for _ in range(steps + 2):
            train_step()
            prof.step()
    rows, phases = _table(ir, prof, steps, (("forward + loss",) if compiled else ("forward", "loss"))
                          + ("backward", "optimizer"))
    rows = [] if compiled else rows
    ops = _ops(prof, steps, cuda=device.type == "cuda")
    if decode:
        model.eval()
        model.trace_ops = True  # decode steps run the eager model
        with native_stderr_silenced(), torch.no_grad(), amp, profile(
                activities=activities, record_shapes=True, profile_memory=True,
                on_trace_ready=tensorboard_trace_handler(str(logdir))) as dprof:
            state = model.init_state(1, device=device)
            for t in range(decode):
                with record_function("decode_step"):
                    _, state = model.step(ids[:1, t % seq_len], state)
        drows, dphases = _table(ir, dprof, decode, ("decode_step",))
        phases.update(dphases)
        rows += [NodeRow(f"decode/{r.name}", r.block, r.calls, r.cpu_ms, r.device_ms, r.memory_bytes) for r in drows]
    model.trace_ops = False
    return Profile(rows, phases, ops)


def _totals(prof) -> dict[str, dict]:
    """Per range name: calls, host time, device time (µs) and memory, merged over the host-side range and its
    GPU-side twin (with CUDA activity a range is recorded on both timelines under one name)."""
    out: dict[str, dict] = {}
    for e in prof.key_averages():
        t = out.setdefault(e.key, {"count": 0, "cpu": 0.0, "device": 0.0, "memory": 0})
        t["count"] = max(t["count"], e.count)
        t["cpu"] = max(t["cpu"], e.cpu_time_total)
        t["device"] = max(t["device"], getattr(e, "device_time_total", 0.0))
        t["memory"] = max(t["memory"], e.device_memory_usage or e.cpu_memory_usage)
    return out


def _kernel_name(name: str) -> str:
    """A CUDA kernel's name without its signature and template arguments."""
    name = name.removeprefix("void ")
    return re.split(r"[<(]", name, maxsplit=1)[0] or name


def _range_twin(event, kernel) -> bool:
    """Whether `kernel` is a record_function range's GPU-side twin (attached to the range like a kernel, under the
    range's name), not a kernel. Inductor launches each of its kernels inside a host range named like the kernel,
    which is no user annotation: that kernel counts. Torch versions without the flag keep the name rule alone."""
    return kernel.name == event.name and getattr(event, "is_user_annotation", True)


OPTIMIZER = "optimizer: "  # an op-table row's prefix for work inside the step's optimizer range


def _in(event, row: str) -> str:
    """The op-table row `row` of `event`, marked as the optimiser's where the event ran inside the training step's
    "optimizer" range (an unfused AdamW is many aten ops, lerp_, sqrt, ..., that other phases run too)."""
    parent = event
    while parent is not None:
        if parent.name == "optimizer":
            return OPTIMIZER + row
        parent = getattr(parent, "cpu_parent", None)
    return row


def _ops(prof, steps: int, cuda: bool) -> list[OpRow]:
    """Time per op over the training steps, most first: on GPU each kernel's time is charged to the aten op that
    launched it, or, for kernels launched outside any aten op (ours, inductor's), to the kernel itself; on CPU an
    aten op's own host time (its children excluded)."""
    totals: dict[str, list] = {}

    def add(name, us):
        t = totals.setdefault(name, [0, 0.0])
        t[0] += 1
        t[1] += us

    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CPU:
            continue
        if cuda:
            for k in e.kernels:
                if not _range_twin(e, k):
                    add(_in(e, e.name if e.name.startswith("aten::") else f"kernel {_kernel_name(k.name)}"),
                        k.duration)
        elif e.name.startswith("aten::") and e.self_cpu_time_total > 0:
            add(_in(e, e.name), e.self_cpu_time_total)
    rows = [OpRow(name, calls // steps, us / 1e3 / steps) for name, (calls, us) in totals.items()]
    return sorted(rows, key=lambda r: -r.ms)


def _table(ir: IR, prof, steps: int, phase_names) -> tuple[list[NodeRow], dict]:
    totals = _totals(prof)
    rows = []
    for n in ir.nodes():
        t = totals.get(n.name, {"count": 0, "cpu": 0.0, "device": 0.0, "memory": 0})
        rows.append(NodeRow(n.name, _label(n), t["count"] // steps, t["cpu"] / 1e3 / steps, t["device"] / 1e3 / steps,
                            int(t["memory"] / steps)))
    # a phase's wall time: its host range (the host waits for the GPU at the loss and optimiser syncs) or its kernels
    phases = {name: max(totals[name]["cpu"], totals[name]["device"]) / 1e3 / steps
              for name in phase_names if name in totals}
    return rows, phases


def _label(n) -> str:
    return n.block if n.op == "block" else n.op


def format_table(p: Profile, device: torch.device, ops: int = 0) -> str:
    """The per-node table and per-step totals; with `ops` > 0, then the `ops` most expensive ops."""
    cuda = device.type == "cuda"
    rows, phases = p.rows, p.phases
    head = ("node", "block", "calls", "host ms", "GPU ms" if cuda else "", "memory MiB", "share")
    timed = [r.device_ms if cuda else r.cpu_ms for r in rows if not r.name.startswith("decode/")]
    total = sum(timed) or 1.0
    lines = []
    for r in rows:
        t = r.device_ms if cuda else r.cpu_ms
        share = "" if r.name.startswith("decode/") else f"{100 * t / total:.1f}%"
        lines.append((r.name, r.block, str(r.calls), f"{r.cpu_ms:.3f}", f"{r.device_ms:.3f}" if cuda else "",
                      f"{r.memory_bytes / 2**20:.2f}", share))
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))  # noqa: E731
    out = [fmt(head), "-" * (sum(widths) + 2 * len(widths))] + [fmt(x) for x in lines]
    if not any(not r.name.startswith("decode/") for r in rows):
        out.insert(0, "training steps compiled: no per-node times (a compiled graph's fused kernels span nodes); "
                      "the op table below lists its kernels")
    out.append("per step: " + ", ".join(f"{k} {v:.2f} ms" for k, v in phases.items()))
    out.append("Node times are forward only (each node's profiler range); backward and the optimiser are in the "
               "per-step totals and, op by op, in the trace.")
    if ops and p.ops:
        out.append(_format_ops(p.ops, ops, cuda))
    return "\n".join(out)


def _format_ops(ops: list[OpRow], n: int, cuda: bool) -> str:
    total = sum(r.ms for r in ops) or 1.0
    kinds: dict[str, float] = {}
    for r in ops:
        kind = kind_of(r.name)
        kinds[kind] = kinds.get(kind, 0.0) + r.ms
    kind_width = max(len(k) for k in [*kinds, "kind"])
    out = [f"\n{'GPU' if cuda else 'own host'} time per training step by kind of work (forward, loss, backward and "
           f"optimizer; {total:.2f} ms in all)", f"{'kind':{kind_width}s}  {'ms':>8s}  {'share':>6s}"]
    out += [f"{k:{kind_width}s}  {ms:8.3f}  {100 * ms / total:5.1f}%"
            for k, ms in sorted(kinds.items(), key=lambda x: -x[1])]
    width = max(len(r.name[:70]) for r in ops[:n])
    out += [f"\ntop {min(n, len(ops))} of {len(ops)} ops by {'GPU' if cuda else 'own host'} time per training step",
            f"{'op':{width}s}  {'calls':>6s}  {'ms':>8s}  {'share':>6s}"]
    out += [f"{r.name[:70]:{width}s}  {r.calls:6d}  {r.ms:8.3f}  {100 * r.ms / total:5.1f}%" for r in ops[:n]]
    return "\n".join(out)


MATRIX_PRODUCTS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
                   "aten::mv", "aten::addmv", "aten::_scaled_mm", "aten::_grouped_mm"}
# kernels launched outside any aten op, by name: library GEMMs (cuBLAS, CUTLASS), inductor's GEMM templates
# (max-autotune's triton_tem_fused_mm_...), attention kernels and inductor's flex-attention templates
GEMM_NAMES = re.compile(r"gemm|xmma|cutlass|cublas|nvjet|^triton_tem_.*(mm|addmm|bmm)")
ATTENTION_NAMES = re.compile(r"attention|flash|fmha")


def kind_of(op: str) -> str:
    """The kind of work an op-table row is (OpRow.name): the matrix products (cuBLAS, whether eager or inductor's
    extern calls; GEMM kernels by name), attention, this project's Triton kernels (blocks/kernels), inductor's
    generated kernels (its fused elementwise work and reductions), the optimiser (whatever ran inside its range), and
    the rest."""
    if op.startswith(OPTIMIZER):
        return "optimizer"
    if op.startswith("kernel "):
        name = op.removeprefix("kernel ")
        if GEMM_NAMES.search(name):
            return "matrix products"
        if ATTENTION_NAMES.search(name):
            return "attention"
        if name.startswith("triton_"):  # inductor names its kernels triton_{poi,red,per,...}_...
            return "inductor's generated kernels"
        return "archsearch's Triton kernels" if name in fastpath.kernel_names() else "other kernels"
    if op in MATRIX_PRODUCTS:
        return "matrix products"
    if ATTENTION_NAMES.search(op):
        return "attention"
    return "other aten ops"
