"""The IR: building it from specs, topological order, the text dump, immutability under passes."""
import pytest

from archsearch.build import build
from archsearch.errors import SpecError
from archsearch.spec import parse_text

SPEC = """
model: {d_model: 16, seq_len: 8, vocab: 20}
embedding: {blocks: [rmsnorm]}
stack:
  depth: 2
  norm: rmsnorm
  sublayers:
    - {block: softmax_attention, config: {heads: 2}, scale: 0.1}
    - {block: mlp, norm: null}
head: {blocks: [rmsnorm]}
"""


def test_stack_expands_to_named_nodes_in_order():
    ir = build(parse_text(SPEC))
    assert [n.name for n in ir.nodes()] == [
        "input", "embed", "embed.rmsnorm",
        "l0.softmax_attention.norm", "l0.softmax_attention", "l0.softmax_attention.add", "l0.mlp", "l0.mlp.add",
        "l1.softmax_attention.norm", "l1.softmax_attention", "l1.softmax_attention.add", "l1.mlp", "l1.mlp.add",
        "head.rmsnorm", "output"]
    add = ir.node("l1.softmax_attention.add")
    assert add.op == "add" and add.inputs == ("l0.mlp.add", "l1.softmax_attention") and add.scale == 0.1
    assert ir.node("l1.mlp").layer == 1 and ir.model.n_layers == 2
    assert ir.node("l0.mlp").inputs == ("l0.softmax_attention.add",)  # norm: null → the block reads the stream


def test_repeated_block_names_get_numbers():
    ir = build(parse_text("""
model: {d_model: 8, seq_len: 4, vocab: 10}
stack: {depth: 1, sublayers: [{block: mlp}, {block: mlp}]}
"""))
    assert [n.name for n in ir.nodes() if n.op == "block"] == ["embed", "l0.mlp1", "l0.mlp2"]


def test_graph_order_follows_edges_not_listing():
    ir = build(parse_text("""
model: {d_model: 8, seq_len: 4, vocab: 10}
nodes:
  r: {add: [embed, a]}
  a: {block: mlp, in: embed}
"""))
    names = [n.name for n in ir.nodes()]
    assert names.index("a") < names.index("r") and names[-1] == "output"
    assert ir.node("output").inputs == ("a",)  # default head input: the last node listed


def test_vocab_from_data():
    spec = parse_text("model: {d_model: 8, seq_len: 4}\nstack: {depth: 1, sublayers: [mlp]}\n")
    assert build(spec, vocab=300).model.vocab == 300
    fixed = parse_text("model: {d_model: 8, seq_len: 4, vocab: 100}\nstack: {depth: 1, sublayers: [mlp]}\n")
    assert build(fixed).model.vocab == 100
    for data in (50, 300):  # 50 rows no token reaches (a silent waste), or tokens no row has
        with pytest.raises(SpecError, match=f"vocab: fixes 100 tokens but the data's tokenizer \\(or --vocab\\) has "
                                            f"{data}: write 'vocab: data'"):
            build(fixed, vocab=data)


def test_dump_and_replace_do_not_mutate():
    ir = build(parse_text(SPEC, "s.yaml"))
    node = ir.node("l0.mlp")
    ir2 = ir.replace({"l0.mlp": node.with_meta(params=7)}, total=1)
    assert "params" not in ir.node("l0.mlp").meta and ir2.node("l0.mlp").meta["params"] == 7
    assert ir2.meta["total"] == 1 and "total" not in ir.meta
    text = ir2.dump()
    assert text.splitlines()[0].startswith("# IR of s.yaml: d_model=16")
    assert "%l0.mlp = mlp(l0.softmax_attention.add)  # params=7" in text
    assert "%l0.softmax_attention.add = add(embed.rmsnorm, l0.softmax_attention) scale=0.1" in text
