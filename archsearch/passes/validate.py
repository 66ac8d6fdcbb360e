"""validate: the IR is a DAG with the right arities, every block exists and its config is well typed and consistent
with the model's width. Replaces each block node's raw config with the block's Config instance."""
from __future__ import annotations

from dataclasses import replace

import networkx as nx

from .. import coerce, registry
from ..errors import SpecError
from ..ir import IR, Node

ARITY = {"input": 0, "block": 1, "add": 2, "output": 1}


def _check_graph(ir: IR) -> None:
    g = ir.graph
    if not nx.is_directed_acyclic_graph(g):
        cycle = [u for u, _ in nx.find_cycle(g)]
        first = min(cycle, key=lambda n: g.nodes[n]["index"])
        raise SpecError(ir.node(first).loc, "the graph has a cycle: " + " → ".join(cycle + [cycle[0]]))
    for n in ir.spec_order():
        if len(n.inputs) != ARITY[n.op]:
            raise SpecError(n.loc, f"a {n.op} node takes {ARITY[n.op]} input(s), got {len(n.inputs)}")
    used = nx.ancestors(g, "output") | {"output"}
    for n in ir.spec_order():
        if n.name not in used:
            raise SpecError(n.loc, f"node '{n.name}' does not feed the output", "remove it or use it")


def _check_block(ir: IR, n: Node) -> Node:
    cls = registry.get(n.block, n.loc)
    cloc = n.config_loc or n.loc
    cfg = coerce.coerce(cls.Config, n.config or {}, cloc, n.config_locs)
    d = ir.model.d_model
    if n.name == "embed" and cls.kind != "embedding":
        raise SpecError(n.loc, f"block '{n.block}' is a {cls.kind}, but the embedding slot needs an embedding block")
    if n.name != "embed" and cls.kind == "embedding":
        raise SpecError(n.loc, f"'{n.block}' is an embedding block; it can only be the model's embedding")
    if getattr(cls, "complex", False) and d % 2:
        raise SpecError(n.loc, f"block '{n.block}' views the stream as complex and needs an even d_model, got {d}")
    for field, message in (cls.check(cfg, d) if hasattr(cls, "check") else []):
        raise SpecError((n.config_locs.get(field) or cloc.child(field)) if field else cloc, message)
    return replace(n, config=cfg).with_meta(kind=cls.kind)


def validate(ir: IR) -> IR:
    _check_graph(ir)
    if ir.model.dropout_mask == "complex" and ir.model.d_model % 2:
        raise SpecError(ir.node("input").loc.child("dropout_mask"),
                        f"'complex' views the stream as complex and needs an even d_model, got {ir.model.d_model}")
    return ir.replace({n.name: _check_block(ir, n) for n in ir.nodes() if n.op == "block"})
