"""The command line: a thin shell over the Python API. Bad input prints one line and exits with status 2."""
from __future__ import annotations

import argparse
import signal
import sys

from . import __version__
from .cli_types import Renamed, positive, vocab_size
from .errors import Loc, SpecError


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


def cmd_evaluate(args) -> int:
    import pickle
    from pathlib import Path

    import torch

    from .experiment import with_overrides
    from .saved import WeightsFileEvaluator
    from .spec import load_spec

    weights = Path(args.weights)
    if not weights.is_file():
        raise SpecError(Loc("--weights"), f"no such file: {weights}")
    spec = with_overrides(load_spec(args.spec), data=args.data, tokenizer=args.tokenizer, device=args.device)
    splits = ("validation", "test") if args.split == "both" else (args.split,)
    try:  # a file torch cannot read fails here, before the corpus is tokenised
        torch.load(weights, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as e:
        raise SpecError(Loc(str(weights)), f"not a saved state dict (torch.load: {type(e).__name__})") from None
    try:
        metrics = WeightsFileEvaluator()(spec, weights, splits)
    except RuntimeError as e:
        if "state_dict" not in str(e):
            raise
        # load_state_dict's message: a heading, then what is missing, unexpected or of another size
        what = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e).splitlines()[0])
        raise SpecError(Loc(str(weights)), f"these weights do not fit {args.spec}: {what[:300]}") from None
    for split in splits:
        pre = {"validation": "val_", "test": "test_"}[split]
        shown = "  ".join(f"{k[len(pre):]} {v:,.6g}" for k, v in sorted(metrics.items())
                          if k.startswith(pre) and isinstance(v, (int, float)) and not isinstance(v, bool))
        print(f"{split}: {shown}")
    return 0


def cmd_run(args) -> int:
    from pathlib import Path

    from .ladder.config import is_ladder_file
    from .search.study import run_search, run_worker

    if is_ladder_file(args.space):
        return _run_ladder(args)
    if args.fill:
        raise SpecError(Loc("--fill"), f"applies to a ladder only ({args.space} is a search space; docs/ladder.md)")
    if args.worker:
        if args.worker == "ladder" or not (args.out and args.storage and args.trials and args.budget):
            raise SpecError(Loc("--worker"),
                            "is started by `run --workers N` with --out, --storage, --trials, --budget")
        run_worker(args.space, out=Path(args.out), storage=args.storage, trials=args.trials, budget=args.budget,
                   device=args.device, phase=args.worker, timeout_minutes=args.timeout_minutes, data=args.data)
        return 0
    run_search(args.space, out=Path(args.out) if args.out else None, storage=args.storage, trials=args.trials,
               budget=args.budget, device=args.device, workers=args.workers, retrain_after=not args.no_retrain,
               timeout_minutes=args.timeout_minutes, profile_top=args.profile_top, data=args.data)
    return 0


def _source(args):
    """A trial of a study (OUT_DIR) or a spec file: what `export` and `profile` start from."""
    from pathlib import Path

    from .export.inputs import Source, from_study
    from .spec import load_spec

    path = Path(args.source)
    if path.is_dir():
        return from_study(path, args.trial or "best", args.storage)
    if args.trial is not None:
        raise SpecError(Loc("--trial"), "applies to a study's output folder, not to a spec file")
    if not path.is_file():
        raise SpecError(Loc(str(path)), "no such spec file or study folder")
    return Source(load_spec(path), None, str(path))


