"""Training throughput of the two 100M models side by side (issues 7, 27): tokens/s and model-FLOPs utilisation of a
full optimizer step (forward, backward, AdamW) at T = 2048 under bf16 autocast, for examples/paper_pam_100m.yaml and
examples/gpt2_100m.yaml; PAM also once on the pure-torch forms (what ran before the kernels), with --compile every
model also under torch.compile (with its loss, as train.compile compiles it), and with --cuda-graph every model
also with its forward + backward replayed as one CUDA graph (the trainer's `train.cuda_graph`), with both every
model also compiled and then graphed. Prints the card.

The ratio column stands against GPT-2 in its best form in the same run (its fastest row, named above the table); a
second column gives the ratio to GPT-2 in the row's own form. Every number is the median over 3 fresh processes with
its spread (benchmarks/fresh.py; --processes 1 for one); compiler logs go to a file named at the end.

    python benchmarks/e2e.py [--batch 8 --seq 2048] [--peak-tflops 989.4] [--compile] [--cuda-graph]
    python benchmarks/e2e.py --compile --cuda-graph --only compile+graph --sweep 1024 2048 4096 8192 16384

--sweep times each length at the same tokens a step (--tokens, default 16384) and prints tokens/s against T, the
length from which PAM trains at least as fast (the crossover), and plots it (--plot). With --save FILE (one process)
each length's numbers go to FILE as soon as every model has run at it, and a later run with the same FILE and
settings measures only the lengths FILE lacks, on the same card, then shows them all: a sweep longer than one time
limit (a lent GPU's call) is finished in several runs, each length's ratio still taken within one process.

Model FLOPs per token are 3× the analytic forward FLOPs of the cost pass (docs/costs.md), so MFU compares the same
definition across models; the peak defaults to the H100/H200 SXM dense bf16 figure.
"""
from __future__ import annotations

import argparse
import json
from contextlib import nullcontext
from pathlib import Path

import torch

import fresh
from archsearch.compiler import compile_spec
from archsearch.context import autocast_for, device_name, resolve_device
from archsearch.graph_step import GraphedMicroStep, LMLoss, compile_afresh, micro_loss
from archsearch.lower import lower
from archsearch.measure import time_ms
from archsearch.train import param_groups
from blocks import fastpath
from mixers import busy_ms

ROOT = Path(__file__).resolve().parents[1]


def make_step(loss_fn, batch: int, seq: int, vocab: int, device, amp, graphed: bool = False) -> tuple:
    """One optimiser step as the trainer runs it (archsearch/train.py): eager, or the forward + backward replayed as
    a CUDA graph (`train.cuda_graph`). → (step, micro): micro.eager is True where the graph could not be captured."""
    model = getattr(loss_fn, "_orig_mod", loss_fn).model
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, fused=device.type == "cuda")
    ids = torch.randint(0, vocab, (batch, seq + 1), device=device)
    micro = GraphedMicroStep(loss_fn, amp, 1, "e2e") if graphed else (lambda x, y: micro_loss(loss_fn, amp, x, y, 1))

    def step():
        micro(ids[:, :-1], ids[:, 1:])
        opt.step()
        opt.zero_grad(set_to_none=not graphed)
    return step, micro


FORMS = ("eager", "compile", "graph", "compile+graph")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--specs", nargs="+", default=[str(ROOT / "examples/paper_pam_100m.yaml"),
                                                  str(ROOT / "examples/gpt2_100m.yaml")])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--peak-tflops", type=float, default=989.4, help="the card's dense bf16 peak")
    p.add_argument("--no-torch-forms", action="store_true", help="skip PAM on the pure-torch forms")
    p.add_argument("--compile", action="store_true", help="also time every model under torch.compile (inductor)")
    p.add_argument("--compile-mode", default=None,
                   help="torch.compile mode of the compiled runs (default inductor's; e.g. max-autotune-no-cudagraphs)")
    p.add_argument("--only", nargs="+", choices=FORMS,
                   help="time only these rows (of those the other flags ask for), e.g. --only compile+graph")
    p.add_argument("--cuda-graph", action="store_true",
                   help="also time every model with forward + backward replayed as a CUDA graph (train.cuda_graph)")
    p.add_argument("--sweep", type=int, nargs="+", metavar="T",
                   help="instead of one shape: each sequence length T at --tokens tokens a step (batch = tokens / T), "
                        "every model in its --only forms; prints tokens/s against T and the crossover, and plots it")
    p.add_argument("--tokens", type=int, default=16384, help="tokens a step in a --sweep (default 16384)")
    p.add_argument("--plot", default="e2e_sweep.png", help="where a --sweep draws tokens/s against T")
    p.add_argument("--save", metavar="FILE", default=None,
                   help="with --sweep and --processes 1: keep each finished length's numbers in FILE (JSON), and "
                        "measure only the lengths FILE lacks (resumes a sweep cut short)")
    fresh.add_arguments(p)
    args = p.parse_args(argv)
    if args.sweep and any(args.tokens % t for t in args.sweep):
        p.error(f"--sweep: every T must divide --tokens {args.tokens} (one batch of whole sequences)")
    if args.save and not (args.sweep and args.processes == 1):
        p.error("--save: needs --sweep and --processes 1 (a saved length is one process's numbers)")
    if args.save and not Path(args.save).resolve().parent.is_dir():
        p.error(f"--save: no folder {Path(args.save).resolve().parent} to keep {Path(args.save).name} in")
    return args


