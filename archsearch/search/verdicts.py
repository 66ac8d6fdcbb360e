"""The report's verdicts: is the best PAM-containing architecture better than the best PAM-free one, at equal or lower
cost and (iso-time) at equal training time? The pairs are chosen on validation by the search; the comparison is made
on the test split over fresh seeds (runs that took no part in choosing), as a difference of means with Welch's 95%
interval, and every sentence says which comparison it makes. A recall study also says which families learned the
task at all: a family that does not clear the memory-free floors by MARGIN is "not learned", and no capacity claim is
made for it."""
from __future__ import annotations

from .families import Quality, pam_fraction, verdict_pair
from .run_folder import CARD, FLOORS, MIXERS, TRAIN_TOKENS
from .stats import excludes_zero, welch

NEAR = 0.02  # a relative difference of measured time that one measurement does not resolve
MARGIN = 0.1  # accuracy above the higher memory-free floor that counts as having learned a recall task
UNITS = {"latency_train_ms": " ms per training step", "state_bytes": " bytes of decode state",
         "latency_decode_ms": " ms per decoded token", "flops_per_token": " FLOPs per token"}


def _fmt(q: Quality, v: float) -> str:
    return f"{v:.2f}" if q.short == "ppl" else f"{v:.4f}"


def mixers_of(t) -> str:
    return "+".join(t.user_attrs.get(MIXERS, []))


def measured(t, q: Quality, stats: dict) -> str:
    """A trial's test-split number over its fresh seeds, or its search run's validation number."""
    s = stats.get(t.number)
    if s:
        spread = f" ± {_fmt(q, s['std'])}" if s["n"] > 1 else ""
        return f"test {q.short} {_fmt(q, s['mean'])}{spread} over {s['n']} fresh seed{'s' if s['n'] > 1 else ''}"
    return f"validation {q.short} {_fmt(q, t.user_attrs[q.key])} (the selecting run only)"


def best_value(t, q: Quality, stats: dict) -> float:
    """The number a trial is judged by: its fresh seeds' test mean where it has one, else its search run."""
    return stats[t.number]["mean"] if t.number in stats else t.user_attrs[q.key]


def floor_of(study) -> dict | None:
    """{split: the higher memory-free floor of that split's sequences} of a recall study, or None."""
    floors = study.user_attrs.get(FLOORS) or {}
    return {split: max(f.values()) for split, f in floors.items()} or None


def _floor_for(t, stats: dict, floors: dict) -> float:
    """The floor of the split a trial is judged on: test for its fresh seeds, validation for its search run."""
    return floors["test" if t.number in stats else "validation"]


def learned(t, q: Quality, stats: dict, floors: dict | None) -> bool:
    return not floors or q.short != "accuracy" or best_value(t, q, stats) >= _floor_for(t, stats, floors) + MARGIN


def _left_out(pair, lost: dict) -> str:
    """' Left out, having diverged: …' for the pair's fresh-seed runs that diverged, else ''."""
    said = [f"trial {t.number}'s seed{'s' if len(lost[t.number]) > 1 else ''} "
            + ", ".join(f"{seed} ({why})" for seed, why in lost[t.number]) for t in pair if lost.get(t.number)]
    return f" Left out, having diverged: {'; '.join(said)}." if said else ""


def compare(p, r, q: Quality, stats: dict, lost: dict | None = None) -> str:
    """'<lead>: <what was compared>' for PAM-containing p against PAM-free r; `lost`: failed_seeds."""
    sp, sr = stats.get(p.number), stats.get(r.number)
    left_out = _left_out((p, r), lost or {})
    if sp and sr and sp["n"] > 1 and sr["n"] > 1:
        w = welch(sp["values"], sr["values"])
        better = q.loss(w["diff"]) < 0  # PAM's mean minus the rival's, in the quality's own direction
        sure = excludes_zero(w)
        if sure:
            lead = "PAM pays for itself" if better else "PAM does not pay for itself"
        else:
            lead = f"No clear answer (PAM {'ahead' if better else 'behind'}; the interval includes 0)"
        return (f"{lead}. Compared: test-split {q.short}, the mean of fresh seeds (the selecting runs excluded), "
                f"{_fmt(q, sp['mean'])} ± {_fmt(q, sp['std'])} (n = {sp['n']}) against {_fmt(q, sr['mean'])} ± "
                f"{_fmt(q, sr['std'])} (n = {sr['n']}); difference {w['diff']:+.4g}, 95% interval "
                f"[{w['low']:+.4g}, {w['high']:+.4g}] (Welch, {w['df']:.1f} degrees of freedom).{left_out}")
    better = q.loss(p.user_attrs[q.key]) < q.loss(r.user_attrs[q.key])  # one split: the selecting runs' validation
    short = [f"trial {t.number} has {s['n'] if s else 0}" for t, s in ((p, sp), (r, sr)) if not s or s["n"] < 2]
    return (f"Provisional (PAM {'ahead' if better else 'behind'}): fewer than 2 fresh-seed runs on the test split "
            f"({' and '.join(short)}), so this compares the selecting runs' validation {q.short}: "
            f"{_fmt(q, p.user_attrs[q.key])} against {_fmt(q, r.user_attrs[q.key])}.{left_out}")


