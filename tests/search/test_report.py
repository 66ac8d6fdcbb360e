"""The report: report.md with the verdict and the per-family table, and the plots, from a real smoke study."""
import subprocess
import sys

from archsearch import cli
from archsearch.search.report import front


def test_pareto_front_by_hand():
    pts = [(1, 5), (2, 3), (3, 4), (4, 1), (2, 6)]
    assert sorted(front(pts)) == [0, 1, 3]


def test_report_from_a_smoke_study(smoke_study):
    out, _, _ = smoke_study
    text = (out / "report.md").read_text()
    assert "## Verdict" in text and "PAM-containing architecture" in text and "(trial 1, " in text  # by timings
    assert "## Checked from the saved weights" in text and "2 of 2 complete trials" in text
    assert "| softmax_attention | 0 | softmax_attention" in text and "| pam | 1 | pam" in text
    for png in ("pareto_latency.png", "pareto_flops.png", "pareto_state.png", "history.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (out / "report.md").unlink()  # written again from the study alone, word for word
    r = subprocess.run([sys.executable, "-m", "archsearch", "report", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and (out / "report.md").read_text() == text


def test_recheck_evaluates_every_saved_weights_file_again_in_this_process(smoke_study, tmp_path, capsys):
    import shutil

    import optuna

    out = tmp_path / "copy"
    shutil.copytree(smoke_study[0], out)
    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{out / 'study.db'}")
    check = study.user_attrs["saved_check"]
    first, *others = check  # the first unchecked, the others as if their checks had lied
    assert others
    study.set_user_attr("saved_check", {k: {**check[k], "again": -1.0} for k in others})
    assert cli.main(["report", str(out)]) == 0  # the unchecked one is evaluated; an earlier check is kept
    assert study.user_attrs["saved_check"] == {first: check[first], **{k: {**check[k], "again": -1.0} for k in others}}
    assert cli.main(["report", str(out), "--recheck"]) == 0
    assert study.user_attrs["saved_check"] == check  # every file evaluated again: the same numbers as first recorded
    capsys.readouterr()


def test_report_without_a_study_is_one_line(tmp_path, capsys):
    # the CLI in this process: its one-line error without a process start (the test above runs the command)
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.strip().endswith(
        "no study.db or study.journal here: pass the output folder of `archsearch run` (or --storage)")


def test_a_recall_study_gives_its_floors_and_says_when_nothing_cleared_them():
    from types import SimpleNamespace as NS

    from archsearch.search.families import Quality
    from archsearch.search.verdicts import floor_note

    study = NS(user_attrs={"quality": "accuracy", "floors": {"test": {"uniform": 0.0625, "positional": 0.085}}})
    q = Quality(study)
    guessing = [NS(number=0, user_attrs={"val_accuracy": 0.13}), NS(number=1, user_attrs={"val_accuracy": 0.09})]
    note = floor_note(study, guessing, q, {1: {"mean": 0.1, "n": 3}})  # test means count where there are seeds
    assert "0.0625 (guessing among the context's values) and 0.0850" in note and "at 0.0850 + 0.1 or above" in note
    assert "best 0.1300" in note and "says nothing about memory capacity" in note
    learned = guessing + [NS(number=2, user_attrs={"val_accuracy": 0.935})]
    assert "none learned" not in floor_note(study, learned, q, {})
    assert floor_note(NS(user_attrs={"quality": "ppl"}), guessing, Quality(NS(user_attrs={})), {}) == ""


def _trial(n, mixers, ppl, **attrs):
    from types import SimpleNamespace as NS

    return NS(number=n, user_attrs={"mixers": mixers, "val_ppl": ppl, "latency_train_ms": 1.0, **attrs})


def test_the_verdict_compares_fresh_test_seeds_with_a_welch_interval():
    from types import SimpleNamespace as NS

    from archsearch.search.families import Quality
    from archsearch.search.verdicts import verdict

    q = Quality(NS(user_attrs={}))
    done = [_trial(0, ["pam"], 50.0), _trial(1, ["softmax_attention"], 52.0)]
    stats = {0: {"values": [50.0, 51.0, 49.0, 50.5, 49.5]}, 1: {"values": [55.0, 56.0, 54.0, 55.5, 54.5]}}
    for s in stats.values():
        s.update(n=5, mean=sum(s["values"]) / 5, std=(sum((v - sum(s["values"]) / 5) ** 2 for v in s["values"]) / 4) ** .5)
    text = verdict(done, q, "latency_train_ms", stats)
    assert text.startswith("At equal or lower latency_train_ms: the best PAM-containing architecture by validation "
                           "(trial 0, pam")
    # difference -5 with standard error sqrt(2 * 0.625 / 5) = 0.5 on 8 degrees of freedom: t = 2.306
    assert "PAM pays for itself. Compared: test-split ppl, the mean of fresh seeds" in text
    assert "difference -5, 95% interval [-6.153, -3.847] (Welch, 8.0 degrees of freedom)" in text
    stats[1]["values"] = [50.0, 52.0, 48.0, 51.0, 49.5]
    stats[1]["mean"] = 50.1
    assert "No clear answer (PAM ahead; the interval includes 0)" in verdict(done, q, "latency_train_ms", stats)
    assert "Provisional (PAM ahead)" in verdict(done, q, "latency_train_ms", {})  # no fresh seeds yet


def test_the_verdict_names_failed_seeds_the_side_without_seeds_and_a_pair_of_equal_cost():
    from types import SimpleNamespace as NS

    from archsearch.search.families import Quality
    from archsearch.search.verdicts import verdict

    q = Quality(NS(user_attrs={}))
    done = [_trial(0, ["pam"], 50.0), _trial(1, ["softmax_attention"], 52.0)]
    done[0].user_attrs["latency_train_ms"], done[1].user_attrs["latency_train_ms"] = 6.2384, 6.2286
    stats = {0: {"values": [50.0, 51.0], "n": 2, "mean": 50.5, "std": 0.7}}
    text = verdict(done, q, "latency_train_ms", stats, lost={1: [(2, "diverged: loss nan")]})
    assert "The two costs differ by 0.16%, less than one timing's spread" in text  # 0.01 ms decides nothing
    assert "fewer than 2 fresh-seed runs on the test split (trial 1 has 0)" in text
    assert text.endswith("Left out, having diverged: trial 1's seed 2 (diverged: loss nan).")
    done[1].user_attrs["latency_train_ms"] = 5.0  # cheaper by 20%: a cost the timing resolves
    assert "differ by" not in verdict(done, q, "latency_train_ms", stats)


def test_a_pair_that_did_not_learn_recall_gets_no_capacity_claim():
    from types import SimpleNamespace as NS

    from archsearch.search.families import Quality
    from archsearch.search.verdicts import verdict

    q = Quality(NS(user_attrs={"quality": "accuracy"}))
    done = [_trial(0, ["pam"], 0, val_accuracy=0.09), _trial(1, ["linear_attention"], 0, val_accuracy=0.8)]
    text = verdict(done, q, "latency_train_ms", {}, floors={"validation": 0.091, "test": 0.085})
    assert text.startswith("No capacity claim: trial 0 (pam, validation accuracy 0.0900 (the selecting run only); floor "
                           "0.0910) did not learn the task (below the higher memory-free floor + 0.1).")
    # judged by its fresh seeds on the test set, against that set's floor: 0.188 clears 0.085 + 0.1, not 0.091 + 0.1
    stats = {0: {"mean": 0.188, "std": 0.01, "n": 2, "values": [0.178, 0.198]}}
    assert "No capacity claim" not in verdict(done, q, "latency_train_ms", stats,
                                              floors={"validation": 0.091, "test": 0.085})


def test_recheck_on_a_ladders_folder_is_one_line(root, capsys):
    assert cli.main(["report", str(root / "docs/results/scaling_wiki"), "--recheck"]) == 2  # nothing written
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("--recheck: for a search's folder")
