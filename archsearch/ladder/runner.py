"""Run a ladder: every run is a trial of an Optuna study (OUT/ladder.db by default), enqueued when the plan wants it
and claimed atomically, so an interrupted ladder resumes where it stopped and repeats no finished run. Each run's
numbers are those of its saved weights loaded into a freshly built model (archsearch.saved)."""
from __future__ import annotations

import hashlib
import math
import os
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import optuna
import torch
import yaml
from optuna.trial import TrialState

from .. import tasks
from ..build import build
from ..context import device_name, resolve_device, step_shape
from ..errors import Loc, SpecError
from ..passes import run_passes
from ..saved import train_then_score
from ..search import interrupts
from ..search.objective import mixers, worker_id
from ..search.recovery import INTERRUPTED, heartbeat, recover, superseded, will_end
from ..search.run_folder import make_storage, same_tokens, timed_cards
from ..search.time_limit import pick
from ..search.workers import WORKER_ENV
from ..yamlloc import load_file
from .config import load_ladder
from .folder import (COPY, checkpoint_path, default_storage, drop_checkpoint, progress_of, spec_path, weights_path,
                     write_note)
from .plan import Done, Job, wanted
from .specs import check_size, non_embedding, plain, spec_doc, spec_of, tokens_for, with_sides
from .trials import job_trials

QUEUE_LOCK = ".queue.lock"  # held while a process plans, enqueues and claims, so that workers never enqueue a run twice
POLL_SECONDS = 5.0  # how often a worker with nothing to claim looks again while others run


def job_of(t) -> Job:
    a = t.user_attrs
    return Job(a["family"], a["rung"], float(a["lr"]), int(a["seed"]), a["phase"])


def work(sizes: dict, job: Job) -> float:
    """A run's training FLOPs up to a constant (forward FLOPs per token × tokens): what its time scales with."""
    s = sizes[f"{job.family}/{job.rung}"]
    return s["flops_per_token"] * s["tokens"]


def finished(study) -> dict[str, Done]:
    """Runs that count: complete (their validation perplexity) or failed for good (None); an interrupted run is
    not finished (it is queued again). A run trained twice is known by its last finished trial (trials.py)."""
    return {job: Done(job_of(t), t.user_attrs.get("val_ppl") if t.state == TrialState.COMPLETE else None)
            for job, t in job_trials(study.get_trials(deepcopy=False)).items()}


