"""The trainer's own loop on the ladder's models (issue 27 item 5): archsearch.train.train as a ladder run calls it, its
steady tokens/s (the number a run records, and from which the ladder's GPU-seconds come) in two forms side by side:
`waits`, the host reading every step's loss at once and copying batches from pageable memory (the trainer before
2026-12-05), and `overlaps`, the host queueing the next step first (archsearch/loss_queue.py, the default). Beside them
the step alone as rungs.py times it (forward + backward + AdamW back to back: no clipping, no batch sampling, no
loss read): the floor that the loop's own work adds to. Random tokens stand in for the corpus (the loop's cost does
not depend on what the tokens say). Every number is the median over 3 fresh processes with its spread.

    python benchmarks/train_loop.py [--ladder search_spaces/scaling_ladder.yaml] [--rungs 20m]
                                    [--families transformer pam_real] [--steps 300] [--processes 3]
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import fresh
from archsearch.compiler import compile_spec
from archsearch.context import autocast_for, device_name, resolve_device
from archsearch.ladder.config import load_ladder
from archsearch.ladder.plan import Job
from archsearch.ladder.specs import spec_of
from archsearch.lower import lower
from archsearch.tasks import LMTask
from archsearch.train import train
from e2e import time_form
from rungs import check_choices

ROOT = Path(__file__).resolve().parents[1]
FORMS = {"waits": False, "overlaps": True}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ladder", default=str(ROOT / "search_spaces/scaling_ladder.yaml"))
    p.add_argument("--rungs", nargs="+", default=["20m"])
    p.add_argument("--families", nargs="+", default=["transformer", "pam_real"])
    p.add_argument("--steps", type=int, default=300, help="optimiser steps a run (the first two are not timed)")
    p.add_argument("--vocab", type=int, default=4096, help="the ladder's tokenizer size (default 4096)")
    p.add_argument("--no-floor", action="store_true", help="skip the step alone")
    fresh.add_arguments(p)
    args = p.parse_args(argv)
    check_choices(p, args, load_ladder(args.ladder))
    if args.steps < 3:
        p.error(f"--steps: needs 3 or more (the first two are not timed), got {args.steps}")
    return args


def _task(vocab: int) -> LMTask:
    stream = np.random.default_rng(0).integers(0, vocab, 2_000_000, dtype=np.int64)
    return LMTask.from_streams({"train": stream, "validation": stream[:65_536]}, {"validation": 65_536}, vocab,
                               name="random tokens")


def measure(args) -> dict[str, float]:
    """{"FAMILY/RUNG/FORM@ms": ms a step, "FAMILY/RUNG@tokens": tokens a step} in this process."""
    device = resolve_device("auto")
    ladder = load_ladder(args.ladder)
    task = _task(args.vocab)
    out = {}
    for rung in args.rungs:
        for fam in args.families:
            if rung not in ladder.family(fam).rungs:
                continue
            spec = spec_of(ladder, Job(fam, rung, 1e-3, 0, "grid"))
            ir = compile_spec(spec, vocab=args.vocab)
            cfg = replace(spec.train, tokens=args.steps * spec.train.batch_tokens, evals=0)
            out[f"{fam}/{rung}@tokens"] = spec.train.batch_tokens
            for form, overlap in FORMS.items():
                torch.manual_seed(0)
                r = train(lower(ir), task, cfg, seq_len=spec.train.seq_len, progress=False, overlap=overlap,
                          label=f"{fam}/{rung} {form}")
                out[f"{fam}/{rung}/{form}@ms"] = spec.train.batch_tokens / r.tokens_per_s * 1e3
                print(f"{fam}/{rung} {form}: {out[f'{fam}/{rung}/{form}@ms']:.2f} ms a step", flush=True)
            if not args.no_floor:
                graph = cfg.cuda_graph and device.type == "cuda"
                how = "+".join(["compile"] * cfg.compile + ["graph"] * graph)  # as the trainer runs the step
                batch = spec.train.batch_tokens // spec.train.seq_len
                ms, _ = time_form(ir, how, batch, spec.train.seq_len, args.vocab, device,
                                  autocast_for(device, cfg.precision), 20, label=f"{fam}/{rung} step alone")
                out[f"{fam}/{rung}/step alone@ms"] = ms
    return out


def show(args, values: fresh.Values) -> None:
    card = device_name(resolve_device("auto"))
    print(f"\nthe trainer's loop on the ladder's models ({Path(args.ladder).name}), {args.steps} steps a run, "
          f"on {card}; {fresh.spread_note(values)}")
    print("ratio: the form's tokens/s over `waits`' in the same process")
    print(f"{'family/rung':20s} {'form':>12s} {'ms/step':>22s} {'tokens/s':>24s} {'ratio':>22s}")
    for cell in dict.fromkeys(k.rsplit("/", 1)[0] for k in values if k.endswith("@ms")):
        waits = values[f"{cell}/waits@ms"]
        for form in (*FORMS, "step alone"):
            ms = values.get(f"{cell}/{form}@ms")
            if ms is None:
                continue
            tps = [values[f"{cell}@tokens"][0] / m * 1e3 for m in ms]
            print(f"{cell:20s} {form:>12s} {fresh.cell(ms, '.2f', 22)} {fresh.cell(tps, ',.0f', 24)} "
                  f"{fresh.cell(fresh.ratio(waits, ms), '.3f', 21)}×")


def main() -> None:
    args = parse_args()
    show(args, fresh.over_processes(args, measure))


if __name__ == "__main__":
    main()
