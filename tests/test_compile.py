"""Blocks under torch.compile with the aot_eager backend (AOTAutograd traces forward and backward, no C++ compiler
needed): the compiled forward equals eager and its gradients match. A stride that eager and the traced graph disagree
on (softplus's backward once) fails here rather than in a user's compiled training run."""
import pytest
import torch

from blocks.linear_attention import LinearAttention
from blocks.pam import PAM


def _assert_compiled_matches_eager(block, x: torch.Tensor, fullgraph: bool) -> None:
    """Output, input gradient and every parameter gradient of the compiled block equal eager's."""
    out = {}
    for name, fn in (("eager", block), ("compiled", torch.compile(block, backend="aot_eager", fullgraph=fullgraph))):
        x.grad = None
        block.zero_grad()
        y = fn(x)
        y.square().sum().backward()
        out[name] = [y.detach(), x.grad.clone()] + [p.grad.clone() for p in block.parameters()]
    for a, b in zip(out["compiled"], out["eager"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls, cfg", [
    (PAM, {"gsp": "head"}), (PAM, {"gsp": "off"}), (PAM, {"gsp": "channel"}), (LinearAttention, {"gsp": "head"}),
])
def test_compiled_block_matches_eager_forward_and_backward(cls, cfg):
    torch.manual_seed(0)
    block = cls(cls.Config(heads=2, head_dim=8, **cfg), d_model=32)
    _assert_compiled_matches_eager(block, torch.randn(2, 100, 32, requires_grad=True), fullgraph=False)


@pytest.mark.parametrize("cls, cfg", [(PAM, {"gsp": "channel"}), (PAM, {"gsp": "off"}), (LinearAttention, {})])
def test_kernels_compile_into_one_graph_and_match_eager(cls, cfg):
    """The Triton forms are custom ops to torch.compile: a block that runs them compiles without a graph break
    (fullgraph) and gives eager's output and gradients. On CPU the kernels run in Triton's interpreter."""
    from blocks import fastpath
    if not fastpath.mode_usable("triton", "cpu"):
        pytest.skip("the Triton interpreter does not run here")
    torch.manual_seed(0)
    block = cls(cls.Config(heads=2, head_dim=16, mode="triton", **cfg), d_model=64)
    _assert_compiled_matches_eager(block, torch.randn(2, 40, 64, requires_grad=True), fullgraph=True)


def test_kernels_available_carries_the_mark_that_assume_constant_result_sets():
    """fastpath marks kernels_available by hand (torch.compiler.assume_constant_result would import torch._dynamo
    at every start); if torch renames its mark, this fails instead of every compiled block breaking its graph."""
    from blocks import fastpath

    marked = torch.compiler.assume_constant_result(lambda: None)
    marks = {k for k in vars(marked)}
    assert marks and all(getattr(fastpath.kernels_available, k, None) is True for k in marks)
