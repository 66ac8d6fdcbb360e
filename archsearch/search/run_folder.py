"""A search's run folder, OUT/: where each thing lies, the keys of its study's attributes, its Optuna storage, and
opening it again. Everything that reads or writes a run folder (the search, the report, `export`, `profile`, the
ladder's storage) goes through here.

  OUT/study.db                      the study (sqlite; study.journal with several workers; or any --storage URL),
                                    with its re-training study NAME.seeds beside it in the same storage
  OUT/trials/trial_NNNN.yaml        each trial's exact spec (`archsearch train` reruns it)
  OUT/weights/trial_NNNN.pt         each complete trial's trained weights
  OUT/weights/runs/trial_NNNN_seedS[_xF].pt   each re-training run's
  OUT/profiles/trial_NNNN/          `run --profile-top`'s traces
  OUT/report.md and its plots
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..context import device_name
from ..errors import Loc, SpecError
from ..spec import Spec, load_spec
from . import interrupts
from .rdb import open_rdb, redact

# The keys of study and trial attributes. Studies on disk (docs/results/, live ladders) hold these strings: a key
# whose string changed would no longer be found, so an old study would neither resume nor report as it did.
# The study's:
VERDICT_COST = "verdict_cost"  # the cost the verdict holds equal
QUALITY = "quality"  # ppl | loss | accuracy
FLOORS = "floors"  # recall: {split: the memory-free floors}
DATA = "data"  # the corpus `run --data` gave (absent: the space's own spec.task.data)
BUDGET = "budget"  # the name of the budget the study runs under
ISO_TIME = "train_seconds"  # iso-time: every trial's training time in seconds
FIDELITY_BAR = "fidelity_bar"  # {min_rank, trials}: the rank agreement a budget's screen must show to be used
REFERENCE = "reference"  # the weighted objective's reference costs
SAVED_CHECK = "saved_check"  # {label: the number recorded and again from the saved weights}
TOKENS = "tokens_sha256"  # a hash of every split's tokens (LMTask.digest)
TRAIN_SPLIT_TOKENS = "train_split_tokens"  # tokens in the train split: how many times a run sees it (epochs)
# A trial's (a search trial, a re-training run or a ladder run), other than measured numbers:
SPEC_FILE = "spec_file"
MIXERS = "mixers"
VOCAB = "vocab"
BASELINE = "baseline"  # an enqueued baseline's label
MATCHED = "matched"  # what a baseline's sizes match
WORKER = "worker"  # host:pid of the process that ran it
CARD = "card"
SEED = "seed"
LR = "lr"
TRAIN_TOKENS = "train_tokens"  # the budget iso-time gave it, or a re-training run's
VAL_LOSS_CURVE = "val_loss_curve"
LR_GRID_QUALITY = "lr_grid_quality"
PRUNED_REASON = "pruned_reason"
FAILED_REASON = "failed_reason"
FAILED_DETAIL = "failed_detail"
RETRY_OF = "retry_of"  # the trial this one repeats
RETRIES = "retries"
SOURCE = "source"  # a re-training run's trial
SCALE = "scale"  # a re-training run's budget factor (absent: 1)
LADDER_JOB = ("job", "family", "rung", "phase")  # a ladder run's (ladder/plan.py writes them)

STUDY_DB, STUDY_JOURNAL = "study.db", "study.journal"
SEEDS = ".seeds"  # the re-training study's name: the search's name and this
HEARTBEAT_S = int(os.environ.get("ARCHSEARCH_HEARTBEAT_S", "30"))  # a lost worker's trial is failed after 3 beats
MAX_RETRIES = 1  # a trial that kills its worker twice is left failed instead of taking the study down in a loop
RETRY_KEEPS = (BASELINE, SOURCE, SEED, SCALE, *LADDER_JOB, LR)  # what makes a trial the same run again


def trial_spec_path(out: Path, number: int) -> Path:
    return out / "trials" / f"trial_{number:04d}.yaml"


def weights_path(out: Path, number: int) -> Path:
    return out / "weights" / f"trial_{number:04d}.pt"


def run_weights_path(out: Path, source: int, seed: int, scale: float) -> Path:
    """A re-training run's weights: the source trial, its seed and budget scale."""
    name = f"trial_{source:04d}_seed{seed}" + (f"_x{scale:g}" if scale != 1.0 else "")
    return out / "weights" / "runs" / f"{name}.pt"


