"""A benchmark's numbers over fresh processes (issue 27): the same step measures 0.62–0.89 ms from one process to the
next (allocator layout, autotuning choices, clocks), so one process's number is not the benchmark's. A benchmark hands
its measurement — a function from its arguments to {key: value} — to `over_processes`, which runs it in N fresh
Python processes one after another and returns {key: [value per process]}; `cell` prints a median with its spread.

Each process's standard output (its progress lines) is relayed as it comes, prefixed [i/N]; its standard error, where
compilers and autotuners write their logs, goes to a log file that is named at the end, so that a run's output is its
numbers. With --processes 1 the measurement runs in this process and nothing is relayed or redirected.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from archsearch.errors import SpecError

Values = dict[str, list[float]]


def add_arguments(p: argparse.ArgumentParser, processes: int = 3) -> None:
    p.add_argument("--processes", type=int, default=processes,
                   help=f"fresh processes to measure in, one after another: every number is their median, with the "
                        f"spread (min–max) beside it (default {processes}; 1: in this process)")
    p.add_argument("--log", default=None, help="file for the processes' standard error (compiler and autotuning logs); "
                                               "default: a file in the temporary folder, named at the end")
    p.add_argument("--child-json", default=None, help=argparse.SUPPRESS)


def over_processes(args, measure: Callable[[argparse.Namespace], dict[str, float]]) -> Values:
    """{key: [value per process]}. In a child process (--child-json) this writes its numbers and exits."""
    if args.processes < 1:
        raise SystemExit(f"--processes: needs 1 or more, got {args.processes}")
    if args.child_json or args.processes == 1:
        try:
            numbers = measure(args)
        except SpecError as e:  # a spec the benchmark was pointed at: one line, as the CLI gives it
            raise SystemExit(f"error: {e}")
        if not args.child_json:
            return {k: [v] for k, v in numbers.items()}
        Path(args.child_json).write_text(json.dumps(numbers))
        raise SystemExit(0)
    tmp = Path(tempfile.mkdtemp(prefix="archsearch-bench-"))
    log = Path(args.log) if args.log else tmp / "stderr.log"
    runs = []
    with open(log, "w") as err:
        for i in range(1, args.processes + 1):
            out = tmp / f"process{i}.json"
            cmd = [sys.executable, sys.argv[0], *sys.argv[1:], "--processes", "1", "--child-json", str(out)]
            runs.append(run_child(cmd, out, err, f"{i}/{args.processes}", f"process {i}/{args.processes} failed"))
    print(f"(compiler and autotuning output of the {args.processes} processes: {log})")
    keys = [k for k in runs[0] if all(k in r for r in runs)]
    return {k: [r[k] for r in runs] for k in keys}


def run_child(cmd: list[str], out: Path, err, prefix: str, failure: str, header: str = "", **popen) -> dict:
    """One measuring process (a benchmark's child, or one side of benchmarks/ab.py): its standard output relayed as
    '[prefix] line', its standard error appended to `err` (the open log) under '=== header', and its numbers as it
    saved them in `out`. A failure is a one-line error, `failure` (exit N): the log's last line. Stopped from outside
    (an error, Ctrl-C, a time limit's SIGTERM), the child goes too. `popen`: cwd and env."""
    err.write(f"=== {header or prefix}: {' '.join(cmd)}\n")
    err.flush()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1, **popen)
    try:
        for line in proc.stdout:
            print(f"[{prefix}] {line.rstrip()}", flush=True)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0 or not out.is_file():
        raise SystemExit(f"{failure} (exit {proc.returncode}): {last_line(Path(err.name))} "
                         f"(its whole output: {err.name})")
    print(f"[{prefix}] done in {time.perf_counter() - start:.0f} s", flush=True)
    return json.loads(out.read_text())


def last_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no error output"


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio(a: list[float], b: list[float]) -> list[float]:
    """Per process: a ratio is taken within each process, where both sides ran on the same machine state."""
    return [x / y for x, y in zip(a, b)]


def cell(values: list[float], fmt: str = ".3f", width: int = 0) -> str:
    """'median' for one process, 'median [min–max]' for more."""
    text = f"{median(values):{fmt}}"
    if len(values) > 1:
        text += f" [{min(values):{fmt}}–{max(values):{fmt}}]"
    return f"{text:>{width}s}"


def spread_note(values: Values) -> str:
    n = max((len(v) for v in values.values()), default=1)
    return (f"median over {n} fresh processes [min–max]" if n > 1 else
            "one process (--processes 1): no spread; the median over 3 is the benchmark's number")
