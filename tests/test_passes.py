"""The pass pipeline: validate, shapes and cost as pure functions over the IR."""
import dataclasses

import pytest
from helpers import stub_block

from archsearch import registry

from archsearch.build import build
from archsearch.compiler import compile_spec, compile_text
from archsearch.errors import SpecError
from archsearch.passes import PASSES, run_passes, shapes, validate
from archsearch.spec import parse_text

TINY = """
model: {d_model: 16, seq_len: 8, vocab: 20}
embedding: {config: {positions: learned}}
stack:
  depth: 2
  norm: layernorm
  sublayers:
    - {block: softmax_attention, config: {heads: 2}, scale: 0.1}
    - {block: mlp, config: {expansion: 2}}
head: {blocks: [layernorm], tied: true}
"""


def test_pipeline_is_one_literal_list():
    assert [name for name, _ in PASSES] == ["validate", "shapes", "cost"]


def test_validate_turns_configs_into_block_configs():
    ir = validate(build(parse_text(TINY)))
    cfg = ir.node("l0.softmax_attention").config
    assert dataclasses.is_dataclass(cfg) and cfg.heads == 2 and cfg.rope is False
    assert ir.node("l0.mlp").meta["kind"] == "channel"
    assert ir.node("embed").config.positions == "learned"


def test_passes_are_pure():
    ir = build(parse_text(TINY))
    after = run_passes(ir)
    assert ir.node("l0.mlp").config == {"expansion": 2} and not ir.node("l0.mlp").meta and not ir.meta
    assert after.meta["params"] > 0


def test_shapes_annotates_every_node():
    ir = shapes(validate(build(parse_text(TINY))))
    assert ir.node("input").meta["shape"] == ("B", "T")
    assert ir.node("l1.mlp.add").meta["shape"] == ("B", "T", 16)
    assert ir.node("output").meta["shape"] == ("B", "T", 20)


def test_cost_by_hand():
    ir = compile_text(TINY)
    d, t, v, h = 16, 8, 20, 32
    attn_params = 4 * d * d + 3 * d + d
    mlp_params = 2 * d * h + h + d
    assert ir.node("embed").meta["params"] == v * d + t * d
    assert ir.node("l0.softmax_attention").meta["params"] == attn_params
    assert ir.node("l0.softmax_attention.add").meta["params"] == 1  # the learned residual scalar
    assert ir.node("l0.mlp.add").meta["params"] == 0
    assert ir.node("l0.mlp").meta["params"] == mlp_params
    assert ir.node("output").meta == {**ir.node("output").meta, "params": 0, "flops": 2 * v * d}
    norms = 5 * 2 * d
    assert ir.meta["params"] == v * d + t * d + 2 * (attn_params + 1 + mlp_params) + norms
    # attention: projections 2·d·3d + 2·d·d, causal scores+mix averaged over t = 1..T: 4·d·(T+1)/2
    attn_flops = 2 * d * 3 * d + 2 * d * d + 2 * d * (t + 1)
    assert ir.node("l0.softmax_attention").meta["flops"] == attn_flops
    assert ir.meta["flops"] == 2 * (attn_flops + 4 * d * h) + 2 * v * d
    assert ir.meta["state_bytes"] == 2 * (2 * t * d * 4)  # fp32 K and V caches of two layers


def test_untied_head_costs_its_projection():
    ir = compile_text(TINY.replace("tied: true", "tied: false"))
    assert ir.node("output").meta["params"] == 20 * 16


def test_gpt2_100m_matches_the_paper(root):
    ir = compile_spec(str(root / "examples/gpt2_100m.yaml"))
    assert ir.meta["params"] == 100_283_232
    assert ir.meta["state_bytes"] == 12 * 2 * 2048 * 672 * 4


def test_complex_block_needs_even_width():
    registry.register(stub_block("test_complex_half", complex=True))
    with pytest.raises(SpecError, match="views the stream as complex and needs an even d_model, got 15"):
        compile_text("model: {d_model: 15, seq_len: 4, vocab: 9}\nstack: {depth: 1, sublayers: [test_complex_half]}\n")


def test_bad_cost_from_a_block_is_reported():
    registry.register(stub_block("test_broken_cost", cost={"params": 1.5, "flops": 0, "state_bytes": 0}))
    with pytest.raises(SpecError, match="block 'test_broken_cost': cost\\(\\) must return non-negative ints"):
        compile_text("model: {d_model: 8, seq_len: 4, vocab: 9}\nstack: {depth: 1, sublayers: [test_broken_cost]}\n")


def test_dump_after_each_pass():
    for name, _ in PASSES:
        seen = []
        compile_spec(parse_text(TINY, "t.yaml"), dump_after=name, echo=seen.append)
        assert len(seen) == 1 and seen[0].startswith("# IR of t.yaml")
    assert "kind=mixer" in seen[0] and "flops=" in seen[0]
