"""The command line: a thin shell over the Python API. Bad input prints one line and exits with status 2. The parser,
and the commands on specs (compile, train, blocks); those on studies are in cli_studies.py, those on one trained
model in cli_models.py."""
from __future__ import annotations

import argparse
import signal
import sys

from . import __version__
from .cli_models import cmd_evaluate, cmd_export, cmd_profile
from .cli_studies import cmd_report, cmd_retime, cmd_run
from .cli_types import Renamed, positive, vocab_size
from .errors import SpecError


def cmd_compile(args) -> int:
    from .compiler import compile_spec, cost_table

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
            print(f"error: built {built:,} parameters, analytic {ir.meta['params']:,}", file=sys.stderr)
            return 1
        print(f"built: {built:,} parameters, equal to the analytic count")
    return 0


def cmd_blocks(args) -> int:
    from . import coerce, registry

    for name in registry.names():
        cls = registry.get(name)
        doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        flags = cls.kind + (", complex" if getattr(cls, "complex", False) else "")
        print(f"{name} ({flags}) — {doc[0] if doc else cls.__module__}")
        for fname, ftype, default, fdoc in coerce.describe(cls.Config):
            print(f"    {fname}: {ftype} = {default}" + (f"    # {fdoc}" if fdoc else ""))
        print()
    return 0


