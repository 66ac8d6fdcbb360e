"""The sequence-mixer cores alone, forward + backward, side by side (issue 7): PAM by the Triton kernels, in the
paper's O(T²) split-real dual form (fp32 and bf16) and in the chunked torch form; real gated linear attention
(kernels, dual, chunked) at the same head count; causal SDPA at 12 heads × 64 against PAM's 6 × 64 complex. Prints
ms, the ratio to SDPA and to the paper's form, and the card; then a T sweep with B·T fixed.

    python benchmarks/mixers.py [--batch 4 --seq 2048] [--sweep 1024 2048 4096 8192 16384 32768 --tokens 32768]
                                [--chunks] [--kernels]

"PAM triton, whole loops" is the kernels with their state loops never split into segments (SPLIT_WAVES = 0 in
blocks/kernels/memory.py; the decay gradient's scan, changed with the split, is the new one in both), timed beside the
default, which splits them where few programs would run them (long T, few sequences). `--chunks` adds the PAM
kernels at each chunk length they can take (32, 64, 128; 64 is the default), at B×T and in the sweep: what
ARCHSEARCH_KERNEL_TUNING=1 chooses between. `--tuned` adds "PAM triton, tuned" at B×T: the kernels with
ARCHSEARCH_KERNEL_TUNING=1 at the default chunk length (64, the quickest at every shape measured, docs/kernels.md),
every kernel's tiles, warps and stages tuned for the shape by Triton's autotuner (minutes of compiling), and prints
what it picked. Compare its GPU-busy and graphed columns with the default's: its eager wall time also holds the
autotuner's Python at each of its launches (tuning.launch), and under tuning two small buffers of the decay's
gradient are zeroed (memory.py), a few µs of GPU time. `--kernels` lists the kernels of PAM's, LA's and SDPA's calls at
B×T (GPU µs a call each, by torch.profiler): where the core's GPU time goes, before optimising it.

Wall time (CUDA events around each call, host launch gaps included) is the headline; on a GPU two more columns show
where the host is the bottleneck: the GPU-busy time (the kernels' summed durations, by torch.profiler) and, for the
kernel forms and SDPA, the wall time of the same call replayed as one CUDA graph (forward, the loss's sum and the
inputs' gradients captured together, as a graphed training step holds them: no host time between its kernels), at
B×T and at each length of the sweep.
Inputs are random, already projected (q, k, v, per-head log decay) and in the layout each form takes in the model
(the kernels: [re | im] per head, as blocks/kernels/complex_qkv.py writes them; the torch forms: re and im apart);
the projections are not timed. First every form
is checked against the step recurrence in fp32, forward and backward (the kernels' check mode; `--check-only` stops
there), and the bf16 kernels against fp32. Each shape is run twice before timing (kernel autotuning and compilation
happen then); a form that runs out of memory prints nan. Every number is the median over 3 fresh processes with its
spread, each ratio taken within a process (benchmarks/fresh.py; --processes 1 for one).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
from unittest import mock

import torch
import torch.nn.functional as F

import fresh
from archsearch.context import device_name, resolve_device
from archsearch.measure import time_ms
from archsearch.testing import rel_error
from blocks import fastpath, linear_core
from blocks.pam import complex_memory


def pam_inputs(b, h, t, d, device, dtype):
    g = torch.Generator(device="cpu").manual_seed(0)
    make = lambda *s: (torch.randn(*s, generator=g) / math.sqrt(d)).to(device, dtype).requires_grad_()  # noqa: E731
    parts = [make(b, h, t, d) for _ in range(6)]  # qr, qi, kr, ki, vr, vi
    log_g = (-torch.rand(b, h, t, generator=g) * 0.1).to(device).requires_grad_()
    return parts, log_g


def pair_inputs(parts):
    """PAM's inputs as the model hands them to the kernels (blocks/kernels/complex_qkv.py): q, k, v [B, H, T, 2d] as
    [re | im], one leaf each."""
    return [torch.cat([r, i], -1).detach().requires_grad_() for r, i in zip(parts[0::2], parts[1::2])]


def pam_pair_output(chunk: int | None = None):
    """(q, k, v, log_g) → PAM's output by the complex-pair kernels, in the inputs' dtype as the model asks for it
    (blocks/pam.py); chunk None: the default (or tuned) length."""
    from blocks.kernels.memory import complex_pair_memory

    return lambda q, k, v, log_g: complex_pair_memory(q, k, v, log_g, 1.0, chunk=chunk, y_in_q_dtype=True)


def pam_pair(chunk: int | None = None):
    """pam_pair_output on pair_inputs, summed in fp32 as SDPA's output is."""
    output = pam_pair_output(chunk)
    return lambda inputs, log_g: output(*inputs, log_g).float().sum()


