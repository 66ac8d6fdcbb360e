"""`archsearch export`: model.py runs without archsearch or blocks/ importable, with the original logits and decode."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from archsearch import cli
from archsearch.compiler import compile_spec
from archsearch.lower import lower

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter (-I: no user site, no PYTHONPATH, no current folder on sys.path) in which importing
# archsearch or blocks fails, so the exported file can only use torch and the standard library. One interpreter checks
# every folder (triples folder, result file, eager|compile on the command line): each start costs seconds.
CHECK = r'''
import sys, json, torch
sys.modules["archsearch"] = None; sys.modules["blocks"] = None
assert not any("work/main" in p for p in sys.path[1:]), sys.path
for folder, out, mode in zip(*[iter(sys.argv[1:])] * 3):
    sys.path.insert(0, folder)
    sys.modules.pop("model", None)  # each folder's own model.py
    from model import Model
    sys.path.remove(folder)
    model = Model.from_pretrained(folder).eval()
    vocab = model.config["vocab"]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (2, 24), generator=g)
    with torch.no_grad():
        logits = model(ids)
        state = model.init_state(2)
        steps = []
        for t in range(ids.shape[1]):
            y, state = model.step(ids[:, t], state)
            steps.append(y)
    gen = model.generate(ids[:, :4], max_new_tokens=3)
    if mode == "compile":
        model.train()
        step = torch.compile(model, backend="aot_eager_decomp_partition")  # inductor's capture, no codegen
        step(ids).float().logsumexp(-1).mean().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    torch.save({"ids": ids, "logits": logits, "steps": torch.stack(steps, 1), "gen": gen}, out)
'''


def _export_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archsearch", "export", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def exported(smoke_study, tmp_path_factory):
    """Both of a user's exports through the command, a spec with its weights and the best trial of a study, then both
    folders checked in one bare interpreter: a compiled backward on the paper's skeleton only (each compile costs
    seconds). (the model, the folder, what export printed, what the bare interpreter computed) for each."""
    tmp = tmp_path_factory.mktemp("export")
    spec = tmp / "paper_pam.yaml"  # the paper's 5m PAM, every block of its skeleton, at 2 of its 12 layers
    spec.write_text((ROOT / "examples/paper_pam_5m.yaml").read_text().replace("  depth: 12\n", "  depth: 2\n"))
    ir = compile_spec(str(spec))
    assert len([n for n in ir.nodes() if n.block == "pam"]) == 2
    torch.manual_seed(3)
    pam = lower(ir)
    torch.save(pam.state_dict(), tmp / "weights.pt")
    pam_cli = _export_cli(str(spec), "--weights", str(tmp / "weights.pt"), "--to", str(tmp / "pam5m"))
    out, study, _ = smoke_study
    best = study.best_trial
    best_cli = _export_cli(str(out), "--to", str(tmp / "best"))
    trial = lower(compile_spec(best.user_attrs["spec_file"], vocab=best.user_attrs["vocab"]))
    trial.load_state_dict(torch.load(out / f"weights/trial_{best.number:04d}.pt", weights_only=True))
    folders = {"pam": (pam, tmp / "pam5m", pam_cli, "compile"), "best": (trial, tmp / "best", best_cli, "eager")}
    args = [a for name, (_, folder, r, mode) in folders.items() if r.returncode == 0
            for a in (str(folder), str(tmp / f"{name}.pt"), mode)]
    check = subprocess.run([sys.executable, "-I", "-c", CHECK, *args], capture_output=True, text=True, cwd=tmp)
    assert check.returncode == 0, check.stderr[-3000:]
    return {name: (model, folder, r, torch.load(tmp / f"{name}.pt") if r.returncode == 0 else None)
            for name, (model, folder, r, _) in folders.items()}


def _check_standalone(model, folder, got):
    """What the bare interpreter computed from the exported folder: the original logits, decode, generate; and
    model.py imports only torch and the standard library."""
    model.eval()
    with torch.no_grad():
        want = model(got["ids"])
    assert (got["logits"] - want).abs().max().item() <= 1e-5
    assert (got["steps"] - want).abs().max().item() <= 1e-4  # the step path against the parallel path
    assert got["gen"].shape == (2, 7) and torch.equal(got["gen"][:, :4], got["ids"][:, :4])
    source = (folder / "model.py").read_text()
    imported = {line.split()[1].split(".")[0] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imported - {"torch"} <= sys.stdlib_module_names, imported


def test_export_a_spec_with_weights(exported):
    model, folder, r, got = exported["pam"]
    assert r.returncode == 0, r.stderr
    assert json.loads((folder / "config.json").read_text())["vocab"] == 50257
    _check_standalone(model, folder, got)  # its compiled backward ran there too


def test_export_the_best_trial_of_the_smoke_study(exported, smoke_study):
    model, folder, r, got = exported["best"]
    assert r.returncode == 0, r.stderr
    assert f"trial {smoke_study[1].best_trial.number}" in json.loads((folder / "config.json").read_text())["source"]
    _check_standalone(model, folder, got)


def _export(args, capsys) -> tuple[int, str]:
    """`archsearch export` in this process: its checks and one-line errors, without a process start per case (the two
    exports above run the command as a user does)."""
    code = cli.main(["export", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--trial", "9"], "--trial: no trial 9: the study has trials 0–1"),
    (["--trial", "x"], "--trial: expected 'best' or a trial number, got 'x'"),
])
def test_bad_export_requests_are_one_line(smoke_study, tmp_path, capsys, args, message):
    out, _, _ = smoke_study
    code, err = _export([str(out), "--to", str(tmp_path / "x"), *args], capsys)
    assert code == 2 and err.strip() == message


def test_a_data_vocabulary_is_read_off_the_weights(root, tmp_path, capsys):
    ir = compile_spec(str(root / "examples/tiny_transformer.yaml"), vocab=300)
    torch.save({"model": lower(ir).state_dict()}, tmp_path / "checkpoint.pt")  # train's resumable checkpoint
    code, err = _export([str(root / "examples/tiny_transformer.yaml"), "--weights", str(tmp_path / "checkpoint.pt"),
                         "--to", str(tmp_path / "t")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "t/config.json").read_text())["vocab"] == 300


def test_weights_of_another_architecture_are_refused(root, tmp_path, capsys):
    ir = compile_spec(str(root / "examples/tiny_transformer.yaml"), vocab=256)
    torch.save(lower(ir).state_dict(), tmp_path / "w.pt")
    code, err = _export([str(root / "examples/paper_pam_5m.yaml"), "--weights", str(tmp_path / "w.pt"),
                         "--to", str(tmp_path / "x")], capsys)
    assert code == 2 and "the weights do not fit this architecture: missing" in err