def saved_settings(args, card: str) -> dict:
    """What a saved sweep's numbers depend on: a run resumes a file only where all of it matches."""
    return {"card": card, "specs": [Path(sp).stem for sp in args.specs], "tokens": args.tokens, "vocab": args.vocab,
            "repeats": args.repeats, "forms": sorted(args.only or FORMS), "compile": args.compile,
            "cuda_graph": args.cuda_graph, "compile_mode": args.compile_mode}


def load_saved(args, card: str) -> dict[str, float]:
    """The numbers a --save file holds ({} without one), or a one-line error where its settings differ."""
    if not args.save or not Path(args.save).exists():
        return {}
    try:
        saved = json.loads(Path(args.save).read_text())
        settings, values = saved["settings"], saved["values"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"error: --save {args.save}: not a sweep this benchmark saved ({type(e).__name__}: {e})")
    want = saved_settings(args, card)
    differ = [f"{k} {settings.get(k)!r} there, {v!r} here" for k, v in want.items() if settings.get(k) != v]
    if differ:
        raise SystemExit(f"error: --save {args.save} was measured otherwise ({'; '.join(differ)}): "
                         f"pass another file to start a new sweep")
    return values


def store(args, card: str, values: dict[str, float]) -> None:
    path = Path(args.save)
    tmp = path.with_name(path.name + ".tmp")  # replaced whole: a run killed while writing keeps the last file
    tmp.write_text(json.dumps({"settings": saved_settings(args, card), "values": values}, indent=1))
    tmp.replace(path)


def runs_of(args, ir, name: str, device) -> list[tuple[str, object, str]]:
    """(row label, forms context, how) for one model: the forms the flags ask for."""
    runs = [(name, nullcontext, "")] + ([(f"{name} compiled", nullcontext, "compile")] if args.compile else [])
    graphs = args.cuda_graph and device.type == "cuda"
    runs += [(f"{name} CUDA graph", nullcontext, "graph")] if graphs else []
    runs += [(f"{name} compiled+graph", nullcontext, "compile+graph")] if graphs and args.compile else []
    if not args.no_torch_forms and not args.sweep and any(n.block in ("pam", "linear_attention") for n in ir.nodes()):
        runs.append((f"{name} (torch forms)", fastpath.reference_forms, ""))
    return [r for r in runs if not args.only or (r[2] or "eager") in args.only]