def kernel_tuning():
    """ARCHSEARCH_KERNEL_TUNING=1 for the calls inside (blocks/kernels/tuning.py reads it at each call)."""
    return mock.patch.dict(os.environ, {"ARCHSEARCH_KERNEL_TUNING": "1"})


def form_context(name: str):
    """How a kernel form runs: its state loops whole (WHOLE), tuned (TUNED), or as the model runs it."""
    return whole_loops() if name == WHOLE else kernel_tuning() if name == TUNED else contextlib.nullcontext()


def tuned_picks() -> str:
    """What kernel tuning picked at the last tuned shape: each tuned kernel's (tuning.TILES) tiles, warps, stages."""
    parts = []
    for kernel in tuned_kernels():
        c = getattr(kernel, "best_config", None)
        if c is not None:
            parts.append(f"{kernel.fn.__name__} {c.kwargs['BK']}×{c.kwargs['BV']}, {c.num_warps} warps, "
                         f"{c.num_stages} stages")
    return "; ".join(parts) or "nothing tuned"


def tuned_kernels() -> list:
    """The memory kernels' autotuners, in the order tuning.TILES names them."""
    from blocks.kernels import memory_bwd, memory_fwd
    from blocks.kernels.tuning import TILES

    return [getattr(memory_fwd, name, None) or getattr(memory_bwd, name) for name in TILES]


@contextlib.contextmanager
def whole_loops():
    """The state kernels' chunk loops never split into segments (blocks/kernels/memory.py's SPLIT_WAVES = 0), timed
    beside the split."""
    from blocks.kernels import memory

    waves, memory.SPLIT_WAVES = memory.SPLIT_WAVES, 0
    try:
        yield
    finally:
        memory.SPLIT_WAVES = waves


def pam_core(mode):
    def run(parts, log_g):
        yr, yi = complex_memory(*parts, log_g, mode=mode, chunk=64)
        return yr.sum() + yi.sum()
    return run


def la_core(mode):
    def run(parts, log_g):
        q, k, v = parts[0][:, :, None], parts[2], parts[4]
        return linear_core.memory(q, k, v, log_g, mode, 64).sum()
    return run


def sdpa(b, t, device):
    g = torch.Generator(device="cpu").manual_seed(0)
    qkv = [torch.randn(b, 12, t, 64, generator=g).to(device, torch.bfloat16 if device.type == "cuda" else torch.float32)
           .requires_grad_() for _ in range(3)]
    return lambda: F.scaled_dot_product_attention(*qkv, is_causal=True).float().sum().backward()


WHOLE = "PAM triton, whole loops"  # the kernels without the state loops' split (whole_loops)
TUNED = "PAM triton, tuned"  # the kernels with ARCHSEARCH_KERNEL_TUNING=1 (--tuned)
QUADRATIC_LIMIT = 8192  # the O(T²) dual forms are left out of the sweep beyond this length (minutes per point)


def busy_ms(fn, iters: int = 5, per_kernel: dict | None = None) -> float:
    """GPU time per call: the summed duration of the kernels one call launches (torch.profiler), which leaves out
    the gaps where the GPU waits for the host to launch them. `per_kernel` receives each kernel's µs per call."""
    fn()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    if per_kernel is not None:
        for e in kernels:
            per_kernel[e.name] = per_kernel.get(e.name, 0.0) + e.device_time / iters
    return sum(e.device_time for e in kernels) / 1e3 / iters


PROFILED = ("PAM triton", TUNED, "LA triton 6×64", "SDPA causal 12×64")  # --kernels: the forms whose kernels are listed


def kernel_lines(values: dict, top: int = 12) -> list[str]:
    """--kernels' tables from {"kernels/FORM/KERNEL@us": [µs a call per process]}: per form, its kernels by median
    time, each with its share of the form's GPU time (kernels seen in fewer processes count as 0 in the others)."""
    forms: dict[str, dict[str, list[float]]] = {}
    for key, per_process in values.items():
        if key.startswith("kernels/") and key.endswith("@us"):
            form, kernel = key[len("kernels/"):-len("@us")].split("/", 1)
            forms.setdefault(form, {})[kernel] = per_process
    lines = []
    for form, kernels in forms.items():
        n = max(map(len, kernels.values()))
        med = {k: fresh.median(v + [0.0] * (n - len(v))) for k, v in kernels.items()}
        total = sum(med.values())
        lines.append(f"\n{form}: {len(kernels)} kernels, {total:.1f} µs a call (medians over processes)")
        for k, us in sorted(med.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"  {us:9.1f} µs {100 * us / total:5.1f}%  {k[:90]}")
    return lines


