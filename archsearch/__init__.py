"""archsearch: compile sequence-model graphs from YAML, cost them, build them, and search them.

The public API is below. Names load lazily so that `import archsearch.spec` (parsing, validation messages) never
imports torch.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "Loc": "errors", "SpecError": "errors",
    "Spec": "spec", "load_spec": "spec", "parse_text": "spec",
    "IR": "ir", "Node": "ir", "build": "build",
    "PASSES": "passes", "run_passes": "passes",
    "compile_spec": "compiler", "compile_text": "compiler",
    "register": "registry", "load_dir": "registry",
    "lower": "lower", "SequenceModel": "runtime", "GraphedDecoder": "decode",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'archsearch' has no attribute {name!r}")


def __dir__():
    return __all__