def measure(args) -> dict[str, float]:
    """{"ROW@T": ms per step, "flops@MODEL": forward FLOPs per token, "params@MODEL": parameters} in this process."""
    device = resolve_device("auto")
    amp = autocast_for(device, "auto")
    if args.cuda_graph and device.type != "cuda":
        print("--cuda-graph: no GPU here, so no graphed runs")
    shapes = [(args.tokens // t, t) for t in args.sweep] if args.sweep else [(args.batch, args.seq)]
    card = device_name(device)
    out, irs = load_saved(args, card), {}
    for spec in args.specs:
        name = Path(spec).stem
        irs[name] = compile_spec(spec, vocab=args.vocab, seq_len=max(t for _, t in shapes))
        out[f"flops@{name}"], out[f"params@{name}"] = irs[name].meta["flops"], irs[name].meta["params"]
    # length by length, every model at each: a run cut short (a time limit) has printed, and saved, whole lengths
    for batch, seq in shapes:
        runs = [(ir, *run) for name, ir in irs.items() for run in runs_of(args, ir, name, device)]
        if all(f"{label}@{seq}" in out for _, label, _, _ in runs):
            print(f"T {seq}: in {args.save}, not measured again", flush=True)
            continue
        for ir, label, forms, how in runs:
            ms, _ = time_form(ir, how, batch, seq, args.vocab, device, amp, args.repeats,
                              compile_mode=args.compile_mode, forms=forms, label=label)
            out[f"{label}@{seq}"] = ms
            print(f"{label}, T {seq}: {ms:.1f} ms per step", flush=True)
        if args.save:
            store(args, card, out)
    return out


def time_form(ir, how: str, batch: int, seq: int, vocab: int, device, amp, repeats: int, *, compile_mode=None,
              forms=nullcontext, label: str = "", busy: bool = False) -> tuple[float, float | None]:
    """(ms of one optimiser step, its GPU-busy ms or None) of a fresh model of `ir` in one form: how is "" (eager),
    "compile", "graph" or "compile+graph"; nan where it ran out of memory, failed to compile or was not captured."""
    torch.manual_seed(0)
    model = LMLoss(lower(ir).to(device).train())  # compiled with its loss, as train.compile does
    if how.startswith("compile"):
        model = compile_afresh(model, mode=compile_mode)
    ms = gpu = float("nan")
    with forms():
        try:
            step, micro = make_step(model, batch, seq, vocab, device, amp, how.endswith("graph"))
            ms = time_ms(step, device, repeats=repeats, warmup=3)
            if how.endswith("graph") and micro.eager:
                print(f"{label}: not captured, ran eagerly; not counted")
                ms = float("nan")
            elif busy and device.type == "cuda":
                gpu = busy_ms(step)
        except torch.OutOfMemoryError:
            pass
        except Exception as e:  # a compile that fails is a result too: say why, time the rest
            if not how.startswith("compile"):
                raise
            print(f"{label}: failed ({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})")
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return ms, (gpu if busy and device.type == "cuda" else None)


def show(args, values: fresh.Values) -> None:
    card = device_name(resolve_device("auto"))
    rows = list(dict.fromkeys(k.rsplit("@", 1)[0] for k in values if "@" in k and not k.startswith(("flops@", "params@"))))
    models = [Path(sp).stem for sp in args.specs]
    base_model = next((m for m in models if "gpt2" in m), models[-1])
    model_of = {r: next(m for m in models if r == m or r.startswith(m + " ")) for r in rows}
    tokens = lambda r, t: [(args.tokens if args.sweep else args.batch * t) / ms * 1e3 for ms in values[f"{r}@{t}"]]  # noqa: E731
    base = [r for r in rows if model_of[r] == base_model]

    def best(t):  # the baseline's fastest form at this length
        return max(base, key=lambda r: fresh.median(tokens(r, t)))
    if args.sweep:
        _show_sweep(args, values, rows, base_model, model_of, tokens, best, card)
        return
    t = args.seq
    print(f"\ntraining step (forward, backward, AdamW), B={args.batch}, T={t}, bf16, on {card}; MFU against "
          f"{args.peak_tflops} TFLOPS; {fresh.spread_note(values)}")
    print(f"tokens/s ratio: against {base_model} in its best form ({best(t) if base else '–'}), taken within each "
          f"process; 'same form': against {base_model} in the row's own form")
    print(f"{'model':34s} {'params':>12s} {'ms/step':>22s} {'tokens/s':>10s} {'MFU':>6s} {'ratio (best form)':>24s} "
          f"{'ratio (same form)':>24s}")
    for r in rows:
        m = model_of[r]
        tps = tokens(r, t)
        mfu = 3 * values[f"flops@{m}"][0] * fresh.median(tps) / (args.peak_tflops * 1e12)
        same = next((b for b in base if b[len(base_model):] == r[len(m):]), None)
        vs_best = fresh.cell(fresh.ratio(tps, tokens(best(t), t)), ".2f") + "×" if base else "–"
        vs_same = fresh.cell(fresh.ratio(tps, tokens(same, t)), ".2f") + "×" if same else "–"
        print(f"{r:34s} {int(values[f'params@{m}'][0]):12,d} {fresh.cell(values[f'{r}@{t}'], '.1f', 22)} "
              f"{fresh.median(tps):10,.0f} {mfu:6.1%} {vs_best:>24s} {vs_same:>24s}")


def _show_sweep(args, values, rows, base_model, model_of, tokens, best, card) -> None:
    print(f"\ntokens/s against T at {args.tokens:,} tokens a step (forward, backward, AdamW; bf16) on {card}; "
          f"{fresh.spread_note(values)}; ratio against {base_model}'s best form at each T")
    print(f"{'T':>6s} " + " ".join(f"{r:>30s}" for r in rows) + f" {'best other / best ' + base_model:>30s}")
    others = [r for r in rows if model_of[r] != base_model]
    ratios = {}
    for t in args.sweep:
        top = max(others, key=lambda r: fresh.median(tokens(r, t))) if others else None
        ratios[t] = fresh.ratio(tokens(top, t), tokens(best(t), t)) if top else [float("nan")]
        print(f"{t:6d} " + " ".join(fresh.cell(tokens(r, t), ",.0f", 30) for r in rows)
              + f" {fresh.cell(ratios[t], '.2f', 29)}×")
    above = [t for t in args.sweep if fresh.median(ratios[t]) >= 1.0]
    print(f"crossover (the others' fastest form trains at least as many tokens/s as {base_model}'s fastest): "
          f"{'from T = ' + str(above[0]) if above else 'none up to T = ' + str(args.sweep[-1])}")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in rows:
        med = [fresh.median(tokens(r, t)) for t in args.sweep]
        lo = [min(tokens(r, t)) for t in args.sweep]
        hi = [max(tokens(r, t)) for t in args.sweep]
        ax.plot(args.sweep, med, marker="o", label=r)
        ax.fill_between(args.sweep, lo, hi, alpha=0.2)
    ax.set(xscale="log", xlabel="sequence length T", ylabel="training tokens/s",
           title=f"{args.tokens:,} tokens a step, {card}")
    ax.minorticks_off()
    ax.set_xticks(args.sweep, [str(t) for t in args.sweep])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}")


def main() -> None:
    args = parse_args()
    show(args, fresh.over_processes(args, measure))


if __name__ == "__main__":
    main()
