"""The command line: a thin shell over the Python API. Bad input prints one line and exits with status 2."""
from __future__ import annotations

import argparse
import sys

from .errors import Loc, SpecError


def _fmt(n: int) -> str:
    return f"{n:,}"


def cost_table(ir) -> str:
    """Per-node analytic costs and totals, as printed by `compile`."""
    rows = [("node", "block", "params", "FLOPs/token", "state bytes")]
    for n in ir.nodes():
        if n.op == "input":
            continue
        what = n.block if n.op == "block" else (f"add ×{n.scale}" if n.op == "add" and n.scale is not None else n.op)
        if n.op == "output":
            what = "logits (tied)" if ir.model.tied else "logits"
        rows.append((n.name, what, _fmt(n.meta["params"]), _fmt(n.meta["flops"]), _fmt(n.meta["state_bytes"])))
    rows.append(("total", "", _fmt(ir.meta["params"]), _fmt(ir.meta["flops"]), _fmt(ir.meta["state_bytes"])))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for i, r in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * (sum(widths) + 8))
        lines.append("  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def cmd_compile(args) -> int:
    from .compiler import compile_spec

    ir = compile_spec(args.spec, vocab=args.vocab, dump_after=args.dump_after)
    m = ir.model
    vocab_note = " (from --vocab)" if args.vocab is not None else ""
    print(f"{m.file}: d_model {m.d_model}, {m.n_layers} layers, seq_len {m.seq_len}, vocab {m.vocab}{vocab_note}, "
          f"{'tied' if m.tied else 'untied'} head")
    print(cost_table(ir))
    print(f"FLOPs are forward, per token at seq_len {m.seq_len}; state bytes are decode state per sequence (fp32).")
    if args.build:
        from .lower import lower

        built = sum(p.numel() for p in lower(ir).parameters())
        if built != ir.meta["params"]:
            print(f"error: built {_fmt(built)} parameters, analytic {_fmt(ir.meta['params'])}", file=sys.stderr)
            return 1
        print(f"built: {_fmt(built)} parameters, equal to the analytic count")
    return 0


def cmd_blocks(args) -> int:
    from . import configs, registry

    for name in registry.names():
        cls = registry.get(name)
        doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        flags = cls.kind + (", complex" if getattr(cls, "complex", False) else "")
        print(f"{name} ({flags}) — {doc[0] if doc else cls.__module__}")
        for fname, ftype, default, fdoc in configs.describe(cls.Config):
            print(f"    {fname}: {ftype} = {default}" + (f"    # {fdoc}" if fdoc else ""))
        print()
    return 0


def cmd_train(args) -> int:
    from pathlib import Path

    from .experiment import summary, train_spec, with_overrides
    from .spec import load_spec

    spec = with_overrides(load_spec(args.spec), data=args.data, tokenizer=args.tokenizer, tokens=args.tokens,
                          device=args.device, lr=args.lr, seed=args.seed)
    out = Path(args.out) if args.out else Path("runs") / f"train-{Path(args.spec).stem}"
    metrics = train_spec(spec, out=out, fresh=args.fresh, progress=not args.quiet)
    print(summary(metrics))
    print(f"  wrote {out / 'metrics.json'}")
    return 0 if metrics["status"] != "diverged" else 1


def cmd_run(args) -> int:
    from pathlib import Path

    from .search.study import run_search

    run_search(args.space, out=Path(args.out) if args.out else None, storage=args.storage, trials=args.trials,
               profile=args.profile, device=args.device)
    return 0


def cmd_report(args) -> int:
    from pathlib import Path

    from .search.report import load, write_report

    path = write_report(load(Path(args.out_dir), args.storage), Path(args.out_dir))
    print(f"wrote {path} and its plots")
    return 0


def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {'number' if kind is float else 'whole number'}, got {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v
    return parse


def _vocab(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2, got {v}")
    return v


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="archsearch", description="Compile, train and search sequence-model graphs.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    c = sub.add_parser("compile", help="check and cost a spec without allocating anything")
    c.add_argument("spec", help="an architecture spec (YAML); see docs/spec.md")
    c.add_argument("--build", action="store_true", help="also build the module and check its parameter count")
    c.add_argument("--vocab", type=_vocab, help="vocabulary size for a spec whose vocab is 'data'")
    c.add_argument("--dump-after", metavar="PASS", help="print the IR after this pass (validate, shapes, cost)")
    c.set_defaults(fn=cmd_compile)
    r = sub.add_parser("run", help="search a space of architectures with Optuna (resumes when re-run)")
    r.add_argument("space", help="a search space (YAML); see docs/search.md")
    r.add_argument("--out", help="output folder (default runs/NAME): study.db, trials/*.yaml")
    r.add_argument("--storage", help="an Optuna storage URL (default sqlite:///OUT/study.db), or journal:FILE")
    r.add_argument("--trials", type=_positive(int), help="total trials (default: the profile's)")
    r.add_argument("--profile", choices=["cpu", "gpu"], help="budget profile (default: by device)")
    r.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    r.set_defaults(fn=cmd_run)
    rp = sub.add_parser("report", help="write report.md and plots for a study (also written at the end of run)")
    rp.add_argument("out_dir", help="the output folder of `archsearch run`")
    rp.add_argument("--storage", help="the study's Optuna storage URL, when it is not OUT_DIR/study.db")
    rp.set_defaults(fn=cmd_report)
    t = sub.add_parser("train", help="train a spec on its task and report validation perplexity and costs")
    t.add_argument("spec", help="an architecture spec (YAML), optionally with task: and train: sections")
    t.add_argument("--data", help="embedded | a WikiText folder | a folder or glob of .txt files | wikitext-103")
    t.add_argument("--tokenizer", choices=["bytes", "bpe", "gpt2"], help="default: the spec's task.tokenizer (bpe)")
    t.add_argument("--tokens", type=_positive(int), help="training budget in tokens")
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    t.add_argument("--lr", type=_positive(float), help="peak learning rate")
    t.add_argument("--seed", type=int, help="seed for weights and data order")
    t.add_argument("--out", help="output folder (default runs/train-SPEC): metrics.json, weights.pt, checkpoint.pt")
    t.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint instead of resuming")
    t.add_argument("--quiet", action="store_true", help="no progress line")
    t.set_defaults(fn=cmd_train)
    b = sub.add_parser("blocks", help="list every registered block with its config fields")
    b.set_defaults(fn=cmd_blocks)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except SpecError as e:
        print(str(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
