"""The IR: a networkx DiGraph of frozen Node records, plus the model's dimensions. Plain data, no torch.

Four node ops: `input` (token ids), `block` (a registered block), `add` (residual add, optionally with a learned
scalar on the branch) and `output` (logits, tied to the embedding table or not). Passes never mutate an IR; they
return a new one whose nodes carry their results in `meta`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

import networkx as nx

from .errors import Loc

OPS = ("input", "block", "add", "output")


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...] = ()
    block: str | None = None
    config: Any = None  # raw mapping from the spec; the validate pass replaces it with the block's Config
    scale: float | None = None  # add: initial value of the learned scalar on the branch; None = plain add
    layer: int = 0
    section: str = "body"  # embedding | body | head: where the node sits in the model
    loc: Loc = field(default_factory=Loc)
    config_loc: Loc | None = None
    config_locs: Mapping[str, Loc] = field(default_factory=dict)
    input_locs: tuple[Loc, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def with_meta(self, **kv) -> "Node":
        return replace(self, meta=MappingProxyType({**self.meta, **kv}))


@dataclass(frozen=True)
class Model:
    """Model-wide facts that every pass and the lowering need."""

    d_model: int
    seq_len: int
    vocab: int
    dropout: float
    dropout_mask: str  # auto, complex or real (see spec.md; lower resolves auto)
    tied: bool
    n_layers: int
    file: str


class IR:
    """Nodes in a DiGraph (edge u → v when v reads u); `order` is a deterministic topological order."""

    def __init__(self, graph: nx.DiGraph, model: Model, meta: Mapping[str, Any] | None = None):
        self.graph, self.model = graph, model
        self.meta = MappingProxyType(dict(meta or {}))

    @classmethod
    def from_nodes(cls, nodes, model: Model, meta=None) -> "IR":
        g = nx.DiGraph()
        for i, n in enumerate(nodes):
            g.add_node(n.name, node=n, index=i)
        for n in nodes:
            for src in n.inputs:
                g.add_edge(src, n.name)
        return cls(g, model, meta)

    def node(self, name: str) -> Node:
        return self.graph.nodes[name]["node"]

    def __iter__(self):
        return iter(self.nodes())

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def nodes(self) -> list[Node]:
        """Nodes in topological order, ties broken by the order of the spec (needs a DAG: validate checks)."""
        index = nx.get_node_attributes(self.graph, "index")
        return [self.node(n) for n in nx.lexicographical_topological_sort(self.graph, key=index.__getitem__)]

    def spec_order(self) -> list[Node]:
        """Nodes in the order the spec declared them; defined even when the graph has a cycle."""
        return sorted((d["node"] for _, d in self.graph.nodes(data=True)), key=lambda n: self.graph.nodes[n.name]["index"])

    def replace(self, nodes: Mapping[str, Node] | None = None, **meta) -> "IR":
        """A new IR with some nodes swapped (same names and edges) and IR-level meta added."""
        g = self.graph.copy()
        for name, n in (nodes or {}).items():
            assert n.name == name and name in g, name
            g.nodes[name]["node"] = n
        return IR(g, self.model, {**self.meta, **meta})

    def dump(self) -> str:
        """A readable listing: one node per line in topological order, then the IR-level meta."""
        m = self.model
        lines = [f"# IR of {m.file}: d_model={m.d_model} seq_len={m.seq_len} vocab={m.vocab} "
                 f"layers={m.n_layers} tied={m.tied} dropout={m.dropout} dropout_mask={m.dropout_mask}"]
        try:
            nodes = self.nodes()
        except nx.NetworkXUnfeasible:
            nodes = self.spec_order()
        for n in nodes:
            what = n.op if n.op != "block" else f"{n.block}"
            cfg = n.config if n.config is None or isinstance(n.config, Mapping) else _fields(n.config)
            extra = f" {dict(cfg)}" if cfg else ""
            if n.scale is not None:
                extra += f" scale={n.scale}"
            ins = ", ".join(n.inputs)
            meta = "".join(f" {k}={v}" for k, v in n.meta.items())
            lines.append(f"%{n.name} = {what}({ins}){extra}{'  #' + meta if meta else ''}")
        for k, v in self.meta.items():
            lines.append(f"# {k} = {v}")
        return "\n".join(lines)


def _fields(cfg) -> dict:
    from dataclasses import fields
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}
