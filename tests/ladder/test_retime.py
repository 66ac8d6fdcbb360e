"""`archsearch retime`: the cells whose runs another card, an older training loop or another step form timed are
timed again on this card with the current loop (compiled, on asking); the report uses the new figure and says so, the
runs' own records stay, a second call has nothing to do, a forced one of the same length joins the earlier timing (the
median counts), and a re-timing on yet another card, or in another form, moves the report's time axis there."""
import functools
from pathlib import Path

import optuna
import pytest

import archsearch.ladder.retime
import archsearch.ladder.runner
import archsearch.saved
import archsearch.train
from archsearch.cli import main
from archsearch.ladder.folder import open_folder
from archsearch.ladder.retime import RETIMED, retimed, stale
from archsearch.train import LOOP

TINY = Path(__file__).resolve().parents[1] / "fixtures/tiny_ladder.yaml"


def _study(out):
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'ladder.db'}")


def test_runs_of_an_older_loop_are_timed_again_and_the_report_says_so(tmp_path, monkeypatch, capsys):
    # CUDA graphs asked for, as the scaling ladder does: on a CPU they do not apply, and the runs' form says so
    ladder = tmp_path / "tiny.yaml"
    ladder.write_text(TINY.read_text().replace("device: cpu}", "device: cpu, cuda_graph: true}"))
    out = tmp_path / "t"
    # trained by the loop that waits for every step, as every run was until 2026-12-05
    monkeypatch.setattr(archsearch.saved, "train", functools.partial(archsearch.train.train, overlap=False))
    assert main(["run", str(ladder), "--out", str(out)]) == 0
    monkeypatch.undo()
    before = {t.number: t.user_attrs for t in _study(out).trials}
    assert {a["form"] for a in before.values()} == {"eager"}  # each run records the form its step ran in
    assert sorted(stale(open_folder(out)[0], _study(out), "cpu")) == ["transformer/small"]
    capsys.readouterr()

    assert main(["retime", str(out), "--data", "tests/fixtures/wikitext"]) == 2  # other tokens: one line, nothing kept
    assert "these tokens are not the ones" in capsys.readouterr().err and not retimed(_study(out))

    assert main(["retime", str(out), "--device", "tpu"]) == 2 and "--device: " in capsys.readouterr().err
    assert main(["retime", str(out), "--storage", f"sqlite:///{tmp_path / 'other.db'}"]) == 2
    assert "holds no study 'tiny'" in capsys.readouterr().err

    assert main(["retime", str(out), "--steps", "4"]) == 0
    text = capsys.readouterr().out
    assert f"re-timing 1 cell(s) of 'tiny' on cpu with the {LOOP} loop, 4 steps each" in text
    assert "transformer/small: " in text and " now" in text
    again = retimed(_study(out))
    assert {c: (a["loop"], a["steps"], a["card"]) for c, a in again.items()} == {"transformer/small": (LOOP, 4, "cpu")}
    assert {t.number: t.user_attrs for t in _study(out).trials} == before  # the runs' own records stay
    report = (out / "report.md").read_text()
    assert "Re-timed: the GPU-seconds and tokens/s of the runs of transformer/small that another card or an " \
        "older training loop timed, or another step form, come from" in report
    tps = again["transformer/small"]["tokens_per_s"]
    row = next(line for line in report.splitlines() if line.startswith("| transformer | small |"))
    assert f"{tps:,.0f}" in row  # the tokens/s column is the new figure

    assert main(["retime", str(out)]) == 0
    assert "nothing to re-time" in capsys.readouterr().out
    assert main(["retime", str(out), "--steps", "3", "--force"]) == 0  # again, on asking: another length replaces it
    assert "re-timing 1 cell(s)" in capsys.readouterr().out
    first = retimed(_study(out))["transformer/small"]
    assert first["steps"] == 3 and first["samples"] == [first["tokens_per_s"]]
    assert main(["retime", str(out), "--steps", "3", "--force", "--cells", "nope/*"]) == 2  # a typo times nothing
    assert "--cells: 'nope/*' matches no cell with a finished run (these are: transformer/small)" \
        in capsys.readouterr().err
    assert main(["retime", str(out), "--steps", "3", "--cells", "transformer/small"]) == 0  # re-timed here already
    assert "nothing to re-time (--force re-times the re-timed again)" in capsys.readouterr().out
    # the same card, loop and length again: the timing joins the first and the figure is their median, a record from
    # before records named their form taking its rung's (eager here: no CUDA graphs on a CPU)
    _study(out).set_user_attr(RETIMED + "transformer/small", {k: v for k, v in first.items() if k != "form"})
    assert main(["retime", str(out), "--steps", "3", "--force", "--cells", "*/small"]) == 0
    assert "(median of 2 timings: " in capsys.readouterr().out
    second = retimed(_study(out))["transformer/small"]
    assert second["samples"][0] == first["tokens_per_s"] and len(second["samples"]) == 2
    assert second["tokens_per_s"] == sum(second["samples"]) / 2
    assert "Timed more than once (2 times on the same card, loop, form and steps, each call of `archsearch retime` a fresh " \
        "process): 1 of these cells" in (out / "report.md").read_text()

    # another card: its runs were timed on cpu, so it times the cell again, and the report's axis moves to it
    monkeypatch.setattr(archsearch.ladder.retime, "device_name", lambda device: "NVIDIA H200")
    assert main(["retime", str(out), "--steps", "3"]) == 0
    assert "re-timing 1 cell(s) of 'tiny' on NVIDIA H200" in capsys.readouterr().out
    monkeypatch.undo()
    moved = retimed(_study(out))["transformer/small"]
    assert moved["card"] == "NVIDIA H200" and moved["samples"] == [moved["tokens_per_s"]]  # the cpu timings dropped
    report = (out / "report.md").read_text()
    assert "(NVIDIA H200, " in report
    assert "Trained on cpu; GPU-seconds and tokens/s timed on NVIDIA H200 (overlapped loop, eager step; below)" in report
    # the ladder itself goes on on another card than its runs' (perplexities do not depend on it), with a note
    monkeypatch.setattr(archsearch.ladder.runner, "device_name", lambda device: "NVIDIA H100 80GB HBM3")
    assert main(["run", str(ladder), "--out", str(out)]) == 0
    assert "note: 'tiny' has runs timed on cpu and this is NVIDIA H100 80GB HBM3" in capsys.readouterr().out
    monkeypatch.setenv("ARCHSEARCH_WORKER", "1")  # a worker of `--workers N`: the coordinator has said it
    archsearch.ladder.runner.LadderRun(str(ladder), out, None, None, None)
    assert "note:" not in capsys.readouterr().out
    monkeypatch.undo()

    # --compile: every cell timed compiled, whatever form its rung trained in, and the time axis moves to that form
    monkeypatch.setattr(archsearch.train, "compile_afresh", lambda fn, **kw: fn)  # the bookkeeping, not inductor
    assert main(["retime", str(out), "--steps", "3", "--compile"]) == 0
    text = capsys.readouterr().out
    assert "on cpu with the overlapped loop, compiled, 3 steps each" in text and " now (compile)" in text
    assert "; its re-timing before, " in text and " (NVIDIA H200, overlapped loop, eager), is replaced" in text
    assert retimed(_study(out))["transformer/small"]["form"] == "compile"
    assert "timed on cpu (overlapped loop, compile step; below)" in (out / "report.md").read_text()
    report = (out / "report.md").read_text()
    assert "‡" not in next(line for line in report.splitlines() if line.startswith("| transformer | small |"))
    assert main(["retime", str(out), "--steps", "3", "--compile"]) == 0
    assert "nothing to re-time" in capsys.readouterr().out
    assert main(["retime", str(out), "--steps", "3"]) == 0  # a plain call keeps the compiled timing, not undoes it
    assert "nothing to re-time" in capsys.readouterr().out
    assert retimed(_study(out))["transformer/small"]["form"] == "compile"
    # on a GPU whose capture failed the compiled step ran without its graph: still what --compile asked, not stale
    entry = {**retimed(_study(out))["transformer/small"], "card": "NVIDIA H200"}
    _study(out).set_user_attr(RETIMED + "transformer/small", entry)
    monkeypatch.setattr(archsearch.ladder.retime, "device_name", lambda device: "NVIDIA H200")
    assert main(["retime", str(out), "--steps", "3", "--compile"]) == 0
    assert "nothing to re-time" in capsys.readouterr().out


