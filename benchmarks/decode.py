"""Decode latency side by side: the 100M PAM against the 100M GPT-2 with its KV cache, at several context lengths
(issues 7, 14, 27). Prints ms per decode step (and, at a batch above 1, tokens per second), the PAM/GPT-2 ratio per
context against GPT-2's best form (its fastest row, named) and against each of its forms, optionally the prefill of
one long prompt, and the card. Every number is the median over 3 fresh processes with its spread (benchmarks/fresh.py;
--processes 1 for one); compiler logs go to a file named at the end. The default run (8k and 32k, batch 1, bf16
weights for both models) took 171 s on an H200 (issue 27 asks for under 3 minutes).
Each model decodes eagerly (model.step, one Python call per layer); on a GPU each is also timed as one CUDA graph
per step (archsearch.decode.GraphedDecoder), and as a graph of its torch.compile'd step (inductor's default mode;
--compile-mode max-autotune-no-cudagraphs also tunes the one-row matmuls, for both models alike; an attention model is
compiled once per context, since its graph's cache length is). The transformer's KV cache is bf16 on the GPU (its
compute dtype), fp32 on CPU. Eagerly SDPA reads the first C+1 entries; graphed it attends over a cache cut to C +
repeats + 16 entries with the unwritten ones masked (a graph has fixed shapes; the slack holds the timed steps' own
tokens), one graph per context. A model with PAM layers has one more row: its compiled+graph step with the fused
decode kernels (each pre-norm CGU and PAM sublayer of the paper's skeleton in 2 and 3 kernels,
blocks/kernels/cgu_step.py and pam_step.py), timed in the same run (--no-fused-step leaves it out); its other graphed
rows run the ops as written. The fused step is GraphedDecoder's default at batch 1, its best form there; at batch 64
the plain compiled step is quicker.

    python benchmarks/decode.py [--contexts 8192 32768] [--specs A.yaml B.yaml] [--batch 64] [--prefill 8192]
                                [--kernels N [--kernel-sequence N]] [--compile-mode MODE] [--no-compile [MODEL ...]]
                                [--weights fp32] [--no-fused-step] [--processes 3]

At --batch 64 and 32k context GPT-2's bf16 KV cache is 77 GB: the state is filled in place and the graphed decoder
decodes in the same buffers (no copy), so one cache is allocated per context.

The state at context C is built directly (every position counter set to C, caches and recurrent states filled with
random values) instead of by stepping through C tokens: a step's work depends on the state's size and position, not
on its values, and stepping through 32k tokens first would take minutes. Each model's seq_len is raised to fit the
longest context (GPT-2's learned position table grows with it).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import fresh
from archsearch.compiler import compile_spec
from archsearch.context import autocast_for, device_name, resolve_device
from archsearch.decode import GraphedDecoder, cut_caches, map_state
from blocks.complex import frozen_weights
from archsearch.lower import lower
from archsearch.measure import time_ms
from archsearch.spec import load_spec
from blocks.pam import PAM

ROOT = Path(__file__).resolve().parents[1]


def at_context(state, context: int):
    """The decode state after `context` tokens, as far as a step's cost is concerned, filled in place: every integer
    (a Python int or an integer tensor) in a block's state is its position counter; float tensors get random
    contents."""
    def leaf(x):
        if isinstance(x, torch.Tensor):
            return x.normal_(0.0, 0.02) if x.is_floating_point() else x.fill_(context)
        return context if isinstance(x, int) and not isinstance(x, bool) else x
    return map_state(leaf, state)


def covered(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of (start, end) intervals: the time some kernel is on the GPU. Under programmatic
    dependent launch a kernel starts (and waits) before the one before it ends, so the kernels' times summed count
    the overlap twice."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        total += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return total


def kernel_table(fn, steps: int = 5, top: int = 6, sequence: int = 0) -> str:
    """What the GPU runs in one call of fn (a graphed decode step): kernels per step, their GPU time, and the `top`
    kernels by time — where a step's time goes when it is bound by the number of kernels, not by bytes or FLOPs.
    `sequence`: also the first that many kernels of one step in launch order, with their start times (one layer's
    kernels, read in order, show which op each belongs to)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    by_name: dict[str, list[float]] = {}
    for e in kernels:
        by_name.setdefault(e.name, []).append(e.time_range.elapsed_us())
    total = sum(map(sum, by_name.values())) / steps
    busy = covered([(e.time_range.start, e.time_range.end) for e in kernels])
    lines = [f"    {len(kernels) / steps:.0f} kernels per step, {total / 1000:.3f} ms of kernel time summed, "
             f"{busy / steps / 1000:.3f} ms with a kernel on the GPU (kernels launched dependently overlap)"]
    for name, us in sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:top]:
        lines.append(f"    {len(us) / steps:5.0f} × {sum(us) / len(us):6.2f} us  {name[:90]}")
    if sequence:
        first = sorted(kernels, key=lambda e: e.time_range.start)[:sequence]
        lines.append("    the first kernels of a step in launch order: start and duration (us)")
        lines += [f"    {e.time_range.start - first[0].time_range.start:8.1f} {e.time_range.elapsed_us():7.2f}  "
                  f"{e.name[:110]}" for e in first]
    return "\n".join(lines)