def _not_learned(pair, q: Quality, stats: dict, floors: dict | None) -> str:
    missed = [t for t in pair if not learned(t, q, stats, floors)]
    if not missed:
        return ""
    names = " and ".join(f"trial {t.number} ({mixers_of(t)}, {measured(t, q, stats)}; floor "
                         f"{_floor_for(t, stats, floors):.4f})" for t in missed)
    return f"No capacity claim: {names} did not learn the task (below the higher memory-free floor + {MARGIN:g}). "


def verdict(done, q: Quality, cost: str, stats: dict, floors: dict | None = None, lost: dict | None = None) -> str:
    """The best PAM-containing architecture (by validation) against the best PAM-free one at equal or lower cost."""
    p, r = verdict_pair(done, q, cost)
    if p is None:
        has_pam = any(pam_fraction(t) > 0 for t in done)
        return "No verdict: the study has no complete trial " + ("without PAM." if has_pam else "with PAM.")
    fmt = "{:,.0f}" if cost in ("state_bytes", "flops_per_token", "params") else "{:.2f}"
    c = lambda t: fmt.format(t.user_attrs[cost]) + UNITS.get(cost, f" {cost}")  # noqa: E731
    if r is None:
        without = [t for t in done if pam_fraction(t) == 0 and cost in t.user_attrs]
        cheapest = min(without, key=lambda t: t.user_attrs[cost])
        return (f"The best PAM-containing architecture (trial {p.number}, {measured(p, q, stats)} at {c(p)}) has no "
                f"PAM-free rival as cheap; the cheapest PAM-free one (trial {cheapest.number}) needs {c(cheapest)} "
                f"for {measured(cheapest, q, stats)}.")
    return (_not_learned((p, r), q, stats, floors) +
            f"At equal or lower {cost}: the best PAM-containing architecture by validation (trial {p.number}, "
            f"{mixers_of(p)}, {c(p)}) against the best PAM-free one at equal or lower cost (trial {r.number}, "
            f"{mixers_of(r)}, {c(r)}); measured on {p.user_attrs.get(CARD, '?')}." + near_tie(p, r, cost) + " "
            + compare(p, r, q, stats, lost))


def near_tie(p, r, cost: str) -> str:
    """A note where the PAM-free side is cheaper by less than NEAR of a measured time: single timings differ by more
    from one process to the next, so the pair is one of equals, and the cost rule could as well have found none."""
    a, b = p.user_attrs[cost], r.user_attrs[cost]
    if not cost.startswith("latency") or a <= 0 or (a - b) / a >= NEAR:
        return ""
    return (f" The two costs differ by {100 * (a - b) / a:.2f}%, less than one timing's spread from one process to "
            f"the next: read this as a pair of equal cost.")


def equal_time_verdict(done, q: Quality, seconds: float, stats: dict, floors: dict | None = None,
                       lost: dict | None = None) -> str:
    """Iso-time: every trial trained for the same measured step time, so quality alone picks the pair."""
    p, r = verdict_pair(done, q, None)
    if p is None:
        has_pam = any(pam_fraction(t) > 0 for t in done)
        return "No verdict: the study has no complete trial " + ("without PAM." if has_pam else "with PAM.")
    tok = lambda t: f"{t.user_attrs[TRAIN_TOKENS]:,} tokens" if TRAIN_TOKENS in t.user_attrs else "?"  # noqa: E731
    return (_not_learned((p, r), q, stats, floors) +
            f"At equal training time ({seconds:g} s of measured training-step time each): the best PAM-containing "
            f"architecture by validation (trial {p.number}, {mixers_of(p)}, {tok(p)}) against the best PAM-free one "
            f"(trial {r.number}, {mixers_of(r)}, {tok(r)}). " + compare(p, r, q, stats, lost))


def floor_note(study, done, q: Quality, stats: dict) -> str:
    """For a recall study: the memory-free floors of its test set and whether any architecture cleared them."""
    floors = (study.user_attrs.get(FLOORS) or {}).get("test")
    if q.short != "accuracy" or not floors:
        return ""
    floor = max(floors.values())
    note = (f" Memory-free floors on the test set: {floors['uniform']:.4f} (guessing among the context's values) and "
            f"{floors['positional']:.4f} (the j-th query answered with the j-th pair's value); a family counts as "
            f"having learned the task at {floor:.4f} + {MARGIN:g} or above.")
    best = max(best_value(t, q, stats) for t in done)
    if best < floor + MARGIN:
        note += (f" No architecture here reaches that (best {best:.4f}): none learned the task at this budget, so "
                 "this ranking says nothing about memory capacity.")
    return note
