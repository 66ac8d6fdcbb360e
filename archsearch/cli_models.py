"""The commands on one model, from a spec file or a study's trial: `evaluate` (saved weights scored again), `export`,
`profile`."""
from __future__ import annotations

from .errors import Loc, SpecError


def cmd_evaluate(args) -> int:
    import pickle
    from pathlib import Path

    import torch

    from .experiment import with_overrides
    from .saved import PREFIX, WeightsFileEvaluator
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
        pre = PREFIX[split]
        shown = "  ".join(f"{k[len(pre):]} {v:,.6g}" for k, v in sorted(metrics.items())
                          if k.startswith(pre) and isinstance(v, (int, float)) and not isinstance(v, bool))
        print(f"{split}: {shown}")
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


def _task_vocab(spec) -> int | None:
    """A spec whose vocab is 'data': the task's tokenizer says (built and cached on first use)."""
    if spec.model.vocab is not None:
        return None
    from . import tasks

    return tasks.make(spec.task).vocab_size
