"""The benchmarks' harness (benchmarks/fresh.py: numbers over fresh processes, ratios within a process) and the two
issue-27 benchmarks end to end on CPU at a tiny shape (their GPU rows run on the device machine)."""
import json
import shutil
import signal
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import ab  # noqa: E402
import decode  # noqa: E402
import e2e  # noqa: E402
import fresh  # noqa: E402
import mixers  # noqa: E402
import rungs  # noqa: E402
import train_loop  # noqa: E402
import workers  # noqa: E402

CHILD = """
import argparse, os, sys
sys.path.insert(0, {bench!r})
import fresh

def measure(args):
    print("working", flush=True)
    sys.stderr.write("a compiler's log line\\n")
    if args.fail:
        raise SystemExit("error: the thing broke")
    return {{"ms@a": float(os.getpid() % 7 + 1), "ms@b": 2.0}}

p = argparse.ArgumentParser()
p.add_argument("--fail", action="store_true")
fresh.add_arguments(p)
args = p.parse_args()
values = fresh.over_processes(args, measure)
print("values", sorted((k, len(v)) for k, v in values.items()), fresh.cell(fresh.ratio(values["ms@b"], values["ms@b"])))
"""


def test_cells_and_ratios():
    assert fresh.cell([2.0]) == "2.000"
    assert fresh.cell([3.0, 1.0, 2.0], ".1f") == "2.0 [1.0–3.0]"
    assert fresh.ratio([2.0, 6.0], [1.0, 3.0]) == [2.0, 2.0]  # per process, not median over median
    assert "3 fresh processes" in fresh.spread_note({"x": [1.0, 2.0, 3.0]})


