"""A ladder end to end on CPU through the CLI: the smoke ladder on a tiny WikiText folder, its report checked
against the saved weights, resume after SIGTERM, the time limit, and one-line errors."""
import json
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

SMOKE = "search_spaces/smoke_ladder.yaml"


def _cli(root, *args):
    return subprocess.run([sys.executable, "-m", "archsearch", *args], capture_output=True, text=True, cwd=root)


def _study(out):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="smoke_ladder", storage=f"sqlite:///{out / 'ladder.db'}")


def _complete_once(out) -> list[str]:
    jobs = [t.user_attrs["job"] for t in _study(out).trials if t.state == TrialState.COMPLETE]
    assert len(jobs) == len(set(jobs)), "a finished run was repeated"
    assert not [t for t in _study(out).trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return jobs


def _stop_mid_ladder(root, out) -> int:
    """Start the smoke ladder and stop it with SIGTERM once 3 runs are finished and another is running; the number
    of runs then finished."""
    proc = subprocess.Popen([sys.executable, "-m", "archsearch", "run", SMOKE, "--data", "tests/fixtures/wikitext",
                             "--out", str(out)], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.3)
        assert proc.poll() is None, proc.communicate()[1][-2000:]  # ended before it could be stopped
        if not (out / "ladder.yaml").is_file():  # written once the study exists: reading it earlier races its creation
            continue
        try:
            states = [t.state for t in _study(out).trials]
        except Exception:  # not created yet, or busy
            continue
        if states.count(TrialState.COMPLETE) >= 3 and TrialState.RUNNING in states:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err[-2000:]
    interrupted = [t for t in _study(out).trials if t.state == TrialState.FAIL]
    assert len(interrupted) <= 1
    return sum(t.state == TrialState.COMPLETE for t in _study(out).trials)


def test_smoke_ladder_stopped_by_sigterm_then_resumed_repeats_nothing_and_reports(root, tmp_path, monkeypatch,
                                                                                 capsys):
    """One ladder for both: stopped mid-way (as `timeout` or a scheduler stops it), then the same command finishes it
    without repeating a run, and the finished ladder is checked end to end (a second whole ladder cost 20 s)."""
    out = tmp_path / "l"
    before = _stop_mid_ladder(root, out)
    assert 3 <= before < 16
    r = _cli(root, "run", SMOKE, "--data", "tests/fixtures/wikitext", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{16 - before} run(s) this time, 16 finished" in r.stdout
    jobs = _complete_once(out)
    assert sum(j.endswith("seed=0") for j in jobs) == 8 and len(jobs) == 16  # 2 rates × 2 rungs × 2 families + seeds
    report = (out / "report.md").read_text()
    assert "16 of 16 finished runs were evaluated again" in report and "largest relative difference from the " \
        "recorded number 0 " in report
    assert "| small | pam |" in report and "pam / transformer" in report
    for png in ("ladder_params.png", "ladder_flops.png", "ladder_gpu_seconds.png"):
        assert (out / png).stat().st_size > 1000
    # seed runs report the test split and differ from the rate-selecting run's seed
    seeds = [t for t in _study(out).trials if t.user_attrs["phase"] == "seeds" and t.state == TrialState.COMPLETE]
    assert len(seeds) == 8 and all("test_ppl" in t.user_attrs and t.user_attrs["seed"] in (1, 2) for t in seeds)
    # a run's spec file is the whole of it (data, seed, tokens): `archsearch train` retrains it in a fresh process to
    # the recorded number (on CPU, at one thread count; another seed or data order moves these runs by percents)
    run = max(seeds, key=lambda t: (t.user_attrs["job"].startswith("pam/large"), t.number))
    again = _cli(root, "train", str(out / run.user_attrs["spec_file"]), "--out", str(tmp_path / "again"), "--quiet")
    assert again.returncode == 0, again.stderr[-2000:]
    metrics = json.loads((tmp_path / "again/metrics.json").read_text())
    assert metrics["seed"] == run.user_attrs["seed"] > 0
    assert metrics["val_ppl"] == pytest.approx(run.user_attrs["val_ppl"], rel=1e-3), run.user_attrs["job"]
    from archsearch.cli import main

    monkeypatch.chdir(root)  # once more, in this process: the two runs above were the command's own processes
    assert main(["run", SMOKE, "--data", "tests/fixtures/wikitext", "--out", str(out)]) == 0
    assert "0 run(s) this time, 16 finished" in capsys.readouterr().out
    # the report regenerates from the study alone (weights gone: the stored check is kept)
    for w in (out / "weights").rglob("*.pt"):
        w.unlink()
    (out / "report.md").unlink()
    rep = _cli(root, "report", str(out))
    assert rep.returncode == 0, rep.stderr
    assert (out / "report.md").read_text() == report


def test_a_run_past_the_time_limit_pauses_into_its_checkpoint_and_goes_on_from_there(root, tmp_path, monkeypatch,
                                                                                   capsys):
    """A run may take longer than the whole time limit (the 100M comparison's runs take longer than one 10-minute
    device call): it pauses into its checkpoint at the limit, and the same command goes on from there."""
    import json
    from types import SimpleNamespace

    import archsearch.train
    from archsearch.cli import main

    monkeypatch.chdir(root)  # the CLI in this process: the ladder's own process is the test above's
    # the trainer's clock reads past any deadline: each part of the run is one step (a real limit ends a part at
    # whatever step it reaches, which on a fast machine might be the last)
    monkeypatch.setattr(archsearch.train, "time", SimpleNamespace(monotonic=lambda: 1e12,
                                                                  perf_counter=time.perf_counter))
    out = tmp_path / "t"
    progress = []
    for _ in range(2):
        assert main(["run", SMOKE, "--data", "tests/fixtures/wikitext", "--out", str(out),
                     "--timeout-minutes", "5"]) == 0
        text = capsys.readouterr().out
        assert "paused at step" in text and "the same command resumes it" in text, text
        sides = list((out / "checkpoints").rglob("*.json"))
        assert len(sides) == 1 and sides[0].with_suffix(".pt").is_file()  # one run, in parts
        progress.append(json.loads(sides[0].read_text())["tokens"])
    assert 0 < progress[0] < progress[1]  # the second part went on from the first's checkpoint
    trials = _study(out).trials
    assert len(trials) == len({t.user_attrs["job"] for t in trials}) + 1  # the paused run twice, nothing else again
    assert main(["run", SMOKE, "--data", "tests/fixtures/wikitext", "--out", str(out),
                 "--timeout-minutes", "0.0001"]) == 0  # the limit has passed before any run could start
    assert "time limit:" in capsys.readouterr().out and json.loads(sides[0].read_text())["tokens"] == progress[1]
    note = json.loads(sides[0].read_text())
    sides[0].write_text(json.dumps({**note, "spec": "another"}))  # as if its spec had changed since it paused
    assert main(["run", SMOKE, "--data", "tests/fixtures/wikitext", "--out", str(out), "--timeout-minutes", "5"]) == 0
    capsys.readouterr()
    assert json.loads(sides[0].read_text())["tokens"] == progress[0]  # started afresh: one step, as the first part
    assert not [t for t in _study(out).trials if t.state == TrialState.COMPLETE]
    assert all(t.user_attrs.get("failed_reason") == "interrupted" for t in _study(out).trials
               if t.state == TrialState.FAIL)


def test_fill_starts_a_run_that_cannot_finish_and_it_pauses_at_the_limit(root, tmp_path, monkeypatch, capsys):
    """--fill spends the end of a time limit on the next run, to be finished by the next call, rather than idling."""
    import itertools
    import json
    from types import SimpleNamespace

    import archsearch.ladder.runner
    from archsearch.cli import main

    monkeypatch.chdir(root)
    # the ladder's clock moves 40 s each time it is read, so the first claim has 80 s of the 2 minutes left; every
    # run is expected to take 100 s: more than is left, less than the whole limit (which would start it anyway);
    # the trainer's own clock is real, far past the ladder's deadline, so a run that starts pauses at once
    ticks = itertools.count(0, 40.0)
    monkeypatch.setattr(archsearch.ladder.runner, "time", SimpleNamespace(
        monotonic=lambda: float(next(ticks)), perf_counter=time.perf_counter, sleep=time.sleep))
    monkeypatch.setattr(archsearch.ladder.runner.LadderRun, "estimate", lambda self, job: 100.0)
    out = tmp_path / "t"
    args = ["run", SMOKE, "--data", "tests/fixtures/wikitext", "--out", str(out), "--timeout-minutes", "2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "would need about 100 s, 80 s left; stopping here" in text
    assert {t.state for t in _study(out).trials} == {TrialState.WAITING}  # enqueued by the plan, none started
    ticks = itertools.count(0, 40.0)
    assert main([*args, "--fill"]) == 0
    text = capsys.readouterr().out
    assert "would need about 100 s, 80 s left; it starts now and pauses at the limit" in text
    assert "paused at step" in text
    sides = list((out / "checkpoints").rglob("*.json"))
    assert len(sides) == 1 and json.loads(sides[0].read_text())["tokens"] > 0  # the next call goes on from here
    assert not [t for t in _study(out).trials if t.state == TrialState.COMPLETE]


def test_workers_are_told_to_fill(root, tmp_path, monkeypatch):
    import archsearch.ladder.launch

    monkeypatch.chdir(root)
    started = []
    monkeypatch.setattr(archsearch.ladder.launch, "spawn", lambda cmd, n, *rest: started.append(cmd))
    archsearch.ladder.launch.run_ladder(SMOKE, out=tmp_path / "w", data="tests/fixtures/wikitext", timeout_minutes=3,
                                        workers=2, fill=True, echo=lambda *a: None)
    (cmd,) = started
    assert "--fill" in cmd and "--timeout-minutes" in cmd and cmd.index("--fill") > cmd.index("--timeout-minutes")


def test_one_line_errors(root, tmp_path, monkeypatch, capsys):
    from archsearch.cli import main

    monkeypatch.chdir(root)

    def run(*args):  # in this process: the CLI's own error handling, without a process start per case
        code = main(["run", *args])
        return code, capsys.readouterr().err

    code, err = run(SMOKE, "--trials", "3", "--out", str(tmp_path / "e"))
    assert code == 2 and "--trials" in err and "Traceback" not in err
    bad = tmp_path / "bad.yaml"
    bad.write_text((root / SMOKE).read_text().replace("small: {params: 9500}", "small: {params: 15000}"))
    code, err = run(str(bad), "--data", "tests/fixtures/wikitext", "--out", str(tmp_path / "b"))
    assert code == 2 and "families.transformer.rungs.small" in err and "non-embedding parameters" in err
    code, err = run(SMOKE, "--budget", "cpu", "--out", str(tmp_path / "e"))
    assert code == 2 and "--budget: does not apply to a ladder" in err
    code, err = run(SMOKE, "--fill", "--out", str(tmp_path / "e"))
    assert code == 2 and err.strip() == "--fill: needs --timeout-minutes: it fills the end of a time limit"
    code, err = run("search_spaces/pam_hybrids.yaml", "--fill", "--out", str(tmp_path / "e"))
    assert code == 2 and "--fill: applies to a ladder only" in err
    # a study from before the tokens hash, resumed on other tokens: its train token count tells
    code, _ = run(SMOKE, "--data", "tests/fixtures/wikitext", "--out", str(tmp_path / "o"), "--timeout-minutes", "0.0001")
    study = _study(tmp_path / "o")
    study.set_user_attr("train_split_tokens", study.user_attrs["train_split_tokens"] + 1)
    study._storage.set_study_user_attr(study._study_id, "tokens_sha256", None)
    code, err = run(SMOKE, "--data", "tests/fixtures/wikitext", "--out", str(tmp_path / "o"))
    assert code == 2 and err.startswith("--data: ") and "was trained on" in err and "Traceback" not in err


def test_the_finalists_of_a_rung_try_beyond_their_edge_before_its_seeds(root, tmp_path, monkeypatch, capsys):
    """One rung of the smoke ladder with `finalists: 1`, in this process: each side's best (the PAM family, the
    transformer) chose the top of the two rates by far (validation about 34 and 42 against 124 and 143), so each tries
    the next rate up, and its seeds follow its final choice."""
    from archsearch.cli import main

    monkeypatch.chdir(root)
    text = (root / SMOKE).read_text()
    for old, new in (("    large: {params: 21000, rates: around}\n", ""),
                     ("small: {params: 9500}", "small: {params: 9500, finalists: 1}"), ("seeds: 2", "seeds: 1"),
                     ("      large: {model: {d_model: 48}}\n", ""),
                     ("      large: {model: {d_model: 48}, stack: {sublayers: [{config: {head_dim: 12}}]}}\n", "")):
        assert old in text, old
        text = text.replace(old, new)
    space = tmp_path / "finalists.yaml"
    space.write_text(text)
    assert main(["run", str(space), "--data", "tests/fixtures/wikitext", "--out", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    trials = _study(tmp_path / "o").trials
    grid = {(t.user_attrs["family"], t.user_attrs["lr"]) for t in trials if t.user_attrs["phase"] == "grid"}
    assert grid == {(f, lr) for f in ("transformer", "pam") for lr in (3e-3, 1e-2, 0.03333)}
    added = max(t.number for t in trials if t.user_attrs["lr"] == 0.03333 and t.user_attrs["phase"] == "grid")
    seeds = [t for t in trials if t.user_attrs["phase"] == "seeds"]
    assert len(seeds) == 2 and all(t.number > added for t in seeds)  # after both added rates, at the final choices
    report = (tmp_path / "o" / "report.md").read_text()
    assert "the best PAM-containing and the best PAM-free family, each whose best rate is at an edge" in report
