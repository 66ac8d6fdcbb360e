"""A ladder's report (OUT/report.md and plots), written from its study alone: the answer per rung (answer.py), every
family at every rung, the fitted power laws and their extrapolation, the requested ratios, and the check against the
saved weights."""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from ..search.run_folder import TRAIN_SPLIT_TOKENS
from ..task_and_train import TrainConfig
from . import check
from .answer import answer, pm
from .fit import extrapolate
from .plan import dropped
from .results import Cell, complete, gather, line_of
from .retime import dates_of, retimed, rung_forms, samples_of, way_words
from .folder import COPY, open_folder
from .runner import finished
from .trials import job_trials

EXTRAPOLATE_TO = 1e8  # non-embedding parameters: the paper's headline size
PLOTS = (("non_embedding", "non-embedding parameters", "ladder_params.png"),
         ("train_flops", "training FLOPs", "ladder_flops.png"),
         ("gpu_seconds", "measured training GPU-seconds", "ladder_gpu_seconds.png"))


def is_ladder_folder(out: Path) -> bool:
    return (out / COPY).is_file()


def _num(c: Cell, key: str, fmt: str, spread: bool = False) -> str:
    """A cost's mean over the cell's runs (with spread: and their range), or a dash where none has run."""
    v = c.values(key)
    if not v:
        return "–"
    return format(c.mean(key), fmt) + (f" ({min(v):{fmt}}–{max(v):{fmt}})" if spread and len(v) > 1 else "")


