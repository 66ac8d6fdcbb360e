"""`archsearch report OUT_DIR`: report.md and PNG plots from a study — the Pareto fronts of validation perplexity
against measured training-step latency and against FLOPs (points coloured by the fraction of PAM layers), the
optimisation history, the best architecture of each family with all its costs, and the verdict."""
from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..errors import Loc, SpecError
from .study import family, summary

COLUMNS = (("val_ppl", "val ppl", "{:.2f}"), ("val_bpb", "bits/byte", "{:.4f}"), ("params", "params", "{:,}"),
           ("flops_per_token", "FLOPs/token", "{:,}"), ("state_bytes", "state bytes", "{:,}"),
           ("latency_train_ms", "train step ms", "{:.1f}"), ("latency_prefill_ms", "prefill ms", "{:.1f}"),
           ("tokens_per_s", "train tok/s", "{:,.0f}"), ("lr", "lr", "{:.2e}"))


def load(out: Path, storage: str | None = None) -> optuna.Study:
    url = storage or f"sqlite:///{out / 'study.db'}"
    if storage is None and not (out / "study.db").is_file():
        raise SpecError(Loc(str(out)), "no study.db here: pass the output folder of `archsearch run` (or --storage)")
    names = optuna.study.get_all_study_names(storage=url)
    if len(names) != 1:
        raise SpecError(Loc(str(out)), f"expected one study in the storage, found {len(names)}")
    return optuna.load_study(study_name=names[0], storage=url)


def pam_fraction(trial) -> float:
    mixers = trial.user_attrs.get("mixers") or []
    return sum(m == "pam" for m in mixers) / len(mixers) if mixers else 0.0


def front(points):
    """Indices of the points (x, y) that no other point beats on both (lower is better)."""
    return [i for i, (x, y) in enumerate(points)
            if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for x2, y2 in points)]


def _plot(done, cost: str, label: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(t.user_attrs[cost], t.user_attrs["val_ppl"]) for t in done]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    sc = ax.scatter(*zip(*pts), c=[pam_fraction(t) for t in done], cmap="viridis", vmin=0, vmax=1, s=36)
    best = sorted(pts[i] for i in front(pts))
    ax.step(*zip(*best), where="post", color="crimson", lw=1.2, label="Pareto front")
    ax.set_xlabel(label)
    ax.set_ylabel("validation perplexity")
    ax.set_xscale("log")
    ax.legend(loc="upper right")
    fig.colorbar(sc, ax=ax, label="fraction of PAM layers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


def verdict(done) -> str:
    """The best PAM-containing architecture against the best PAM-free one at equal or lower measured cost."""
    with_pam = [t for t in done if pam_fraction(t) > 0]
    without = [t for t in done if pam_fraction(t) == 0]
    if not with_pam or not without:
        return "No verdict: the study has no complete trial " + ("with PAM." if not with_pam else "without PAM.")
    p = min(with_pam, key=lambda t: t.user_attrs["val_ppl"])
    rivals = [t for t in without if t.user_attrs["latency_train_ms"] <= p.user_attrs["latency_train_ms"]]
    if not rivals:
        q = min(without, key=lambda t: t.user_attrs["latency_train_ms"])
        return (f"The best PAM-containing architecture (trial {p.number}, ppl {p.user_attrs['val_ppl']:.2f} at "
                f"{p.user_attrs['latency_train_ms']:.1f} ms per training step) has no PAM-free rival as fast; the "
                f"fastest PAM-free one (trial {q.number}) takes {q.user_attrs['latency_train_ms']:.1f} ms for ppl "
                f"{q.user_attrs['val_ppl']:.2f}. Single seed per trial.")
    q = min(rivals, key=lambda t: t.user_attrs["val_ppl"])
    better = p.user_attrs["val_ppl"] < q.user_attrs["val_ppl"]
    return (f"{'PAM pays for itself' if better else 'PAM does not pay for itself'} here: the best PAM-containing "
            f"architecture (trial {p.number}, {'+'.join(p.user_attrs['mixers'])}) reaches validation perplexity "
            f"{p.user_attrs['val_ppl']:.2f} at {p.user_attrs['latency_train_ms']:.1f} ms per training step, against "
            f"{q.user_attrs['val_ppl']:.2f} for the best PAM-free architecture at equal or lower cost (trial "
            f"{q.number}, {'+'.join(q.user_attrs['mixers'])}, {q.user_attrs['latency_train_ms']:.1f} ms). "
            f"Single seed per trial; latencies on {p.user_attrs.get('card', '?')}.")


def write_report(study, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE and "val_ppl" in t.user_attrs]
    lines = [f"# Study `{study.study_name}`", "", "```", summary(study), "```", ""]
    if done:
        _plot(done, "latency_train_ms", "measured training-step latency (ms)", out / "pareto_latency.png")
        _plot(done, "flops_per_token", "forward FLOPs per token (analytic)", out / "pareto_flops.png")
        _history(study, out / "history.png")
        lines += ["## Verdict", "", verdict(done), "",
                  "![ppl vs latency](pareto_latency.png) ![ppl vs FLOPs](pareto_flops.png)", "",
                  "![history](history.png)", "", "## Best architecture per family", "",
                  "| family | trial | mixers | " + " | ".join(c[1] for c in COLUMNS) + " |",
                  "|" + "---|" * (3 + len(COLUMNS))]
        best = {}
        for t in done:
            fam = family(t.user_attrs.get("mixers", []))
            if fam not in best or t.user_attrs["val_ppl"] < best[fam].user_attrs["val_ppl"]:
                best[fam] = t
        for fam, t in sorted(best.items(), key=lambda kv: kv[1].user_attrs["val_ppl"]):
            cells = [fmt.format(t.user_attrs[k]) if k in t.user_attrs else "–" for k, _, fmt in COLUMNS]
            lines.append(f"| {fam} | {t.number} | {', '.join(t.user_attrs.get('mixers', []))} | " + " | ".join(cells) + " |")
        card = done[0].user_attrs.get("card", "?")
        lines += ["", f"Measured on {card}. Each trial's exact spec: `trials/trial_N.yaml`."]
    else:
        lines += ["No complete trial yet."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
