"""`archsearch report OUT_DIR`: report.md and PNG plots from a study — the verdicts (verdicts.py: chosen on
validation, compared on the test split over fresh seeds), the Pareto fronts of validation quality against measured
training-step latency, against FLOPs and against decode-state bytes (points coloured by the fraction of PAM layers),
the optimisation history, the best architecture of each family with all its costs, the fresh-seed test numbers, the
screen's fidelity, and the check of every number against its saved weights (verify.py)."""
from __future__ import annotations

from pathlib import Path

from optuna.trial import TrialState

from . import verify
from .families import Quality, family, pam_fraction, verdict_cost, verdict_pairs
from .recovery import superseded
from .retrain import (FIDELITY_SEED, at_seed, failed_seeds, failures, fidelity_pairs, fidelity_set, job_key,
                      seed_stats, spearman, spread)
from .run_folder import (CARD, FIDELITY_BAR, ISO_TIME, MATCHED, MIXERS, SAVED_CHECK, TRAIN_SPLIT_TOKENS,
                         TRAIN_TOKENS)
from .summary import summary
from .verdicts import equal_time_verdict, floor_of, floor_note, verdict

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


def _fidelity(study, seeds, q: Quality):
    """(the bar or None, the trials it names, {trial: (screen, longer budget)} of those whose longer run finished (one
    that diverged at the worst value), the factor, the runs' seed offset). With a bar: the fidelity set at seed +
    FIDELITY_SEED. Without one: the finished runs at seed + FIDELITY_SEED, or at the screen's own seed where a study
    from before has only those."""
    bar = study.user_attrs.get(FIDELITY_BAR)
    worst = q.sign * float("inf")
    if bar:
        want, factor, offset = [t.number for t in fidelity_set(study, bar["trials"])], bar["factor"], FIDELITY_SEED
    else:  # the runs at seed + FIDELITY_SEED where there are any, and the factor of those runs
        want = None
        offset = FIDELITY_SEED if fidelity_pairs(study, seeds, q.key, worst=worst, seed=FIDELITY_SEED)[1] else 0
        factor = fidelity_pairs(study, seeds, q.key, worst=worst, seed=offset)[0]
    longer: dict[int, tuple[float, float]] = {}
    for n, a, b in fidelity_pairs(study, seeds, q.key, factor or None, worst, offset)[1]:
        if want is None or n in want:
            longer.setdefault(n, (a, b))  # a run made twice (two hosts) counts once
    return bar, want if want is not None else sorted(longer), longer, factor, offset


def screen_qualifies(study, seeds, q: Quality) -> tuple[bool | None, str]:
    """Whether the budget's screen may be used, by its bar (`fidelity: {min_rank: R}`): (True, why), (False, why),
    or (None, "") where the budget sets no bar."""
    bar, want, longer, _, _ = _fidelity(study, seeds, q)
    if not bar:
        return None, ""
    n = bar["trials"]
    need = (f"the bar: Spearman ≥ {bar['min_rank']:g} over {n} trials spread over the ranking, with the "
            f"verdicts' pairs added, re-trained {bar['factor']:g}× longer")
    if (have := len(spread(study, n))) < n:
        return False, f"the search has {have} complete trials to re-train, fewer than {n} ({need})"
    if len(longer) < len(want):
        return False, f"{len(longer)} of its {len(want)} fidelity runs have finished ({need})"
    rho = spearman([longer[s][0] for s in want], [longer[s][1] for s in want])
    return rho >= bar["min_rank"], f"ρ = {rho:.2f} over {len(want)} trials ({need})"


def _pair_orders(study, done, q: Quality, longer: dict, factor: float) -> list[str]:
    """Whether each verdict's pair keeps its screen order at the longer budget."""
    out = []
    for what, (p, r) in verdict_pairs(study, done, q):
        if p is None or r is None or p.number not in longer or r.number not in longer:
            continue
        (ps, pl), (rs, rl) = longer[p.number], longer[r.number]
        head = f"The pair at {what} (trial {p.number} with PAM, trial {r.number} without)"
        lost = [t.number for t, v in ((p, pl), (r, rl)) if abs(v) == float("inf")]
        if lost:
            out.append(f"{head}: trial {' and '.join(map(str, lost))} diverged at {factor:g}× the budget.")
            continue
        same = (q.loss(ps) < q.loss(rs)) == (q.loss(pl) < q.loss(rl))
        out.append(f"{head}, {q.short} at the screen's budget {ps:.4g} against {rs:.4g}, at {factor:g}× {pl:.4g} "
                   f"against {rl:.4g}: " + ("the same order." if same else "**the order reverses**."))
    return out


