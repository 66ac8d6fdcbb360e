"""YAML loading that remembers the line of every key and item, so errors can point at them.

Mappings load as LDict and sequences as LList: plain dict/list subclasses carrying `.loc` (their own location)
and `.locs` (the location of each key or index). Duplicate keys are an error, unlike in plain PyYAML, and so is any
document no spec needs but a hostile one can hold: keys that are not strings, an alias inside its own anchor, nesting
deeper than MAX_DEPTH, and aliases that expand to more than MAX_VALUES values (a "billion laughs").
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import Loc, SpecError


MAX_CHARS = 1 << 20  # the largest shipped spec is a few KB
MAX_DEPTH = 64
MAX_VALUES = 100_000


class LDict(dict):
    loc: Loc
    locs: dict


class LList(list):
    loc: Loc
    locs: dict


def loc_of(value, key, default: Loc) -> Loc:
    """Location of `value[key]` if `value` is located, else a child of `default`."""
    locs = getattr(value, "locs", None)
    if locs and key in locs:
        return locs[key]
    return default.child(key)


class _Budget:
    """What one document may still expand to, and the nodes on the path being converted (to catch cycles)."""

    def __init__(self):
        self.values, self.path = MAX_VALUES, set()


def _key_kind(key) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", type(None): "null"}.get(type(key), "a value")


def _convert(loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, budget: _Budget, depth: int = 0):
    budget.values -= 1
    if budget.values < 0:
        raise SpecError(loc, f"the document expands to more than {MAX_VALUES:,} values (aliases repeated?)")
    if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        return loader.construct_object(node)
    if depth >= MAX_DEPTH:
        raise SpecError(loc, f"nested more than {MAX_DEPTH} levels deep")
    if id(node) in budget.path:
        raise SpecError(loc, "an alias refers to the value that contains it (a cycle)")
    budget.path.add(id(node))
    if isinstance(node, yaml.MappingNode):
        out = LDict()
        out.loc, out.locs = loc, {}
        for knode, vnode in node.value:
            kloc = Loc(loc.file, knode.start_mark.line + 1, loc.path)
            if not isinstance(knode, yaml.ScalarNode):
                raise SpecError(kloc, "mapping keys must be plain names")
            if knode.tag == "tag:yaml.org,2002:merge":
                raise SpecError(kloc, "merge keys ('<<') are not supported: write the keys out")
            key = loader.construct_object(knode)
            if not isinstance(key, str):
                raise SpecError(kloc, f"mapping keys must be names, got {_key_kind(key)} ({knode.value!r}); "
                                      "quote it to use it as a name")
            kloc = loc.child(key, knode.start_mark.line + 1)
            if key in out:
                raise SpecError(kloc, "duplicate key")
            out.locs[key] = kloc
            out[key] = _convert(loader, vnode, kloc, budget, depth + 1)
    else:
        out = LList()
        out.loc, out.locs = loc, {}
        for i, item in enumerate(node.value):
            iloc = loc.child(i, item.start_mark.line + 1)
            out.locs[i] = iloc
            out.append(_convert(loader, item, iloc, budget, depth + 1))
    budget.path.discard(id(node))
    return out


def load_text(text: str, file: str = "<spec>"):
    """Parse one YAML document into LDict/LList/scalars. Syntax errors become SpecError with the line."""
    if len(text) > MAX_CHARS:
        raise SpecError(Loc(file), f"{len(text):,} characters; a spec may have at most {MAX_CHARS:,}")
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # rejects control characters itself
        node = loader.get_single_node()
        if node is None:
            raise SpecError(Loc(file, 1), "the document is empty")
        return _convert(loader, node, Loc(file, node.start_mark.line + 1), _Budget())
    except RecursionError:  # PyYAML composes nested nodes recursively, before MAX_DEPTH can be checked
        raise SpecError(Loc(file), f"nested more than {MAX_DEPTH} levels deep") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 0
        raise SpecError(Loc(file, line), f"malformed YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise SpecError(Loc(file), f"malformed YAML: {str(e).splitlines()[0]}") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_file(path) -> object:
    """Read and parse a YAML file; a missing or unreadable file is a SpecError too."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(Loc(str(path)), "no such file") from None
    except IsADirectoryError:
        raise SpecError(Loc(str(path)), "is a directory, expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(Loc(str(path)), f"cannot read: {e.__class__.__name__}") from None
    return load_text(text, str(path))