def test_each_cell_keeps_its_own_record_so_two_re_timings_at_once_lose_neither(tmp_path):
    storage = f"sqlite:///{tmp_path / 'ladder.db'}"
    optuna.create_study(study_name="tiny", storage=storage)
    first, second = (optuna.load_study(study_name="tiny", storage=storage) for _ in range(2))  # two processes
    first.set_user_attr(RETIMED + "a/small", {"tokens_per_s": 1.0})
    second.set_user_attr(RETIMED + "b/small", {"tokens_per_s": 2.0})  # its view predates the first's write
    assert sorted(retimed(_study(tmp_path))) == ["a/small", "b/small"]


def test_a_record_joins_timings_of_the_same_card_loop_form_and_steps_by_their_median():
    from archsearch.ladder.retime import _record

    old = {"tokens_per_s": 100.0, "loop": LOOP, "steps": 300, "card": "H100", "date": "2026-01-01",
           "form": "graph"}  # before samples
    two = _record(old, 130.0, LOOP, 300, "H100", "graph")
    assert two["samples"] == [100.0, 130.0] and two["tokens_per_s"] == 115.0
    assert two["dates"][0] == "2026-01-01" and len(two["dates"]) == 2  # the report names every timing's date
    three = _record(two, 101.0, LOOP, 300, "H100", "graph")
    assert three["samples"] == [100.0, 130.0, 101.0] and three["tokens_per_s"] == 101.0  # the median, not the mean
    for other in ((LOOP, 300, "H200", "graph"), ("waited", 300, "H100", "graph"), (LOOP, 200, "H100", "graph"),
                  (LOOP, 300, "H100", "compile+graph")):  # another card, loop, length, step form
        fresh = _record(three, 90.0, *other)
        assert fresh["samples"] == [90.0] and fresh["tokens_per_s"] == 90.0 and len(fresh["dates"]) == 1
        assert fresh["form"] == other[3]
    assert _record(None, 90.0, LOOP, 300, "H100", "graph")["samples"] == [90.0]


