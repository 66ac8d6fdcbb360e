"""The registry: built-ins, drop-in block files, $ARCHSEARCH_BLOCKS folders, and clear errors for broken blocks."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from archsearch import registry
from archsearch.errors import SpecError

BUILTIN = {"embedding", "layernorm", "rmsnorm", "mlp", "swiglu", "softmax_attention"}


def _run(args, env_extra=None, cwd=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_builtins_are_registered():
    assert BUILTIN <= set(registry.names())
    assert registry.get("mlp").kind == "channel" and registry.get("softmax_attention").kind == "mixer"


def test_unknown_name_hints():
    with pytest.raises(SpecError, match="unknown block 'rms_norm' \\(did you mean 'rmsnorm'\\?\\)"):
        registry.get("rms_norm")


def test_example_block_via_environment(root):
    env = {"ARCHSEARCH_BLOCKS": str(root / "examples/custom_block")}
    r = _run(["-m", "archsearch", "compile", str(root / "examples/custom_block/conv_attention.yaml"), "--build"], env)
    assert r.returncode == 0, r.stderr
    assert "l0.short_conv " in r.stdout and "l1.softmax_attention " in r.stdout
    assert "built: 757,120 parameters, equal to the analytic count" in r.stdout


def test_dropping_a_file_into_blocks_registers_it(root, tmp_path):
    shutil.copytree(root / "blocks", tmp_path / "blocks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "examples/custom_block/short_conv.py", tmp_path / "blocks/short_conv.py")
    code = "from archsearch import registry; print(registry.get('short_conv').__module__)"
    r = _run(["-c", code], {"PYTHONPATH": f"{tmp_path}{os.pathsep}{root}"}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "blocks.short_conv"


def test_step_matches_forward_for_the_example_block(root):
    import torch

    found = registry.load_dir(root / "examples/custom_block")
    cls = next(c for c in found if c.name == "short_conv")
    block = cls(cls.Config(kernel=3), d_model=6)
    x = torch.randn(2, 9, 6)
    state = block.init_state(2)
    ys = []
    for t in range(9):
        y, state = block.step(x[:, t], state)
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys, 1), block(x))


def test_broken_block_file_is_one_line(tmp_path, root):
    (tmp_path / "bad_block.py").write_text("import torch\nraise RuntimeError('boom')\n")
    spec = root / "examples/gpt2_100m.yaml"
    r = _run(["-m", "archsearch", "compile", str(spec)], {"ARCHSEARCH_BLOCKS": str(tmp_path)})
    assert r.returncode == 2
    assert r.stderr == f"{tmp_path / 'bad_block.py'}: cannot import block file: RuntimeError: boom\n"


def test_block_breaking_the_contract_is_rejected(tmp_path):
    (tmp_path / "half_block.py").write_text(textwrap.dedent("""
        from dataclasses import dataclass
        from torch import nn

        class NoCost(nn.Module):
            name = "no_cost"
            kind = "channel"

            @dataclass(frozen=True)
            class Config:
                pass
    """))
    with pytest.raises(SpecError, match="half_block.py: block class NoCost needs a static method cost"):
        registry.load_dir(tmp_path)


def test_name_clash_is_rejected(tmp_path):
    (tmp_path / "clash.py").write_text("from blocks.mlp import MLP as _M\n\nclass MLP(_M):\n    pass\n")
    with pytest.raises(SpecError, match="block name 'mlp' is already taken by blocks.mlp.MLP"):
        registry.load_dir(tmp_path)
