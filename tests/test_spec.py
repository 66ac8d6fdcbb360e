"""Spec parsing: pure functions from YAML text to typed, frozen data."""
import subprocess
import sys
from dataclasses import FrozenInstanceError

import pytest

from archsearch.errors import SpecError
from archsearch.spec import parse_text

HYBRID = """
model: {d_model: 64, seq_len: 32}
embedding:
  config: {positions: learned}
  blocks: [rmsnorm]
stack:
  depth: 4
  norm: layernorm
  sublayers:
    - block: mlp
      scale: 1.0
    - block: [softmax_attention, mlp]
      config:
        softmax_attention: {heads: 4}
      norm: rmsnorm
      scale: 0.1
head: {blocks: [layernorm, {block: rmsnorm, config: {eps: 0.001}}], tied: false}
"""


def test_stack_with_pattern_and_overrides():
    s = parse_text(HYBRID, "h.yaml")
    assert s.model.vocab is None and s.model.d_model == 64 and s.model.dropout == 0.0
    assert s.embedding.name == "embedding" and s.embedding.config["positions"] == "learned"
    assert [b.name for b in s.embedding_blocks] == ["rmsnorm"]
    first, second = s.stack.sublayers
    assert first.norm.name == "layernorm" and first.scale == 1.0
    assert [b.name for b in second.blocks] == ["softmax_attention", "mlp"] * 2
    assert second.blocks[0].config == {"heads": 4} and second.blocks[1].config == {}
    assert second.norm.name == "rmsnorm" and second.scale == 0.1
    assert not s.head.tied and s.head.blocks[1].config == {"eps": 0.001}


def test_locations_point_at_lines():
    s = parse_text(HYBRID, "h.yaml")
    ref = s.stack.sublayers[1].blocks[0]
    assert (ref.loc.line, ref.loc.path) == (12, "stack.sublayers[1].block[0]")
    assert s.stack.sublayers[1].blocks[0].config_locs["heads"].line == 14


def test_full_per_layer_list_and_null_norm():
    s = parse_text("""
model: {d_model: 8, seq_len: 4, vocab: 10}
stack:
  depth: 3
  norm: rmsnorm
  sublayers:
    - {block: [mlp, swiglu, mlp], norm: null}
""")
    sub = s.stack.sublayers[0]
    assert [b.name for b in sub.blocks] == ["mlp", "swiglu", "mlp"] and sub.norm is None and sub.scale is None


def test_graph_form():
    s = parse_text("""
model: {d_model: 8, seq_len: 4, vocab: 10}
nodes:
  a: {block: mlp, in: embed, layer: 2}
  r: {add: [embed, a], scale: 0.5}
head: {in: r}
""")
    a, r = s.nodes
    assert a.block.name == "mlp" and a.inputs == ("embed",) and a.layer == 2
    assert r.block is None and r.inputs == ("embed", "a") and r.scale == 0.5
    assert s.head.source == "r" and s.head.tied


def test_spec_is_frozen():
    s = parse_text(HYBRID)
    with pytest.raises(FrozenInstanceError):
        s.model.d_model = 3
    with pytest.raises(TypeError):
        s.stack.sublayers[1].blocks[0].config["heads"] = 2


def test_bad_value_raises_spec_error_with_location():
    with pytest.raises(SpecError) as e:
        parse_text("model: {d_model: 8, seq_len: x}\nstack: {depth: 1, sublayers: [mlp]}\n", "f.yaml")
    assert str(e.value) == "f.yaml:1: model.seq_len: expected an integer, got a string"


def test_import_spec_does_not_import_torch():
    code = "import sys, archsearch.spec, archsearch.build, archsearch.ir; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_compile_and_cuda_graph_may_both_be_on():
    """A compiled micro-step is captured as one CUDA graph (the fastest training step on a GPU, docs/performance.md)."""
    s = parse_text(HYBRID + "train: {compile: true, cuda_graph: true}\n", "h.yaml")
    assert s.train.compile and s.train.cuda_graph
