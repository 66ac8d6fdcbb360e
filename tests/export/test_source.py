"""Merging modules into one file: sibling imports dropped, `module.name` resolved, colliding names renamed."""
import sys
import types

from archsearch.export.source import merge


def _module(name: str, text: str):
    """A module whose source inspect can read (written to a real file under a fake package)."""
    import importlib.util
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp())
    (folder / f"{name}.py").write_text(text)
    spec = importlib.util.spec_from_file_location(f"fakepkg.{name}", folder / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fakepkg", types.ModuleType("fakepkg"))
    sys.modules[f"fakepkg.{name}"] = mod
    return mod


def test_merge_resolves_siblings_and_renames_collisions():
    a = _module("alpha", '"""Alpha."""\nimport math\n\n\ndef helper(x):\n    return math.sqrt(x)  # keep me\n\n\nSCALE = 2\n')
    b = _module("beta", '"""Beta."""\nimport math\nfrom . import alpha\nfrom .alpha import SCALE\n\n\n'
                        'def helper(x):\n    return -x\n\n\n'
                        'def f(x):\n    h = alpha.helper\n    helper = 1\n    return h(x) * SCALE + helper + math.pi\n')
    header, body, final = merge([a, b])
    assert header == "import math"
    assert final["beta"]["helper"] == "helper__beta" and final["alpha"]["helper"] == "helper"
    assert "# keep me" in body and "# Alpha." in body  # comments and docstrings survive (the docstring as a comment)
    assert "from . import" not in body and "alpha.helper" not in body
    namespace = {}
    exec(header + "\n" + body, namespace)
    assert namespace["helper"](4.0) == 2.0 and namespace["helper__beta"](3) == -3
    assert namespace["f"](9.0) == 3.0 * 2 + 1 + namespace["math"].pi


def test_a_local_alias_of_a_sibling_function_is_dropped():
    a = _module("gamma", "def acc(x):\n    return x + 1\n")
    b = _module("delta", "from . import gamma\n\n\ndef g(x):\n    acc = gamma.acc\n    return acc(x)\n")
    header, body, _ = merge([a, b])
    assert "acc = acc" not in body
    namespace = {}
    exec(body, namespace)
    assert namespace["g"](1) == 2
