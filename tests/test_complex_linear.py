"""ComplexLinear keeps its real block matrix between calls without gradients, and rebuilds it when weights change."""
import torch

from blocks.complex import ComplexLinear


def test_block_matrix_is_kept_without_gradients_and_rebuilt_after_a_change():
    torch.manual_seed(0)
    lin = ComplexLinear(4, 3)
    x = torch.randn(2, 8)
    with torch.no_grad():
        first = lin.block_matrix()
        assert lin.block_matrix() is first  # kept
        y = lin(x)
        lin.wi.add_(1.0)  # an in-place update (an optimiser step, load_state_dict) bumps the version
        rebuilt = lin.block_matrix()
    assert rebuilt is not first and not torch.equal(rebuilt, first)
    fresh = torch.cat([torch.cat([lin.wr, -lin.wi], 1), torch.cat([lin.wi, lin.wr], 1)], 0)
    assert torch.equal(rebuilt, fresh.detach())
    out = lin(x)  # with gradients: built afresh each call, so it trains
    assert out.requires_grad and not torch.equal(out.detach(), y)
