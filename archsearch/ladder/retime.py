"""`archsearch retime OUT`: a ladder's training speed measured again on this card with the trainer's current loop,
per (family, rung), for the cells whose finished runs another card or another loop timed. A run records its steady
tokens/s as it trains, and its GPU-seconds (training tokens / tokens/s) set the report's equal-GPU-time reading;
runs timed on two cards, or by two loops (train.LOOP), would not compare. Each such cell trains its architecture
again, with its own spec file and train settings on the study's tokens, for a few hundred steps and records the
tokens/s in the study (user attributes `retimed:CELL`); the runs' own records stay as they were, and the report
(results.gather, on the card and loop that time the most cells) uses the new figure for them, saying so. So a study
whose runs were trained on several kinds of card (whichever a lender had) gets its time axis from one. A cell
re-timed on this card with this loop is left alone unless --force asks for it again; then the new timing joins the
earlier ones of that card, loop and length, and the cell's figure is their median (each call a fresh process, so the
spread is the timing's own noise, which the report states). --cells picks cells by name or pattern (`*/2m`).
A timing's step form (compiled, CUDA-graphed: train.form_of) is part of it too: a ladder whose top rung trains
compiled and whose lower rungs trained graphed only has two time axes; --compile times every cell compiled, so the
lines of GPU-seconds stand on one, each family in its best form."""
from __future__ import annotations

import fnmatch
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path

from optuna.trial import TrialState

from .. import tasks
from ..build import build
from ..context import device_name, run_context
from ..errors import Loc, SpecError
from ..lower import lower
from ..passes import run_passes
from ..search.run_folder import same_tokens
from ..spec import load_spec
from ..task_and_train import TrainConfig
from ..train import LOOP, form_of, train
from .folder import COPY, open_folder
from .specs import spec_doc
from .trials import job_trials

RETIMED = "retimed:"  # study user attributes "retimed:family/rung" → {tokens_per_s, loop, form, steps, card, date,
# time, samples, dates}: one key a cell, so two re-timings at once (two machines on one storage) each keep what they
# measured


def retimed(study, forms: dict | None = None) -> dict[str, dict]:
    """{"family/rung": its re-timing} of the cells `archsearch retime` timed; with `forms` (rung_forms), each with
    its step form (with_form)."""
    entries = {k[len(RETIMED):]: v for k, v in study.user_attrs.items() if k.startswith(RETIMED)}
    return entries if forms is None else {cell: with_form(e, forms, cell) for cell, e in entries.items()}


def loop_of(attrs: dict) -> str:
    """The training loop that timed a run (runs from before loops had names waited for every step)."""
    return attrs.get("loop", "waited")


def timing_of(attrs: dict) -> tuple[str, str, str]:
    """(card, training loop, step form) that timed a run or a re-timing, its form filled in (with_form): GPU-seconds
    compare only within one such triple (a compiled step is about twice as quick as a graphed one at 20M)."""
    return str(attrs.get("card", "an unrecorded card")), loop_of(attrs), str(attrs.get("form", "an unrecorded form"))


def way_words(timing: tuple) -> str:
    """A (card, loop, step form) in words: "CARD, LOOP loop, FORM"."""
    card, loop, form = timing
    return f"{card}, {loop} loop, {form}"


def rung_forms(ladder) -> dict[str, tuple[bool, bool]]:
    """{"family/rung": (compile, cuda_graph)} as the ladder's train settings give them: the form of the runs and
    re-timings recorded before records named their form (2026-12-05)."""
    forms = {}
    for fam in ladder.families:
        for rung in fam.rungs:
            train = spec_doc(ladder, fam.name, rung)["train"]
            forms[f"{fam.name}/{rung}"] = (bool(train.get("compile", False)), bool(train.get("cuda_graph", False)))
    return forms


def with_form(attrs: dict, forms: dict, cell: str) -> dict:
    """A run's or a re-timing's record with its step form: its own, else its cell's by the ladder (CUDA graphs only
    where a GPU timed it)."""
    if "form" in attrs or cell not in forms:
        return attrs
    compiled, graphed = forms[cell]
    return {**attrs, "form": form_of(compiled, graphed and attrs.get("card", "cpu") != "cpu")}