def _table(ladder, study, cells: dict, gone: dict) -> list[str]:
    lines = ["", "## Every family at every rung", "",
             "Validation perplexity of each rate the family tried (the chosen one in bold; † the chosen rate is at "
             "the edge of those tried), then the fresh seeds at that rate on the test split. Costs are means over all "
             "the cell's runs (the architecture and shapes are the same at every rate and seed); GPU-seconds give "
             "their range too, since runs of one cell may land on different machines of the same kind.", "",
             "| family | rung | non-embedding params | tokens (epochs) | rates: val ppl | test ppl | test bits/byte | "
             "GPU-seconds | training FLOPs | tokens/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    split = study.user_attrs.get(TRAIN_SPLIT_TOKENS)
    for (fam, rung), c in cells.items():
        epochs = f" ({c.tokens / split:.2f})" if split else ""
        rates = ", ".join(("**" if lr == c.best_lr else "") + f"{lr:.3g}: " +
                          (f"{v:.2f}" if v is not None else "failed") +
                          ("**" + " †" * c.edge if lr == c.best_lr else "") for lr, v in sorted(c.grid.items())) or (
            "dropped (below)" if fam in gone else "not run")
        lines.append(f"| {fam} | {rung} | {c.non_embedding:,} | {c.tokens:,}{epochs} | {rates} | "
                     f"{pm(c, 'test_ppl')} | {pm(c, 'test_bpb', 4)} | {_num(c, 'gpu_seconds', '.3g', spread=True)}"
                     f"{' ‡' * (bool(c.runs) and not c.on_basis)} | "
                     f"{_num(c, 'train_flops', '.3g')} | {_num(c, 'tokens_per_s', ',.0f')} |")
    return lines


def _repeats(used: dict) -> list[str]:
    """How far apart the timings of the cells timed more than once fell: the noise of one timing, which the seed
    intervals leave out."""
    spread = {cell: (max(x) - min(x)) / statistics.median(x) for cell, u in used.items()
              if len(x := samples_of(u)) > 1}
    if not spread:
        return []
    worst = max(spread, key=spread.get)
    counts = sorted({len(samples_of(used[c])) for c in spread})
    return [f"Timed more than once ({'/'.join(map(str, counts))} times on the same card, loop, form and steps, each "
            f"call of `archsearch retime` a fresh process): {len(spread)} of these cells; each one's figure is the "
            f"median of its timings, which lie within {100 * spread[worst]:.1f}% of each other at most ({worst}; "
            f"median spread "
            f"{100 * statistics.median(spread.values()):.1f}%). The seed intervals do not include this noise."]


def _timing(ladder, study, cells: dict) -> list[str]:
    """Which cards, training loops and step forms timed the GPU-seconds above, when not one alone, and which cells were
    re-timed."""
    again = retimed(study, rung_forms(ladder))
    used = {f"{c.family}/{c.rung}": again[f"{c.family}/{c.rung}"] for c in cells.values()
            if any(r.get("retimed") for r in c.runs)}
    pairs = sorted({pair for c in cells.values() for pair in c.timings()})
    lines = []
    if used:
        card = sorted({u["card"] for u in used.values()})
        dates = sorted({d for u in used.values() for d in dates_of(u)})
        lines.append(f"Re-timed: the GPU-seconds and tokens/s of the runs of {', '.join(used)} that another card "
                     f"or an older training loop timed, or another step form, come from `archsearch retime`, which "
                     f"trained each such cell's spec again with the "
                     f"{'/'.join(sorted({u['loop'] for u in used.values()}))} loop "
                     f"({'/'.join(sorted({u.get('form', 'an unrecorded') for u in used.values()}))} step) for "
                     f"{'/'.join(str(s) for s in sorted({u['steps'] for u in used.values()}))} steps "
                     f"({', '.join(card)}, {', '.join(dates)}): a short timing, where a run times itself over its "
                     f"whole length; the runs' own records stay in the study.")
        lines.extend(_repeats(used))
    if len(pairs) > 1:
        base = next(iter(cells.values())).basis
        lines.append(f"These runs were timed {len(pairs)} ways ({'; '.join(way_words(p) + ' step' for p in pairs)}): "
                     f"GPU-seconds compare only within one. They stand on {way_words(base)} step (of the ways the "
                     f"trainer's current loop timed, the one that times the most cells; docs/ladder.md); ‡ marks "
                     f"a cell timed otherwise, left out of the GPU-seconds plot, and an equal-GPU-time reading needs "
                     f"one way on both sides (`archsearch retime OUT` times such cells again on the card it runs on, "
                     f"with its current loop; `--compile` times cells compiled, which puts rungs trained in two "
                     f"forms on one axis).")
    return ["", *lines] if lines else []


def _fits(ladder, cells: dict) -> list[str]:
    if len(ladder.rungs) < 2 or not ladder.seeds:
        return []  # a power law needs two sizes, each with its seeds' test numbers
    lines = ["", "## Power laws", "",
             "Test loss (nats per token) against non-embedding parameters, L = a·N^(−α), least squares in "
             f"log–log over the seed means of the rungs whose {ladder.seeds} seeds have all finished; extrapolated to "
             f"{EXTRAPOLATE_TO:.0e} with a 95% interval for seed noise (the delta method on the log means, Student's t "
             "with Welch–Satterthwaite degrees of freedom; it does not cover whether the law holds beyond the "
             "measured sizes).", "",
             f"| family | rungs | α | test ppl at {EXTRAPOLATE_TO / 1e6:.0f}M (95% interval) |", "|---|---|---|---|"]
    for fam in ladder.families:
        pts = {c.non_embedding: c.values("test_loss") for c in line_of(ladder, cells, fam.name)}
        e = extrapolate(pts, EXTRAPOLATE_TO)
        if e is None:
            lines.append(f"| {fam.name} | {len(pts)} | – | needs two rungs |")
            continue
        two = " (a line through two points)" if e["sizes"] == 2 else ""
        interval = (f"({math.exp(e['lo']):.2f} – {math.exp(e['hi']):.2f}, {e['df']:.1f} df)" if e["lo"] is not None
                    else "(no interval: a rung with one seed)")
        lines.append(f"| {fam.name} | {e['sizes']} | {e['alpha']:.4f} | {math.exp(e['value']):.2f} {interval}{two} |")
    return lines


def _ratios(ladder, cells: dict) -> list[str]:
    if not ladder.ratios:
        return []
    heads = [f"{a} / {b}{kind}" for a, b in ladder.ratios for kind in ("", " tokens/s")]
    lines = ["", "## Ratios per rung", "", "Perplexity: test, seed means (where a rung's seeds have not all "
             "finished: validation perplexity at the chosen rates, marked v). Tokens/s: measured in this study, the "
             "means over each cell's runs (steady state, as in the table above); ‡ where the two cells were timed on "
             "different cards, by different loops or in different step forms.", "",
             "| rung | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for rung in ladder.rungs:
        row = []
        for a, b in ladder.ratios:
            ca, cb = cells.get((a, rung.name)), cells.get((b, rung.name))
            if ca and cb and complete(ladder, ca) and complete(ladder, cb):
                row.append(f"{ca.mean('test_ppl') / cb.mean('test_ppl'):.3f}")
            elif ca and cb and ca.best_val and cb.best_val:
                row.append(f"{ca.best_val / cb.best_val:.3f} v")
            else:
                row.append("–")
            speed = ca.mean("tokens_per_s") / cb.mean("tokens_per_s") if ca and cb else math.nan
            apart = ca and cb and not (len(ca.timings()) == 1 and ca.timings() == cb.timings())
            row.append("–" if math.isnan(speed) else "– ‡" if apart else f"{speed:.3f}")
        lines.append(f"| {rung.name} | " + " | ".join(row) + " |")
    return lines + _published(ladder)


def _published(ladder) -> list[str]:
    """The published ratios beside the measured ones, as the ladder file gives them."""
    if not ladder.published:
        return []
    source, rows = ladder.published
    sizes = list(dict.fromkeys(k for row in rows.values() for k in row))
    return ["", f"Published beside them ({source}):", "", "| ratio | " + " | ".join(sizes) + " |",
            "|---" * (len(sizes) + 1) + "|"] + [
        f"| {key} | " + " | ".join(f"{row[k]:g}" if k in row else "–" for k in sizes) + " |"
        for key, row in rows.items()]


def _plots(ladder, cells: dict, out: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for key, label, name in PLOTS:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for fam in ladder.families:
            own = line_of(ladder, cells, fam.name)
            if key == "gpu_seconds":  # only GPU-seconds of one card, loop and step form share an axis
                own = [c for c in own if c.on_basis]
            if not own:
                continue
            xs = [c.non_embedding if key == "non_embedding" else c.mean(key) for c in own]
            ys = [c.mean("test_ppl") for c in own]
            err = [0.0 if math.isnan(c.std("test_ppl")) else c.std("test_ppl") for c in own]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=fam.name, linestyle="--" if not own[0].pam
                        else "-")
        if not ax.lines:
            plt.close(fig)
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("test perplexity (seed mean ± sd)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(f"![test ppl vs {label}]({name})")
    return names


def _curves(ladder, cells: dict, out: Path) -> list[str]:
    """Validation loss against training tokens of each family's rate-selecting run at its chosen rate; on a ladder of
    one rung, of every rate it tried (the chosen one solid)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    every_rate = len(ladder.rungs) == 1
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ((fam, rung), c) in enumerate(cells.items()):
        runs = [r for r in c.runs if r["phase"] == "grid"] if every_rate else [c.chosen()]
        for run in sorted((r for r in runs if r), key=lambda r: r["lr"]):
            pts = [(p["tokens"], p["val_loss"]) for p in run.get("curve", []) if p.get("val_loss") is not None]
            if "val_loss" in run:
                pts.append((run["tokens"], run["val_loss"]))  # the final, whole-split number
            if pts:
                chosen = run["lr"] == c.best_lr
                ax.plot(*zip(*pts), marker=".", linestyle="-" if chosen else ":", color=colours[i % len(colours)],
                        label=f"{fam} {rung} (lr {run['lr']:g}{', chosen' * (chosen and every_rate)})")
    if not ax.lines:
        plt.close(fig)
        return []
    ax.set_xlabel("training tokens")
    ax.set_ylabel("validation loss (nats/token)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    return ["![validation curves](curves.png)"]


def _curves_note(ladder) -> list[str]:
    """What the curves' points are: the evaluations during a run cover part of the split, the final one all of it."""
    part = ladder.train.get("eval_tokens", TrainConfig.eval_tokens)
    on = f"the first {part:,} tokens of the validation split" if part else "the whole validation split"
    return ["", f"Each curve's points are its run's evaluations on {on}, its last point on the whole split."]


def _extends(ladder) -> str:
    """The report's words for the rungs whose edge choices add rates beyond the edge."""
    by = {}
    for r in ladder.rungs:
        if r.extend:
            by.setdefault(r.extend, []).append(r.name)
    words = "".join(f"; at {', '.join(names)} a best rate at an edge of those tried adds the next rate beyond it "
                    f"(up to {n} time{'s' * (n > 1)})" for n, names in by.items())
    for r in ladder.rungs:
        if r.finalists:
            near = f" (and every family within {r.finalists_within:.0%} of its side's best)" \
                if r.finalists_within else ""
            words += (f"; at {r.name}, once every family's rates have run, the best PAM-containing and the best "
                      f"PAM-free family{near}, each whose best rate is at an edge, add the next rate beyond it "
                      f"({r.finalists} round{'s' * (r.finalists > 1)}), before the seeds")
    return words


def _rung_train(ladder) -> str:
    """The report's words for rungs that train with settings of their own (e.g. compiled): their runs time
    themselves in that form, another time axis than the other rungs' until `archsearch retime --compile`."""
    own = [f"{r.name} trains with {', '.join(f'{k}: {v}' for k, v in r.train.items())}" for r in ladder.rungs if r.train]
    return "".join(f"; {w}" for w in own)


def _axis(cells: dict, cards: list) -> str:
    """The header's words for the card, loop and step form its GPU-seconds stand on, where runs or re-timings used
    another."""
    base = next(iter(cells.values())).basis if cells else None
    ways = {w for c in cells.values() for w in c.timings()}
    if base is None or (cards == [base[0]] and ways == {base} and
                        not any(r.get("retimed") for c in cells.values() for r in c.runs)):
        return ""
    off = sum(1 for c in cells.values() if c.runs and not c.on_basis)
    return (f"; GPU-seconds and tokens/s timed on {base[0]} ({base[1]} loop, {base[2]} step; below)" +
            (f", but for {off} cell(s) marked ‡, timed otherwise" if off else ""))


def write_report(out: Path, storage: str | None = None) -> Path:
    ladder, study = open_folder(out, storage)
    done = finished(study)
    cells = gather(ladder, study, done)
    cards = sorted({r.get("trained_on", r.get("card")) for c in cells.values() for r in c.runs
                    if r.get("trained_on", r.get("card"))})
    failed = [t.user_attrs for job, t in job_trials(study.get_trials(deepcopy=False)).items()
              if job in done and done[job].val_ppl is None and "failed_reason" in t.user_attrs]
    budget = (f"{ladder.tokens:,} training tokens a run" if ladder.tokens is not None else
              f"{ladder.tokens_per_param:g} training tokens per non-embedding parameter")
    lines = [f"# Ladder `{ladder.name}`", "",
             f"Task: {study.user_attrs.get('task', '?')}. {budget}; rates "
             f"{', '.join(f'{x:g}' for x in ladder.lr_grid)} (rungs marked `around` "
             f"train {ladder.around} rates around the rung below's choice){_extends(ladder)}{_rung_train(ladder)}; "
             f"{ladder.seeds} fresh "
             f"seeds at the chosen "
             f"rate. {len(done)} runs finished. Trained on {', '.join(cards) or 'nothing yet'}{_axis(cells, cards)}; "
             f"precision "
             f"{ladder.train.get('precision', 'auto')} (auto: bf16 autocast on a GPU, fp32 on CPU; evaluations alike). "
             f"The ladder as run: "
             f"[{COPY}]({COPY}); each run's exact spec: `specs/`.", ""]
    gone = dropped(ladder, done)
    lines += (answer(ladder, cells, gone, done) + _table(ladder, study, cells, gone) + _timing(ladder, study, cells) +
              _fits(ladder, cells) + _ratios(ladder, cells))
    curves = _curves(ladder, cells, out)
    lines += ["", "## Plots", "", " ".join(_plots(ladder, cells, out) + curves)] + (_curves_note(ladder) if curves else [])
    if gone or failed:
        lines += ["", "## Stopped and failed", ""]
        lines += [f"- {f} climbed no further: {why}." for f, why in gone.items()]
        lines += [f"- {a['job']}: {a['failed_reason']}" for a in failed]
    lines += check.lines(study, check.check_saved(study, out))
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
