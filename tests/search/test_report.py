"""The report: report.md with the verdict and the per-family table, and the plots, from a real smoke study."""
import subprocess
import sys

from archsearch.search.report import front
from archsearch.search.study import run_search


def test_pareto_front_by_hand():
    pts = [(1, 5), (2, 3), (3, 4), (4, 1), (2, 6)]
    assert sorted(front(pts)) == [0, 1, 3]


def test_report_from_a_smoke_study(root, tmp_path):
    out = tmp_path / "o"
    run_search(str(root / "search_spaces/smoke.yaml"), out=out, trials=2, retrain_after=False, echo=lambda *a, **k: None)
    text = (out / "report.md").read_text()
    assert "## Verdict" in text and "PAM-containing architecture (trial 1," in text  # wording depends on timings
    assert "| softmax_attention | 0 | softmax_attention" in text and "| pam | 1 | pam" in text
    for png in ("pareto_latency.png", "pareto_flops.png", "pareto_state.png", "history.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (out / "report.md").unlink()
    r = subprocess.run([sys.executable, "-m", "archsearch", "report", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and (out / "report.md").read_text() == text


def test_report_without_a_study_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "archsearch", "report", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().endswith(
        "no study.db or study.journal here: pass the output folder of `archsearch run` (or --storage)")


def test_a_recall_study_says_when_nothing_beat_chance():
    from types import SimpleNamespace as NS

    from archsearch.search.families import Quality
    from archsearch.search.report import chance_note

    study = NS(user_attrs={"quality": "accuracy", "chance_accuracy": 1 / 256})
    q = Quality(study)
    guessing = [NS(number=0, user_attrs={"val_accuracy": 0.0043}), NS(number=1, user_attrs={"val_accuracy": 0.0051})]
    note = chance_note(study, guessing, q, {1: {"mean": 0.0042}})  # seed means count where there are seeds
    assert "Chance accuracy is 0.0039" in note and "best 0.0043" in note and "says nothing about memory" in note
    learned = guessing + [NS(number=2, user_attrs={"val_accuracy": 0.935})]
    assert chance_note(study, learned, q, {}) == " Chance accuracy is 0.0039 (guessing among the values)."
    assert chance_note(NS(user_attrs={"quality": "ppl"}), guessing, Quality(NS(user_attrs={})), {}) == ""
