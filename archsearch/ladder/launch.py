"""How a ladder runs from the command line: in this process, or (`--workers N`) in N worker processes on its study,
one per visible GPU, each claiming the next run the plan wants (runner.py)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..search import interrupts
from ..search.workers import spawn, worker_echo
from .plan import wanted
from .runner import LadderRun, finished


def run_ladder(path: str, out: Path | None = None, storage: str | None = None, device: str | None = None,
               data: str | None = None, timeout_minutes: float | None = None, echo=print,
               workers: int = 1, fill: bool = False) -> LadderRun:
    """`archsearch run LADDER`: in this process, or with `workers` > 1 in that many processes on its study."""
    interrupts.install()  # `timeout` or a scheduler stops a run as Ctrl-C does (it is marked, and resumes)
    start = time.monotonic()
    run = LadderRun(path, out, storage, device, data, echo)  # the task's token cache is built once, here
    echo(f"ladder '{run.ladder.name}' on {run.task.name}: {len(run.sizes)} family × rung sizes\n{run.size_table()}")
    if workers > 1:
        before = len(finished(run.study))
        cmd = [sys.executable, "-m", "archsearch", "run", path, "--out", str(run.out), "--storage", run.url,
               "--worker", "ladder"]
        cmd += ["--device", device] if device else []
        cmd += ["--data", data] if data else []
        if timeout_minutes is not None:  # the workers' limit ends where this one does
            cmd += ["--timeout-minutes", f"{max(timeout_minutes - (time.monotonic() - start) / 60, 1e-3):.4f}"]
        cmd += ["--fill"] if fill else []
        spawn(cmd, workers, "ladder", run.url, echo)
        n = len(finished(run.study)) - before
    else:
        n = run.run(timeout_minutes, fill=fill)
    done = finished(run.study)
    left = [j for j in wanted(run.ladder, done) if j.key not in done]
    echo(f"ladder '{run.ladder.name}': {n} run(s) this time, {len(done)} finished, {len(left)} wanted still")
    return run


def run_ladder_worker(path: str, out: Path, storage: str, device: str | None = None, data: str | None = None,
                      timeout_minutes: float | None = None, fill: bool = False) -> None:
    """One of `run LADDER --workers N`'s processes: claims runs until nothing is left that it could run."""
    interrupts.install()
    start = time.monotonic()
    run = LadderRun(path, out, storage, device, data, worker_echo())
    if timeout_minutes is not None:  # the coordinator's limit, less this process's own setup
        timeout_minutes = max(timeout_minutes - (time.monotonic() - start) / 60, 1e-3)
    run.run(timeout_minutes, wait=True, fill=fill)