def time_forms(b, t, device, repeats, busy: dict | None = None, paper_fp32: bool = True, chunks: bool = False,
               kernels: dict | None = None, tuned: bool = False) -> dict:
    """Wall ms of each form; with `busy`, its GPU-busy ms too; with `kernels`, {FORM: {kernel: µs a call}} of the
    PROFILED forms."""
    def per_kernel(name):
        return kernels.setdefault(name, {}) if kernels is not None and name in PROFILED else None
    half = torch.bfloat16 if device.type == "cuda" else torch.float32
    fast = fastpath.kernels_available(device)
    forms = {"PAM triton": (pam_pair(), half), WHOLE: (pam_pair(), half)} if fast else {}
    if fast and tuned:
        forms[TUNED] = (pam_pair(64), half)  # the chunk length fixed: tuning it too would compile every tile thrice
    if fast and chunks:
        from blocks.kernels.memory import CHUNKS
        forms |= {f"PAM triton C={c}": (pam_pair(c), half) for c in CHUNKS}
    forms |= {"PAM dual fp32 (paper)": (pam_core("dual"), torch.float32),
             "PAM dual bf16": (pam_core("dual"), half),
             "PAM chunked (torch)": (pam_core("chunked"), half),
             **({"LA triton 6×64": (la_core("triton"), half)} if fast else {}),
             "LA dual 6×64": (la_core("dual"), half),
             "LA chunked 6×64 (torch)": (la_core("chunked"), half)}
    out = {}
    if not paper_fp32:
        forms.pop("PAM dual fp32 (paper)")
    for name, (fn, dtype) in forms.items():
        if "dual" in name and t > QUADRATIC_LIMIT:
            out[name] = float("nan")
            continue
        try:
            parts, log_g = pam_inputs(b, 6, t, 64, device, dtype)
            if name.startswith("PAM triton"):
                parts = pair_inputs(parts)
            with form_context(name):
                out[name] = time_ms(lambda: fn(parts, log_g).backward(), device, repeats=repeats, warmup=2)
                if busy is not None:
                    busy[name] = busy_ms(lambda: fn(parts, log_g).backward(), per_kernel=per_kernel(name))
        except torch.OutOfMemoryError:
            out[name] = float("nan")
        if device.type == "cuda":
            torch.cuda.empty_cache()
    out["SDPA causal 12×64"] = time_ms(sdpa(b, t, device), device, repeats=repeats, warmup=2)
    if busy is not None:
        busy["SDPA causal 12×64"] = busy_ms(sdpa(b, t, device), per_kernel=per_kernel("SDPA causal 12×64"))
    return out


def graphed_ms(b, t, device, repeats, tuned: bool = False) -> dict:
    """Wall ms of fwd+bwd of the kernel forms and SDPA, each captured once as one CUDA graph with the loss's sum and
    the inputs' gradients, alike for every form, and replayed on the same inputs."""
    parts, log_g = pam_inputs(b, 6, t, 64, device, torch.bfloat16)
    la = [x.detach().requires_grad_() for x in (parts[0][:, :, None], parts[2], parts[4])]
    g = torch.Generator(device="cpu").manual_seed(0)
    qkv = [torch.randn(b, 12, t, 64, generator=g).to(device, torch.bfloat16).requires_grad_() for _ in range(3)]
    forms = {"PAM triton": (pam_pair_output(), (*pair_inputs(parts), log_g)),
             "LA triton 6×64": (lambda q, k, v, lg: linear_core.memory(q, k, v, lg, "triton", 64), (*la, log_g)),
             "SDPA causal 12×64": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), qkv)}
    forms[WHOLE] = forms["PAM triton"]
    if tuned:  # at the chunk length time_forms tuned the tiles at
        forms[TUNED] = (pam_pair_output(64), forms["PAM triton"][1])
    out = {}
    for name, (fn, ins) in forms.items():
        with form_context(name):  # captured as the form runs
            graph, _ = captured_step(fn, ins)
        out[name] = time_ms(graph.replay, device, repeats=repeats, warmup=2)
        del graph
        torch.cuda.empty_cache()
    return out


def captured_step(fn, ins) -> tuple[torch.cuda.CUDAGraph, tuple]:
    """fn's forward, the sum of its output in fp32 and the gradients of its inputs that want one, captured as one
    CUDA graph (after two runs on a side stream: compilation, autotuning and the allocator's first blocks happen
    there). → (the graph, the gradients it writes at each replay: tensors in its memory, not added into .grad)."""
    wanted = [x for x in ins if x.requires_grad]

    def step():
        return torch.autograd.grad(fn(*ins).float().sum(), wanted)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        grads = step()
    return graph, grads


