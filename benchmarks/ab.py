"""One benchmark, this checkout against an earlier commit, side by side in one run: what a change bought, measured as
an A/B rather than as two runs on two machines (whose clocks and allocators differ from call to call as much as a
small change does). BASE is checked out into a temporary git worktree; the benchmark then runs in fresh processes,
one side after the other, in rounds whose order alternates (this, base; base, this; ...), so that a drift of the
machine over the run falls on both sides alike. Each side runs its own code: its checkout is the process's working
folder and the first entry of PYTHONPATH, and the benchmark is its own copy of the script. Every number both sides
report is printed per side (median [min–max] over the rounds) with the ratio this / base taken within each round
(two processes run back to back), then its median.

    python benchmarks/ab.py BASE [--rounds 2] [--log FILE] -- benchmarks/e2e.py --specs examples/paper_pam_100m.yaml \\
        --compile --cuda-graph --only compile+graph

On a machine without the repository's history (a lent GPU machine receives the working tree only), --base-dir DIR
runs the base side in DIR, a copy of BASE's tracked files made beforehand (`git archive BASE | tar -x -C DIR`, in a
folder .git/info/exclude ignores, carried with the call); BASE then only names it in the output.

The benchmark must measure through benchmarks/fresh.py (decode.py, e2e.py, mixers.py, rungs.py, train_loop.py) in
both commits: each process runs it with `--processes 1 --child-json FILE` and reads the numbers it saved. The script
and the paths in the command are relative to the repository's root, each side's own (so examples/x.yaml is each
commit's spec). Only tracked files are in the worktree: a benchmark that reads ignored data gets none on the base
side. The worktree is removed at the end, on an error, on Ctrl-C and on SIGTERM (a time limit's `timeout`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import fresh

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("this", "base")
OWNED = ("--processes", "--child-json", "--save")  # ab.py runs one process a side a round; a saved sweep is shared


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise SystemExit("error: ab.py: give the benchmark after --, e.g. ab.py BASE -- benchmarks/e2e.py --compile "
                         "--cuda-graph --only compile+graph")
    cut = argv.index("--")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", help="the commit to compare against (a hash, tag or branch of this repository)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of one process a side (default 2: this, base, base, "
                                                         "this)")
    p.add_argument("--log", default=None, help="file for the processes' standard error (default: one in the "
                                               "temporary folder, named at the end)")
    p.add_argument("--base-dir", default=None, metavar="DIR",
                   help="a copy of BASE's tracked files to run the base side in, instead of a git worktree")
    args = p.parse_args(argv[:cut])
    args.command = argv[cut + 1:]
    if args.rounds < 1:
        p.error(f"--rounds: needs 1 or more, got {args.rounds}")
    if not args.command or not args.command[0].endswith(".py"):
        p.error("the benchmark after -- must be a Python script, e.g. benchmarks/e2e.py")
    owned = [a for a in args.command if a.split("=")[0] in OWNED]
    if owned:
        p.error(f"{owned[0].split('=')[0]}: ab.py's to set (one fresh process a side a round, nothing shared between "
                f"the sides)")
    script = Path(args.command[0])
    if script.is_absolute():  # each side runs its own copy: the script's place within the checkout
        if not script.resolve().is_relative_to(ROOT):
            p.error(f"{script}: not in this checkout ({ROOT})")
        args.command[0] = str(script.resolve().relative_to(ROOT))
    if not (ROOT / args.command[0]).is_file():
        p.error(f"{args.command[0]}: no such benchmark in this checkout ({ROOT})")
    return args


def git(*cmd: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *cmd], capture_output=True, text=True)
    except FileNotFoundError:
        raise SystemExit("error: ab.py needs git, and there is no git here") from None


def base_commit(base: str) -> str:
    """BASE's full hash, after checking that this checkout is a repository of its own."""
    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != ROOT:
        raise SystemExit(f"error: {ROOT} is not the root of a git repository (ab.py checks the base out of it)")
    found = git("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    if found.returncode != 0:
        raise SystemExit(f"error: {base}: not a commit of this repository ({ROOT})")
    return found.stdout.strip()


def order(rounds: int) -> list[tuple[int, str]]:
    """(round, side) in the order they run: this first in odd rounds, base first in even ones."""
    return [(r, side) for r in range(1, rounds + 1) for side in (SIDES if r % 2 else SIDES[::-1])]


def run_side(side: str, root: Path, command: list[str], out: Path, err, label: str) -> dict[str, float]:
    """The benchmark in a fresh process in `root`, its numbers as the process saved them."""
    cmd = [sys.executable, command[0], *command[1:], "--processes", "1", "--child-json", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    numbers = fresh.run_child(cmd, out, err, f"{label} {side}", f"error: {label}, {side} ({root}): the benchmark "
                              f"failed", header=f"{label} ({side}, {root})", cwd=root, env=env)
    return {k: float(v) for k, v in numbers.items()}


Values = dict[str, dict[str, dict[int, float]]]  # side → number → round → value


def measure(args, base_root: Path, tmp: Path, log: Path) -> Values:
    values: Values = {side: {} for side in SIDES}
    roots = {"this": ROOT, "base": base_root}
    with open(log, "w") as err:
        for r, side in order(args.rounds):
            numbers = run_side(side, roots[side], args.command, tmp / f"{side}{r}.json", err,
                               f"round {r}/{args.rounds}")
            for k, v in numbers.items():
                values[side].setdefault(k, {})[r] = v
    return values


def show(values: Values, base: str, rounds: int) -> None:
    keys = [k for k in values["this"] if k in values["base"]]
    this = this_commit()
    spread = "median [min–max] over the rounds" if rounds > 1 else "one round: no spread"
    print(f"\nthis checkout ({this}) against {base}, {rounds} round{'s' * (rounds > 1)} of one fresh process a side;\n"
          f"{spread}; the ratio taken within each round (rounds where one side lacks a number are left out)")
    width = max([len(k) for k in keys] + [6])
    print(f"{'number':<{width}}  {'this':>24}  {'base':>24}  {'this / base':>24}" if keys else
          "no number both sides report")
    for k in keys:
        mine, theirs = values["this"][k], values["base"][k]
        both = sorted(set(mine) & set(theirs))
        if not both:
            print(f"{k:<{width}}  (no round in which both sides report it)")
            continue
        ratio = fresh.ratio([mine[r] for r in both], [theirs[r] for r in both])
        print(f"{k:<{width}}  {fresh.cell(list(mine.values()), '.4g', 24)}  "
              f"{fresh.cell(list(theirs.values()), '.4g', 24)}  {fresh.cell(ratio, '.4f', 23)}×")
    for side, other in (SIDES, SIDES[::-1]):
        only = [k for k in values[side] if k not in values[other]]
        if only:
            print(f"only {side} reports: {', '.join(only)}")


def this_commit() -> str:
    """This checkout's commit (and whether it has uncommitted changes), or what stands in for it without git."""
    try:
        head = git("rev-parse", "--short", "HEAD")
    except SystemExit:
        return "no git here"
    if head.returncode != 0:
        return "not a git checkout"
    return head.stdout.strip() + (" + uncommitted changes" if git("status", "--porcelain").stdout.strip() else "")


def base_copy(args) -> Path:
    """--base-dir's folder, after checking that it holds the benchmark."""
    root = Path(args.base_dir).resolve()
    if not root.is_dir():
        raise SystemExit(f"error: --base-dir {args.base_dir}: no such folder")
    if not (root / args.command[0]).is_file():
        raise SystemExit(f"error: {args.command[0]}: not in --base-dir {args.base_dir}")
    return root


def _stop_on_sigterm(signum, frame):
    raise SystemExit(f"error: ab.py stopped by signal {signum}")


def main(argv=None) -> int:
    args = parse_args(argv)
    copy = base_copy(args) if args.base_dir else None
    sha = None if copy else base_commit(args.base)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # so that the worktree is removed under `timeout` too
    tmp = Path(tempfile.mkdtemp(prefix="archsearch-ab-"))
    base_root = copy or tmp / "base"
    log = Path(args.log) if args.log else tmp / "stderr.log"
    try:
        if sha:
            added = git("worktree", "add", "--detach", "--quiet", str(base_root), sha)
            if added.returncode != 0:
                why = (added.stderr.strip().splitlines() or ["failed"])[-1]
                raise SystemExit(f"error: git worktree add {sha[:10]}: {why}")
            if not (base_root / args.command[0]).is_file():
                raise SystemExit(f"error: {args.command[0]}: not in {args.base} ({sha[:10]})")
        values = measure(args, base_root, tmp, log)
        print(f"(compiler and autotuning output of every process: {log})")
        show(values, f"{args.base} ({sha[:10]})" if sha else f"{args.base} (copied into {base_root})", args.rounds)
    finally:  # the worktree goes, whatever happened; a log in the temporary folder stays, as it was named
        if sha and git("worktree", "remove", "--force", str(base_root)).returncode != 0 and base_root.exists():
            shutil.rmtree(base_root, ignore_errors=True)
            git("worktree", "prune")  # only the entry of the folder just removed is stale
        for path in tmp.iterdir():
            if path != log:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
        if not any(tmp.iterdir()):
            tmp.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
