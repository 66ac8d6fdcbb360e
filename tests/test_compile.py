"""Blocks under torch.compile with the aot_eager backend (AOTAutograd traces forward and backward, no C++ compiler
needed): the compiled forward equals eager and its gradients match. A stride that eager and the traced graph disagree
on (softplus's backward once) fails here rather than in a user's compiled training run."""
import pytest
import torch

from blocks.linear_attention import LinearAttention
from blocks.pam import PAM


@pytest.mark.parametrize("cls, cfg", [
    (PAM, {"gsp": "head"}), (PAM, {"gsp": "off"}), (PAM, {"gsp": "channel"}), (LinearAttention, {"gsp": "head"}),
])
def test_compiled_block_matches_eager_forward_and_backward(cls, cfg):
    torch.manual_seed(0)
    block = cls(cls.Config(heads=2, head_dim=8, **cfg), d_model=32)
    x = torch.randn(2, 100, 32, requires_grad=True)
    out = {}
    for name, fn in (("eager", block), ("compiled", torch.compile(block, backend="aot_eager", fullgraph=False))):
        x.grad = None
        block.zero_grad()
        y = fn(x)
        y.square().sum().backward()
        out[name] = [y.detach(), x.grad.clone()] + [p.grad.clone() for p in block.parameters()]
    for a, b in zip(out["compiled"], out["eager"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
