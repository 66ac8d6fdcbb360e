"""What `export` and `profile` start from: a trial of a study (its exact spec file and, for export, its saved
weights, read through search/run_folder.py), or a spec file with a checkpoint. Problems are one-line SpecErrors
naming the file or flag."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from optuna.trial import TrialState

from ..errors import Loc, SpecError
from ..search import run_folder
from ..spec import Spec

EMBED_WEIGHT = "blocks.embed.weight"  # the token table: its rows are the vocabulary


@dataclass
class Source:
    spec: Spec
    vocab: int | None
    label: str  # where it came from, for messages and the exported file's docstring
    trial: int | None = None
    out: Path | None = None


def pick_trial(study, which: str):
    """'best' (the best objective, or the best quality on a Pareto study) or a trial number; complete trials only."""
    done = [t for t in study.trials if t.state == TrialState.COMPLETE and t.values]
    if which == "best":
        if not done:
            raise SpecError(Loc("--trial"), f"study '{study.study_name}' has no complete trial yet")
        return min(done, key=lambda t: t.values[0])
    try:
        n = int(which)
    except ValueError:
        raise SpecError(Loc("--trial"), f"expected 'best' or a trial number, got {which!r}") from None
    if not 0 <= n < len(study.trials):
        raise SpecError(Loc("--trial"), f"no trial {n}: the study has trials 0–{len(study.trials) - 1}")
    t = study.trials[n]
    if t.state != TrialState.COMPLETE:
        reason = t.user_attrs.get(run_folder.PRUNED_REASON) or t.user_attrs.get(run_folder.FAILED_REASON) or ""
        raise SpecError(Loc("--trial"), f"trial {n} is {t.state.name.lower()}" + (f" ({reason})" if reason else "")
                        + ": it has no trained model")
    return t


def from_study(out: Path, which: str, storage: str | None = None) -> Source:
    study, _ = run_folder.load(out, storage)
    t = pick_trial(study, which)
    return Source(run_folder.trial_spec(out, t), t.user_attrs.get(run_folder.VOCAB), f"{out} trial {t.number}",
                  t.number, out)


def trial_weights(src: Source) -> dict:
    path = run_folder.weights_path(src.out, src.trial)
    if not path.is_file():
        raise SpecError(Loc(str(src.out)), f"trial {src.trial}'s weights are not in weights/ (a copy of the study "
                                           f"without them?): retrain it with `archsearch train "
                                           f"{run_folder.trial_spec_path(src.out, src.trial)}` and export that")
    return load_weights(path)


def load_weights(path: Path) -> dict:
    """A state dict from weights.pt (`train`, `export`) or checkpoint.pt (`train`'s resumable checkpoint)."""
    if not path.is_file():
        raise SpecError(Loc(str(path)), "no such weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which and why, in one line
        raise SpecError(Loc(str(path)), f"cannot read weights: {str(e).splitlines()[0]}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or EMBED_WEIGHT not in state:
        raise SpecError(Loc(str(path)), f"not an archsearch model's state dict (no '{EMBED_WEIGHT}')")
    return state


def vocab_of(src: Source, state: dict | None, flag: int | None) -> int | None:
    """The vocabulary: --vocab, else the study's record, else the spec's, else the weights' token table."""
    if flag is not None:
        return flag
    if src.vocab is not None:
        return src.vocab
    if src.spec.model.vocab is not None:
        return None
    if state is not None:
        return state[EMBED_WEIGHT].shape[0]
    return None
