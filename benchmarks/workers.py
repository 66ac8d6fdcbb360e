"""Search throughput with several workers against one (issue 29): the same space, budget and data, run for the same
wall time with `--workers 1` and then `--workers N`, each in a fresh run folder of its own. Prints complete trials per
hour and their ratio, each card's mean GPU utilisation over the run (nvidia-smi, sampled every second), how many
worker processes ran trials, and whether any architecture ran twice; then the card and the commit.

    python benchmarks/workers.py search_spaces/pam_hybrids.yaml --workers 2 --minutes 10 [--budget gpu] [--data DIR]

A trial counts when it completed within the window that starts with the command (set-up included: both sides pay
the same tokenising and reference measurement); `--timeout-minutes` stops each search from starting trials after the
window, and trials running then finish but are not counted. On a machine with fewer GPUs than workers, workers share
cards (archsearch assigns them round-robin); without a GPU they are CPU processes sharing the cores.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timedelta
from pathlib import Path

import optuna
from optuna.trial import TrialState

from archsearch.search.run_folder import WORKER

ROOT = Path(__file__).resolve().parents[1]


def counted(trials, start: datetime, minutes: float) -> dict:
    """From the trials of one run (objects with state, datetime_complete, params and user_attrs): complete trials
    within the window, per hour; distinct workers among them; architectures (parameter sets) that ran more than once."""
    end = start + timedelta(minutes=minutes)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.datetime_complete <= end]
    keys = [tuple(sorted(t.params.items())) for t in trials if t.state == TrialState.COMPLETE]
    return {"complete": len(done), "per_hour": len(done) * 60.0 / minutes,
            "workers": len({t.user_attrs.get(WORKER) for t in done}), "repeated": len(keys) - len(set(keys))}


class Utilisation:
    """nvidia-smi's utilization.gpu per card, sampled every second on a thread while a run goes on."""

    def __init__(self):
        self.samples: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.available = shutil.which("nvidia-smi") is not None

    def _run(self):
        while not self._stop.wait(1.0):
            r = subprocess.run(["nvidia-smi", "--query-gpu=index,utilization.gpu", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True)
            for line in r.stdout.strip().splitlines():
                card, util = (x.strip() for x in line.split(","))
                self.samples.setdefault(card, []).append(float(util))

    def __enter__(self):
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.available:
            self._thread.join()

    def means(self) -> str:
        if not self.available:
            return "no GPU"
        return ", ".join(f"GPU {c} {sum(v) / len(v):.0f}%" for c, v in sorted(self.samples.items()))


def one_run(args, workers: int, out: Path) -> tuple[dict, str]:
    cmd = [sys.executable, "-m", "archsearch", "run", args.space, "--out", str(out), "--workers", str(workers),
           "--trials", "100000", "--no-retrain", "--timeout-minutes", str(args.minutes)]
    cmd += ["--budget", args.budget] if args.budget else []
    cmd += ["--data", args.data] if args.data else []
    print(f"--workers {workers}: {' '.join(cmd)}", flush=True)
    start = datetime.now()
    with open(out.parent / f"workers{workers}.log", "w") as log, Utilisation() as util:
        r = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise SystemExit(f"--workers {workers} failed (exit {r.returncode}); its output: {out.parent}/workers{workers}.log")
    storage = f"sqlite:///{out / 'study.db'}" if workers == 1 else optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    name = optuna.get_all_study_names(storage)[0]
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    return counted(trials, start, args.minutes), util.means()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("space")
    p.add_argument("--workers", type=int, default=2, help="the side measured against one worker (default 2)")
    p.add_argument("--minutes", type=float, default=10.0, help="the window each side runs for (default 10)")
    p.add_argument("--budget", default=None, help="the space's budget (default: gpu on a GPU, else cpu)")
    p.add_argument("--data", default=None, help="the corpus (--data of archsearch run)")
    p.add_argument("--out", default=None, help="folder for both run folders and logs (default: a temporary one)")
    args = p.parse_args()
    if args.workers < 2 or args.minutes <= 0:
        p.error("--workers needs 2 or more and --minutes a positive number")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    base = Path(args.out or tempfile.mkdtemp(prefix="archsearch-workers-"))
    base.mkdir(parents=True, exist_ok=True)
    if any(base.glob("run_w*")):
        p.error(f"--out {base} holds an earlier run: each side starts from a fresh run folder; name another")
    rows = {}
    for n in (1, args.workers):
        rows[n] = one_run(args, n, base / f"run_w{n}")
        c, util = rows[n]
        print(f"--workers {n}: {c['complete']} trials complete in {args.minutes:g} min ({c['per_hour']:.0f}/h), "
              f"{util}", flush=True)
    import torch
    card = f"{torch.cuda.device_count()} × {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "cpu"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    print(f"\nsearch throughput, {Path(args.space).name}, {args.minutes:g} min each, on {card}, commit "
          f"{commit.strip() or '?'}; runs and logs in {base}")
    print(f"{'workers':>8s} {'complete':>9s} {'trials/h':>9s} {'ratio':>6s} {'ran trials':>11s} {'repeated':>9s}  "
          f"GPU utilisation (mean)")
    one = rows[1][0]["per_hour"]
    for n, (c, util) in rows.items():
        ratio = f"{c['per_hour'] / one:.2f}×" if one else "–"
        print(f"{n:8d} {c['complete']:9d} {c['per_hour']:9.1f} {ratio:>6s} {c['workers']:11d} {c['repeated']:9d}  {util}")


if __name__ == "__main__":
    main()
