"""Block registry: name → block class. The only global state in archsearch.

Sources, in order: the built-ins listed in blocks/__init__.py; any other `*.py` file in the blocks/ folder (a block
is a class there with a `name` attribute and a nested `Config`); folders named in $ARCHSEARCH_BLOCKS (os.pathsep
separated); and classes passed to `register` from Python. YAML only ever names blocks, never import paths.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path

from .errors import Loc, SpecError, unknown

KINDS = ("embedding", "norm", "channel", "mixer")
_BLOCKS: dict[str, type] = {}
_LOADED = False


def _problem(cls) -> str | None:
    """Why `cls` does not follow the block contract (DESIGN.md §3), or None."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        return "needs a class attribute `name` that is an identifier"
    if getattr(cls, "kind", None) not in KINDS:
        return f"needs a class attribute `kind`, one of {', '.join(KINDS)}"
    cfg = getattr(cls, "Config", None)
    if not (inspect.isclass(cfg) and dataclasses.is_dataclass(cfg) and cfg.__dataclass_params__.frozen):
        return "needs a nested frozen dataclass `Config`"
    if not callable(getattr(cls, "cost", None)):
        return "needs a static method cost(cfg, d_model, seq_len)"
    if cls.kind == "mixer" and not (callable(getattr(cls, "step", None)) and callable(getattr(cls, "init_state", None))):
        return "is a mixer, so it needs step(x_t, state) and init_state(batch)"
    return None


def register(cls: type) -> type:
    """Add a block class; usable as a decorator. Re-registering the same class is a no-op."""
    problem = _problem(cls)
    try:
        where = Loc(inspect.getsourcefile(cls) or cls.__module__)
    except TypeError:
        where = Loc(cls.__module__)
    if problem:
        raise SpecError(where, f"block class {cls.__qualname__} {problem}")
    old = _BLOCKS.get(cls.name)
    same = old is not None and (old.__module__, old.__qualname__) == (cls.__module__, cls.__qualname__)
    if old is not None and old is not cls and not same:
        raise SpecError(where, f"block name '{cls.name}' is already taken by {old.__module__}.{old.__qualname__}")
    _BLOCKS[cls.name] = cls
    return cls


def _blocks_in(module) -> list[type]:
    return [c for c in vars(module).values()
            if inspect.isclass(c) and c.__module__ == module.__name__ and hasattr(c, "name") and hasattr(c, "Config")]


def _import(modname: str, path: Path):
    try:
        if modname in sys.modules:
            return sys.modules[modname]
        if path.parent.name == "blocks" and modname.startswith("blocks."):
            return importlib.import_module(modname)
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        spec.loader.exec_module(module)
        return module
    except SpecError:
        raise
    except Exception as e:  # a user's block file that fails to import: say which and why, in one line
        sys.modules.pop(modname, None)
        raise SpecError(Loc(str(path)), f"cannot import block file: {e.__class__.__name__}: {e}") from None


def load_dir(folder, package: str | None = None) -> list[type]:
    """Register every block class defined in the `*.py` files of a folder (files starting with _ are skipped)."""
    found = []
    for path in sorted(Path(folder).glob("*.py")):
        if path.name.startswith("_"):
            continue
        modname = f"{package}.{path.stem}" if package else f"archsearch_user_blocks.{path.stem}"
        for cls in _blocks_in(_import(modname, path)):
            found.append(register(cls))
    return found


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import blocks

    for cls in blocks.BUILTINS:
        register(cls)
    load_dir(Path(blocks.__file__).parent, package="blocks")
    for folder in filter(None, os.environ.get("ARCHSEARCH_BLOCKS", "").split(os.pathsep)):
        if not Path(folder).is_dir():
            raise SpecError(Loc("$ARCHSEARCH_BLOCKS"), f"'{folder}' is not a folder")
        load_dir(folder)


def get(name: str, loc: Loc | None = None) -> type:
    """The block class registered under `name`; an unknown name is a SpecError with a did-you-mean hint."""
    _ensure_loaded()
    if name not in _BLOCKS:
        raise unknown(loc or Loc(), "block", name, _BLOCKS)
    return _BLOCKS[name]


def names() -> list[str]:
    _ensure_loaded()
    return sorted(_BLOCKS)


def call_with_dims(fn, *args, **dims):
    """Call a block's constructor or cost with only the dimension keywords it declares (d_model, seq_len, vocab,
    layer_idx, n_layers), so a block asks for just what it needs."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(*args, **dims)
    return fn(*args, **{k: v for k, v in dims.items() if k in params})
