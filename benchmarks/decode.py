"""Per-token decode latency at batch 1, side by side: the 100M PAM against the 100M GPT-2 with its KV cache, at
several context lengths (issue 7). Prints ms per token and the PAM/transformer ratio per context, and the card.
Each model decodes eagerly (model.step, one Python call per layer); on a GPU each is also timed as one CUDA graph
per step (archsearch.decode.GraphedDecoder), and a recurrent model also as a graph of the torch.compile'd step. The
transformer's KV cache is bf16 on the GPU (its compute dtype), fp32 on CPU. Eagerly SDPA reads the first C+1
entries; graphed it attends over a cache cut to C + SLACK entries with the unwritten ones masked (a graph has fixed
shapes; the slack holds the timed steps' own tokens), one graph per context.

    python benchmarks/decode.py [--contexts 1024 8192 32768] [--specs A.yaml B.yaml]

The state at context C is built directly (every position counter set to C, caches and recurrent states filled with
random values) instead of by stepping through C tokens: a step's work depends on the state's size and position, not
on its values, and stepping through 32k tokens first would take minutes. Each model's seq_len is raised to fit the
longest context (GPT-2's learned position table grows with it).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from archsearch.compiler import compile_spec
from archsearch.decode import GraphedDecoder, cut_caches, map_state
from archsearch.lower import lower
from archsearch.measure import median_ms
from archsearch.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


def at_context(state, context: int):
    """The decode state after `context` tokens, as far as a step's cost is concerned: every integer (a Python int or
    an integer tensor) in a block's state is its position counter; float tensors get random contents."""
    def leaf(x):
        if isinstance(x, torch.Tensor):
            return torch.randn_like(x) * 0.02 if x.is_floating_point() else torch.full_like(x, context)
        return context if isinstance(x, int) and not isinstance(x, bool) else x
    return map_state(leaf, state)


SLACK = 64  # cache entries past the context in a graphed attention step: room for the warm-up and timed steps


def load(spec_path: str, seq_len: int, vocab: int):
    """The model of `spec_path` with its seq_len raised to at least `seq_len`."""
    spec = load_spec(spec_path)
    return lower(compile_spec(spec, vocab=vocab, seq_len=max(spec.model.seq_len, seq_len)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contexts", type=int, nargs="+", default=[1024, 8192, 32768])
    p.add_argument("--specs", nargs="+", default=[str(ROOT / "examples/paper_pam_100m.yaml"),
                                                  str(ROOT / "examples/gpt2_100m.yaml")])
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile'd graph (compiling takes ~1 min)")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    card = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    results: dict[str, dict[int, float]] = {}
    for spec in args.specs:
        name = Path(spec).stem
        torch.manual_seed(0)
        model = load(spec, max(args.contexts) + SLACK, args.vocab).to(device).eval()
        params = sum(p.numel() for p in model.parameters())
        cache_dtype = torch.bfloat16 if device.type == "cuda" else None
        kv_cache = any(getattr(b, "name", "") == "softmax_attention" for b in model.blocks.values())
        graphs = {}  # a recurrent model's graph serves every context; an attention model gets one per context
        if device.type == "cuda" and not kv_cache:
            graphs["CUDA graph"] = GraphedDecoder(model, 1, device, autocast=torch.bfloat16)
            if not args.no_compile:
                graphs["compiled+graph"] = GraphedDecoder(model, 1, device, autocast=torch.bfloat16, compile=True)
        results[f"{name} eager"] = {}
        graph_rows = {label: {} for label in graphs} | ({"CUDA graph": {}} if device.type == "cuda" else {})
        for c in args.contexts:
            state = at_context(model.init_state(1, device=device, dtype=cache_dtype), c)
            tok = torch.randint(0, args.vocab, (1,), device=device)
            with torch.no_grad(), amp:
                results[f"{name} eager"][c] = median_ms(lambda: model.step(tok, state), device, repeats=args.repeats,
                                                        warmup=3)
            if device.type == "cuda" and kv_cache:
                graphed = GraphedDecoder(model, 1, device, autocast=torch.bfloat16,
                                         state=cut_caches(model, state, c + SLACK))
                graph_rows["CUDA graph"][c] = median_ms(lambda: graphed(tok), device, repeats=args.repeats, warmup=3)
                del graphed
            for label, graphed in graphs.items():
                graphed.load(state)
                graph_rows[label][c] = median_ms(lambda: graphed(tok), device, repeats=args.repeats, warmup=3)
        results |= {f"{name} {label}": row for label, row in graph_rows.items()}
        print(f"{name}: {params:,} parameters", flush=True)
        del model, graphs
        if device.type == "cuda":
            torch.cuda.empty_cache()
    names = list(results)
    base = next((n for n in names if "gpt2" in n), names[-1])
    print(f"\ndecode latency, ms per token at batch 1, on {card}; ratio: each row / {base}")
    width = max(26, *(len(n) for n in names))
    print(f"{'context':>8s} " + " ".join(f"{n:>{width}s}" for n in names))
    for c in args.contexts:
        print(f"{c:8d} " + " ".join(f"{results[n][c]:{width - 9}.3f} ({results[n][c] / results[base][c]:5.2f}×)"
                                     for n in names))


if __name__ == "__main__":
    main()