def slack(args) -> int:
    """Cache entries past the context in a graphed attention step: room for every step one graph replays (the timing's
    warm-up and repeats, and the kernel listing's six), each of which writes its token into the cache."""
    return args.repeats + 16


def load(spec_path: str, seq_len: int, vocab: int):
    """The model of `spec_path` with its seq_len raised to at least `seq_len`."""
    spec = load_spec(spec_path)
    return lower(compile_spec(spec, vocab=vocab, seq_len=max(spec.model.seq_len, seq_len)))


def prefill_ms(model, length: int, vocab: int, device, amp, repeats: int) -> float:
    """One forward pass over a prompt of `length` tokens at batch 1 (no gradients): the prefill before decoding."""
    ids = torch.randint(0, vocab, (1, length), device=device)
    with torch.no_grad(), amp:
        return time_ms(lambda: model(ids), device, repeats=repeats, warmup=2)


def built(row: str, make):
    """make(), a graphed decoder, between two lines: compiling a form takes tens of seconds, and where a build stalls
    the output names it."""
    print(f"  {row}: building its graph", flush=True)
    start = time.perf_counter()
    graphed = make()
    print(f"  {row}: built in {time.perf_counter() - start:.0f} s", flush=True)
    return graphed


def decode_rows(model, name: str, args, device, amp) -> dict[str, dict[int, float]]:
    """{row label: {context: ms per decode step}}: eager, and on a GPU as a CUDA graph (and compiled)."""
    b = args.batch
    compiled = args.no_compile is None or (args.no_compile != [] and name not in args.no_compile)
    cache_dtype = torch.bfloat16 if device.type == "cuda" else None
    kv_cache = any(hasattr(blk, "cut_cache") for blk in model.blocks.values())  # a cache the graph attends over whole
    # the graphed forms: (label, compile, fused)
    forms = [("CUDA graph", False, False)] + ([("compiled+graph", args.compile_mode, False)] if compiled else [])
    if compiled and args.fused_step and any(isinstance(m, PAM) for m in model.modules()):
        forms.append(("compiled+graph, fused step", args.compile_mode, True))
    graphs = {}  # a recurrent model's graph serves every context; an attention model gets one per context
    if device.type == "cuda" and not kv_cache:
        graphs = {label: built(f"{name} {label}", lambda: GraphedDecoder(model, b, device, autocast=torch.bfloat16,
                                                                         compile=how, fused=fused))
                  for label, how, fused in forms}
    rows = {f"{name} eager": {}} | {f"{name} {label}": {} for label in graphs}
    if device.type == "cuda" and kv_cache:
        rows |= {f"{name} {label}": {} for label, _, _ in forms}

    def time_graph(graphed, row: str, c: int) -> None:
        rows[row][c] = time_ms(lambda: graphed(tok), device, repeats=args.repeats, warmup=3)
        print(f"  {row}, context {c}: {rows[row][c]:.3f} ms", flush=True)
        if args.kernels and c == args.contexts[0]:
            table = kernel_table(lambda: graphed(tok), top=args.kernels, sequence=args.kernel_sequence)
            print(f"  {row}, context {c}:\n{table}", flush=True)
    for c in args.contexts:
        state = at_context(model.init_state(b, device=device, dtype=cache_dtype), c)
        tok = torch.randint(0, args.vocab, (b,), device=device)
        with torch.no_grad(), amp, frozen_weights(model):  # the eager step's best form: weights built once
            rows[f"{name} eager"][c] = time_ms(lambda: model.step(tok, state), device, repeats=args.repeats, warmup=3)
        print(f"  {name} eager, context {c}: {rows[f'{name} eager'][c]:.3f} ms", flush=True)
        if device.type == "cuda" and kv_cache:  # decodes in the (cut) cache itself: no second copy of it
            cut = cut_caches(model, state, c + slack(args))
            for label, how, fused in forms:
                graphed = built(f"{name} {label}, context {c}", lambda: GraphedDecoder(
                    model, b, device, autocast=torch.bfloat16, state=cut, compile=how, fused=fused))
                time_graph(graphed, f"{name} {label}", c)
                del graphed
        for label, graphed in graphs.items():
            graphed.load(state)
            time_graph(graphed, f"{name} {label}", c)
        state = None  # this context's cache freed before the next one is allocated
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contexts", type=int, nargs="+", default=[8192, 32768])
    p.add_argument("--specs", nargs="+", default=[str(ROOT / "examples/paper_pam_100m.yaml"),
                                                  str(ROOT / "examples/gpt2_100m.yaml")])
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--batch", type=int, default=1, help="sequences decoded together (default 1)")
    p.add_argument("--prefill", type=int, default=0, metavar="T", help="also time the forward pass of a T-token prompt")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--weights", choices=["fp32", "bf16"], default="bf16",
                   help="parameters stored in bf16, as served (default: each model's quickest form), or as trained "
                        "(fp32, cast under autocast every step)")
    p.add_argument("--kernels", type=int, default=0, metavar="N",
                   help="on a GPU, also count each graphed step's kernels at the first context and list the N costliest")
    p.add_argument("--kernel-sequence", type=int, default=0, metavar="N",
                   help="with --kernels, also list the first N kernels of one step in launch order")
    p.add_argument("--compile-mode", default="default",
                   help="torch.compile mode of every compiled step (default: inductor's default, no autotuning; "
                        "max-autotune-no-cudagraphs also tunes the one-row matmuls, which takes minutes per model)")
    p.add_argument("--fused-step", action=argparse.BooleanOptionalAction, default=True,
                   help="time each PAM model's compiled+graph step with the fused decode kernels too (pre-norm CGU "
                        "and PAM sublayers, blocks/kernels/cgu_step.py, pam_step.py; GraphedDecoder's default at "
                        "batch 1; on by default)")
    p.add_argument("--no-compile", nargs="*", metavar="MODEL",
                   help="skip the torch.compile'd graphs, of every model or of the models named (a spec's file stem, "
                        "e.g. gpt2_100m); their ratios then stand against a weaker form than the baseline's best")
    fresh.add_arguments(p)
    args = p.parse_args(argv)
    stems = [Path(sp).stem for sp in args.specs]
    if args.no_compile and not set(args.no_compile) <= set(stems):
        p.error(f"--no-compile names a model not in --specs: {sorted(set(args.no_compile) - set(stems))}; "
                f"the models are {stems}")
    if args.batch < 1 or min(args.contexts) < 1 or args.prefill < 0:
        p.error("--batch and --contexts need positive numbers, --prefill a length >= 0")
    return args