def test_each_process_is_fresh_its_output_relayed_and_its_logs_kept_apart(tmp_path):
    script = tmp_path / "bench.py"
    script.write_text(textwrap.dedent(CHILD.format(bench=str(ROOT / "benchmarks"))))
    log = tmp_path / "log.txt"
    r = subprocess.run([sys.executable, str(script), "--processes", "3", "--log", str(log)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert [ln for ln in r.stdout.splitlines() if ln.endswith("working")] == [
        "[1/3] working", "[2/3] working", "[3/3] working"]
    assert "values [('ms@a', 3), ('ms@b', 3)] 1.000 [1.000–1.000]" in r.stdout
    assert "compiler's log" not in r.stdout + r.stderr and log.read_text().count("a compiler's log line") == 3
    bad = subprocess.run([sys.executable, str(script), "--fail", "--processes", "2", "--log", str(log)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        f"process 1/2 failed (exit 1): error: the thing broke (its whole output: {log})"]


def test_decode_and_training_benchmarks_run_on_cpu(capsys, tmp_path):
    specs = [str(ROOT / "examples/paper_pam_5m.yaml"), str(ROOT / "examples/paper_transformer_5m.yaml")]
    args = decode.parse_args(["--specs", *specs, "--contexts", "16", "--repeats", "1", "--processes", "1"])
    decode.show(args, fresh.over_processes(args, decode.measure))
    out = capsys.readouterr().out
    assert "paper_pam_5m eager" in out and "(against paper_transformer_5m eager)" in out
    with pytest.raises(SystemExit):  # a length that does not divide the tokens a step is refused
        e2e.parse_args(["--sweep", "48", "--tokens", "64"])
    args = e2e.parse_args(["--specs", *specs, "--sweep", "16", "32", "--tokens", "64", "--repeats", "1",
                           "--processes", "1", "--plot", str(tmp_path / "sweep.png"), "--only", "eager"])
    e2e.show(args, fresh.over_processes(args, e2e.measure))
    out = capsys.readouterr().out
    assert "crossover" in out and (tmp_path / "sweep.png").is_file()
    # length by length, both models at each: a run its time limit cuts has printed whole pairs
    progress = [ln.rsplit(":", 1)[0] for ln in out.splitlines() if ln.endswith("ms per step")]
    assert progress == ["paper_pam_5m, T 16", "paper_transformer_5m, T 16", "paper_pam_5m, T 32",
                        "paper_transformer_5m, T 32"]


def test_a_saved_sweep_resumes_with_only_the_lengths_it_lacks(capsys, tmp_path):
    specs = [str(ROOT / "examples/paper_pam_5m.yaml"), str(ROOT / "examples/paper_transformer_5m.yaml")]
    save = tmp_path / "sweep.json"
    common = ["--specs", *specs, "--tokens", "64", "--repeats", "1", "--processes", "1", "--only", "eager",
              "--plot", str(tmp_path / "sweep.png"), "--save", str(save)]
    with pytest.raises(SystemExit):  # a saved length is one process's numbers
        e2e.parse_args([*common, "--sweep", "16", "--processes", "3"])
    assert "--save: needs --sweep and --processes 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # refused before anything is measured, not after the first length
        e2e.parse_args([*common, "--sweep", "16", "--save", str(tmp_path / "no" / "sweep.json")])
    assert f"--save: no folder {tmp_path / 'no'}" in capsys.readouterr().err
    first = e2e.parse_args([*common, "--sweep", "16"])
    e2e.measure(first)
    assert sorted(k for k in json.loads(save.read_text())["values"] if "@16" in k) == [
        "paper_pam_5m@16", "paper_transformer_5m@16"]
    capsys.readouterr()
    args = e2e.parse_args([*common, "--sweep", "16", "32"])
    e2e.show(args, fresh.over_processes(args, e2e.measure))
    out = capsys.readouterr().out
    assert f"T 16: in {save}, not measured again" in out
    assert [ln.rsplit(":", 1)[0] for ln in out.splitlines() if ln.endswith("ms per step")] == [
        "paper_pam_5m, T 32", "paper_transformer_5m, T 32"]
    assert "crossover" in out
    assert {"paper_pam_5m@16", "paper_transformer_5m@16", "paper_pam_5m@32", "paper_transformer_5m@32"} <= set(
        json.loads(save.read_text())["values"])  # the new length saved beside the resumed one
    with pytest.raises(SystemExit, match="measured otherwise .*tokens 64 there, 128 here"):
        e2e.measure(e2e.parse_args([*common, "--sweep", "16", "--tokens", "128"]))
    save.write_text("{not json")
    with pytest.raises(SystemExit, match="not a sweep this benchmark saved"):
        e2e.measure(e2e.parse_args([*common, "--sweep", "16"]))


def test_the_rung_benchmark_times_a_ladders_families(capsys):
    ladder = str(ROOT / "search_spaces/smoke_ladder.yaml")
    with pytest.raises(SystemExit):
        rungs.parse_args(["--ladder", ladder, "--families", "gpt7"])
    args = rungs.parse_args(["--ladder", ladder, "--families", "pam", "transformer", "--vocab", "257", "--repeats", "1",
                             "--processes", "1"])
    rungs.show(args, fresh.over_processes(args, rungs.measure))
    out = capsys.readouterr().out
    table = [ln.split()[:3] for ln in out[out.index("family/rung"):].splitlines()[1:]]
    assert [(cell, form) for cell, _, form in table] == [
        ("pam/small", "eager"), ("transformer/small", "eager"), ("pam/large", "eager"), ("transformer/large", "eager")]


def test_the_train_loop_benchmark_times_both_loops_and_the_step_alone(capsys):
    ladder = str(ROOT / "search_spaces/smoke_ladder.yaml")
    with pytest.raises(SystemExit):
        train_loop.parse_args(["--ladder", ladder, "--rungs", "huge"])
    args = train_loop.parse_args(["--ladder", ladder, "--rungs", "small", "--families", "transformer", "--vocab", "257",
                                  "--steps", "4", "--processes", "1"])
    train_loop.show(args, fresh.over_processes(args, train_loop.measure))
    out = capsys.readouterr().out
    table = [ln.split() for ln in out[out.index("family/rung"):].splitlines()[1:]]
    assert [row[:2] for row in table] == [["transformer/small", "waits"], ["transformer/small", "overlaps"],
                                          ["transformer/small", "step"]]
    assert table[0][-1] == "1.000×" and all(float(row[-3]) > 0 for row in table)  # ms a step


def test_the_workers_benchmark_counts_complete_trials_in_the_window_and_repeats():
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from optuna.trial import TrialState

    t0 = datetime(2026, 12, 4, 12, 0)

    def trial(minute, state=TrialState.COMPLETE, params=None, worker="a"):
        return SimpleNamespace(state=state, datetime_complete=t0 + timedelta(minutes=minute),
                               params=params or {"x": minute}, user_attrs={"worker": worker})
    trials = [trial(1), trial(2, worker="b"), trial(3, TrialState.FAIL), trial(9),  # 9: after the 5-minute window
              trial(4, params={"x": 1})]  # the architecture of the first, run again
    assert workers.counted(trials, t0, 5.0) == {"complete": 3, "per_hour": 36.0, "workers": 2, "repeated": 1}


def test_the_decode_tile_sweep_checks_every_tiles_output(capsys):
    """On CPU (Triton's interpreter) the sweep times nothing, but runs every tile of the kernels asked for once and
    checks its outputs against the current tiles' (it raises where one differs): the state kernel's y and the state
    it updates, from a nonzero state, over 1 to 2 blocks of rows a head."""
    import decode_tiles

    decode_tiles.main(["--kernels", "down", "state", "--top", "1"])
    out = capsys.readouterr().out
    assert "down: 27 tiles, every output equal" in out and "state: 12 tiles, every output equal" in out
    from blocks.kernels import sublayer
    current = (f"RESIDUAL_ROWS {sublayer.RESIDUAL_ROWS}, RESIDUAL_TILE {sublayer.RESIDUAL_TILE}, "
               f"RESIDUAL_WARPS {sublayer.RESIDUAL_WARPS}  ← current")
    assert current in out and "could not run" not in out


def test_the_decode_tile_sweep_catches_a_tile_that_computes_wrong(monkeypatch):
    """A state tile that updates the wrong rows (here: every program its head's first block) is an error, not a
    timing."""
    import decode_tiles
    from blocks.kernels import pam_step

    real = pam_step.state_op

    def wrong(*args):
        y = real(*args)
        if pam_step.STATE_ROWS == 8:  # two blocks a head at width 128: the second's rows read the first's
            y = y.clone()
            y[:, 8:16] = y[:, 0:8]
        return y

    monkeypatch.setattr(pam_step, "state_op", wrong)
    with pytest.raises(AssertionError, match="state with .*'STATE_ROWS': 8.*differs from the current tiles'"):
        decode_tiles.main(["--kernels", "state", "--top", "1"])


def test_the_time_a_kernel_is_on_the_gpu_counts_overlaps_once():
    """decode.py's kernel table: kernels launched dependently overlap, so their busy time is the union of their
    intervals, not the sum."""
    from decode import covered

    assert covered([]) == 0.0
    assert covered([(0, 2), (5, 6)]) == 3.0  # a gap
    assert covered([(3, 8), (0, 4), (4, 5)]) == 8.0  # overlapping, out of order
    assert covered([(0, 10), (2, 3)]) == 10.0  # one inside another


def test_the_mixer_benchmark_checks_and_times_the_cores_on_cpu(capsys, monkeypatch):
    """mixers.py end to end at a tiny shape: the checks against the recurrence, the main table and the sweep's ratio
    (the kernel forms, GPU-busy and graphed columns need a CUDA device; the kernels in Triton's interpreter would take
    half a minute here, and tests/test_kernels.py checks them)."""
    monkeypatch.setattr(mixers.fastpath, "kernels_available", lambda device: False)
    args = mixers.parse_args(["--batch", "1", "--seq", "64", "--sweep", "64", "--tokens", "64", "--repeats", "1",
                              "--processes", "1", "--kernels", "--tuned"])  # --tuned: a kernel form, none here
    mixers.show(args, fresh.over_processes(args, mixers.measure))
    out = capsys.readouterr().out
    assert "PAM chunked (torch)" in out and "SDPA causal 12×64" in out
    assert "T sweep: " in out and "--kernels: no kernel profile (it needs a CUDA device)" in out


def test_the_mixer_sweep_prints_graphed_times_and_their_ratio_where_a_gpu_measured_them(capsys):
    """mixers.show on the numbers two processes would give on a GPU (graphed columns need one): the sweep's graphed
    table and, per length, PAM's graphed time over SDPA's, taken within each process, then the median."""
    forms = ("PAM triton", mixers.WHOLE, "SDPA causal 12×64")
    values = {f"main/{n}@{w}": [1.0, 1.0] for n in forms for w in ("ms", "busy", "graphed")}
    values["main/PAM dual fp32 (paper)@ms"] = [8.0, 8.0]
    for t, sdpa in ((2048, [1.0, 2.0]), (32768, [10.0, 25.0])):
        for n in forms:
            for w in ("ms", "busy"):
                values[f"sweep/{t}/{n}@{w}"] = [1.0, 1.0]
        values |= {f"sweep/{t}/PAM triton@graphed": [0.5, 0.5], f"sweep/{t}/{mixers.WHOLE}@graphed": [0.6, 0.6],
                   f"sweep/{t}/SDPA causal 12×64@graphed": sdpa}
    args = mixers.parse_args(["--sweep", "2048", "32768"])
    mixers.show(args, values)
    out = capsys.readouterr().out
    assert "T sweep, B·T = 32768 (graphed ms, medians)" in out and "then graphed / SDPA graphed" in out
    ratios = out.split("then graphed / SDPA graphed")[1].splitlines()[1:3]  # the last table: one row a length
    assert ratios[0].split()[0] == "2048" and ratios[0].endswith(" 0.375 [0.250–0.500]×")  # 0.5 / 1 and 0.5 / 2
    assert ratios[1].split()[0] == "32768" and ratios[1].endswith(" 0.035 [0.020–0.050]×")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("form", ["PAM triton", "SDPA causal 12×64"])
def test_the_graphed_column_replays_forward_loss_and_gradients_as_one_graph(form):
    """mixers.captured_step: each replay writes the inputs' gradients eager autograd gives (to bf16 rounding: cuDNN's
    backward may sum in another order), and leaves .grad alone."""
    from archsearch.testing import rel_error
    from blocks import fastpath

    torch.manual_seed(0)
    if form == "PAM triton":
        pair = fastpath.kernel("memory", torch.device("cuda")).complex_pair_memory
        ins = [torch.randn(2, 3, 128, 32, device="cuda", dtype=torch.bfloat16).requires_grad_() for _ in range(3)]
        ins.append((-torch.rand(2, 3, 128, device="cuda") * 0.1).requires_grad_())
        fn = lambda q, k, v, lg: pair(q, k, v, lg, 1.0)  # noqa: E731
    else:
        ins = [torch.randn(2, 4, 128, 64, device="cuda", dtype=torch.bfloat16).requires_grad_() for _ in range(3)]
        fn = lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    want = torch.autograd.grad(fn(*ins).float().sum(), ins)
    graph, grads = mixers.captured_step(fn, ins)
    for g in grads:
        g.zero_()
    graph.replay()
    torch.cuda.synchronize()
    for a, b in zip(grads, want):
        assert rel_error(a.float(), b.float()) < 1e-2
    assert all(x.grad is None for x in ins)


def test_the_tuned_form_switches_kernel_tuning_on_only_while_it_runs(monkeypatch):
    from blocks.kernels.tuning import tuning_on

    monkeypatch.delenv("ARCHSEARCH_KERNEL_TUNING", raising=False)
    with mixers.form_context(mixers.TUNED):
        assert tuning_on()
    assert "ARCHSEARCH_KERNEL_TUNING" not in os.environ
    monkeypatch.setenv("ARCHSEARCH_KERNEL_TUNING", "0")
    with mixers.form_context(mixers.TUNED):
        assert tuning_on()
    with mixers.form_context("PAM triton"):
        assert not tuning_on()
    assert os.environ["ARCHSEARCH_KERNEL_TUNING"] == "0"


def test_the_tuned_picks_name_each_kernels_tiles(monkeypatch):
    import triton

    from blocks.kernels import memory_bwd

    kernels = mixers.tuned_kernels()
    assert [k.fn.__name__ for k in kernels] == ["fwd_states", "bwd_states", "fwd_output", "bwd_dv", "bwd_dqk"]
    for kernel in kernels:
        monkeypatch.delattr(kernel, "best_config", raising=False)
    assert mixers.tuned_picks() == "nothing tuned"
    monkeypatch.setattr(memory_bwd.bwd_dqk, "best_config",
                        triton.Config({"BK": 128, "BV": 64}, num_warps=8, num_stages=2), raising=False)
    assert mixers.tuned_picks() == "bwd_dqk 128×64, 8 warps, 2 stages"


def test_the_kernel_tables_rank_each_forms_kernels_by_median_time():
    values = {"kernels/PAM triton/_state_fwd@us": [30.0, 34.0, 32.0],
              "kernels/PAM triton/_out_fwd@us": [60.0, 70.0, 64.0], "kernels/PAM triton/_scan@us": [8.0],
              "kernels/SDPA causal 12×64/flash_fwd@us": [50.0, 50.0, 50.0], "main/PAM triton@ms": [1.0, 1.0, 1.0]}
    lines = mixers.kernel_lines(values)
    pam = lines[lines.index("\nPAM triton: 3 kernels, 96.0 µs a call (medians over processes)"):][1:4]
    assert [line.split()[-1] for line in pam] == ["_out_fwd", "_state_fwd", "_scan"]  # by median: 64, 32, then 0
    assert pam[0].split()[0] == "64.0" and pam[0].split()[2] == "66.7%"
    assert "\nSDPA causal 12×64: 1 kernels, 50.0 µs a call (medians over processes)" in lines


AB_BENCH = """
import argparse
from pathlib import Path

import fresh
import value
from archsearch.errors import SIDE

SCRIPT = {script!r}

def measure(args):
    runs = Path("runs.txt")  # in the side's own checkout: its n-th process here
    n = len(runs.read_text()) + 1 if runs.exists() else 1
    runs.write_text("x" * n)
    print("working", value.NAME, SCRIPT, SIDE, flush=True)
    if value.FAIL:
        raise SystemExit("error: the base side broke")
    return {{"ms@x": value.FIRST + value.STEP * (n - 1), "side@" + value.NAME: 1.0}}

p = argparse.ArgumentParser()
p.add_argument("--wait", type=float, default=0.0)
fresh.add_arguments(p)
args = p.parse_args()
import time; time.sleep(args.wait)
fresh.over_processes(args, measure)
"""


def _ab_repo(tmp_path, base_fails: bool = False, base_has_bench: bool = True) -> Path:
    """A repository with ab.py, fresh.py, a stand-in `archsearch` package and a benchmark, in two commits that differ
    in all of them: the base's number is 1 then 3 in its two rounds, this side's 2 then 4."""
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "archsearch").mkdir()
    for name in ("ab.py", "fresh.py"):
        (repo / "benchmarks" / name).write_text((ROOT / "benchmarks" / name).read_text())
    (repo / ".gitignore").write_text("runs.txt\n")
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    for first, name, fail in ((1.0, "base", base_fails), (2.0, "this", False)):
        (repo / "value.py").write_text(f"FIRST = {first}\nSTEP = 2.0\nNAME = {name!r}\nFAIL = {fail}\n")
        (repo / "archsearch" / "__init__.py").write_text("")
        (repo / "archsearch" / "errors.py").write_text(f"class SpecError(Exception):\n    pass\n\nSIDE = {name!r}\n")
        bench = repo / "benchmarks" / "bench.py"
        if name == "this" or base_has_bench:
            bench.write_text(AB_BENCH.format(script=f"{name}'s script"))
        git("add", "-A")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", name)
    return repo


def _ab(repo: Path, *args: str, **kw):
    env = {**os.environ, "TMPDIR": str(repo.parent)}  # ab.py's temporary folder, with the test's
    return subprocess.run([sys.executable, str(repo / "benchmarks/ab.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=repo, env=env, **kw)


def _worktrees(repo: Path) -> int:
    return len(subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True,
                              text=True).stdout.splitlines())


def test_ab_runs_each_commits_own_code_in_alternating_rounds_and_takes_ratios_within_a_round(tmp_path):
    repo = _ab_repo(tmp_path)
    r = _ab(repo, "HEAD~1", "--rounds", "2", "--", str(repo / "benchmarks/bench.py"))  # an absolute path: its place
    assert r.returncode == 0, r.stderr
    ran = [ln.split(" working ") for ln in r.stdout.splitlines() if " working " in ln]
    assert ran == [["[round 1/2 this]", "this this's script this"], ["[round 1/2 base]", "base base's script base"],
                   ["[round 2/2 base]", "base base's script base"], ["[round 2/2 this]", "this this's script this"]]
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("ms@x"))
    # this 2, 4 against base 1, 3: the ratios 2 and 4/3 within the rounds, median 1.6667 (the medians' ratio is 1.5)
    assert row.split() == ["ms@x", "3", "[2–4]", "2", "[1–3]", "1.6667", "[1.3333–2.0000]×"]
    assert "only this reports: side@this" in r.stdout and "only base reports: side@base" in r.stdout
    assert _worktrees(repo) == 1 and not list(tmp_path.glob("archsearch-ab-*/base"))


def test_ab_says_in_one_line_what_went_wrong_and_leaves_no_worktree(tmp_path):
    repo = _ab_repo(tmp_path, base_fails=True)
    one_line = lambda r: r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1  # noqa: E731
    bad = _ab(repo, "nosuchrev", "--", "benchmarks/bench.py")
    assert one_line(bad) and bad.stderr.strip() == f"error: nosuchrev: not a commit of this repository ({repo})"
    assert _ab(repo, "HEAD~1").stderr.strip().startswith("error: ab.py: give the benchmark after --")
    for owned in ("--processes", "--save"):
        assert f"{owned}: ab.py's to set" in _ab(repo, "HEAD~1", "--", "benchmarks/bench.py", owned, "3").stderr
    failed = _ab(repo, "HEAD~1", "--rounds", "1", "--", "benchmarks/bench.py")
    assert one_line(failed) and failed.stderr.startswith("error: round 1/1, base (")
    assert "the base side broke" in failed.stderr and _worktrees(repo) == 1
    missing = _ab_repo(tmp_path / "second", base_has_bench=False)
    lacking = _ab(missing, "HEAD~1", "--", "benchmarks/bench.py")
    assert one_line(lacking) and lacking.stderr.strip().startswith("error: benchmarks/bench.py: not in HEAD~1 (")


def test_ab_runs_the_base_side_in_a_copy_where_the_machine_has_no_history(tmp_path):
    # a lent GPU machine gets the working tree only: the base side runs in a copy of its tracked files
    repo = _ab_repo(tmp_path)
    copy = tmp_path / "base_copy"
    copy.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", "HEAD~1"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(copy)], input=archive, check=True)
    shutil.rmtree(repo / ".git")  # this side has no history either
    r = _ab(repo, "main", "--base-dir", str(copy), "--rounds", "2", "--", "benchmarks/bench.py")
    assert r.returncode == 0, r.stderr
    ran = [ln.split(" working ")[1] for ln in r.stdout.splitlines() if " working " in ln]
    assert ran == ["this this's script this", "base base's script base", "base base's script base",
                   "this this's script this"]
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("ms@x"))
    assert row.split()[-2:] == ["1.6667", "[1.3333–2.0000]×"]
    assert f"this checkout (not a git checkout) against main (copied into {copy.resolve()})" in r.stdout
    nowhere = tmp_path / "nowhere"
    missing = _ab(repo, "main", "--base-dir", str(nowhere), "--", "benchmarks/bench.py")
    assert missing.returncode != 0 and missing.stderr.strip() == f"error: --base-dir {nowhere}: no such folder"


def test_ab_with_no_number_both_sides_report_prints_no_table_header(capsys):
    ab.show({"this": {"a@x": {1: 1.0}}, "base": {"b@x": {1: 2.0}}}, "HEAD~1", rounds=1)
    out = capsys.readouterr().out
    assert "no number both sides report" in out and "this / base" not in out
    assert "only this reports: a@x" in out and "only base reports: b@x" in out


def test_ab_stopped_by_a_time_limit_removes_its_worktree(tmp_path):
    repo = _ab_repo(tmp_path)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, str(repo / "benchmarks/ab.py"), "HEAD~1", "--", "benchmarks/bench.py",
                             "--wait", "30"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    while _worktrees(repo) == 1 and time.monotonic() < deadline:  # until the base's worktree is there
        time.sleep(0.1)
    assert _worktrees(repo) == 2
    proc.send_signal(signal.SIGTERM)  # what `timeout` sends
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and err.strip() == f"error: ab.py stopped by signal {signal.SIGTERM.value}"
    assert _worktrees(repo) == 1 and not list(tmp_path.glob("archsearch-ab-*/base"))
