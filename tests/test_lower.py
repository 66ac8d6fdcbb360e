"""Lowering: IR → one nn.Module whose parameters match the analytic count and whose decode matches its forward."""
import pytest
import torch

from archsearch.compiler import compile_spec, compile_text
from archsearch.lower import lower

HYBRID = """
model: {d_model: 32, seq_len: 12, vocab: 40}
embedding: {config: {positions: learned}, blocks: [rmsnorm]}
stack:
  depth: 3
  norm: rmsnorm
  sublayers:
    - block: [softmax_attention, mlp, softmax_attention]
      config:
        softmax_attention: {heads: 4, rope: true}
      scale: 0.5
    - {block: swiglu, config: {expansion: 2}}
head: {blocks: [layernorm], tied: false}
"""


def _model(text=HYBRID, seed=0):
    torch.manual_seed(seed)
    return compile_text(text), lower(compile_text(text))


def test_built_params_equal_analytic():
    ir, model = _model()
    assert sum(p.numel() for p in model.parameters()) == ir.meta["params"]


@pytest.mark.parametrize("path", ["examples/gpt2_100m.yaml"])
def test_examples_build_with_analytic_param_count(root, path):
    ir = compile_spec(str(root / path))
    with torch.device("meta"):  # no memory needed to count
        model = lower(ir)
    assert sum(p.numel() for p in model.parameters()) == ir.meta["params"]


def test_forward_shape_and_causality():
    _, model = _model()
    model.eval()
    ids = torch.randint(0, 40, (2, 12))
    y = model(ids)
    assert y.shape == (2, 12, 40) and torch.isfinite(y).all()
    ids2 = ids.clone()
    ids2[:, 7:] = (ids2[:, 7:] + 1) % 40
    assert torch.equal(model(ids2)[:, :7], y[:, :7])


def test_step_decode_matches_forward():
    _, model = _model()
    model.eval()
    ids = torch.randint(0, 40, (3, 12))
    with torch.no_grad():
        full = model(ids)
        state = model.init_state(3)
        steps = []
        for t in range(12):
            logits, state = model.step(ids[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-5, atol=1e-5)


def test_gradients_reach_every_parameter_and_scalar_init():
    _, model = _model()
    model(torch.randint(0, 40, (2, 12))).logsumexp(-1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert model.scales["l0__softmax_attention__add"].item() == 0.5


def test_tied_head_shares_the_embedding_table():
    ir = compile_text(HYBRID.replace("tied: false", "tied: true"))
    model = lower(ir)
    assert model.lm_head is None
    x = torch.randn(1, 1, 32)
    torch.testing.assert_close(model.logits(x), x @ model.blocks["embed"].weight.t())


def test_same_seed_same_weights():
    _, a = _model(seed=3)
    _, b = _model(seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


PAM = """
model: {d_model: 16, seq_len: 8, vocab: 40, dropout: 0.5, dropout_mask: MASK}
embedding: {blocks: [complex_norm]}
stack: {depth: 1, sublayers: [{block: pam, config: {heads: 2, head_dim: 4}}]}
"""


@pytest.mark.parametrize("text,mask,cls", [
    (PAM.replace("MASK", "auto"), "complex", "ComplexDropout"),
    (PAM.replace("MASK", "real"), "real", "Dropout"),
    (HYBRID.replace("vocab: 40}", "vocab: 40, dropout: 0.5}"), "real", "Dropout"),
    (HYBRID.replace("vocab: 40}", "vocab: 40, dropout: 0.5, dropout_mask: complex}"), "complex", "ComplexDropout"),
])
def test_dropout_mask_auto_is_complex_exactly_for_a_complex_stream(text, mask, cls):
    from archsearch.lower import model_config
    ir = compile_text(text)
    assert model_config(ir)["dropout_mask"] == mask and type(lower(ir).drop).__name__ == cls


def test_complex_dropout_drops_re_and_im_of_a_channel_together():
    model = lower(compile_text(PAM.replace("MASK", "complex"))).train()
    torch.manual_seed(0)
    y = model.drop(torch.ones(4, 8, 16))
    re, im = y[..., :8], y[..., 8:]
    assert torch.equal(re, im) and set(y.unique().tolist()) == {0.0, 2.0}  # kept channels scaled by 1/(1−p)
    assert 0.3 < (re == 0).float().mean() < 0.7
    assert torch.equal(model.eval().drop(torch.ones(2, 16)), torch.ones(2, 16))


def test_complex_dropout_needs_an_even_width():
    from archsearch.errors import SpecError
    with pytest.raises(SpecError, match="model.dropout_mask: 'complex' views the stream as complex"):
        compile_text(HYBRID.replace("d_model: 32, seq_len: 12, vocab: 40}", "d_model: 33, seq_len: 12, vocab: 40, "
                                    "dropout_mask: complex}").replace("heads: 4", "heads: 3"))
