"""YAML loading that remembers the line of every key and item, so errors can point at them.

Mappings load as LDict and sequences as LList: plain dict/list subclasses carrying `.loc` (their own location)
and `.locs` (the location of each key or index). Duplicate keys are an error, unlike in plain PyYAML.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import Loc, SpecError


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


def _convert(loader: yaml.SafeLoader, node: yaml.Node, loc: Loc):
    if isinstance(node, yaml.MappingNode):
        out = LDict()
        out.loc, out.locs = loc, {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise SpecError(Loc(loc.file, knode.start_mark.line + 1, loc.path), "mapping keys must be plain names")
            key = loader.construct_object(knode)
            kloc = loc.child(str(key), knode.start_mark.line + 1)
            if key in out:
                raise SpecError(kloc, "duplicate key")
            out.locs[key] = kloc
            out[key] = _convert(loader, vnode, kloc)
        return out
    if isinstance(node, yaml.SequenceNode):
        out = LList()
        out.loc, out.locs = loc, {}
        for i, item in enumerate(node.value):
            iloc = loc.child(i, item.start_mark.line + 1)
            out.locs[i] = iloc
            out.append(_convert(loader, item, iloc))
        return out
    return loader.construct_object(node)


def load_text(text: str, file: str = "<spec>"):
    """Parse one YAML document into LDict/LList/scalars. Syntax errors become SpecError with the line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError(Loc(file, 1), "the document is empty")
        return _convert(loader, node, Loc(file, node.start_mark.line + 1))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 0
        raise SpecError(Loc(file, line), f"malformed YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise SpecError(Loc(file), f"malformed YAML: {e}") from None
    finally:
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