def cmd_export(args) -> int:
    from pathlib import Path

    from .compiler import compile_spec
    from .export import export
    from .export.inputs import load_weights, trial_weights, vocab_of

    src = _source(args)
    if src.trial is not None:
        state = trial_weights(src)
    elif args.weights:
        state = load_weights(Path(args.weights))
    else:
        raise SpecError(Loc("--weights"), "a spec file needs its trained weights: --weights weights.pt (from "
                                          "`archsearch train`) or checkpoint.pt")
    ir = compile_spec(src.spec, vocab=vocab_of(src, state, args.vocab))
    model_keys = set(_model_keys(ir))
    if set(state) != model_keys:
        missing, extra = sorted(model_keys - set(state)), sorted(set(state) - model_keys)
        raise SpecError(Loc(args.weights or str(src.out)), "the weights do not fit this architecture: "
                        + (f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"))
    to = Path(args.to)
    extra = {"source": src.label, "task": _task_info(src.spec)}
    export(ir, state, to, title=f"{Path(src.spec.file).stem}: exported from {src.label}", source=src.label,
           extra=extra)
    print(f"wrote {to / 'model.py'}, {to / 'config.json'} and {to / 'weights.pt'} ({ir.meta['params']:,} parameters)")
    print(f"  use: import sys; sys.path.insert(0, '{to}'); from model import Model; "
          f"model = Model.from_pretrained('{to}')")
    return 0


def _model_keys(ir) -> list[str]:
    from .lower import lower

    import torch

    with torch.device("meta"):  # the parameter names without allocating the parameters
        return list(lower(ir).state_dict())


def _task_info(spec) -> dict:
    t = spec.task
    return {"kind": t.kind, "data": t.data, "tokenizer": t.tokenizer, "vocab_size": t.vocab_size}


def cmd_profile(args) -> int:
    from pathlib import Path

    from dataclasses import replace

    from . import profile
    from .compiler import compile_spec
    from .context import run_context
    from .export.inputs import vocab_of

    src = _source(args)
    ir = compile_spec(src.spec, vocab=vocab_of(src, None, args.vocab) or _task_vocab(src.spec))
    train = replace(src.spec.train, seq_len=args.seq_len or src.spec.train.seq_len,
                    device=args.device or src.spec.train.device)
    ctx = run_context(train, ir.model.seq_len, Loc("--seq-len") if args.seq_len else
                      Loc(src.spec.file, 0, "train.seq_len"))
    device, batch, seq_len = ctx.device, args.batch or ctx.batch, ctx.seq_len
    name = Path(src.spec.file).stem + (f"-trial{src.trial}" if src.trial is not None else "")
    logdir = Path(args.logdir) if args.logdir else Path("runs") / "profile" / name
    prof = profile.run(ir, logdir, device=device, batch=batch, seq_len=seq_len, steps=args.steps,
                       decode=args.decode, precision=src.spec.train.precision, compiled=args.compile)
    print(f"{src.label}: {args.steps} {'compiled ' if args.compile else ''}training steps at batch {batch} × "
          f"{seq_len} on {device}"
          + (f", {args.decode} decode steps" if args.decode else ""))
    print(profile.format_table(prof, device, ops=args.ops))
    print(f"trace: {logdir} (open with: tensorboard --logdir {logdir.parent})")
    return 0


def _run_ladder(args) -> int:
    from pathlib import Path

    from .ladder.report import write_report
    from .ladder.launch import run_ladder, run_ladder_worker

    for flag, given in (("--trials", args.trials), ("--budget", args.budget), ("--no-retrain", args.no_retrain),
                        ("--profile-top", args.profile_top)):
        if given:
            raise SpecError(Loc(flag), f"does not apply to a ladder ({args.space}); see docs/ladder.md")
    if args.fill and args.timeout_minutes is None:
        raise SpecError(Loc("--fill"), "needs --timeout-minutes: it fills the end of a time limit")
    if args.worker:
        if args.worker != "ladder" or not (args.out and args.storage):
            raise SpecError(Loc("--worker"), "is started by `run LADDER --workers N`, with --out and --storage")
        run_ladder_worker(args.space, Path(args.out), args.storage, device=args.device, data=args.data,
                          timeout_minutes=args.timeout_minutes, fill=args.fill)
        return 0
    run = run_ladder(args.space, out=Path(args.out) if args.out else None, storage=args.storage, device=args.device,
                     data=args.data, timeout_minutes=args.timeout_minutes, workers=args.workers, fill=args.fill)
    print(f"report: {write_report(run.out, args.storage)}")
    return 0


def _task_vocab(spec) -> int | None:
    """A spec whose vocab is 'data': the task's tokenizer says (built and cached on first use)."""
    if spec.model.vocab is not None:
        return None
    from . import tasks

    return tasks.make(spec.task).vocab_size


def cmd_report(args) -> int:
    from pathlib import Path

    from .ladder.report import is_ladder_folder
    from .ladder.report import write_report as write_ladder_report
    from .search.report import write_report
    from .search.run_folder import load

    if is_ladder_folder(Path(args.out_dir)):
        if args.recheck:
            raise SpecError(Loc("--recheck"), "for a search's folder; a ladder's report checks each run's saved "
                                              "weights once (docs/ladder.md)")
        print(f"wrote {write_ladder_report(Path(args.out_dir), args.storage)} and its plots")
        return 0
    study, seeds = load(Path(args.out_dir), args.storage)
    path = write_report(study, Path(args.out_dir), seeds, recheck=args.recheck)
    print(f"wrote {path} and its plots")
    return 0


def cmd_retime(args) -> int:
    from pathlib import Path

    from .ladder.report import write_report
    from .ladder.retime import retime

    out = Path(args.out_dir)
    if retime(out, storage=args.storage, data=args.data, device=args.device, steps=args.steps,
              force=args.force, cells=args.cells, compile=args.compile, timeout_minutes=args.timeout_minutes):
        print(f"wrote {write_report(out, args.storage)}")
    return 0


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
