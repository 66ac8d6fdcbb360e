"""Spec → IR: expands the stack form into nodes and resolves node references. No torch, no registry."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace

from .errors import SpecError, unknown
from .ir import IR, Model, Node
from .spec import BlockRef, Spec


def _block(name: str, ref: BlockRef, src: str, *, layer: int, section: str) -> Node:
    return Node(name, "block", (src,), ref.name, ref.config, layer=layer, section=section, loc=ref.loc,
                config_loc=ref.config_loc, config_locs=ref.config_locs, input_locs=(ref.loc,))


def _chain(prefix: str, refs, src: str, *, section: str, out: list[Node]) -> str:
    """Append blocks applied one after another (embedding.blocks, head.blocks); returns the last node's name."""
    seen = Counter(r.name for r in refs)
    count = Counter()
    for ref in refs:
        count[ref.name] += 1
        name = f"{prefix}.{ref.name}" + (str(count[ref.name]) if seen[ref.name] > 1 else "")
        out.append(_block(name, ref, src, layer=0, section=section))
        src = name
    return src


def _stack_nodes(spec: Spec, src: str, out: list[Node]) -> str:
    subs = spec.stack.sublayers
    for i in range(spec.stack.depth):
        names = [s.blocks[i].name for s in subs]
        seen, count = Counter(names), Counter()
        for sub in subs:
            ref = sub.blocks[i]
            count[ref.name] += 1
            base = f"l{i}.{ref.name}" + (str(count[ref.name]) if seen[ref.name] > 1 else "")
            x = src
            if sub.norm is not None:
                out.append(_block(f"{base}.norm", sub.norm, x, layer=i, section="body"))
                x = f"{base}.norm"
            out.append(_block(base, ref, x, layer=i, section="body"))
            out.append(Node(f"{base}.add", "add", (src, base), scale=sub.scale, layer=i, loc=sub.loc,
                            input_locs=(sub.loc, sub.loc)))
            src = f"{base}.add"
    return src


def _graph_nodes(spec: Spec, embed_out: str, out: list[Node]) -> str:
    declared = {n.name for n in spec.nodes}
    for n in spec.nodes:
        ins = tuple(embed_out if s == "embed" else s for s in n.inputs)
        for s, loc in zip(n.inputs, n.input_locs):
            if s != "embed" and s not in declared:
                raise unknown(loc, "node", s, sorted(declared | {"embed"}))
            if s == n.name:
                raise SpecError(loc, f"node '{s}' reads itself")
        if n.block is None:
            out.append(Node(n.name, "add", ins, scale=n.scale, layer=n.layer, loc=n.loc, input_locs=n.input_locs))
        else:
            node = _block(n.name, n.block, ins[0], layer=n.layer, section="body")
            out.append(replace(node, input_locs=n.input_locs))
    head = spec.head
    if head.source is None:
        return spec.nodes[-1].name
    if head.source not in declared:
        raise unknown(head.source_loc, "node", head.source, sorted(declared))
    return head.source


def build(spec: Spec, vocab: int | None = None) -> IR:
    """The IR of a spec. `vocab` comes from the data's tokenizer when the spec says `vocab: data`."""
    m = spec.model
    if m.vocab is not None and vocab is not None and vocab != m.vocab:  # rows no token reaches, or tokens no row has
        raise SpecError(m.loc.child("vocab"), f"fixes {m.vocab} tokens but the data's tokenizer (or --vocab) has "
                                              f"{vocab}: write "
                                              "'vocab: data', or train with the tokenizer the spec was made for "
                                              "(task.tokenizer: gpt2 for GPT-2's 50257)")
    v = m.vocab if m.vocab is not None else vocab
    if v is None:
        raise SpecError(m.loc.child("vocab"), "is 'data' but no data vocabulary was given (pass --vocab N)")
    nodes = [Node("input", "input", loc=m.loc, section="embedding")]
    nodes.append(_block("embed", spec.embedding, "input", layer=0, section="embedding"))
    src = _chain("embed", spec.embedding_blocks, "embed", section="embedding", out=nodes)
    src = _stack_nodes(spec, src, nodes) if spec.stack is not None else _graph_nodes(spec, src, nodes)
    src = _chain("head", spec.head.blocks, src, section="head", out=nodes)
    nodes.append(Node("output", "output", (src,), loc=spec.head.loc, section="head", input_locs=(spec.head.loc,)))
    n_layers = spec.stack.depth if spec.stack is not None else 1 + max(n.layer for n in spec.nodes)
    model = Model(m.d_model, m.seq_len, v, m.dropout, m.dropout_mask, spec.head.tied, n_layers, spec.file)
    return IR.from_nodes(nodes, model)