def profile_path(out: Path, number: int) -> Path:
    return out / "profiles" / f"trial_{number:04d}"


def trial_spec(out: Path, t) -> Spec:
    """A finished trial's exact spec, from its spec file (looked up in OUT/trials/ when the folder has moved since
    the study ran)."""
    spec_file = Path(t.user_attrs[SPEC_FILE])
    if not spec_file.is_file():
        spec_file = out / "trials" / spec_file.name
    if not spec_file.is_file():
        raise SpecError(Loc(str(out)), f"trial {t.number}'s spec file {spec_file.name} is missing from trials/")
    return load_spec(spec_file)


# ---------------------------------------------------------------------------------------------- storage
def default_storage(out: Path, workers: int) -> str:
    """The output folder's own storage: the one already there, else SQLite for one worker and a journal file (safe
    for concurrent writers on one host) for several."""
    if (out / STUDY_JOURNAL).exists() or (workers > 1 and not (out / STUDY_DB).exists()):
        return f"journal:{out / STUDY_JOURNAL}"
    return f"sqlite:///{out / STUDY_DB}"


def make_storage(url: str):
    if url.startswith(("sqlite", "postgresql", "mysql")):
        # heartbeats let a later run fail a trial whose worker was lost and retry it once
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        # a worker's coordinator has opened the database: should it be away as the worker starts, it is waited for
        return interrupts.guard(open_rdb(url, wait="ARCHSEARCH_WORKER" in os.environ, heartbeat_interval=HEARTBEAT_S,
                                         grace_period=3 * HEARTBEAT_S, heartbeat_stale_trial_callback=retry_stale))
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        return interrupts.guard(JournalStorage(JournalFileBackend(url[len("journal:"):])))
    raise SpecError(Loc("--storage"), f"'{redact(url)}': expected sqlite:///FILE, postgresql://…, mysql://… or "
                                      "journal:FILE")


def retry(study, trial, died: bool = False) -> None:
    """Enqueue a fresh copy of `trial` (same parameters, same baseline role). Its count of retries grows only when
    its worker died: a run stopped on purpose (Ctrl-C, a ladder run paused at its time limit, perhaps many times over)
    keeps its one retry for a death."""
    keep = {k: v for k, v in trial.user_attrs.items() if k in RETRY_KEEPS}
    study.enqueue_trial(dict(trial.params) or dict(trial.system_attrs.get("fixed_params", {})),
                        user_attrs={**keep, RETRY_OF: trial.number, RETRIES: trial.user_attrs.get(RETRIES, 0) + died})


def retry_stale(study, trial) -> bool:
    """The storage's heartbeat callback (and recovery's for dead local workers): `trial` has just been failed because
    its worker stopped; it is retried unless it already was. Returns whether it was."""
    if trial.user_attrs.get(RETRIES, 0) < MAX_RETRIES:
        retry(study, trial, died=True)
        return True
    return False


# ---------------------------------------------------------------------------------------------- opening it again
def seeds_study_name(name: str) -> str:
    return name + SEEDS


def load_seeds(storage, name: str):
    """The re-training study of search study `name`, or None."""
    try:
        return optuna.load_study(study_name=seeds_study_name(name), storage=storage)
    except KeyError:
        return None