def measure(args) -> dict[str, float]:
    """{"ROW@CONTEXT": ms per decode step, "prefill@MODEL": ms, "card": …} in this process."""
    device = resolve_device("auto")
    amp = autocast_for(device, "auto")
    out: dict[str, float] = {}
    for spec in args.specs:
        name = Path(spec).stem
        torch.manual_seed(0)
        model = load(spec, max(args.contexts + [args.prefill]) + slack(args), args.vocab).to(device).eval()
        if args.weights == "bf16":  # parameters only: buffers such as RoPE's frequencies keep their precision
            for prm in model.parameters():
                prm.data = prm.data.to(torch.bfloat16)
        print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters", flush=True)
        if args.prefill:
            out[f"prefill@{name}"] = prefill_ms(model, args.prefill, args.vocab, device, amp, max(3, args.repeats // 4))
        for row, by_context in decode_rows(model, name, args, device, amp).items():
            out |= {f"{row}@{c}": ms for c, ms in by_context.items()}
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def show(args, values: fresh.Values) -> None:
    card = device_name(resolve_device("auto"))
    names = list(dict.fromkeys(k.rsplit("@", 1)[0] for k in values if not k.startswith("prefill@")))
    base_model = next((Path(sp).stem for sp in args.specs if "gpt2" in Path(sp).stem), Path(args.specs[-1]).stem)
    base = [n for n in names if n.startswith(base_model + " ")]
    print(f"\ndecode latency, ms per step at batch {args.batch}, {args.weights} weights, on {card}; "
          f"{fresh.spread_note(values)}")
    width = max(24, *(len(n) for n in names)) + 2
    print(f"{'context':>8s} " + " ".join(f"{n:>{width}s}" for n in names))
    for c in args.contexts:
        print(f"{c:8d} " + " ".join(fresh.cell(values[f"{n}@{c}"], width=width) for n in names))
    others = [n for n in names if n not in base]
    if others and base:
        print(f"\nratio to {base_model} in its best form (its fastest row at each context, named): taken within each "
              f"process, then the median [min–max] over processes")
        for c in args.contexts:
            best = min(base, key=lambda b: fresh.median(values[f"{b}@{c}"]))
            for n in others:
                r = fresh.ratio(values[f"{n}@{c}"], values[f"{best}@{c}"])
                print(f"{c:8d} {n:{width}s} {fresh.cell(r, '.2f')}×  (against {best})")
    if others and len(base) > 1:
        print("\nratio to each form of the baseline (the weaker forms labelled by their row)")
        print(f"{'context':>8s} {'':{width}s} " + " ".join(f"{n:>{width}s}" for n in base))
        for c in args.contexts:
            for n in others:
                print(f"{c:8d} {n:{width}s} " + " ".join(
                    f"{fresh.cell(fresh.ratio(values[f'{n}@{c}'], values[f'{b}@{c}']), '.2f', width - 1)}×"
                    for b in base))
    if args.batch > 1:
        print(f"\ndecode throughput, tokens/s at batch {args.batch} (batch / step time)")
        for c in args.contexts:
            print(f"{c:8d} " + " ".join(
                fresh.cell([args.batch * 1000 / ms for ms in values[f"{n}@{c}"]], ",.0f", width) for n in names))
    prefill = {k.split("@", 1)[1]: v for k, v in values.items() if k.startswith("prefill@")}
    if prefill:
        ref = next((n for n in prefill if "gpt2" in n), list(prefill)[-1])
        print(f"\nprefill of {args.prefill} tokens at batch 1, on {card}; ratio: each / {ref}")
        for n, ms in prefill.items():
            print(f"  {n:24s} {fresh.cell(ms, '.2f')} ms  ({fresh.cell(fresh.ratio(ms, prefill[ref]), '.2f')}×)")


def main() -> None:
    args = parse_args()
    show(args, fresh.over_processes(args, measure))


if __name__ == "__main__":
    main()