def check(device) -> None:
    """Every PAM form against the step recurrence on a short sequence in fp32, outputs and gradients, and real
    linear attention by the kernels against its recurrence; then the PAM kernels in bf16 against fp32."""
    parts, log_g = pam_inputs(1, 2, 200, 16, device, torch.float32)
    weight = torch.randn(1, 2, 200, 16, generator=torch.Generator().manual_seed(5)).to(device)

    def run_pam(mode, dtype=torch.float32):
        ins = [p.detach().to(dtype).requires_grad_() for p in (*parts, log_g)]
        yr, yi = complex_memory(*ins[:6], ins[6].float(), mode=mode, chunk=32)
        ((yr * weight).sum() + (yi * weight).sum()).backward()
        return [yr, yi] + [x.grad.float() for x in ins]

    def run_la(mode):
        ins = [p.detach().requires_grad_() for p in (parts[0][:, :, None], parts[2], parts[4], log_g)]
        y = linear_core.memory(*ins, mode, 64)
        (y * weight[:, :, None]).sum().backward()
        return [y] + [x.grad for x in ins]

    fast = fastpath.kernels_available(device)
    ref = run_pam("recurrent")
    for mode in ["dual", "chunked"] + (["triton"] if fast else []):
        for name, a, b in zip(("yr", "yi", "dqr", "dqi", "dkr", "dki", "dvr", "dvi", "dlog_g"), run_pam(mode), ref):
            err = rel_error(a, b)
            assert err < 1e-4, f"PAM {mode}: {name} relative error {err:.2e} against the recurrence"
    if fast:
        for name, a, b in zip(("y", "dq", "dk", "dv", "dlog_g"), run_la("triton"), run_la("recurrent")):
            err = rel_error(a, b)
            assert err < 1e-4, f"LA triton: {name} relative error {err:.2e} against the recurrence"
    if fast and device.type == "cuda":
        worst = max(rel_error(a, b) for a, b in zip(run_pam("triton", torch.bfloat16), ref))
        print(f"check: every PAM form matches the recurrence in fp32 (forward and backward); "
              f"the kernels in bf16: worst relative error {worst:.2e}")
        assert worst < 3e-2, f"PAM triton in bf16: relative error {worst:.2e} against fp32"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--sweep", type=int, nargs="*", default=[1024, 2048, 4096, 8192, 16384, 32768])
    p.add_argument("--tokens", type=int, default=32768, help="B·T of the sweep")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--check-only", action="store_true", help="run the checks against the recurrence, then stop")
    p.add_argument("--chunks", action="store_true", help="also time the PAM kernels at each chunk length")
    p.add_argument("--tuned", action="store_true",
                   help="also time the PAM kernels with tiles tuned for --batch × --seq (ARCHSEARCH_KERNEL_TUNING=1; "
                        "minutes)")
    p.add_argument("--kernels", action="store_true",
                   help="also list the kernels of PAM's, LA's and SDPA's calls at --batch × --seq with their GPU time")
    fresh.add_arguments(p)
    return p.parse_args(argv)


