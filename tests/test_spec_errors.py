"""Malformed specs: each prints exactly one line `FILE:LINE: path: message (hint)` and exits with status 2."""
import subprocess
import sys

import pytest

from archsearch import cli

BASE = 'model: {d_model: 32, seq_len: 16, vocab: 50}\n'
STACK = 'stack:\n  depth: 2\n  sublayers:\n    - {block: mlp}\n'

# (name, spec text, expected message after "NAME.yaml")
CASES = [
    ('malformed_yaml', 'model: {d_model: 32\n',
     ":2: malformed YAML: expected ',' or '}', but got '<stream end>'"),
    ('empty', '',
     ':1: the document is empty'),
    ('not_mapping', '- 1\n- 2\n',
     ':1: expected a mapping, got a list'),
    ('duplicate_key', BASE + 'model: {d_model: 1}\n' + STACK,
     ':2: model: duplicate key'),
    ('unknown_top_key', BASE + STACK + 'heads: {}\n',
     ":6: heads: unknown key 'heads' (did you mean 'head'?)"),
    ('missing_model', STACK,
     ":1: missing required key 'model'"),
    ('no_body', 'model: {d_model: 32, seq_len: 16, vocab: 50}\n',
     ":1: a spec needs exactly one of 'stack' (layers) or 'nodes' (an explicit graph)"),
    ('both_bodies', BASE + STACK + 'nodes: {a: {block: mlp, in: embed}}\n',
     ":1: a spec needs exactly one of 'stack' (layers) or 'nodes' (an explicit graph)"),
    ('d_model_string', 'model: {d_model: big, seq_len: 16}\n' + STACK,
     ':1: model.d_model: expected an integer, got a string'),
    ('d_model_zero', 'model: {d_model: 0, seq_len: 16}\n' + STACK,
     ':1: model.d_model: must be >= 1, got 0'),
    ('seq_len_missing', 'model: {d_model: 32}\n' + STACK,
     ":1: model: missing required key 'seq_len'"),
    ('vocab_bad', 'model: {d_model: 32, seq_len: 16, vocab: lots}\n' + STACK,
     ":1: model.vocab: expected an integer or 'data', got a string"),
    ('dropout_range', 'model: {d_model: 32, seq_len: 16, dropout: 1.5}\n' + STACK,
     ':1: model.dropout: must be in [0.0, 1.0), got 1.5'),
    ('model_key_typo', 'model: {d_modle: 32, seq_len: 16}\n' + STACK,
     ":1: model.d_modle: unknown key 'd_modle' (did you mean 'd_model'?)"),
    ('depth_bool', BASE + 'stack:\n  depth: true\n  sublayers: [{block: mlp}]\n',
     ':3: stack.depth: expected an integer, got a boolean'),
    ('sublayers_empty', BASE + 'stack:\n  depth: 2\n  sublayers: []\n',
     ':4: stack.sublayers: expected a non-empty list of sublayers'),
    ('sublayer_key_typo', BASE + 'stack:\n  depth: 2\n  sublayers:\n    - {block: mlp, confg: {}}\n',
     ":5: stack.sublayers[0].confg: unknown key 'confg' (did you mean 'config'?)"),
    ('unknown_block', BASE + 'stack:\n  depth: 2\n  sublayers:\n    - {block: softmax_atention}\n',
     ":5: stack.sublayers[0].block: unknown block 'softmax_atention' (did you mean 'softmax_attention'?)"),
    ('unknown_config_field', BASE + 'stack:\n  depth: 2\n  sublayers:\n    - block: mlp\n      config: {expansoin: 2}\n',
     ":6: stack.sublayers[0].config.expansoin: unknown config field 'expansoin' (did you mean 'expansion'?)"),
    ('config_wrong_type', BASE + 'stack:\n  depth: 2\n  sublayers:\n    - block: mlp\n      config: {expansion: wide}\n',
     ":6: stack.sublayers[0].config.expansion: expected a number, got 'wide'"),
    ('config_bad_choice', BASE + 'stack:\n  depth: 2\n  sublayers:\n    - block: mlp\n      config: {activation: gleu}\n',
     ":6: stack.sublayers[0].config.activation: unknown choice 'gleu' (did you mean 'gelu'?)"),
    ('heads_divide', BASE + 'stack:\n  depth: 2\n  sublayers:\n    - block: softmax_attention\n      config: {heads: 5}\n',
     ':6: stack.sublayers[0].config.heads: 5 heads do not divide d_model 32 (or set head_dim)'),
    ('pattern_not_tiling', BASE + 'stack:\n  depth: 4\n  sublayers:\n    - block: [mlp, swiglu, mlp]\n',
     ':5: stack.sublayers[0].block: a per-layer list of 3 blocks does not tile depth 4 (give one name per layer, or a pattern whose length divides depth)'),
    ('pattern_config_unknown', BASE + 'stack:\n  depth: 2\n  sublayers:\n    - block: [mlp, swiglu]\n      config: {softmax_attention: {heads: 2}}\n',
     ":6: stack.sublayers[0].config.softmax_attention: unknown key 'softmax_attention' (expected one of: mlp, swiglu)"),
    ('scale_string', BASE + 'stack:\n  depth: 2\n  sublayers:\n    - {block: mlp, scale: big}\n',
     ':5: stack.sublayers[0].scale: expected a number, got a string'),
    ('norm_unknown', BASE + 'stack:\n  depth: 2\n  norm: layer_norm\n  sublayers:\n    - {block: mlp}\n',
     ":4: stack.norm: unknown block 'layer_norm' (did you mean 'layernorm'?)"),
    ('embedding_slot', BASE + 'embedding: {block: mlp}\n' + STACK,
     ":2: embedding.block: block 'mlp' is a channel, but the embedding slot needs an embedding block"),
    ('embedding_in_body', BASE + 'stack:\n  depth: 2\n  sublayers:\n    - {block: embedding}\n',
     ":5: stack.sublayers[0].block: 'embedding' is an embedding block; it can only be the model's embedding"),
    ('head_tied_type', BASE + STACK + 'head: {tied: yes please}\n',
     ':6: head.tied: expected true or false, got a string'),
    ('head_in_with_stack', BASE + STACK + 'head: {in: a}\n',
     ":6: head.in: 'in' applies only to the 'nodes' form"),
    ('graph_bad_ref', BASE + 'nodes:\n  a: {block: mlp, in: embed}\n  b: {add: [a, c]}\n',
     ":4: nodes.b.add[1]: unknown node 'c' (expected one of: a, b, embed)"),
    ('graph_cycle', BASE + 'nodes:\n  a: {block: mlp, in: b}\n  b: {block: mlp, in: a}\n  c: {add: [embed, b]}\n',
     ':3: nodes.a.block: the graph has a cycle: a → b → a'),
    ('graph_unused', BASE + 'nodes:\n  a: {block: mlp, in: embed}\n  b: {block: mlp, in: embed}\n  c: {add: [embed, b]}\n',
     ":3: nodes.a.block: node 'a' does not feed the output (remove it or use it)"),
    ('graph_reserved', BASE + 'nodes:\n  output: {block: mlp, in: embed}\n',
     ":3: nodes.output: 'output' is a reserved node name (reserved: input, embed, head, output)"),
    ('graph_both', BASE + 'nodes:\n  a: {block: mlp, add: [embed, embed], in: embed}\n',
     ":3: nodes.a: a node needs exactly one of 'block' (with 'in') or 'add'"),
    ('graph_add_arity', BASE + 'nodes:\n  a: {add: [embed]}\n',
     ':3: nodes.a.add: expected [residual, branch]: a list of two node names'),
    ('graph_missing_in', BASE + 'nodes:\n  a: {block: mlp}\n',
     ":3: nodes.a: missing required key 'in' (the node feeding this block)"),
    ('graph_self', BASE + 'nodes:\n  a: {block: mlp, in: a}\n',
     ":3: nodes.a.in: node 'a' reads itself"),
    ('head_in_unknown', BASE + 'nodes:\n  a: {block: mlp, in: embed}\nhead: {in: z}\n',
     ":4: head.in: unknown node 'z' (expected one of: a)"),
    ('vocab_data_no_vocab', 'model: {d_model: 32, seq_len: 16}\n' + STACK,
     ":1: model.vocab: is 'data' but no data vocabulary was given (pass --vocab N)"),
    ('tab_indent', BASE + 'stack:\n\tdepth: 2\n',
     ":3: malformed YAML: found character '\\t' that cannot start any token"),
    ('rope_odd', 'model: {d_model: 30, seq_len: 16, vocab: 50}\nstack:\n  depth: 1\n  sublayers:\n    - block: softmax_attention\n      config: {heads: 2, head_dim: 5, rope: true}\n',
     ':6: stack.sublayers[0].config.rope: needs an even head dim, got 5'),
]


