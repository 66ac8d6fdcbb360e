"""The commands on studies: `run` (a search or a ladder), `report`, `retime`."""
from __future__ import annotations

from .errors import Loc, SpecError


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