def measure(args) -> dict[str, float]:
    """{"main/FORM@ms" | "@busy" | "@graphed", "sweep/T/FORM@ms" | "@busy" | "@graphed"} in this process, after the
    checks."""
    device = resolve_device("auto")
    check(device)
    if args.check_only:
        return {}
    busy = {} if device.type == "cuda" else None
    kernels = {} if busy is not None and args.kernels else None
    res = time_forms(args.batch, args.seq, device, args.repeats, busy, chunks=args.chunks, kernels=kernels,
                     tuned=args.tuned)
    if TUNED in res:
        print(f"tuned at B={args.batch}, T={args.seq}: {tuned_picks()}", flush=True)
    graphs = (graphed_ms(args.batch, args.seq, device, args.repeats, args.tuned)
              if busy is not None and "PAM triton" in res else {})
    out = {f"main/{n}@ms": v for n, v in res.items()} | {f"main/{n}@busy": v for n, v in (busy or {}).items()}
    out |= {f"main/{n}@graphed": v for n, v in graphs.items()}
    out |= {f"kernels/{form}/{k}@us": us for form, ks in (kernels or {}).items() for k, us in ks.items()}
    print(f"B={args.batch}, T={args.seq}: " + ", ".join(f"{n} {v:.3f} ms" for n, v in res.items()), flush=True)
    for t in args.sweep:
        sweep_busy = {} if busy is not None else None
        b, repeats = max(1, args.tokens // t), max(3, args.repeats // 3)
        r = time_forms(b, t, device, repeats, sweep_busy, False, args.chunks)
        out |= {f"sweep/{t}/{n}@ms": v for n, v in r.items()} | {f"sweep/{t}/{n}@busy": v
                                                                  for n, v in (sweep_busy or {}).items()}
        if sweep_busy is not None and "PAM triton" in r:  # the kernel forms and SDPA as one CUDA graph each
            graphs = graphed_ms(b, t, device, repeats)
            out |= {f"sweep/{t}/{n}@graphed": v for n, v in graphs.items()}
        print(f"T sweep, T={t} done", flush=True)
    return out


def show(args, values: fresh.Values) -> None:
    if args.check_only:
        return
    card = device_name(resolve_device("auto"))
    sd = "SDPA causal 12×64"
    v = lambda key: values.get(key)  # noqa: E731
    names = [k[len("main/"):-len("@ms")] for k in values if k.startswith("main/") and k.endswith("@ms")]
    print(f"\nmixer cores, forward + backward, B={args.batch}, T={args.seq}, on {card}; ms, and each ratio taken "
          f"within a process; {fresh.spread_note(values)}"
          + ("" if torch.cuda.is_available() else "; on CPU the bf16 forms run in fp32"))
    paper = v("main/PAM dual fp32 (paper)@ms")
    print(f"  {'':26s} {'ms':>22s} {'/ SDPA':>18s} {'paper / this':>18s} {'GPU-busy / SDPA':>18s} "
          f"{'graphed ms':>22s} {'graphed / SDPA':>18s}")
    for n in names:
        ms = v(f"main/{n}@ms")
        busy, graphed = v(f"main/{n}@busy"), v(f"main/{n}@graphed")
        print(f"  {n:26s} {fresh.cell(ms, '.3f', 22)} {fresh.cell(fresh.ratio(ms, v(f'main/{sd}@ms')), '.2f', 17)}×"
              f" {fresh.cell(fresh.ratio(paper, ms), '.2f', 17)}×"
              + (f" {fresh.cell(fresh.ratio(busy, v(f'main/{sd}@busy')), '.2f', 17)}×" if busy else f" {'–':>18s}")
              + (f" {fresh.cell(graphed, '.3f', 22)} {fresh.cell(fresh.ratio(graphed, v(f'main/{sd}@graphed')), '.2f', 17)}×"
                 if graphed else ""))
    if args.kernels:
        print("\n".join(kernel_lines(values)) or "\n--kernels: no kernel profile (it needs a CUDA device)")
    if not args.sweep:
        return
    names = [n for n in names if "fp32" not in n and n != TUNED]  # the tuned form runs at B×T only
    for what, unit in (("ms", "ms, medians"), ("busy", "GPU-busy ms, medians"), ("graphed", "graphed ms, medians")):
        if not any(k.endswith("@" + what) and k.startswith("sweep/") for k in values):
            continue
        print(f"\nT sweep, B·T = {args.tokens} ({unit})")
        print(f"{'T':>7s} " + " ".join(f"{n[:16]:>16s}" for n in names))
        for t in args.sweep:
            print(f"{t:7d} " + " ".join(f"{fresh.median(v(f'sweep/{t}/{n}@{what}') or [float('nan')]):16.3f}"
                                        for n in names))
    lead = "PAM triton" if "PAM triton" in names else "PAM chunked (torch)"
    split = lead == "PAM triton" and WHOLE in names
    has_busy = v(f"sweep/{args.sweep[0]}/{lead}@busy") is not None
    has_graphed = v(f"sweep/{args.sweep[0]}/{lead}@graphed") is not None
    print(f"\nT sweep: {lead} / SDPA" + (" and / its whole loops (the split's gain where below 1)" if split else "")
          + (", then the same in GPU-busy time" if has_busy else "")
          + (", then graphed / SDPA graphed" if has_graphed else "") + ", per process, median [min–max]")
    for t in args.sweep:
        cols = [fresh.ratio(v(f"sweep/{t}/{lead}@{w}"), v(f"sweep/{t}/{other}@{w}"))
                for w in (("ms", "busy") if has_busy else ("ms",)) for other in ((sd, WHOLE) if split else (sd,))]
        if has_graphed:
            cols.append(fresh.ratio(v(f"sweep/{t}/{lead}@graphed"), v(f"sweep/{t}/{sd}@graphed")))
        print(f"{t:7d} " + " ".join(f"{fresh.cell(c, '.3f')}×" for c in cols))


def main() -> None:
    args = parse_args()
    show(args, fresh.over_processes(args, measure))


if __name__ == "__main__":
    main()
