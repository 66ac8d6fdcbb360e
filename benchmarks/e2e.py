"""Training throughput of the two 100M models side by side (issue 7): tokens/s and model-FLOPs utilisation of a full
optimizer step (forward, backward, AdamW) at T = 2048 under bf16 autocast, for examples/paper_pam_100m.yaml and
examples/gpt2_100m.yaml; PAM also once on the pure-torch forms (what ran before the kernels), with --compile every
model also under torch.compile (with its loss, as train.compile compiles it), and with --cuda-graph every model
also with its forward + backward replayed as one CUDA graph (the trainer's `train.cuda_graph`), with both every
model also compiled and then graphed. Prints the card.

    python benchmarks/e2e.py [--batch 8 --seq 2048] [--peak-tflops 989.4] [--compile] [--cuda-graph]

Model FLOPs per token are 3× the analytic forward FLOPs of the cost pass (docs/costs.md), so MFU compares the same
definition across models; the peak defaults to the H100/H200 SXM dense bf16 figure.
"""
from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path

import torch

from archsearch.compiler import compile_spec
from archsearch.graph_step import GraphedMicroStep, LMLoss, micro_loss
from archsearch.lower import lower
from archsearch.measure import time_ms
from archsearch.train import param_groups
from blocks import fastpath

ROOT = Path(__file__).resolve().parents[1]


def step_ms(loss_fn, batch: int, seq: int, vocab: int, device, amp, repeats: int, graphed: bool = False) -> tuple:
    """One optimiser step as the trainer runs it (archsearch/train.py): eager, or the forward + backward replayed as
    a CUDA graph (`train.cuda_graph`). → (ms, whether it ran as asked: False where the graph could not be captured
    and the steps ran eagerly)."""
    model = getattr(loss_fn, "_orig_mod", loss_fn).model
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, fused=device.type == "cuda")
    ids = torch.randint(0, vocab, (batch, seq + 1), device=device)
    micro = GraphedMicroStep(loss_fn, amp, 1, "e2e") if graphed else (lambda x, y: micro_loss(loss_fn, amp, x, y, 1))

    def step():
        micro(ids[:, :-1], ids[:, 1:])
        opt.step()
        opt.zero_grad(set_to_none=not graphed)

    ms = time_ms(step, device, repeats=repeats, warmup=3)
    return ms, not (graphed and micro.eager)


def main() -> None:
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
    p.add_argument("--only", nargs="+", choices=["eager", "compile", "graph", "compile+graph"],
                   help="time only these rows (of those the other flags ask for), e.g. --only compile+graph")
    p.add_argument("--cuda-graph", action="store_true",
                   help="also time every model with forward + backward replayed as a CUDA graph (train.cuda_graph)")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    card = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    if args.cuda_graph and device.type != "cuda":
        print("--cuda-graph: no GPU here, so no graphed runs")
    rows = []
    for spec in args.specs:
        ir = compile_spec(spec, vocab=args.vocab, seq_len=args.seq)
        name = Path(spec).stem
        runs = [(name, nullcontext, "")] + ([(f"{name} compiled", nullcontext, "compile")] if args.compile else [])
        graphs = args.cuda_graph and device.type == "cuda"
        runs += [(f"{name} CUDA graph", nullcontext, "graph")] if graphs else []
        runs += [(f"{name} compiled+graph", nullcontext, "compile+graph")] if graphs and args.compile else []
        if not args.no_torch_forms and any(n.block in ("pam", "linear_attention") for n in ir.nodes()):
            runs.append((f"{name} (torch forms)", fastpath.reference_forms, ""))
        runs = [r for r in runs if not args.only or (r[2] or "eager") in args.only]
        for label, forms, how in runs:
            torch.manual_seed(0)
            model = LMLoss(lower(ir).to(device).train())  # compiled with its loss, as train.compile does
            if how.startswith("compile"):
                model = torch.compile(model, mode=args.compile_mode)
            with forms():
                try:
                    ms, as_asked = step_ms(model, args.batch, args.seq, args.vocab, device, amp, args.repeats,
                                           how.endswith("graph"))
                    label += "" if as_asked else " (not captured: eager)"
                except torch.OutOfMemoryError:
                    ms = float("nan")
                except Exception as e:  # a compile that fails is a result too: say why, time the rest
                    if not how.startswith("compile"):
                        raise
                    print(f"{label}: failed ({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})")
                    ms = float("nan")
            tokens_s = args.batch * args.seq / ms * 1e3
            mfu = 3 * ir.meta["flops"] * tokens_s / (args.peak_tflops * 1e12)
            rows.append((label, ir.meta["params"], ms, tokens_s, mfu))
            print(f"{label}: {ms:.1f} ms per step", flush=True)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    base = next((r for r in rows if "gpt2" in r[0]), rows[-1])
    print(f"\ntraining step (forward, backward, AdamW), B={args.batch}, T={args.seq}, bf16, on {card}; "
          f"MFU against {args.peak_tflops} TFLOPS")
    print(f"{'model':34s} {'params':>12s} {'ms/step':>9s} {'tokens/s':>10s} {'MFU':>6s} {'tokens/s ratio':>15s}")
    for label, params, ms, tps, mfu in rows:
        print(f"{label:34s} {params:12,d} {ms:9.1f} {tps:10,.0f} {mfu:6.1%} {tps / base[3]:14.2f}×")


if __name__ == "__main__":
    main()
