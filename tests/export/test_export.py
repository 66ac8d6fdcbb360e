"""`archsearch export`: model.py runs without archsearch or blocks/ importable, with the original logits and decode."""
import json
import subprocess
import sys

import pytest
import torch

from archsearch.compiler import compile_spec
from archsearch.lower import lower

# Runs in a fresh interpreter (-I: no user site, no PYTHONPATH, no current folder on sys.path) in which importing
# archsearch or blocks fails, so the exported file can only use torch and the standard library.
CHECK = r'''
import sys, json, torch
sys.modules["archsearch"] = None; sys.modules["blocks"] = None
folder, out, compiled = sys.argv[1], sys.argv[2], sys.argv[3] == "compile"
assert not any("work/main" in p for p in sys.path[1:]), sys.path
sys.path.insert(0, folder)
from model import Model
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
if compiled:
    model.train()
    step = torch.compile(model, backend="aot_eager_decomp_partition")  # inductor's capture, no codegen
    step(ids).float().logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
torch.save({"ids": ids, "logits": logits, "steps": torch.stack(steps, 1), "gen": gen}, out)
'''


def _check_standalone(folder, model, tmp_path, compile: bool = True):
    """The exported folder in a bare interpreter: logits, decode, generate, and (with `compile`) a compiled backward,
    checked once, on the paper's skeleton, since each compile costs seconds."""
    out = tmp_path / "result.pt"
    r = subprocess.run([sys.executable, "-I", "-c", CHECK, str(folder), str(out), "compile" if compile else "eager"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = torch.load(out)
    model.eval()
    with torch.no_grad():
        want = model(got["ids"])
    assert (got["logits"] - want).abs().max().item() <= 1e-5
    assert (got["steps"] - want).abs().max().item() <= 1e-4  # the step path against the parallel path
    assert got["gen"].shape == (2, 7) and torch.equal(got["gen"][:, :4], got["ids"][:, :4])
    source = (folder / "model.py").read_text()
    imported = {line.split()[1].split(".")[0] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imported <= {"__future__", "torch", "math", "inspect", "json", "pathlib", "dataclasses", "typing",
                        "contextlib"}, imported


def test_export_a_spec_with_weights(root, tmp_path):
    spec = tmp_path / "paper_pam.yaml"  # the paper's 5m PAM, every block of its skeleton, at 2 of its 12 layers
    spec.write_text((root / "examples/paper_pam_5m.yaml").read_text().replace("  depth: 12\n", "  depth: 2\n"))
    ir = compile_spec(str(spec))
    assert len([n for n in ir.nodes() if n.block == "pam"]) == 2
    torch.manual_seed(3)
    model = lower(ir)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    to = tmp_path / "pam5m"
    r = subprocess.run([sys.executable, "-m", "archsearch", "export", str(spec),
                        "--weights", str(tmp_path / "weights.pt"), "--to", str(to)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads((to / "config.json").read_text())["vocab"] == 50257
    _check_standalone(to, model, tmp_path)


def test_export_the_best_trial_of_the_smoke_study(smoke_study, tmp_path):
    out, study = smoke_study
    best = study.best_trial
    to = tmp_path / "best"
    r = subprocess.run([sys.executable, "-m", "archsearch", "export", str(out), "--to", str(to)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"trial {best.number}" in json.loads((to / "config.json").read_text())["source"]
    ir = compile_spec(best.user_attrs["spec_file"], vocab=best.user_attrs["vocab"])
    model = lower(ir)
    model.load_state_dict(torch.load(out / f"weights/trial_{best.number:04d}.pt", weights_only=True))
    _check_standalone(to, model, tmp_path, compile=False)


@pytest.mark.parametrize("args, message", [
    (["--trial", "9"], "--trial: no trial 9: the study has trials 0–1"),
    (["--trial", "x"], "--trial: expected 'best' or a trial number, got 'x'"),
])
def test_bad_export_requests_are_one_line(smoke_study, tmp_path, args, message):
    out, _ = smoke_study
    r = subprocess.run([sys.executable, "-m", "archsearch", "export", str(out), "--to", str(tmp_path / "x"), *args],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == message


def test_a_data_vocabulary_is_read_off_the_weights(root, tmp_path):
    ir = compile_spec(str(root / "examples/tiny_transformer.yaml"), vocab=300)
    torch.save({"model": lower(ir).state_dict()}, tmp_path / "checkpoint.pt")  # train's resumable checkpoint
    r = subprocess.run([sys.executable, "-m", "archsearch", "export", str(root / "examples/tiny_transformer.yaml"),
                        "--weights", str(tmp_path / "checkpoint.pt"), "--to", str(tmp_path / "t")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "t/config.json").read_text())["vocab"] == 300


def test_weights_of_another_architecture_are_refused(root, tmp_path):
    ir = compile_spec(str(root / "examples/tiny_transformer.yaml"), vocab=256)
    torch.save(lower(ir).state_dict(), tmp_path / "w.pt")
    r = subprocess.run([sys.executable, "-m", "archsearch", "export", str(root / "examples/paper_pam_5m.yaml"),
                        "--weights", str(tmp_path / "w.pt"), "--to", str(tmp_path / "x")], capture_output=True, text=True)
    assert r.returncode == 2 and "the weights do not fit this architecture: missing" in r.stderr