class LadderRun:
    """The ladder, its task (built once: every family trains on the same tokens), sizes and study."""

    def __init__(self, path: str, out: Path | None, storage: str | None, device: str | None, data: str | None,
                 echo=print):
        self.ladder = load_ladder(path)
        if data:
            self.ladder = replace(self.ladder, task={**self.ladder.task, "data": data})
        if device:
            self.ladder = replace(self.ladder, train={**self.ladder.train, "device": device})
        self.out = out or Path("runs") / self.ladder.name
        self.out.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        first = self.ladder.families[0]
        first_spec = spec_of(self.ladder, Job(first.name, next(iter(first.rungs)), 1e-3, 0, "grid"))
        self.task = tasks.make(first_spec.task)
        self.sizes = self._sizes()
        self.ladder = with_sides(self.ladder, self.sizes)
        self._waiting_said = False  # a worker says once that it waits on others, not at every poll
        self.url = storage or default_storage(self.out)
        self.storage = make_storage(self.url)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(study_name=self.ladder.name, storage=self.storage, load_if_exists=True)
        # before anything of the folder's record is rewritten
        same_tokens(self.study, self.task, Loc("--data") if data else Loc(self.ladder.file, 0, "task.data"))
        cards = timed_cards(self.study)
        self.card = here = device_name(resolve_device(first_spec.train.device))
        # perplexities do not depend on the card; GPU-seconds do (said once: by the coordinator, not each worker)
        if cards and cards != {here} and WORKER_ENV not in os.environ:
            echo(f"note: '{self.ladder.name}' has runs timed on {', '.join(sorted(cards))} and this is {here}: the "
                 f"runs go on here, and the report reads GPU-seconds at equal time only where one card, one "
                 f"training loop and one step form timed them (`archsearch retime {self.out}` times every other cell "
                 f"on one card)")
        (self.out / COPY).write_text(yaml.safe_dump(self._as_run(path), sort_keys=False))
        self.study.set_user_attr("sizes", self.sizes)
        self.study.set_user_attr("task", self.task.name)

    def _as_run(self, path: str) -> dict:
        """The ladder file as run, standing alone: families' spec files inlined, the task and train settings as
        used (--data, --device)."""
        doc = plain(load_file(Path(path)))
        for name, fam in doc["families"].items():
            if "file" in fam:
                fam["spec"] = plain(self.ladder.family(name).spec)
                del fam["file"]
        doc["task"], doc["train"] = plain(self.ladder.task), plain(self.ladder.train)
        return doc

    def _sizes(self) -> dict:
        """{"family/rung": {non_embedding, params, flops_per_token, tokens}}, each checked against its rung."""
        out = {}
        for fam in self.ladder.families:
            for rung in fam.rungs:
                spec = spec_of(self.ladder, Job(fam.name, rung, 1e-3, 0, "grid"))
                ir = run_passes(build(spec, vocab=self.task.vocab_size))
                n = non_embedding(ir)
                check_size(self.ladder, fam.name, rung, n)
                out[f"{fam.name}/{rung}"] = {
                    "non_embedding": n, "params": ir.meta["params"], "flops_per_token": ir.meta["flops"],
                    "tokens": tokens_for(self.ladder, n, spec.train.batch_tokens), "mixers": mixers(spec)}
        return out

    def size_table(self) -> str:
        lines = [f"{'family':<22} {'rung':<6} {'non-embedding':>14} {'params':>12} {'FLOPs/token':>13} {'tokens':>13}"]
        for key, s in self.sizes.items():
            fam, rung = key.split("/")
            lines.append(f"{fam:<22} {rung:<6} {s['non_embedding']:>14,} {s['params']:>12,} "
                         f"{s['flops_per_token']:>13,} {s['tokens']:>13,}")
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------------ the queue
    def _enqueue(self, jobs: list[Job]) -> None:
        trials = self.study.get_trials(deepcopy=False)
        gone = superseded(trials)
        # a run stopped on purpose (paused, Ctrl-C) is queued again by recover(), as itself: not enqueued afresh
        have = {t.user_attrs.get("job") for t in trials
                if t.state in (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING) or
                (t.user_attrs.get("failed_reason") == INTERRUPTED and t.number not in gone)}
        have |= set(finished(self.study))
        for job in jobs:
            if job.key not in have:
                self.study.enqueue_trial({}, user_attrs=job.attrs())

    def _waiting(self, order: list[Job]) -> list:
        """The queued runs the plan wants now, in its order (every one of them can run now)."""
        rank = {j.key: i for i, j in enumerate(order)}
        waiting = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                   if t.user_attrs.get("job") in rank]
        return sorted(waiting, key=lambda t: rank[t.user_attrs["job"]])

    def estimate(self, job: Job) -> float | None:
        """Seconds a run should take: from a finished run of the same family and rung; else from the finished runs
        of other families at the rung (the same training settings), scaled by FLOPs per token × tokens, the
        slowest's; else from the family's rung below scaled the same way, when the two rungs train alike. None when
        nothing comparable has run (a rung with train settings of its own, e.g. compiled, is not the one below
        scaled). Runs on this card first: another card's (a study goes on on whichever it is lent) may be much
        quicker."""
        runs = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if "wall_seconds" in t.user_attrs]
        here = [t for t in runs if t.user_attrs.get("card") == self.card]
        return next((e for e in (_estimate(self.ladder, self.sizes, job, here),
                                 _estimate(self.ladder, self.sizes, job, runs)) if e is not None), None)

    @contextmanager
    def _queue(self):
        """The study's queue to this process alone (an advisory lock on a file of OUT): the processes of one host
        that share the study plan, enqueue and claim one at a time (workers on other hosts may still enqueue a run
        twice; trials.py then keeps one)."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        with open(self.out / QUEUE_LOCK, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _next(self, start: float, window: float | None, wait: bool, fill: bool = False):
        """Claim the run to train next: a RUNNING trial, or "wait" (a worker: others are running and may unlock
        more), or None (nothing left, or nothing fits the time limit; with `fill`, nothing fits and too little is
        left to start a part)."""
        with self._queue():
            order = wanted(self.ladder, finished(self.study))
            self._enqueue(order)
            waiting = self._waiting(order)
            if not waiting:
                busy = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                        if wait and will_end(t, self.storage)]
                if busy and (window is None or time.monotonic() - start < window):
                    if not self._waiting_said:
                        self.echo(f"waiting for {len(busy)} run(s) of other workers "
                                  f"({', '.join(t.user_attrs['job'] for t in busy)}): their results may unlock more")
                        self._waiting_said = True
                    return "wait"
                return None
            self._waiting_said = False
            t = waiting[0]
            if window is not None:
                left = window - (time.monotonic() - start)
                known: dict = {}  # each estimate once: the message below says what pick() decided on

                def estimate(w):
                    if w._trial_id not in known:
                        known[w._trial_id] = self.remaining(job_of(w))
                    return known[w._trial_id]

                t = pick(waiting, estimate, left, window, fill)
                first, need = job_of(waiting[0]), estimate(waiting[0])
                if t is waiting[0] and need is not None and need > left:
                    self.echo(f"time limit: {first.key} would need about {need:.0f} s, {left:.0f} s left; it starts "
                              "now and pauses at the limit (the same command, on this disk, goes on from there)")
                if t is not waiting[0]:
                    why = f"{first.key} would need about {need:.0f} s, {max(left, 0):.0f} s left" if need else \
                        f"{window / 60:g} minutes have passed"
                    if t is None:
                        self.echo(f"time limit: {why}; stopping here (the same command resumes)")
                        return None
                    self.echo(f"time limit: {why}; {job_of(t).key} fits first")
            with interrupts.held():  # claimed and named together: a claim without its worker would never be freed
                if not self.storage.set_trial_state_values(t._trial_id, TrialState.RUNNING):
                    return "wait"  # claimed by a process on another host: look again
                self.storage.set_trial_user_attr(t._trial_id, "worker", worker_id())  # whose it is, from the claim on
            return t

    def run(self, timeout_minutes: float | None = None, wait: bool = False, fill: bool = False) -> int:
        """Run what the plan wants until nothing is left or the next run would not finish within the time limit
        (`fill`: until too little is left to start one, the last pausing at the limit); returns how many runs this
        process finished. With `wait` (one of several workers) a process with nothing to claim waits while others
        run, since their results may unlock more (the next rung)."""
        start, ran = time.monotonic(), 0
        window = None if timeout_minutes is None else timeout_minutes * 60
        with self._queue():
            recover(self.study, self.storage)
        while True:
            t = self._next(start, window, wait, fill)
            if t is None:
                return ran
            if t == "wait":
                time.sleep(POLL_SECONDS)
                with self._queue():
                    recover(self.study, self.storage)  # a worker that died leaves its run to the others
                continue
            job = job_of(t)
            with heartbeat(self.storage, t._trial_id):
                done = self._run_one(t, job, None if window is None else start + window)
            if not done:  # paused at the time limit
                return ran
            ran += 1

    def remaining(self, job: Job) -> float | None:
        """Seconds a run should still take: its estimate, less the part a paused run has done."""
        need = self.estimate(job)
        if need is None:
            return None
        done = progress_of(checkpoint_path(self.out, job))["tokens"]
        return need * (1 - done / self.sizes[f"{job.family}/{job.rung}"]["tokens"])

    def _run_one(self, t, job: Job, deadline: float | None) -> bool:
        """Train, score and record one run; False when it paused at `deadline` (its checkpoint kept)."""
        put = lambda k, v: self.storage.set_trial_user_attr(t._trial_id, k, v)  # noqa: E731
        size = self.sizes[f"{job.family}/{job.rung}"]
        spec = spec_of(self.ladder, job, tokens=size["tokens"])
        path = spec_path(self.out, job)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(spec_doc(self.ladder, job.family, job.rung, lr=job.lr, seed=job.seed,
                                                tokens=size["tokens"]), sort_keys=False))
        put("worker", worker_id())
        put("spec_file", str(path.relative_to(self.out)))  # relative: the study folder may move
        splits = ("validation",) if job.phase == "grid" else ("validation", "test")
        t0 = time.perf_counter()
        ckpt = checkpoint_path(self.out, job)
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        before = progress_of(ckpt)
        if ckpt.is_file() and before.get("spec") != digest:  # a checkpoint of another spec, or of unknown origin
            drop_checkpoint(ckpt)
            before = progress_of(ckpt)
        write_note(ckpt, {**before, "spec": digest})
        try:
            result, state, ir = self._fit(spec, job, splits, ckpt, deadline)
        except KeyboardInterrupt:
            with interrupts.held():
                write_note(ckpt, {**before, "spec": digest,
                                  "wall_seconds": before["wall_seconds"] + time.perf_counter() - t0})
                put("failed_reason", INTERRUPTED)
                self.study.tell(t.number, state=TrialState.FAIL)
            raise
        except _Paused as e:
            write_note(ckpt, {"tokens": e.tokens, "spec": digest,
                              "wall_seconds": before["wall_seconds"] + time.perf_counter() - t0})
            put("failed_reason", INTERRUPTED)
            self.study.tell(t.number, state=TrialState.FAIL)
            self.echo(f"{job.key}: {e} ({e.tokens:,} of {size['tokens']:,} tokens); the same command resumes it")
            return False
        except _Failed as e:
            put("failed_reason", str(e))
            self.study.tell(t.number, state=TrialState.FAIL)
            self.echo(f"{job.key}: failed: {e}")
            drop_checkpoint(ckpt)
            return True
        with interrupts.held():  # a trained run is recorded whole: a signal here waits for the tell
            drop_checkpoint(ckpt)
            weights = weights_path(self.out, job, t.number)
            weights.parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, weights)
            result.update(size, wall_seconds=before["wall_seconds"] + time.perf_counter() - t0,
                          weights=str(weights.relative_to(self.out)),
                          train_flops=3 * size["flops_per_token"] * result["tokens"],
                          gpu_seconds=result["tokens"] / result["tokens_per_s"])
            for k, v in result.items():
                put(k, v)
            self.study.tell(t.number, result["val_ppl"])
        shown = "test" if job.phase == "seeds" else "val"
        self.echo(f"{job.key}: {shown} ppl {result[shown + '_ppl']:.3f} ({result['tokens']:,} tokens, "
                  f"{result['tokens_per_s']:,.0f} tok/s)")
        return True

    def _fit(self, spec, job: Job, splits, ckpt: Path, deadline: float | None) -> tuple[dict, dict, object]:
        ir = run_passes(build(spec, vocab=self.task.vocab_size))
        _, seq_len = step_shape(spec.train, ir.model.seq_len)
        if seq_len > ir.model.seq_len:
            raise SpecError(Loc(self.ladder.file, 0, "train.seq_len"), f"{seq_len} exceeds model.seq_len "
                                                                        f"{ir.model.seq_len} ({job.family})")
        device = resolve_device(spec.train.device)
        try:
            res, final, state = train_then_score(ir, spec.train, self.task, seq_len, device, splits, label=job.key,
                                                 checkpoint=ckpt, deadline=deadline)
            if res.status == "paused":
                raise _Paused(res.reason, res.tokens)
            if res.status != "completed":
                raise _Failed(f"{res.status}: {res.reason}")
        except torch.OutOfMemoryError:
            raise _Failed("out of memory") from None
        if not all(math.isfinite(final[k]) for k in final if k.endswith("_ppl")):
            raise _Failed("non-finite perplexity")
        return {**final, "tokens": res.tokens, "steps": res.steps, "tokens_per_s": res.tokens_per_s, "loop": res.loop,
                "form": res.form,
                "train_seconds": res.seconds, "peak_memory_bytes": res.peak_memory_bytes, "card": device_name(device),
                "curve": [{"tokens": e["tokens"], "val_loss": e["loss"]} for e in res.evals]}, state, ir


def _estimate(ladder, sizes: dict, job: Job, runs: list) -> float | None:
    """LadderRun.estimate from the finished trials `runs` alone."""
    same = [t for t in runs if (t.user_attrs["family"], t.user_attrs["rung"]) == (job.family, job.rung)]
    if same:
        return max(t.user_attrs["wall_seconds"] for t in same)
    scaled = lambda t: t.user_attrs["wall_seconds"] * work(sizes, job) / work(sizes, job_of(t))  # noqa: E731
    peers = [t for t in runs if t.user_attrs["rung"] == job.rung]
    if peers:
        return max(map(scaled, peers))
    train = ladder.rung(job.rung).train
    below = [t for t in runs if t.user_attrs["family"] == job.family and
             ladder.rung(t.user_attrs["rung"]).train == train]
    if not below:
        return None
    return scaled(max(below, key=lambda t: sizes[f"{job.family}/{t.user_attrs['rung']}"]["non_embedding"]))


class _Failed(Exception):
    """A run without a result (diverged, out of memory): recorded as failed, and the ladder goes on."""


class _Paused(Exception):
    """A run that reached the time limit and saved its checkpoint: queued again, to resume where it stopped."""

    def __init__(self, reason: str, tokens: int):
        super().__init__(reason)
        self.tokens = tokens

