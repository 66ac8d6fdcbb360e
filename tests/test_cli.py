"""The CLI as a user runs it: compile tables, --build, --dump-after, blocks listing, the console script."""
import shutil
import subprocess
import sys

import pytest

from archsearch import cli, registry


def test_compile_gpt2_table_and_build(root, capsys):
    assert cli.main(["compile", str(root / "examples/gpt2_100m.yaml"), "--build"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].endswith("d_model 672, 12 layers, seq_len 2048, vocab 50257, tied head")
    assert lines[1].split() == ["node", "block", "params", "FLOPs/token", "state", "bytes"]
    assert [ln.split()[:3] for ln in lines if ln.startswith("l11.mlp ")] == [["l11.mlp", "mlp", "3,616,032"]]
    total = next(ln for ln in lines if ln.startswith("total"))
    assert total.split()[1] == "100,283,232"
    assert lines[-1] == "built: 100,283,232 parameters, equal to the analytic count"


def test_compile_with_vocab_for_data_specs(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("model: {d_model: 8, seq_len: 4}\nstack: {depth: 1, sublayers: [mlp]}\n")
    assert cli.main(["compile", str(spec), "--vocab", "300"]) == 0
    assert "vocab 300 (from --vocab)" in capsys.readouterr().out


def test_dump_after_prints_ir(root, capsys):
    assert cli.main(["compile", str(root / "examples/gpt2_100m.yaml"), "--dump-after", "validate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# IR of") and "%l3.mlp = mlp(l3.mlp.norm)" in out


def test_blocks_lists_every_block_with_fields(capsys):
    assert cli.main(["blocks"]) == 0
    out = capsys.readouterr().out
    for name in registry.names():
        assert any(line.startswith(f"{name} (") for line in out.splitlines()), name
    assert "    heads: int = 8" in out
    assert "    activation: one of {\"gelu\", \"gelu_tanh\", \"relu\", \"silu\"} = \"gelu\"" in out


def test_bad_cli_argument_exits_2():
    r = subprocess.run([sys.executable, "-m", "archsearch", "compile", "x.yaml", "--vocab", "many"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "argument --vocab: expected an integer, got 'many'" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--budget", "nope"], "--budget: no 'nope' budget in search_spaces/smoke.yaml (it has: cpu, gpu)"),
    (["--profile", "nope"], "note: --profile is now --budget\n--budget: no 'nope' budget"),  # the former name
    (["--data", "nowhere"], "--data: 'nowhere': no such file or folder"),
])
def test_bad_search_arguments_are_one_line_and_write_nothing(root, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(root)
    assert cli.main(["run", "search_spaces/smoke.yaml", "--out", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) <= 2 and not (tmp_path / "s").exists()


def test_console_script_is_the_same_cli(root):
    exe = shutil.which("archsearch")
    assert exe, "the `archsearch` console script is installed by `pip install -e .`"
    a = subprocess.run([exe, "blocks"], capture_output=True, text=True)
    b = subprocess.run([sys.executable, "-m", "archsearch", "blocks"], capture_output=True, text=True)
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout


def test_version_is_the_packages(capsys):
    import archsearch

    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"archsearch {archsearch.__version__}"


def test_blocks_lists_the_memories_and_their_parts(capsys):
    assert cli.main(["blocks"]) == 0
    listed = {line.split(" (")[0] for line in capsys.readouterr().out.splitlines() if line and not line[0].isspace()}
    assert {"pam", "linear_attention", "holographic", "softmax_attention", "cgu", "swiglu", "mlp", "complex_norm",
            "rmsnorm", "layernorm", "embedding"} <= listed