def fidelity_section(study, seeds, q: Quality, done) -> list[str]:
    bar, want, longer, factor, offset = _fidelity(study, seeds, q)
    if len(longer) < 3:
        return []
    rho = spearman([longer[n][0] for n in want if n in longer], [longer[n][1] for n in want if n in longer])
    ok, why = screen_qualifies(study, seeds, q)
    verdict = ("" if ok is None else f" **The screen {'qualifies' if ok else 'does not qualify'}**: {why}.")
    lost = {src: why for (src, _, scale), why in failures(seeds).items() if scale == factor}
    chosen = (f" ({bar['trials']} spread over the screen's ranking, and the verdicts' pairs)" if bar
              else " spread over the screen's ranking")
    lines = ["", "## Screening fidelity", "",
             f"{len(longer)} trials{chosen} trained again for {factor:g}× the budget, "
             + ("each with a seed of its own" if offset else "with the screen run's own seed")
             + f". Spearman rank correlation of {q.short} between the two budgets over them: **{rho:.2f}** (1: the "
             f"screen ranks as the longer budget does).{verdict}"]
    orders = _pair_orders(study, done, q, longer, factor)
    lines += ["", *orders] if orders else []
    split = study.user_attrs.get(TRAIN_SPLIT_TOKENS)
    ran = {}  # each longer run's own record of its token budget (every run records it before it trains)
    for j in seeds.trials:
        key = job_key(j)
        if key[2] == factor and at_seed(study, key, offset):
            ran.setdefault(key[0], j.user_attrs.get(TRAIN_TOKENS))

    def tokens(n):  # the longer run's tokens, and the passes over the train split they make (expected coverage)
        t = ran.get(n)
        return "–" if t is None else f"{t:,.0f}" + (f" ({t / split:.2f})" if split else "")
    lines += ["", f"| trial | mixers | screen {q.short} | {factor:g}× budget {q.short} | {factor:g}× tokens (passes "
                  f"over the train split) |", "|---|---|---|---|---|"]
    for n, (a, b) in sorted(longer.items(), key=lambda kv: q.loss(kv[1][0])):
        shown = f"diverged ({lost[n]}): ranked last" if n in lost and abs(b) == float("inf") else f"{b:.4g}"
        lines.append(f"| {n} | {'+'.join(study.trials[n].user_attrs.get(MIXERS, []))} | {a:.4g} | {shown} | "
                     f"{tokens(n)} |")
    return lines


def _family_table(done, q: Quality, stats: dict) -> list[str]:
    cols = [c for c in COLUMNS if any(c[0] in t.user_attrs for t in done)]
    lines = [f"| family | trial | mixers | test {q.short}, fresh seeds | " + " | ".join(c[1] for c in cols) + " |",
             "|" + "---|" * (4 + len(cols))]
    best = {}
    for t in done:
        fam = family(t.user_attrs.get(MIXERS, []))
        if fam not in best or q.loss(t.user_attrs[q.key]) < q.loss(best[fam].user_attrs[q.key]):
            best[fam] = t
    for fam, t in sorted(best.items(), key=lambda kv: q.loss(kv[1].user_attrs[q.key])):
        s = stats.get(t.number)
        test = (f"{s['mean']:.4g}" + (f" ± {s['std']:.2g}" if s["n"] > 1 else "") + f" (n = {s['n']})") if s else "–"
        cells = [fmt.format(t.user_attrs[k] / (2**20 if k == "peak_memory_bytes" else 1)) if t.user_attrs.get(k)
                 else "–" for k, _, fmt in cols]  # no peak memory on CPU
        lines.append(f"| {fam} | {t.number} | {', '.join(t.user_attrs.get(MIXERS, []))} | {test} | "
                     + " | ".join(cells) + " |")
    return lines


