"""`archsearch report OUT_DIR`: report.md and PNG plots from a study — the Pareto fronts of validation quality
against measured training-step latency, against FLOPs and against decode-state bytes (points coloured by the fraction
of PAM layers), the optimisation history, the best architecture of each family with all its costs, the re-training
seeds, the verdict (and, for an iso-time study, the verdict at equal training time), and the screen's fidelity."""
from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..errors import Loc, SpecError
from .recovery import superseded
from .families import Quality, family, pam_fraction, verdict_cost, verdict_pair
from .retrain import SEEDS, fidelity_pairs, load_seeds, seed_stats, spearman
from .study import summary

COLUMNS = (("val_ppl", "val ppl", "{:.2f}"), ("val_bpb", "bits/byte", "{:.4f}"), ("val_accuracy", "accuracy", "{:.4f}"),
           ("params", "params", "{:,.0f}"), ("flops_per_token", "FLOPs/token", "{:,.0f}"),
           ("state_bytes", "state bytes", "{:,.0f}"),
           ("latency_train_ms", "train step ms", "{:.1f}"), ("latency_prefill_ms", "prefill ms", "{:.1f}"),
           ("latency_decode_ms", "decode ms/token", "{:.2f}"), ("peak_memory_bytes", "peak MiB", "{:,.0f}"),
           ("tokens_per_s", "train tok/s", "{:,.0f}"), ("train_tokens", "train tokens", "{:,.0f}"),
           ("lr", "lr", "{:.2e}"))
COST_LABELS = {"latency_train_ms": "measured training-step latency (ms)", "flops_per_token": "forward FLOPs per token",
               "state_bytes": "decode state bytes per sequence", "latency_decode_ms": "measured decode latency (ms/token)",
               "params": "parameters", "latency_prefill_ms": "measured prefill latency (ms)",
               "peak_memory_bytes": "peak training memory (bytes)", "flops_train_step": "counted FLOPs per training step"}
PLOTS = (("latency_train_ms", "pareto_latency.png"), ("flops_per_token", "pareto_flops.png"),
         ("state_bytes", "pareto_state.png"))


def load(out: Path, storage: str | None = None):
    """The search study and its re-training study (or None) from an output folder or a storage URL."""
    if storage is None:
        if (out / "study.journal").is_file():
            storage = f"journal:{out / 'study.journal'}"
        elif (out / "study.db").is_file():
            storage = f"sqlite:///{out / 'study.db'}"
        else:
            raise SpecError(Loc(str(out)), "no study.db or study.journal here: pass the output folder of "
                                           "`archsearch run` (or --storage)")
    from .study import make_storage

    store = make_storage(storage)
    names = [n for n in optuna.study.get_all_study_names(storage=store) if not n.endswith(SEEDS)]
    if len(names) != 1:
        raise SpecError(Loc(str(out)), f"expected one study in the storage, found {len(names)}: pick one with --storage")
    return optuna.load_study(study_name=names[0], storage=store), load_seeds(store, names[0])


def front(points):
    """Indices of the points (x, y) that no other point beats on both (lower is better)."""
    return [i for i, (x, y) in enumerate(points)
            if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for x2, y2 in points)]