def load(out: Path, storage: str | None = None):
    """The search study and its re-training study (or None) from an output folder or a storage URL."""
    if storage is None:
        if (out / STUDY_JOURNAL).is_file():
            storage = f"journal:{out / STUDY_JOURNAL}"
        elif (out / STUDY_DB).is_file():
            storage = f"sqlite:///{out / STUDY_DB}"
        else:
            raise SpecError(Loc(str(out)), "no study.db or study.journal here: pass the output folder of "
                                           "`archsearch run` (or --storage)")
    store = make_storage(storage)
    names = [n for n in optuna.study.get_all_study_names(storage=store) if not n.endswith(SEEDS)]
    if len(names) != 1:
        raise SpecError(Loc(str(out)), f"expected one study in the storage, found {len(names)}: pick one with --storage")
    return optuna.load_study(study_name=names[0], storage=store), load_seeds(store, names[0])


def same_tokens(study, task, loc: Loc) -> None:
    """A study's runs compare only on the same tokens. The first run records their hash and the train split's size;
    a resumed one whose corpus or tokenizer gives other tokens (another folder, a BPE trained again differently on
    another machine) stops here rather than mixing its runs with the study's. A study from before the hash is checked
    by the size alone."""
    if not hasattr(task, "digest"):
        return  # synthetic tasks draw their sequences from fixed seeds
    now = {TOKENS: task.digest(), TRAIN_SPLIT_TOKENS: int(len(task.streams["train"]))}
    for key, value in now.items():
        was = study.user_attrs.get(key)
        if was is not None and was != value:
            raise SpecError(loc, f"{task.name}: these tokens are not the ones study '{study.study_name}' was trained "
                                 f"on (another corpus or tokenizer; {key} {was} then, {value} now); resume it with the "
                                 f"same data and tokenizer, or start a new study elsewhere (--out)")
    for key, value in now.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


def timed_cards(study) -> set[str]:
    """The cards that timed a study's finished trials (those that recorded one)."""
    return {t.user_attrs[CARD] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if CARD in t.user_attrs}


def same_budget(study, name: str, settings: dict, loc: Loc) -> None:
    """A study resumes under the budget it began with: another's iso-time seconds, fidelity bar and re-training
    settings would be written over the ones its trials ran under (a GPU machine's default budget is not a CPU's).
    `settings`: {attribute: value} this budget would record (ISO_TIME, FIDELITY_BAR), which tell a study from before
    the budget's name was recorded. The name is recorded once the study has trials."""
    began = study.user_attrs.get(BUDGET)
    if began is None:
        differ = [k for k, v in settings.items() if k in study.user_attrs and study.user_attrs[k] != v]
        if differ and study.trials:
            raise SpecError(loc, f"study '{study.study_name}' ran under another budget than '{name}' (its "
                                 f"{', '.join(differ)} differ): resume it with the --budget it ran under, or start a "
                                 f"new study elsewhere (--out)")
    elif began != name:
        raise SpecError(loc, f"study '{study.study_name}' ran under the '{began}' budget, and this is '{name}': "
                             f"resume it with --budget {began}, or start a new study elsewhere (--out)")
    if began is None and study.trials:
        study.set_user_attr(BUDGET, name)


def fidelity_bar(budget) -> dict | None:
    """What a budget records as its fidelity bar (FIDELITY_BAR), or None where it sets none."""
    f = budget.fidelity or {}
    return ({"min_rank": float(f["min_rank"]), "trials": f["trials"], "factor": float(f["factor"])}
            if "min_rank" in f else None)


def same_card(study, device, loc: Loc) -> None:
    """A search's times compare only when measured on one card: a run on another (an H100 resuming an H200's study)
    stops here rather than putting its latencies and iso-time budgets beside the others'. (A ladder may go on
    elsewhere: `archsearch retime` puts its time axis on one card.)"""
    cards = timed_cards(study)
    here = device_name(device)
    if cards and cards != {here}:
        raise SpecError(loc, f"study '{study.study_name}' was timed on {', '.join(sorted(cards))} and this is {here}: "
                             f"its times would not compare; resume it on that card, or start a new study elsewhere "
                             f"(--out)")
