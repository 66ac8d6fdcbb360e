"""Architecture specs: YAML → typed, frozen data. Structure only; block configs are checked later by the validate pass.

This module must not import torch (a test pins that): specs are parsed and rejected before anything is allocated.
The format is documented key by key in docs/spec.md.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from . import coerce
from .errors import Loc, SpecError, unknown
from .task_and_train import TaskConfig, TrainConfig
from .yamlloc import LDict, load_file, load_text, loc_of

RESERVED = ("input", "embed", "head", "output")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class BlockRef:
    """One use of a registered block: its name and the raw YAML config (checked against the block's Config later)."""

    name: str
    config: Mapping[str, Any]
    loc: Loc
    config_loc: Loc
    config_locs: Mapping[str, Loc]


@dataclass(frozen=True)
class ModelDims:
    d_model: int
    seq_len: int
    vocab: int | None  # None: taken from the data's tokenizer
    dropout: float
    dropout_mask: str  # auto, complex (one mask per complex channel, shared by Re and Im) or real
    loc: Loc


@dataclass(frozen=True)
class Sublayer:
    """x ← x + scale·block(norm(x)) in every layer of a stack; `blocks` holds the block of each layer."""

    blocks: tuple[BlockRef, ...]
    norm: BlockRef | None
    scale: float | None  # initial value of a learned residual scalar; None: plain add
    loc: Loc


@dataclass(frozen=True)
class Stack:
    depth: int
    sublayers: tuple[Sublayer, ...]
    loc: Loc


@dataclass(frozen=True)
class GraphNode:
    """A node of the explicit graph form: a block with one input, or a residual add of two."""

    name: str
    block: BlockRef | None
    inputs: tuple[str, ...]
    input_locs: tuple[Loc, ...]
    scale: float | None
    layer: int
    loc: Loc


@dataclass(frozen=True)
class Head:
    source: str | None  # graph form: the node feeding the head (default: the last node)
    source_loc: Loc
    blocks: tuple[BlockRef, ...]
    tied: bool
    loc: Loc


@dataclass(frozen=True)
class Spec:
    file: str
    model: ModelDims
    embedding: BlockRef
    embedding_blocks: tuple[BlockRef, ...]
    stack: Stack | None
    nodes: tuple[GraphNode, ...] | None
    head: Head
    task: TaskConfig = TaskConfig()
    train: TrainConfig = TrainConfig()


# ---------------------------------------------------------------- readers over located YAML values

def _kind(value) -> str:
    for tp, word in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
                     (type(None), "null"), (list, "a list"), (dict, "a mapping")):
        if isinstance(value, tp):
            return word
    return type(value).__name__


def _mapping(value, loc: Loc, keys, required=()) -> LDict:
    if not isinstance(value, dict):
        raise SpecError(loc, f"expected a mapping, got {_kind(value)}")
    for k in value:
        if k not in keys:
            raise unknown(loc_of(value, k, loc), "key", k, keys)
    for k in required:
        if k not in value:
            raise SpecError(loc, f"missing required key '{k}'")
    return value


