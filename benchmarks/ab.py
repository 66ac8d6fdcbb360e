"""One benchmark, this checkout against an earlier commit, side by side in one run: what a change bought, measured as
an A/B rather than as two runs on two machines (whose clocks and allocators differ from call to call as much as a
small change does). BASE is checked out into a temporary git worktree; the benchmark then runs in fresh processes,
one side after the other, in rounds whose order alternates (this, base; base, this; ...), so that a drift of the
machine over the run falls on both sides alike. Each side runs its own code: its checkout is the process's working
folder and the first entry of PYTHONPATH. Every number both sides report is printed per side (median [min–max] over
the rounds) with the ratio this / base taken within each round (two processes run back to back), then its median.

    python benchmarks/ab.py BASE [--rounds 2] [--log FILE] -- benchmarks/e2e.py --specs examples/paper_pam_100m.yaml \\
        --compile --cuda-graph --only compile+graph

The benchmark must measure through benchmarks/fresh.py (decode.py, e2e.py, mixers.py, rungs.py, train_loop.py) in
both commits: each process runs it with `--processes 1 --child-json FILE` and reads the numbers it saved. Paths in the
command are relative to the repository's root, each side's own (so examples/x.yaml is each commit's spec). Only tracked
files are in the worktree: a benchmark that reads ignored data gets none on the base side.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fresh

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("this", "base")


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise SystemExit("error: ab.py: give the benchmark after --, e.g. "
                         "ab.py BASE -- benchmarks/e2e.py --only compile+graph")
    cut = argv.index("--")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", help="the commit to compare against (a hash, tag or branch of this repository)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of one process a side (default 2: this, base, base, "
                                                         "this)")
    p.add_argument("--log", default=None, help="file for the processes' standard error (default: one in the "
                                               "temporary folder, named at the end)")
    args = p.parse_args(argv[:cut])
    args.command = argv[cut + 1:]
    if args.rounds < 1:
        p.error(f"--rounds: needs 1 or more, got {args.rounds}")
    if not args.command or not args.command[0].endswith(".py"):
        p.error("the benchmark after -- must be a Python script, e.g. benchmarks/e2e.py")
    if {"--processes", "--child-json"} & set(args.command):
        p.error("the benchmark's --processes and --child-json are ab.py's to set (one process a side a round)")
    if not (ROOT / args.command[0]).is_file():
        p.error(f"{args.command[0]}: no such benchmark in this checkout ({ROOT})")
    return args


def git(*cmd: str) -> str:
    r = subprocess.run(["git", "-C", str(ROOT), *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"error: git {' '.join(cmd)}: {(r.stderr.strip().splitlines() or ['failed'])[-1]}")
    return r.stdout.strip()


def order(rounds: int) -> list[tuple[int, str]]:
    """(round, side) in the order they run: this first in odd rounds, base first in even ones."""
    return [(r, side) for r in range(1, rounds + 1) for side in (SIDES if r % 2 else SIDES[::-1])]


def run_side(side: str, root: Path, command: list[str], out: Path, err, label: str) -> dict[str, float]:
    """The benchmark in a fresh process in `root`, its numbers as the process saved them."""
    cmd = [sys.executable, command[0], *command[1:], "--processes", "1", "--child-json", str(out)]
    path = [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    err.write(f"=== {label} ({side}, {root}): {' '.join(cmd)}\n")
    err.flush()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
    for line in proc.stdout:
        print(f"[{label} {side}] {line.rstrip()}", flush=True)
    if proc.wait() != 0 or not out.is_file():
        raise SystemExit(f"error: {label}, {side} ({root}): the benchmark failed (exit {proc.returncode}): "
                         f"{fresh._last_line(Path(err.name))} (its whole output: {err.name})")
    print(f"[{label} {side}] done in {time.perf_counter() - start:.0f} s", flush=True)
    return {k: float(v) for k, v in json.loads(out.read_text()).items()}


def measure(args, base_root: Path, tmp: Path, log: Path) -> dict[str, dict[str, list[float]]]:
    """{side: {key: [value per round]}}."""
    values: dict[str, dict[str, list[float]]] = {side: {} for side in SIDES}
    roots = {"this": ROOT, "base": base_root}
    with open(log, "w") as err:
        for r, side in order(args.rounds):
            numbers = run_side(side, roots[side], args.command, tmp / f"{side}{r}.json", err,
                               f"round {r}/{args.rounds}")
            for k, v in numbers.items():
                values[side].setdefault(k, []).append(v)
    return values


def show(values: dict[str, dict[str, list[float]]], base: str, rounds: int) -> None:
    keys = [k for k in values["this"] if k in values["base"] and len(values["this"][k]) == len(values["base"][k])]
    if not keys:
        print("no number both sides report")
        return
    width = max(len(k) for k in keys)
    spread = "median [min–max] over the rounds" if rounds > 1 else "one round: no spread"
    changed = " + uncommitted changes" if git("status", "--porcelain", "-uno") else ""
    this = git("rev-parse", "--short", "HEAD") + changed
    print(f"\nthis checkout ({this}) against {base}, {rounds} round{'s' * (rounds > 1)} of one fresh process a side;\n"
          f"{spread}; the ratio taken within each round")
    print(f"{'number':<{width}}  {'this':>24}  {'base':>24}  {'this / base':>24}")
    for k in keys:
        ratio = fresh.ratio(values["this"][k], values["base"][k])
        print(f"{k:<{width}}  {fresh.cell(values['this'][k], '.4g', 24)}  {fresh.cell(values['base'][k], '.4g', 24)}  "
              f"{fresh.cell(ratio, '.4f', 23)}×")
    for side, other in (SIDES, SIDES[::-1]):
        only = [k for k in values[side] if k not in values[other]]
        if only:
            print(f"only {side} reports: {', '.join(only)}")


def main(argv=None) -> int:
    args = parse_args(argv)
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(f"error: {args.base}: not a commit of this repository ({ROOT})")
    sha = found.stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="archsearch-ab-"))
    base_root = tmp / "base"
    try:
        git("worktree", "add", "--detach", "--quiet", str(base_root), sha)
        if not (base_root / args.command[0]).is_file():
            raise SystemExit(f"error: {args.command[0]}: not in {args.base} ({sha[:10]})")
        log = Path(args.log) if args.log else tmp / "stderr.log"
        values = measure(args, base_root, tmp, log)
        print(f"(compiler and autotuning output of every process: {log})")
        show(values, f"{args.base} ({sha[:10]})", args.rounds)
    finally:  # the worktree goes, whatever happened; the log stays where it was named
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_root)], capture_output=True)
        shutil.rmtree(base_root, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