def stale(ladder, study, card: str, loop: str = LOOP, force: bool = False, compile: bool = False) -> dict[str, list]:
    """{"family/rung": [finished trials]} of the cells with a finished run timed otherwise than this call would time
    it (on `card`, by `loop`, in its rung's form or, with `compile`, compiled), and not yet re-timed so (force:
    re-timed or not). A call without `compile` leaves a cell re-timed on this card by this loop in another form (an
    earlier --compile's) as it is: a cell keeps one re-timing, which it would replace."""
    forms = rung_forms(ladder)
    done = {} if force else retimed(study, forms)
    cells: dict[str, list] = {}
    for t in job_trials(study.get_trials(deepcopy=False)).values():
        if t.state == TrialState.COMPLETE:
            a = t.user_attrs
            cells.setdefault(f"{a.get('family')}/{a.get('rung')}", []).append(t)

    def here(cell):
        compiled, graphed = forms.get(cell, (False, False))
        return card, loop, form_of(compiled or compile, graphed and card != "cpu")

    def settled(cell):
        if cell not in done:
            return False
        way = timing_of(done[cell])
        # compiled is what --compile asks; whether its graph could be captured is the step's own affair (a step
        # that ran eagerly records so, and would otherwise be timed again on every call)
        return way[:2] == (card, loop) and (not compile or way[2].startswith("compile"))

    return {cell: trials for cell, trials in cells.items()
            if any(timing_of(with_form(t.user_attrs, forms, cell)) != here(cell) for t in trials)
            and not settled(cell)}


def samples_of(entry: dict) -> list[float]:
    """The tokens/s of every timing behind a re-timing's figure (records from before repeats hold one)."""
    return list(entry.get("samples", [entry["tokens_per_s"]]))


def dates_of(entry: dict) -> list[str]:
    """The date of every timing behind a re-timing's figure, as samples_of."""
    return list(entry.get("dates", [entry["date"]]))


def _record(before: dict | None, tokens_per_s: float, loop: str, steps: int, card: str, form: str) -> dict:
    """A cell's re-timing record: a timing of the same card, loop, form and length as the one before (its form filled
    in) joins its samples and the figure is their median; any other replaces it."""
    same = before is not None and (*timing_of(before), before["steps"]) == (card, loop, form, steps)
    samples = [*(samples_of(before) if same else []), tokens_per_s]
    today = time.strftime("%Y-%m-%d")
    dates = [*(dates_of(before) if same else []), today]
    return {"tokens_per_s": statistics.median(samples), "samples": samples, "loop": loop, "form": form,
            "steps": steps, "card": card, "date": today, "dates": dates, "time": time.time()}


def named(cells: dict, patterns: list[str] | None, every: list[str]) -> dict:
    """Those of `cells` (the ones a call would re-time) that `patterns` name (family/rung, or fnmatch patterns such
    as `*/2m`); a pattern matching none of `every` cell with a finished run is an error, so a typo does not quietly
    time nothing (one naming only cells already re-timed here picks nothing: --force re-times those)."""
    if not patterns:
        return cells
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(c, pattern) for c in every):
            raise SpecError(Loc("--cells"), f"'{pattern}' matches no cell with a finished run (these are: "
                                            f"{', '.join(every)})")
    return {c: v for c, v in cells.items() if any(fnmatch.fnmatchcase(c, p) for p in patterns)}


def _spec(out: Path, t):
    path = out / t.user_attrs.get("spec_file", "")
    if not path.is_file():
        raise SpecError(Loc(str(path)), f"run {t.user_attrs.get('job')}'s spec file is not there: re-timing trains "
                                        "each cell's own spec")
    return load_spec(path)


def _plan(out: Path, trials: list, task, steps: int, device: str | None, compile: bool):
    """(IR, train settings, context) of a cell's timing run: the spec of its run at the chosen rate (a seed run, else
    the best grid run: a rate that diverged in 300 steps would time nothing), `steps` steps, no evaluations; compiled
    where `compile` asks (each cell's own CUDA-graph setting kept)."""
    best = min(trials, key=lambda t: (t.user_attrs.get("phase") != "seeds", t.user_attrs.get("val_ppl", math.inf)))
    spec = _spec(out, best)
    cfg = replace(spec.train, tokens=steps * spec.train.batch_tokens, evals=0, compile=spec.train.compile or compile,
                  **({"device": device} if device else {}))
    ir = run_passes(build(spec, vocab=task.vocab_size))
    return ir, cfg, run_context(cfg, ir.model.seq_len, Loc(str(out / best.user_attrs["spec_file"]), 0,
                                                           "train.seq_len"))


