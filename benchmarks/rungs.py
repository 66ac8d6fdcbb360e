"""The ladder's small models as they train (issue 27 item 5): each family at each rung of a ladder (about 2M, 6M and
20M non-embedding parameters, T = 512, 16,384 tokens a step, vocabulary 4,096), one optimiser step as the ladder runs
it (forward + backward replayed as a CUDA graph, fused AdamW) and compiled first, with tokens/s, model-FLOPs
utilisation (3 × the cost pass's forward FLOPs per token) and, on a GPU, the share of the step's wall time the GPU is
busy (the kernels' summed durations, torch.profiler): well below 1, the step waits on the host (launches, the
optimiser, Python), and more FLOPs per launch or fewer launches are what would speed it up. Every number is the
median over 3 fresh processes with its spread (benchmarks/fresh.py).

    python benchmarks/rungs.py [--ladder search_spaces/scaling_ladder.yaml] [--rungs 2m 6m 20m]
                               [--families transformer pam_real gla] [--forms graph compile+graph] [--processes 3]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import fresh
from archsearch.compiler import compile_spec
from archsearch.context import autocast_for, device_name, resolve_device
from archsearch.ladder.config import load_ladder
from archsearch.ladder.plan import Job
from archsearch.ladder.specs import non_embedding, spec_of
from e2e import time_form

ROOT = Path(__file__).resolve().parents[1]
FORMS = ("eager", "graph", "compile+graph")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ladder", default=str(ROOT / "search_spaces/scaling_ladder.yaml"))
    p.add_argument("--rungs", nargs="+", default=None, help="rungs to time (default: every rung)")
    p.add_argument("--families", nargs="+", default=["transformer", "pam_real", "gla"])
    p.add_argument("--forms", nargs="+", choices=FORMS, default=None,
                   help="default on a GPU: graph (as the ladder trains) and compile+graph; on CPU: eager")
    p.add_argument("--vocab", type=int, default=4096, help="the ladder's tokenizer size (default 4096)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--peak-tflops", type=float, default=989.4, help="the card's dense bf16 peak")
    fresh.add_arguments(p)
    args = p.parse_args(argv)
    ladder = load_ladder(args.ladder)
    args.rungs = args.rungs or [r.name for r in ladder.rungs]
    check_choices(p, args, ladder)
    if args.forms is None:
        args.forms = ["graph", "compile+graph"] if torch.cuda.is_available() else ["eager"]
    return args


def check_choices(p: argparse.ArgumentParser, args, ladder) -> None:
    """--rungs and --families name the ladder's own, or the parser stops with one line naming the ones it has."""
    for what, asked, there in (("rung", args.rungs, [r.name for r in ladder.rungs]),
                               ("family", args.families, [f.name for f in ladder.families])):
        if set(asked) - set(there):
            p.error(f"no {what} {sorted(set(asked) - set(there))} in {args.ladder}; it has {', '.join(there)}")


def measure(args) -> dict[str, float]:
    """{"FAMILY/RUNG/FORM@ms": ms a step, "…@busy": GPU-busy ms, "FAMILY/RUNG@flops" …} in this process."""
    device = resolve_device("auto")
    amp = autocast_for(device, "auto")
    ladder = load_ladder(args.ladder)
    out = {}
    for rung in args.rungs:
        for fam in args.families:
            if rung not in ladder.family(fam).rungs:
                continue
            spec = spec_of(ladder, Job(fam, rung, 1e-3, 0, "grid"))
            ir = compile_spec(spec, vocab=args.vocab)
            batch, seq = spec.train.batch_tokens // spec.train.seq_len, spec.train.seq_len
            out[f"{fam}/{rung}@flops"], out[f"{fam}/{rung}@tokens"] = ir.meta["flops"], batch * seq
            out[f"{fam}/{rung}@non_embedding"] = non_embedding(ir)
            for form in args.forms:
                if form != "eager" and device.type != "cuda":
                    continue
                label = f"{fam}/{rung} {form}"
                ms, busy = time_form(ir, "" if form == "eager" else form, batch, seq, args.vocab, device, amp,
                                     args.repeats, label=label, busy=True)
                out[f"{fam}/{rung}/{form}@ms"] = ms
                if busy is not None:
                    out[f"{fam}/{rung}/{form}@busy"] = busy
                print(f"{label}: {ms:.2f} ms a step", flush=True)
    return out


def show(args, values: fresh.Values) -> None:
    card = device_name(resolve_device("auto"))
    print(f"\none training step of the ladder's models ({Path(args.ladder).name}) on {card}; MFU against "
          f"{args.peak_tflops} TFLOPS; {fresh.spread_note(values)}")
    print(f"{'family/rung':20s} {'non-emb':>11s} {'form':>14s} {'ms/step':>22s} {'tokens/s':>24s} {'MFU':>6s} "
          f"{'GPU busy':>9s}")
    for key in dict.fromkeys(k.rsplit("@", 1)[0] for k in values if k.endswith("@ms")):
        cell, form = key.rsplit("/", 1)
        ms = values[f"{key}@ms"]
        tps = [values[f"{cell}@tokens"][0] / m * 1e3 for m in ms]
        mfu = 3 * values[f"{cell}@flops"][0] * fresh.median(tps) / (args.peak_tflops * 1e12)
        busy = values.get(f"{key}@busy")
        share = f"{fresh.median(fresh.ratio(busy, ms)):.0%}" if busy else "–"
        print(f"{cell:20s} {int(values[f'{cell}@non_embedding'][0]):11,d} {form:>14s} {fresh.cell(ms, '.2f', 22)} "
              f"{fresh.cell(tps, ',.0f', 24)} {mfu:6.1%} {share:>9s}")


def main() -> None:
    args = parse_args()
    show(args, fresh.over_processes(args, measure))


if __name__ == "__main__":
    main()
