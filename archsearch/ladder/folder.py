"""A ladder's output folder: the ladder as run (COPY) beside its study (ladder.db unless --storage names another), and
each run's files: its exact spec, its checkpoint with a note of how far it got while unfinished, its weights."""
from __future__ import annotations

import json
from pathlib import Path

import optuna

from ..errors import Loc, SpecError
from ..search.rdb import redact
from ..search.run_folder import make_storage
from .config import load_ladder
from .plan import Job
from .specs import with_sides

COPY = "ladder.yaml"  # the ladder file as run, kept beside its study: the report reads it


def default_storage(out: Path) -> str:
    return f"sqlite:///{out / 'ladder.db'}"


def weights_path(out: Path, job: Job, trial: int) -> Path:
    """A finished run's weights, one file per trial: a run trained twice keeps both, each trial pointing at its own."""
    return out / "weights" / job.family / job.rung / f"lr{job.lr:.4g}_seed{job.seed}_trial{trial}.pt"


def checkpoint_path(out: Path, job: Job) -> Path:
    """A run's checkpoint while it is unfinished (saved at each evaluation and when it pauses at its time limit),
    with a sidecar `.json` of how far it got; both go when the run finishes."""
    return out / "checkpoints" / job.family / job.rung / f"lr{job.lr:.4g}_seed{job.seed}.pt"


def progress_of(ckpt: Path) -> dict:
    """{"tokens", "wall_seconds", "spec"} of an unfinished run: the tokens it had trained when it paused (after a
    kill, those of its last note), the seconds it has taken, and a hash of its spec file (no note: nothing done)."""
    try:
        note = json.loads(ckpt.with_suffix(".json").read_text())
    except (OSError, ValueError):
        note = {}
    return {"tokens": 0, "wall_seconds": 0.0, **note}


def write_note(ckpt: Path, note: dict) -> None:
    side = ckpt.with_suffix(".json")
    tmp = side.with_suffix(".tmp")
    tmp.write_text(json.dumps(note))
    tmp.replace(side)  # atomic: a kill mid-write leaves the previous note


def spec_path(out: Path, job: Job) -> Path:
    return out / "specs" / f"{job.family}-{job.rung}-lr{job.lr:.4g}-seed{job.seed}.yaml"


def drop_checkpoint(ckpt: Path) -> None:
    ckpt.unlink(missing_ok=True)
    ckpt.with_suffix(".json").unlink(missing_ok=True)


def open_folder(out: Path, storage: str | None = None):
    """(the ladder as run, with its sides; its study) of an output folder of `run LADDER`, or one line saying why
    not."""
    if not (out / COPY).is_file():
        raise SpecError(Loc(str(out)), f"not a ladder's output folder (no {COPY})")
    ladder = load_ladder(out / COPY)
    url = storage or default_storage(out)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=ladder.name, storage=make_storage(url))
    except KeyError:  # Optuna's "Record does not exist."
        raise SpecError(Loc("--storage" if storage else str(out)), f"{redact(url)} holds no study "
                                                                    f"'{ladder.name}'") from None
    return with_sides(ladder, study.user_attrs.get("sizes") or {}), study
