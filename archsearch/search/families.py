"""How trials are grouped and compared: the family of a trial (one memory, or hybrid), its fraction of PAM layers,
the study's quality measure, and the verdict's pair — the best PAM-containing architecture and the best PAM-free one
at equal or lower cost. The report states the verdict; the re-training gives that pair more seeds."""
from __future__ import annotations

from .run_folder import ISO_TIME, MIXERS, QUALITY, VERDICT_COST


def family(mixers: list[str]) -> str:
    kinds = sorted(set(mixers))
    return kinds[0] if len(kinds) == 1 else "hybrid"


def pam_fraction(trial) -> float:
    mixers = trial.user_attrs.get(MIXERS) or []
    return sum(m == "pam" for m in mixers) / len(mixers) if mixers else 0.0


class Quality:
    """The study's quality measure: perplexity or loss (lower is better) or accuracy (higher is better)."""

    LABELS = {"ppl": "validation perplexity", "loss": "validation loss", "accuracy": "validation accuracy"}

    def __init__(self, study):
        self.short = study.user_attrs.get(QUALITY, "ppl")
        self.key, self.label = f"val_{self.short}", self.LABELS[self.short]
        self.test_key = f"test_{self.short}"  # what the re-training runs report: the split no selection saw
        self.sign = -1.0 if self.short == "accuracy" else 1.0

    def loss(self, value: float) -> float:  # lower is better
        return self.sign * value

    def of(self, trial) -> float:
        return self.loss(trial.user_attrs[self.key])


def verdict_cost(study) -> str:
    """The cost the verdict holds equal: the weighted objective's first cost, or the first Pareto cost."""
    return study.user_attrs.get(VERDICT_COST, "latency_train_ms")


def verdict_pair(done, q: Quality, cost: str | None):
    """(best PAM-containing trial, best PAM-free trial at equal or lower `cost`, or None); None, None without both.
    With `cost` None (an iso-time study: every trial trained for the same measured time) quality alone picks both."""
    costed = [t for t in done if cost is None or cost in t.user_attrs]
    with_pam = [t for t in costed if pam_fraction(t) > 0]
    without = [t for t in costed if pam_fraction(t) == 0]
    if not with_pam or not without:
        return None, None
    p = min(with_pam, key=q.of)
    rivals = [t for t in without if cost is None or t.user_attrs[cost] <= p.user_attrs[cost]]
    return p, (min(rivals, key=q.of) if rivals else None)


def verdict_pairs(study, done, q: Quality) -> list[tuple[str, tuple]]:
    """[(what is held equal, verdict_pair)] of the study's verdicts: equal or lower cost, and (an iso-time study)
    equal training time."""
    pairs = [("equal or lower cost", verdict_pair(done, q, verdict_cost(study)))]
    if study.user_attrs.get(ISO_TIME):
        pairs.append(("equal training time", verdict_pair(done, q, None)))
    return pairs