def _seeds_table(study, q: Quality, stats: dict, lost: dict) -> list[str]:
    lines = ["", "## Re-trained with fresh seeds: test split", "",
             f"The top trials, each family's best and the verdicts' pairs, trained again with seeds the search did not "
             f"use and scored from their saved weights on the test split (the search selected on validation). Test "
             f"{q.short}: mean ± standard deviation over the runs that finished; a run that diverged is named, left out and "
             f"not tried again.", "",
             f"| trial | family | mixers | validation {q.short} (search run) | test {q.short} | seeds | each seed |",
             "|---|---|---|---|---|---|---|"]
    rows = sorted(stats.items(), key=lambda kv: q.loss(kv[1]["mean"]))
    rows += [(n, {"n": 0, "values": []}) for n in sorted(lost) if n not in stats]  # every run of it diverged
    for n, s in rows:
        a = study.trials[n].user_attrs
        mean = (f"{s['mean']:.4g}" + (f" ± {s['std']:.2g}" if s["n"] > 1 else "")) if s["n"] else "–"
        each = [f"{v:.4g}" for v in s["values"]] + [f"seed {seed}: {why}" for seed, why in lost.get(n, [])]
        lines.append(f"| {n} | {family(a.get(MIXERS, []))} | {'+'.join(a.get(MIXERS, []))} | "
                     f"{a[q.key]:.4g} | {mean} | {s['n']} | " + ", ".join(each) + " |")
    return lines


def write_report(study, out: Path, seeds=None, check: bool = True, recheck: bool = False) -> Path:
    """report.md and its plots in `out`; with `check`, every number whose weights are in `out` and that no earlier
    check covers is first evaluated again from them (verify.py); with `recheck`, every one whose weights are here."""
    out.mkdir(parents=True, exist_ok=True)
    gone = superseded(study.trials)
    q = Quality(study)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE and q.key in t.user_attrs and t.number not in gone]
    stats = seed_stats(study, seeds, q.test_key)
    saved = verify.check_saved(study, seeds, out, recheck) if check else (study.user_attrs.get(SAVED_CHECK) or {})
    floors = floor_of(study)
    lines = [f"# Study `{study.study_name}`", "", "```", summary(study), "```", ""]
    if done:
        plots = [f"![{q.short} vs {cost}]({name})" for cost, name in PLOTS if _plot(done, cost, q, out / name)]
        _history(study, out / "history.png")
        lines += ["## Verdict", ""]
        ok, why = screen_qualifies(study, seeds, q)
        if ok is False:
            lines += [f"**These verdicts are not to be used: the screen has not shown that it ranks as a longer "
                      f"budget does ({why}).**", ""]
        lost = failed_seeds(study, seeds)
        lines += [verdict(done, q, verdict_cost(study), stats, floors, lost)
                  + floor_note(study, done, q, stats), ""]
        if study.user_attrs.get(ISO_TIME):
            lines += ["### At equal training time", "",
                      equal_time_verdict(done, q, study.user_attrs[ISO_TIME], stats, floors, lost), ""]
        if verify.mismatches(saved):
            lines += ["**Some numbers of this study do not match their saved weights (see the last section).**", ""]
        lines += [" ".join(plots), "", "![history](history.png)", "", f"## Best {q.short} per family", "",
                  f"Each family's trial of best validation {q.short} in the search (the summary above ranks by the "
                  "objective, which also weighs the costs, so its trial can differ); the test column is its fresh "
                  "seeds' mean where it was re-trained.", ""]
        lines += _family_table(done, q, stats)
        matched = sorted({t.user_attrs[MATCHED] for t in done if MATCHED in t.user_attrs})
        if matched:
            lines += ["", "Baselines (enqueued first, each at its best learning rate of the budget's grid) at sizes "
                          "matched across families: " + "; ".join(matched) + "."]
        if stats or lost:
            lines += _seeds_table(study, q, stats, lost)
        lines += fidelity_section(study, seeds, q, done)
        card = done[0].user_attrs.get(CARD, "?")
        lines += verify.section(study, seeds, saved)
        lines += ["", f"Measured on {card}. Each trial's exact spec: `trials/trial_NNNN.yaml`; the study opens in "
                      f"optuna-dashboard (see docs/search.md)."]
    else:
        lines += ["No complete trial yet."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