def _int(value, loc: Loc, lo: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(loc, f"expected an integer, got {_kind(value)}")
    if lo is not None and value < lo:
        raise SpecError(loc, f"must be >= {lo}, got {value}")
    return value


def _float(value, loc: Loc, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(loc, f"expected a number, got {_kind(value)}")
    if not math.isfinite(value):
        raise SpecError(loc, f"expected a finite number, got {value}")
    if (lo is not None and value < lo) or (hi is not None and value >= hi):
        raise SpecError(loc, f"must be in [{lo}, {hi}), got {value}")
    return float(value)


def _choice(value, loc: Loc, choices) -> str:
    if value not in choices:
        raise unknown(loc, "value", value, choices)
    return value


def _bool(value, loc: Loc) -> bool:
    if not isinstance(value, bool):
        raise SpecError(loc, f"expected true or false, got {_kind(value)}")
    return value


def _name(value, loc: Loc, what: str = "a block name") -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise SpecError(loc, f"expected {what}, got {value!r}")
    return value


def _config(value, loc: Loc) -> tuple[Mapping, Mapping]:
    if value is None:
        return MappingProxyType({}), MappingProxyType({})
    if not isinstance(value, dict):
        raise SpecError(loc, f"expected a mapping of config fields, got {_kind(value)}")
    locs = {k: loc_of(value, k, loc) for k in value}
    return MappingProxyType(dict(value)), MappingProxyType(locs)


def _block_ref(value, loc: Loc) -> BlockRef:
    """A block given as `name` or `{block: name, config: {...}}`."""
    if isinstance(value, str):
        return BlockRef(_name(value, loc), MappingProxyType({}), loc, loc, MappingProxyType({}))
    m = _mapping(value, loc, ("block", "config"), required=("block",))
    cloc = loc_of(m, "config", loc)
    config, locs = _config(m.get("config"), cloc)
    return BlockRef(_name(m["block"], loc_of(m, "block", loc)), config, loc_of(m, "block", loc), cloc, locs)


def _block_list(value, loc: Loc) -> tuple[BlockRef, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError(loc, f"expected a list of blocks, got {_kind(value)}")
    return tuple(_block_ref(v, loc_of(value, i, loc)) for i, v in enumerate(value))


def _optional_norm(m, key: str, loc: Loc, default: BlockRef | None) -> BlockRef | None:
    if key not in m:
        return default
    return None if m[key] is None else _block_ref(m[key], loc_of(m, key, loc))


# ---------------------------------------------------------------- sections

def _model(value, loc: Loc) -> ModelDims:
    m = _mapping(value, loc, ("d_model", "seq_len", "vocab", "dropout", "dropout_mask"), required=("d_model", "seq_len"))
    vocab = m.get("vocab", "data")
    vloc = loc_of(m, "vocab", loc)
    if vocab != "data":
        if isinstance(vocab, bool) or not isinstance(vocab, int):
            raise SpecError(vloc, f"expected an integer or 'data', got {_kind(vocab)}")
        vocab = _int(vocab, vloc, lo=2)
    return ModelDims(
        d_model=_int(m["d_model"], loc_of(m, "d_model", loc), lo=1),
        seq_len=_int(m["seq_len"], loc_of(m, "seq_len", loc), lo=1),
        vocab=None if vocab == "data" else vocab,
        dropout=_float(m.get("dropout", 0.0), loc_of(m, "dropout", loc), lo=0.0, hi=1.0),
        dropout_mask=_choice(m.get("dropout_mask", "auto"), loc_of(m, "dropout_mask", loc), DROPOUT_MASKS),
        loc=loc,
    )


def _sublayer(value, loc: Loc, depth: int, stack_norm: BlockRef | None) -> Sublayer:
    if isinstance(value, str):  # a bare block name: that block with its defaults
        value = {"block": value}
    m = _mapping(value, loc, ("block", "config", "norm", "scale"), required=("block",))
    bloc, cloc = loc_of(m, "block", loc), loc_of(m, "config", loc)
    raw = m["block"]
    if isinstance(raw, list):  # per-layer choice: the list is the whole stack, or a pattern that tiles it
        if not raw:
            raise SpecError(bloc, "the per-layer block list is empty")
        if depth % len(raw):
            raise SpecError(bloc, f"a per-layer list of {len(raw)} blocks does not tile depth {depth}",
                            "give one name per layer, or a pattern whose length divides depth")
        names = [_name(v, loc_of(raw, i, bloc)) for i, v in enumerate(raw)]
        configs = _mapping(m.get("config") or {}, cloc, tuple(dict.fromkeys(names)))
        refs = []
        for i, n in enumerate(names):
            c, cl = _config(configs.get(n), loc_of(configs, n, cloc))
            refs.append(BlockRef(n, c, loc_of(raw, i, bloc), loc_of(configs, n, cloc), cl))
        blocks = tuple(refs[i % len(refs)] for i in range(depth))
    else:
        ref = _block_ref({"block": raw, "config": m.get("config")}, loc)
        ref = BlockRef(ref.name, ref.config, bloc, cloc, ref.config_locs)
        blocks = (ref,) * depth
    scale = m.get("scale")
    if scale is not None:
        scale = _float(scale, loc_of(m, "scale", loc))
    return Sublayer(blocks, _optional_norm(m, "norm", loc, stack_norm), scale, loc)


def _stack(value, loc: Loc) -> Stack:
    m = _mapping(value, loc, ("depth", "norm", "sublayers"), required=("depth", "sublayers"))
    depth = _int(m["depth"], loc_of(m, "depth", loc), lo=1)
    norm = _optional_norm(m, "norm", loc, None)
    subs, sloc = m["sublayers"], loc_of(m, "sublayers", loc)
    if not isinstance(subs, list) or not subs:
        raise SpecError(sloc, "expected a non-empty list of sublayers")
    return Stack(depth, tuple(_sublayer(s, loc_of(subs, i, sloc), depth, norm) for i, s in enumerate(subs)), loc)


def _graph_node(name: str, value, loc: Loc) -> GraphNode:
    _name(name, loc, "a node name (letters, digits, _)")
    if name in RESERVED:
        raise SpecError(loc, f"'{name}' is a reserved node name", "reserved: " + ", ".join(RESERVED))
    m = _mapping(value, loc, ("block", "config", "in", "add", "scale", "layer"))
    layer = _int(m.get("layer", 0), loc_of(m, "layer", loc), lo=0)
    if ("block" in m) == ("add" in m):
        raise SpecError(loc, "a node needs exactly one of 'block' (with 'in') or 'add'")
    if "add" in m:
        for k in ("config", "in"):
            if k in m:
                raise SpecError(loc_of(m, k, loc), f"'{k}' does not apply to an add node")
        src, aloc = m["add"], loc_of(m, "add", loc)
        if not isinstance(src, list) or len(src) != 2:
            raise SpecError(aloc, "expected [residual, branch]: a list of two node names")
        scale = m.get("scale")
        scale = None if scale is None else _float(scale, loc_of(m, "scale", loc))
        ilocs = tuple(loc_of(src, i, aloc) for i in range(2))
        ins = tuple(_name(s, l, "a node name") for s, l in zip(src, ilocs))
        return GraphNode(name, None, ins, ilocs, scale, layer, loc)
    if "scale" in m:
        raise SpecError(loc_of(m, "scale", loc), "'scale' applies only to an add node")
    if "in" not in m:
        raise SpecError(loc, "missing required key 'in' (the node feeding this block)")
    iloc = loc_of(m, "in", loc)
    ref = _block_ref({"block": m["block"], "config": m.get("config")}, loc)
    ref = BlockRef(ref.name, ref.config, loc_of(m, "block", loc), loc_of(m, "config", loc), ref.config_locs)
    return GraphNode(name, ref, (_name(m["in"], iloc, "a node name"),), (iloc,), None, layer, loc)


def _embedding(value, loc: Loc) -> tuple[BlockRef, tuple[BlockRef, ...]]:
    if value is None:
        return BlockRef("embedding", MappingProxyType({}), loc, loc, MappingProxyType({})), ()
    m = _mapping(value, loc, ("block", "config", "blocks"))
    ref = _block_ref({"block": m.get("block", "embedding"), "config": m.get("config")}, loc)
    ref = BlockRef(ref.name, ref.config, loc_of(m, "block", loc), loc_of(m, "config", loc), ref.config_locs)
    return ref, _block_list(m.get("blocks"), loc_of(m, "blocks", loc))


def _head(value, loc: Loc) -> Head:
    m = _mapping(value if value is not None else {}, loc, ("in", "blocks", "tied"))
    src = m.get("in")
    sloc = loc_of(m, "in", loc)
    return Head(None if src is None else _name(src, sloc, "a node name"), sloc,
                _block_list(m.get("blocks"), loc_of(m, "blocks", loc)),
                _bool(m.get("tied", True), loc_of(m, "tied", loc)), loc)


DROPOUT_MASKS = ("auto", "complex", "real")
TOP_KEYS = ("model", "embedding", "stack", "nodes", "head", "task", "train")


def _settings(cls, m, key: str, root: Loc):
    """The typed `task:` or `train:` section (absent: the defaults)."""
    if key not in m or m[key] is None:
        return cls()
    loc = loc_of(m, key, root)
    value = m[key]
    if not isinstance(value, dict):
        raise SpecError(loc, f"expected a mapping, got {_kind(value)}")
    return coerce.coerce(cls, value, loc, {k: loc_of(value, k, loc) for k in value}, what="key")


def parse(doc, file: str = "<spec>") -> Spec:
    """Typed Spec from a located YAML document (see yamlloc)."""
    root = getattr(doc, "loc", Loc(file, 1))
    m = _mapping(doc, root, TOP_KEYS, required=("model",))
    if ("stack" in m) == ("nodes" in m):
        raise SpecError(root, "a spec needs exactly one of 'stack' (layers) or 'nodes' (an explicit graph)")
    stack = nodes = None
    if "stack" in m:
        stack = _stack(m["stack"], loc_of(m, "stack", root))
    else:
        nloc = loc_of(m, "nodes", root)
        raw = _mapping(m["nodes"], nloc, m["nodes"] if isinstance(m["nodes"], dict) else ())
        if not raw:
            raise SpecError(nloc, "expected at least one node")
        nodes = tuple(_graph_node(k, v, loc_of(raw, k, nloc)) for k, v in raw.items())
    head = _head(m.get("head"), loc_of(m, "head", root))
    if stack is not None and head.source is not None:
        raise SpecError(head.source_loc, "'in' applies only to the 'nodes' form")
    emb, emb_blocks = _embedding(m.get("embedding"), loc_of(m, "embedding", root))
    train = _settings(TrainConfig, m, "train", root)
    return Spec(file, _model(m["model"], loc_of(m, "model", root)), emb, emb_blocks, stack, nodes,
                head, _settings(TaskConfig, m, "task", root), train)


def parse_text(text: str, file: str = "<spec>") -> Spec:
    return parse(load_text(text, file), file)


def load_spec(path) -> Spec:
    return parse(load_file(path), str(path))
