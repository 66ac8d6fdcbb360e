"""`--workers N`: N processes on one study, one per visible GPU (or N CPU processes sharing the cores). Each is
`archsearch run … --worker PHASE` on the coordinator's storage (a search's phases, or a ladder's runs); Ctrl-C
reaches every one of them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ..progress import whole_line
from .rdb import redact


def stop(procs: list, grace_s: float = 5.0) -> None:
    """Stop the workers as Ctrl-C does: SIGINT, then SIGTERM to any still running after `grace_s` (a process started
    in the background ignores SIGINT; the workers take SIGTERM as Ctrl-C too). A second Ctrl-C or SIGTERM meanwhile
    is ignored, so that the coordinator never leaves a worker running."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait()


WORKER_ENV = "ARCHSEARCH_WORKER"  # set in every worker process to its rank


def worker_echo():
    """A worker process's print: whole lines on stdout (the coordinator's), each saying whose it is."""
    rank = os.environ.get(WORKER_ENV, "?")
    return lambda line: whole_line(sys.stdout, f"[worker {rank}] {line}")


def _env(rank: int, workers: int) -> dict:
    import torch

    env = {**os.environ, WORKER_ENV: str(rank)}
    if torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        env["CUDA_VISIBLE_DEVICES"] = gpus[rank % len(gpus)]
    else:  # share the cores instead of oversubscribing them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    return env


def run(setup, phase: str, workers: int, n_trials: int, echo=print, timeout_minutes: float | None = None) -> None:
    """`workers` processes of `phase` on the study. Searching, each keeps to the budget's time; re-training, to
    `timeout_minutes` (what is left of the command's --timeout-minutes), or to none."""
    cmd = [sys.executable, "-m", "archsearch", "run", setup.space.file, "--out", str(setup.out), "--storage", setup.url,
           "--budget", setup.budget_name, "--trials", str(n_trials), "--worker", phase]
    if setup.objective.device:
        cmd += ["--device", setup.objective.device]
    limit = timeout_minutes if phase == "retrain" else setup.budget.timeout_minutes
    if limit:
        cmd += ["--timeout-minutes", f"{limit:.4f}"]
    if setup.data:
        cmd += ["--data", setup.data]
    spawn(cmd, workers, phase, setup.url, echo)


def spawn(cmd: list[str], workers: int, phase: str, url: str, echo=print) -> None:
    """Run `cmd` in `workers` processes at once, each with its GPU (or its share of the cores), until all stop."""
    envs = [_env(rank, workers) for rank in range(workers)]
    gpus = [e["CUDA_VISIBLE_DEVICES"] for e in envs if "CUDA_VISIBLE_DEVICES" in e]
    where = f"GPUs {', '.join(gpus)}" if gpus else f"{envs[0]['OMP_NUM_THREADS']} CPU thread(s) each"
    echo(f"{phase}: starting {workers} worker process{'es' if workers > 1 else ''} on {redact(url)} ({where})")
    procs = [subprocess.Popen(cmd, env=env) for env in envs]
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        stop(procs)
        raise
    bad = [(rank, c) for rank, c in enumerate(codes) if c != 0]
    if bad:
        echo("worker(s) " + ", ".join(f"{r} (exit {c})" for r, c in bad) + " stopped early; their unfinished trials "
             "are re-queued by the other workers or the next run")
