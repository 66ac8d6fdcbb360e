"""The loss kernel (blocks/kernels/cross_entropy.py) beyond its twin's contract (tests/test_kernel_twins.py): rows
over several column blocks, a zero gradient in the padding's columns and ignored rows, and nan for a target outside
the vocabulary. On CPU through Triton's interpreter, natively on a GPU."""
import pytest
import torch

from archsearch.testing import rel_error
from blocks import fastpath

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.skipif(not fastpath.kernels_available(torch.device(DEVICE)),
                                reason="needs Triton (and a GPU or a working interpreter)")


@pytest.mark.parametrize("width", [300, 320])  # the vocabulary alone, and padded past it (zeros, left out)
def test_cross_entropy_matches_torch(width):
    from blocks.kernels import cross_entropy

    gen = torch.Generator().manual_seed(0)
    vocab, lead = 300, (3, 45)  # rows over several column blocks of a small BLOCK (below)
    x = 4 * torch.randn(*lead, width, generator=gen, dtype=torch.float64)
    x[..., vocab:] = 0.0
    y = torch.randint(0, vocab, lead, generator=gen)
    y[0, :5], y[1, 0], y[1, 1] = -100, 0, vocab - 1  # ignored rows, the first and last classes
    ref_x = x.clone().requires_grad_()
    ref = torch.nn.functional.cross_entropy(ref_x[..., :vocab].flatten(0, 1), y.flatten()) * 0.37
    ref.backward()
    mine = x.float().to(DEVICE).requires_grad_()
    before, cross_entropy.BLOCK = cross_entropy.BLOCK, 128
    try:
        got = cross_entropy.cross_entropy(mine, y.to(DEVICE), vocab) * 0.37
        got.backward()
    finally:
        cross_entropy.BLOCK = before
    assert rel_error(got.detach().cpu(), ref.detach()) < 1e-6
    assert rel_error(mine.grad.cpu(), ref_x.grad) < 1e-5
    assert (mine.grad[..., vocab:] == 0).all() and (mine.grad[0, :5] == 0).all()
    y[2, 3] = vocab  # a token id the vocabulary does not have: nan, not a read past the row
    assert cross_entropy.cross_entropy(x.float().to(DEVICE), y.to(DEVICE), vocab).isnan()