def test_records_from_before_forms_take_their_rungs_form():
    from archsearch.ladder.retime import with_form

    forms = {"a/2m": (False, True), "a/20m": (True, True)}
    assert with_form({"card": "H100"}, forms, "a/2m")["form"] == "graph"
    assert with_form({"card": "H100"}, forms, "a/20m")["form"] == "compile+graph"
    assert with_form({"card": "cpu"}, forms, "a/20m")["form"] == "compile"  # CUDA graphs only on a GPU
    assert with_form({"card": "H100", "form": "eager"}, forms, "a/20m")["form"] == "eager"  # its own, recorded
    assert "form" not in with_form({"card": "H100"}, forms, "b/2m")  # a cell the ladder no longer has


def test_the_report_states_the_spread_of_cells_timed_more_than_once():
    from archsearch.ladder.report import _repeats

    used = {"a/small": {"tokens_per_s": 100.0, "samples": [100.0, 104.0, 99.0]},
            "b/small": {"tokens_per_s": 50.0, "samples": [50.0, 50.5]},
            "c/small": {"tokens_per_s": 70.0}}  # one timing: not in the sentence
    (line,) = _repeats(used)
    assert line.startswith("Timed more than once (2/3 times on the same card, loop, form and steps")
    assert "2 of these cells" in line and "within 5.0% of each other at most (a/small; median spread 3.0%)" in line
    assert _repeats({"c/small": used["c/small"]}) == []


def test_a_time_limit_starts_no_cell_the_longest_so_far_says_would_end_past_it(tmp_path, monkeypatch, capsys):
    text = TINY.read_text()
    family = text[text.index("  transformer:\n"):]
    ladder = tmp_path / "two.yaml"
    ladder.write_text(text + family.replace("  transformer:\n", "  transformer_b:\n"))
    out = tmp_path / "t"
    monkeypatch.setattr(archsearch.saved, "train", functools.partial(archsearch.train.train, overlap=False))
    assert main(["run", str(ladder), "--out", str(out)]) == 0  # timed by the older loop: both cells are stale
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["retime", str(out), "--steps", "3", "--timeout-minutes", "1e-6"]) == 0
    text = capsys.readouterr().out
    assert "re-timing 2 cell(s)" in text and "time limit: 1 cell(s) left" in text
    assert "the same command goes on with them" in text and len(retimed(_study(out))) == 1
    assert main(["retime", str(out), "--steps", "3"]) == 0  # the cell left, and only it
    assert "re-timing 1 cell(s)" in capsys.readouterr().out and len(retimed(_study(out))) == 2
    with pytest.raises(SystemExit):
        main(["retime", str(out), "--timeout-minutes", "0"])
    assert "--timeout-minutes: must be > 0" in capsys.readouterr().err