@pytest.mark.parametrize("name,text,expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_spec_is_one_line_and_exit_2(name, text, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / f"{name}.yaml").write_text(text)
    assert cli.main(["compile", f"{name}.yaml"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{name}.yaml{expected}\n"


def test_enough_cases():
    assert len(CASES) >= 25


def test_missing_file(tmp_path, capsys):
    assert cli.main(["compile", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'nope.yaml'}: no such file\n"


def test_directory_instead_of_file(tmp_path, capsys):
    assert cli.main(["compile", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"{tmp_path}: is a directory, expected a YAML file\n"


def test_unknown_dump_pass(tmp_path, capsys):
    (tmp_path / "ok.yaml").write_text(BASE + STACK)
    assert cli.main(["compile", str(tmp_path / "ok.yaml"), "--dump-after", "shape"]) == 2
    assert capsys.readouterr().err == "--dump-after: unknown pass 'shape' (did you mean 'shapes'?)\n"


def test_real_process_exit_status_and_no_traceback(tmp_path):
    (tmp_path / "bad.yaml").write_text(BASE + "stack:\n  depth: 2\n  sublayers:\n    - {block: mlpp}\n")
    r = subprocess.run([sys.executable, "-m", "archsearch", "compile", "bad.yaml"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr == "bad.yaml:5: stack.sublayers[0].block: unknown block 'mlpp' (did you mean 'mlp'?)\n"
    assert "Traceback" not in r.stderr