def retime(out: Path, *, storage: str | None = None, data: str | None = None, device: str | None = None,
           steps: int = 300, force: bool = False, cells: list[str] | None = None, compile: bool = False,
           timeout_minutes: float | None = None, echo=print) -> int:
    """Re-time every stale cell of the ladder in `out` (force: also those re-timed before, the new timing joining
    theirs), or those of them that `cells` names; compile: every cell compiled (+ its CUDA graphs), so that rungs
    trained in different forms stand on one time axis. timeout_minutes: start no cell that the longest one so far
    says would end past it (the cells left stay stale: the same command goes on with them). Returns how many it
    re-timed."""
    if steps < 3:
        raise SpecError(Loc("--steps"), f"needs 3 or more (the first two are not timed), got {steps}")
    ladder, study = open_folder(out, storage)
    finished = [t for t in job_trials(study.get_trials(deepcopy=False)).values() if t.state == TrialState.COMPLETE]
    if not finished:
        echo(f"'{ladder.name}' has no finished run: nothing to re-time")
        return 0
    first_spec = _spec(out, finished[0])
    # one device for every cell (each spec's own `auto` or `cuda` may say another): the card stale() compares with
    # is the card that times them; checked before the tokens are made
    where = run_context(replace(TrainConfig(), device=device or first_spec.train.device), 1, Loc("--device")).device
    card = device_name(where)
    every = list(dict.fromkeys(f"{t.user_attrs.get('family')}/{t.user_attrs.get('rung')}" for t in finished))
    how = f"the {LOOP} loop{', compiled' if compile else ''}"
    cells = named(stale(ladder, study, card, force=force, compile=compile), cells, every)
    if not cells:
        echo(f"every finished run of '{ladder.name}' was timed on {card} by {how} or re-timed so: nothing "
             "to re-time (--force re-times the re-timed again)")
        return 0
    task_cfg = first_spec.task
    task = tasks.make(replace(task_cfg, data=data) if data else task_cfg)
    same_tokens(study, task, Loc("--data") if data else Loc(str(out / COPY), 0, "task.data"))
    plans = {cell: _plan(out, trials, task, steps, str(where), compile)  # all, first
             for cell, trials in cells.items()}
    echo(f"re-timing {len(cells)} cell(s) of '{ladder.name}' on {card} with {how}, {steps} steps each")
    forms = rung_forms(ladder)
    start, longest = time.monotonic(), 0.0  # the limit counts from here: the tokens are made, the cells planned
    for i, (cell, (ir, cfg, ctx)) in enumerate(plans.items()):
        # the first cell always starts: no cell timed yet says it would end past the limit (docs/ladder.md)
        if timeout_minutes is not None and i > 0 and time.monotonic() - start + longest > 60 * timeout_minutes:
            echo(f"time limit: {len(plans) - i} cell(s) left, each about {longest:.0f} s as the longest so far; "
                 "stopping here (the same command goes on with them)")
            return i
        began = time.monotonic()
        r = train(lower(ir), task, cfg, seq_len=ctx.seq_len, label=f"retime {cell}")
        longest = max(longest, time.monotonic() - began)
        if r.status != "completed":
            raise SpecError(Loc(cell), f"the timing run did not complete ({r.status}: {r.reason})")
        before = [t.user_attrs["tokens_per_s"] for t in cells[cell]]
        before_entry = retimed(study, forms).get(cell)
        entry = _record(before_entry, r.tokens_per_s, r.loop, steps, device_name(ctx.device), r.form)
        study.set_user_attr(RETIMED + cell, entry)  # one cell at a time: a stopped re-timing keeps what it measured
        ms = lambda tps: cfg.batch_tokens / tps * 1e3  # noqa: E731
        n = len(entry["samples"])
        median = (f" (median of {n} timings: {ms(entry['tokens_per_s']):.2f}, "
                  f"{ms(max(entry['samples'])):.2f}–{ms(min(entry['samples'])):.2f})" if n > 1 else "")
        replaced = (f"; its re-timing before, {ms(before_entry['tokens_per_s']):.2f} "
                    f"({way_words(timing_of(before_entry))}), is replaced"
                    if before_entry and len(entry["samples"]) == 1 else "")
        echo(f"{cell}: {ms(max(before)):.2f}–{ms(min(before)):.2f} ms a step as its {len(before)} run(s) recorded, "
             f"{ms(r.tokens_per_s):.2f} now ({r.form}){median}{replaced}")
    return len(cells)
