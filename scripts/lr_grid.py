"""Train specs on one task over a learning-rate grid and print (and write) a markdown table of the best run of each.

    python scripts/lr_grid.py examples/paper_pam_10m.yaml examples/paper_sam_10m.yaml \
        examples/paper_transformer_10m.yaml --lrs 3e-4 1e-3 3e-3 --tokens 20000000 --tokenizer gpt2 --out runs/grid

Every run uses the same data, token budget, batch and seed; the table reports the full-validation perplexity and
bits per byte of each spec's best learning rate, its training throughput and the card it ran on.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from archsearch import tasks
from archsearch.errors import SpecError
from archsearch.experiment import train_spec, with_overrides
from archsearch.spec import load_spec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("specs", nargs="+")
    p.add_argument("--lrs", nargs="+", type=float, default=[3e-4, 1e-3, 3e-3])
    p.add_argument("--tokens", type=int, default=20_000_000)
    p.add_argument("--batch-tokens", type=int, default=16384)
    p.add_argument("--data", default="embedded")
    p.add_argument("--tokenizer", default="gpt2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/lr_grid")
    args = p.parse_args(argv)
    out = Path(args.out)
    rows, task = [], None
    try:
        for path in args.specs:
            runs = []
            for lr in args.lrs:
                spec = with_overrides(load_spec(path), data=args.data, tokenizer=args.tokenizer, tokens=args.tokens,
                                      batch_tokens=args.batch_tokens, lr=lr, seed=args.seed, evals=2)
                task = task or tasks.make(spec.task)
                name = f"{Path(path).stem}-lr{lr:g}"
                m = train_spec(spec, out=out / name, fresh=True, task=task, progress=False)
                m.pop("model", None)
                runs.append(m)
                print(f"{name}: ppl {m.get('val_ppl', float('nan')):.2f}  {m['tokens_per_s']:,.0f} tok/s  "
                      f"{m['status']}", flush=True)
            best = min((r for r in runs if "val_ppl" in r), key=lambda r: r["val_ppl"], default=runs[0])
            rows.append((Path(path).stem, best, runs))
    except SpecError as e:
        print(e, file=sys.stderr)
        return 2
    lines = ["| spec | params | best lr | val ppl | bits/byte | tokens/s | ppl at each lr | card |", "|---|---|---|---|---|---|---|---|"]
    for name, b, runs in rows:
        each = ", ".join(f"{r['lr']:g}: {r.get('val_ppl', float('nan')):.1f}" for r in runs)
        lines.append(f"| {name} | {b['params']:,} | {b['lr']:g} | {b.get('val_ppl', float('nan')):.2f} | "
                     f"{b.get('val_bpb', float('nan')):.4f} | {b['tokens_per_s']:,.0f} | {each} | {b['card']} |")
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    (out / "runs.json").write_text(json.dumps([r for _, _, rs in rows for r in rs], indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