def cmd_train(args) -> int:
    from pathlib import Path

    from .experiment import summary, train_spec, with_overrides
    from .spec import load_spec

    spec = with_overrides(load_spec(args.spec), data=args.data, tokenizer=args.tokenizer, tokens=args.tokens,
                          device=args.device, lr=args.lr, seed=args.seed, cuda_graph=args.cuda_graph or None)
    out = Path(args.out) if args.out else Path("runs") / f"train-{Path(args.spec).stem}"
    metrics = train_spec(spec, out=out, fresh=args.fresh, progress=not args.quiet)
    print(summary(metrics))
    print(f"  wrote {out / 'metrics.json'}")
    return 0 if metrics["status"] != "diverged" else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="archsearch", description="Compile, train and search sequence-model graphs.")
    p.add_argument("--version", action="version", version=f"archsearch {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    c = sub.add_parser("compile", help="check and cost a spec without allocating anything")
    c.add_argument("spec", help="an architecture spec (YAML); see docs/spec.md")
    c.add_argument("--build", action="store_true", help="also build the module and check its parameter count")
    c.add_argument("--vocab", type=vocab_size, help="vocabulary size for a spec whose vocab is 'data'")
    c.add_argument("--dump-after", metavar="PASS", help="print the IR after this pass (validate, shapes, cost)")
    c.set_defaults(fn=cmd_compile)
    r = sub.add_parser("run", help="search a space of architectures with Optuna, or climb a scaling ladder "
                                   "(resumes when re-run)")
    r.add_argument("space", help="a search space (YAML; docs/search.md) or a ladder (docs/ladder.md)")
    r.add_argument("--data", help="the corpus (replaces the space's spec.task.data or the ladder's task.data), e.g. a "
                                  "WikiText folder; a resumed study needs the same")
    r.add_argument("--out", help="output folder (default runs/NAME): the study, trials/*.yaml, report.md")
    r.add_argument("--storage", help="an Optuna storage URL (default sqlite:///OUT/study.db, or "
                                     "journal:OUT/study.journal with --workers), postgresql://…, journal:FILE")
    r.add_argument("--trials", type=positive(int), help="total trials (default: the budget's)")
    r.add_argument("--budget", metavar="NAME",
                   help="one of the space's search.budgets (default: gpu on a GPU, else cpu)")
    r.add_argument("--profile", dest="budget", action=Renamed, help=argparse.SUPPRESS)  # --budget's former name
    r.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--workers", type=positive(int), default=1,
                   help="processes on one study (a search's or a ladder's): one per visible GPU, or N CPU processes "
                        "(default 1)")
    r.add_argument("--timeout-minutes", type=positive(float),
                   help="stop starting trials after this long (default: the budget's timeout_minutes, which bounds "
                        "the search alone); given here, a search's re-training runs too start only when expected to "
                        "finish within it; a ladder starts no run that it does not expect to finish within it (but "
                        "see --fill)")
    r.add_argument("--fill", action="store_true",
                   help="a ladder: when no run fits in what is left of --timeout-minutes, start the next one anyway "
                        "(with a minute or more left); it pauses at the limit and the same command, on the same disk, "
                        "goes on from its checkpoint")
    r.add_argument("--no-retrain", action="store_true", help="skip the re-training of the best with more seeds")
    r.add_argument("--profile-top", type=int, default=0, metavar="K",
                   help="at the end, profile the best K trials into OUT/profiles/ (see `archsearch profile`)")
    r.add_argument("--worker", choices=["reference", "search", "retrain", "ladder"], help=argparse.SUPPRESS)
    r.set_defaults(fn=cmd_run)
    rp = sub.add_parser("report", help="write report.md and plots for a study (also written at the end of run)")
    rp.add_argument("out_dir", help="the output folder of `archsearch run`")
    rp.add_argument("--storage", help="the study's Optuna storage URL, when it is not in OUT_DIR")
    rp.add_argument("--recheck", action="store_true", help="evaluate every saved weights file in OUT_DIR again in this "
                                                           "process, also those an earlier check covered (a fresh "
                                                           "process's check before publishing)")
    rp.set_defaults(fn=cmd_report)
    rt = sub.add_parser("retime", help="a ladder's training speed timed again on this card with the trainer's current "
                                       "loop, for the cells whose runs another card or loop timed (docs/ladder.md)")
    rt.add_argument("out_dir", help="the output folder of `archsearch run LADDER`")
    rt.add_argument("--steps", type=positive(int), default=300, help="training steps each cell is timed over "
                                                                      "(the first two are not counted; default 300)")
    rt.add_argument("--data", help="the corpus, where it is not at the path the study recorded (the same tokens)")
    rt.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    rt.add_argument("--storage", help="the study's Optuna storage URL, when it is not in OUT_DIR")
    rt.add_argument("--force", action="store_true", help="also re-time the cells re-timed before (on the same card, "
                                                         "loop, form and steps, the figure becomes the median of the "
                                                         "timings)")
    rt.add_argument("--cells", nargs="+", metavar="CELL", help="only these of the cells it would re-time: "
                                                               "family/rung or a pattern (*/2m)")
    rt.add_argument("--compile", action="store_true", help="time every cell compiled (+ its CUDA graphs), whatever "
                                                           "form its rung trained in: one time axis for all rungs")
    rt.add_argument("--timeout-minutes", type=positive(float), help="start no cell that would end after this long "
                                                                     "(the longest cell so far says; the same "
                                                                     "command goes on with the rest)")
    rt.set_defaults(fn=cmd_retime)
    e = sub.add_parser("export", help="write a trained architecture as standalone model.py + config.json + weights.pt")
    e.add_argument("source", help="the output folder of `archsearch run`, or a spec file (with --weights)")
    e.add_argument("--to", required=True, help="folder to write (created)")
    e.add_argument("--trial", help="'best' (default) or a trial number, for a study folder")
    e.add_argument("--weights", help="for a spec: weights.pt or checkpoint.pt from `archsearch train`")
    e.add_argument("--vocab", type=vocab_size, help="vocabulary size for a spec whose vocab is 'data' (default: the weights')")
    e.add_argument("--storage", help="the study's Optuna storage URL, when it is not in the folder")
    e.set_defaults(fn=cmd_export)
    pr = sub.add_parser("profile", help="profile training (and decode) steps: TensorBoard trace and a per-node table")
    pr.add_argument("source", help="a spec file, or the output folder of `archsearch run` (with --trial)")
    pr.add_argument("--trial", help="'best' (default) or a trial number, for a study folder")
    pr.add_argument("--steps", type=positive(int), default=3, help="profiled training steps (after 2 unprofiled)")
    pr.add_argument("--decode", type=int, default=0, help="also profile this many decode steps at batch 1")
    pr.add_argument("--compile", action="store_true",
                    help="profile the torch.compile'd training step (train.compile): kernels, no per-node table")
    pr.add_argument("--batch", type=positive(int), help="sequences per step (default: the spec's batch_tokens / T)")
    pr.add_argument("--seq-len", type=positive(int), help="default: the spec's training length")
    pr.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    pr.add_argument("--vocab", type=vocab_size, help="vocabulary size for a spec whose vocab is 'data'")
    pr.add_argument("--ops", type=int, default=20, metavar="N",
                    help="also list the N most expensive ops of a training step (default 20; 0: none)")
    pr.add_argument("--logdir", help="trace folder (default runs/profile/NAME)")
    pr.add_argument("--storage", help="the study's Optuna storage URL, when it is not in the folder")
    pr.set_defaults(fn=cmd_profile)
    t = sub.add_parser("train", help="train a spec on its task and report validation perplexity and costs")
    t.add_argument("spec", help="an architecture spec (YAML), optionally with task: and train: sections")
    t.add_argument("--data", help="embedded | a WikiText folder | a folder or glob of .txt files | wikitext-103")
    t.add_argument("--tokenizer", choices=["bytes", "bpe", "gpt2"], help="default: the spec's task.tokenizer (bpe)")
    t.add_argument("--tokens", type=positive(int), help="training budget in tokens")
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    t.add_argument("--lr", type=positive(float), help="peak learning rate")
    t.add_argument("--seed", type=int, help="seed for weights and data order")
    t.add_argument("--cuda-graph", action="store_true",
                   help="on a GPU, replay each training step as a CUDA graph (train.cuda_graph; ignored on CPU)")
    t.add_argument("--out", help="output folder (default runs/train-SPEC): metrics.json, weights.pt, checkpoint.pt")
    t.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint instead of resuming")
    t.add_argument("--quiet", action="store_true", help="no progress line")
    t.set_defaults(fn=cmd_train)
    ev = sub.add_parser("evaluate", help="score saved weights in a freshly built model of a spec on whole splits "
                                         "(a number checked in a process of its own)")
    ev.add_argument("spec", help="the spec the weights were trained from (a run's spec file, a study's "
                                 "trials/trial_NNNN.yaml)")
    ev.add_argument("--weights", required=True, help="a saved state dict: weights.pt of `train`, a study's weights/…")
    ev.add_argument("--split", choices=["validation", "test", "both"], default="validation")
    ev.add_argument("--data", help="the corpus, where it is not at the path the spec names")
    ev.add_argument("--tokenizer", choices=["bytes", "bpe", "gpt2"], help="default: the spec's task.tokenizer")
    ev.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    ev.set_defaults(fn=cmd_evaluate)
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
    except RuntimeError as e:
        if not _compile_failure(e):
            raise
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        print(f"torch.compile failed (train.compile / --compile; try without it): {first}", file=sys.stderr)
        return 1


def entry() -> None:
    """The process's entry (`python -m archsearch`, the `archsearch` script): main's status as the exit status. Once
    main has returned, the run is over and recorded (its trials, its report); CPython then restores SIGTERM's default
    action as it starts to tear down (a second or so with torch loaded), and a SIGTERM there would kill a finished or
    interrupted run with 143. It is ignored instead: the process is on its way out."""
    try:
        status = main()
    except KeyboardInterrupt:  # a signal after main's own handling: the run is recorded
        status = 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(status)


def _compile_failure(e: BaseException) -> bool:
    """Whether `e` is torch.compile's (dynamo or inductor: no C++ compiler for the CPU backend, say)."""
    if "torch" not in sys.modules:
        return False
    from torch._dynamo.exc import TorchDynamoException
    return isinstance(e, TorchDynamoException)


if __name__ == "__main__":
    entry()