def _plot(done, cost: str, q: Quality, path: Path) -> bool:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [t for t in done if t.user_attrs.get(cost)]
    if not done:
        return False
    pts = [(t.user_attrs[cost], t.user_attrs[q.key]) for t in done]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    sc = ax.scatter(*zip(*pts), c=[pam_fraction(t) for t in done], cmap="viridis", vmin=0, vmax=1, s=36)
    best = sorted(pts[i] for i in front([(x, q.loss(y)) for x, y in pts]))
    ax.step(*zip(*best), where="post", color="crimson", lw=1.2, label="Pareto front")
    ax.set_xlabel(COST_LABELS.get(cost, cost))
    ax.set_ylabel(q.label)
    ax.set_xscale("log")
    ax.legend(loc="best")
    fig.colorbar(sc, ax=ax, label="fraction of PAM layers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _history(study, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [t for t in study.trials if t.state == TrialState.COMPLETE and t.values]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs, ys = [t.number for t in done], [t.values[0] for t in done]
    ax.scatter(xs, ys, s=20, label="complete trial")
    best, run = [], float("inf")
    for y in ys:
        run = min(run, y)
        best.append(run)
    ax.step(xs, best, where="post", color="crimson", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective" if len(study.directions) == 1 else "quality (first objective)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _with_seeds(t, q: Quality, stats: dict) -> str:
    s = stats.get(t.number)
    fmt = "{:.2f}" if q.short == "ppl" else "{:.4f}"
    if s:
        return f"{q.short} {fmt.format(s['mean'])} ± {fmt.format(s['std'])} over {s['n']} seeds"
    return f"{q.short} {fmt.format(t.user_attrs[q.key])} (1 seed)"


def _gap(p, r, stats: dict):
    """(gap of the pair's seed means, sum of their standard deviations), or None unless both have several seeds."""
    sp, sr = stats.get(p.number), stats.get(r.number)
    return (abs(sp["mean"] - sr["mean"]), sp["std"] + sr["std"]) if sp and sr else None


def within_noise(p, r, stats: dict) -> bool:
    gap = _gap(p, r, stats)
    return gap is not None and gap[0] <= gap[1]


def _spread_note(p, r, stats: dict) -> str:
    """Whether the gap between the pair is larger than their seed spread (or that there is no spread to judge by)."""
    if _gap(p, r, stats) is None:
        return " A single seed each: the gap is not yet tested against seed noise."
    gap, noise = _gap(p, r, stats)
    return (f" The gap of the seed means ({gap:.3g}) is {'larger' if gap > noise else 'no larger'} than the sum of "
            f"their standard deviations ({noise:.3g}){'.' if gap > noise else ': within seed noise.'}")


def _mean(t, q: Quality, stats: dict) -> float:
    """A trial's quality: its seed mean where it was re-trained with more seeds, else its one run."""
    return stats[t.number]["mean"] if t.number in stats else t.user_attrs[q.key]


def _lead(p, r, q: Quality, stats: dict) -> str:
    """Whether the PAM-containing trial p beats the PAM-free r, by seed means where there are several seeds."""
    better = q.loss(_mean(p, q, stats)) < q.loss(_mean(r, q, stats))
    if within_noise(p, r, stats):
        return f"No clear answer (PAM {'ahead' if better else 'behind'}, within seed noise)"
    return "PAM pays for itself" if better else "PAM does not pay for itself"


def verdict(done, q: Quality, cost: str = "latency_train_ms", stats: dict | None = None) -> str:
    """The best PAM-containing architecture against the best PAM-free one at equal or lower measured cost."""
    stats = stats or {}
    p, r = verdict_pair(done, q, cost)
    if p is None:
        has_pam = any(pam_fraction(t) > 0 for t in done)
        return "No verdict: the study has no complete trial " + ("without PAM." if has_pam else "with PAM.")
    unit = {"latency_train_ms": " ms per training step", "state_bytes": " bytes of decode state",
            "latency_decode_ms": " ms per decoded token", "flops_per_token": " FLOPs per token"}.get(cost, f" {cost}")
    fmt = "{:,.0f}" if cost in ("state_bytes", "flops_per_token", "params") else "{:.2f}"
    c = lambda t: fmt.format(t.user_attrs[cost]) + unit  # noqa: E731
    if r is None:
        without = [t for t in done if pam_fraction(t) == 0 and cost in t.user_attrs]
        cheapest = min(without, key=lambda t: t.user_attrs[cost])
        return (f"The best PAM-containing architecture (trial {p.number}, {_with_seeds(p, q, stats)} at {c(p)}) "
                f"has no PAM-free rival as cheap; the cheapest PAM-free one (trial {cheapest.number}) needs "
                f"{c(cheapest)} for {_with_seeds(cheapest, q, stats)}.")
    lead = _lead(p, r, q, stats)
    return (f"{lead} here: the best PAM-containing "
            f"architecture (trial {p.number}, {'+'.join(p.user_attrs['mixers'])}) reaches {_with_seeds(p, q, stats)} "
            f"at {c(p)}, against {_with_seeds(r, q, stats)} for the best PAM-free architecture at equal or lower "
            f"cost (trial {r.number}, {'+'.join(r.user_attrs['mixers'])}, {c(r)}); measured on "
            f"{p.user_attrs.get('card', '?')}." + _spread_note(p, r, stats))


def chance_note(study, done, q: Quality, stats: dict) -> str:
    """For a recall study: its chance accuracy, and whether any architecture learned the task at all (best seed mean,
    or single run, above twice chance); a ranking of models that all guess says nothing about capacity."""
    chance = study.user_attrs.get("chance_accuracy")
    if q.short != "accuracy" or not chance:
        return ""
    best = max(_mean(t, q, stats) for t in done)
    note = f" Chance accuracy is {chance:.4f} (guessing among the values)."
    if best < 2 * chance:
        note += (f" No architecture here reaches twice that (best {best:.4f}): none learned the task at this budget, "
                 "so this ranking says nothing about memory capacity.")
    return note


def equal_time_verdict(done, q: Quality, seconds: float, stats: dict | None = None) -> str:
    """Iso-time: every trial trained for the same measured step time, so quality alone ranks them."""
    stats = stats or {}
    with_pam = [t for t in done if pam_fraction(t) > 0]
    without = [t for t in done if pam_fraction(t) == 0]
    if not with_pam or not without:
        return "No verdict: the study has no complete trial " + ("without PAM." if with_pam else "with PAM.")
    p, r = min(with_pam, key=q.of), min(without, key=q.of)
    lead = _lead(p, r, q, stats)
    tok = lambda t: f"{t.user_attrs['train_tokens']:,} tokens" if "train_tokens" in t.user_attrs else "?"  # noqa: E731
    return (f"{lead} at equal training time ({seconds:g} s of measured training-step time each): the best "
            f"PAM-containing architecture (trial {p.number}, {'+'.join(p.user_attrs['mixers'])}, {tok(p)}) reaches "
            f"{_with_seeds(p, q, stats)}, the best PAM-free one (trial {r.number}, {'+'.join(r.user_attrs['mixers'])}, "
            f"{tok(r)}) {_with_seeds(r, q, stats)}." + _spread_note(p, r, stats))


def fidelity_section(study, seeds, q: Quality) -> list[str]:
    factor, pairs = fidelity_pairs(study, seeds, q.key)
    if len(pairs) < 3:
        return []
    rho = spearman([a for _, a, _ in pairs], [b for _, _, b in pairs])
    lines = ["", "## Screening fidelity", "",
             f"{len(pairs)} trials spread over the screen's ranking, trained again (same seed) for {factor:g}× the "
             f"budget. Spearman rank correlation of {q.short} between the two budgets: **{rho:.2f}** "
             f"(1: the screen ranks as the longer budget does).", "",
             f"| trial | mixers | screen {q.short} | {factor:g}× budget {q.short} |", "|---|---|---|---|"]
    for n, a, b in sorted(pairs, key=lambda p: q.loss(p[1])):
        lines.append(f"| {n} | {'+'.join(study.trials[n].user_attrs.get('mixers', []))} | {a:.4g} | {b:.4g} |")
    return lines


def write_report(study, out: Path, seeds=None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    gone = superseded(study.trials)
    q = Quality(study)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE and q.key in t.user_attrs and t.number not in gone]
    stats = seed_stats(study, seeds, q.key)
    lines = [f"# Study `{study.study_name}`", "", "```", summary(study), "```", ""]
    if done:
        plots = [f"![{q.short} vs {cost}]({name})" for cost, name in PLOTS if _plot(done, cost, q, out / name)]
        _history(study, out / "history.png")
        lines += ["## Verdict", "", verdict(done, q, verdict_cost(study), stats) + chance_note(study, done, q, stats),
                  ""]
        if study.user_attrs.get("train_seconds"):
            lines += ["### At equal training time", "",
                      equal_time_verdict(done, q, study.user_attrs["train_seconds"], stats), ""]
        lines += [" ".join(plots), "",
                  "![history](history.png)", "", f"## Best {q.short} per family", "",
                  f"Each family's trial of best {q.short} (the summary above ranks by the objective, which also "
                  "weighs the costs, so its trial can differ).", ""]
        cols = [c for c in COLUMNS if any(c[0] in t.user_attrs for t in done)]
        lines += ["| family | trial | mixers | " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * (3 + len(cols))]
        best = {}
        for t in done:
            fam = family(t.user_attrs.get("mixers", []))
            if fam not in best or q.loss(t.user_attrs[q.key]) < q.loss(best[fam].user_attrs[q.key]):
                best[fam] = t
        for fam, t in sorted(best.items(), key=lambda kv: q.loss(kv[1].user_attrs[q.key])):
            cells = [fmt.format(t.user_attrs[k] / (2**20 if k == "peak_memory_bytes" else 1)) if t.user_attrs.get(k)
                     else "–" for k, _, fmt in cols]  # no peak memory on CPU
            lines.append(f"| {fam} | {t.number} | {', '.join(t.user_attrs.get('mixers', []))} | " + " | ".join(cells) + " |")
        if stats:
            lines += ["", "## Re-trained with more seeds", "",
                      f"The top trials and each family's best, trained again with other seeds (the search's run is "
                      f"the first). {q.label}: mean ± standard deviation.", "",
                      f"| trial | family | {q.short} mean ± std | seeds | each seed |", "|---|---|---|---|---|"]
            for n, s in sorted(stats.items(), key=lambda kv: q.loss(kv[1]["mean"])):
                t = study.trials[n]
                lines.append(f"| {n} | {family(t.user_attrs.get('mixers', []))} | {s['mean']:.4g} ± {s['std']:.2g} | "
                             f"{s['n']} | {', '.join(f'{v:.4g}' for v in s['values'])} |")
        lines += fidelity_section(study, seeds, q)
        card = done[0].user_attrs.get("card", "?")
        lines += ["", f"Measured on {card}. Each trial's exact spec: `trials/trial_N.yaml`; the study opens in "
                      f"optuna-dashboard (see docs/search.md)."]
    else:
        lines += ["No complete trial yet."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
