"""Raw YAML mappings → a frozen Config dataclass (a block's, or a spec section's), strictly typed, errors located at the key."""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal, Mapping

from .errors import Loc, SpecError, unknown

_NONE = type(None)


def field_types(config_cls) -> dict[str, Any]:
    """Resolved annotations of a Config dataclass (works with `from __future__ import annotations`)."""
    return typing.get_type_hints(config_cls)


def type_name(tp) -> str:
    """How a field type is shown to users: int, float, bool, str, one of {...}, int | null."""
    if typing.get_origin(tp) is Literal:
        return "one of {" + ", ".join(json.dumps(a) for a in typing.get_args(tp)) + "}"
    if _is_union(tp):
        return " | ".join("null" if a is _NONE else type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _is_union(tp) -> bool:
    return typing.get_origin(tp) is typing.Union or isinstance(tp, types.UnionType)


def _check(value, tp, loc: Loc):
    if tp is Any:  # free-form (checked by the caller)
        return value
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        if any(value == c and type(value) is type(c) for c in choices):
            return value
        if isinstance(value, str):
            raise unknown(loc, "choice", value, [str(c) for c in choices])
        raise SpecError(loc, f"expected {type_name(tp)}, got {value!r}")
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and _NONE in args:
            return None
        rest = [a for a in args if a is not _NONE]
        if len(rest) == 1:
            return _check(value, rest[0], loc)
        raise SpecError(loc, f"unsupported field type {type_name(tp)}")
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(loc, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(loc, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(loc, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(loc, f"expected a string, got {value!r}")
        return value
    raise SpecError(loc, f"unsupported field type {type_name(tp)}")


def coerce(config_cls, raw: Mapping[str, Any], loc: Loc, locs: Mapping[str, Loc] | None = None,
           what: str = "config field"):
    """Build `config_cls(**raw)` after checking every key exists and every value has the field's type."""
    locs = locs or {}
    types = field_types(config_cls)
    names = [f.name for f in dataclasses.fields(config_cls)]
    values = {}
    for key, value in raw.items():
        kloc = locs.get(key, loc.child(str(key)))
        if key not in names:
            raise unknown(kloc, what, key, names)
        values[key] = _check(value, types[key], kloc)
    for f in dataclasses.fields(config_cls):
        if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(loc, f"missing required {what} '{f.name}'")
    return config_cls(**values)


def describe(config_cls) -> list[tuple[str, str, str, str]]:
    """(name, type, default, doc) for every field, for `archsearch blocks`."""
    types = field_types(config_cls)
    rows = []
    for f in dataclasses.fields(config_cls):
        default = "required" if f.default is dataclasses.MISSING else json.dumps(f.default)
        rows.append((f.name, type_name(types[f.name]), default, f.metadata.get("doc", "")))
    return rows
