"""ComplexLinear keeps nothing derived from its weights between calls; frozen_weights() builds the block matrices
once for a decode and drops them on exit."""
import pytest
import torch

from blocks.complex import ComplexLinear, frozen_weights


def _block(lin: ComplexLinear) -> torch.Tensor:
    return torch.cat([torch.cat([lin.wr, -lin.wi], 1), torch.cat([lin.wi, lin.wr], 1)], 0).detach()


def test_every_call_reads_the_current_weights():
    torch.manual_seed(0)
    lin = ComplexLinear(4, 3)
    x = torch.randn(2, 8)
    with torch.no_grad():
        y = lin(x)
        lin.wi.data.add_(1.0)  # a change no version counter sees (.data, as a fused optimiser's step)
        assert torch.equal(lin.block_matrix(), _block(lin)) and not torch.equal(lin(x), y)
    assert not lin.__dict__.get("_frozen")


def test_frozen_weights_build_once_and_are_dropped_on_exit():
    torch.manual_seed(0)
    model = torch.nn.Sequential(ComplexLinear(4, 4), ComplexLinear(4, 2))
    x = torch.randn(2, 8)
    with torch.no_grad():
        plain = model(x)
    with frozen_weights(model) as built, torch.no_grad():
        assert len(built) == 2 and model[0].block_matrix() is built[0]
        assert torch.equal(model(x), plain)
        with pytest.raises(RuntimeError, match="frozen_weights\\(\\) is for inference"), torch.enable_grad():
            model(x)
    assert all("_frozen" not in m.__dict__ for m in model)  # nothing left on the modules
    with torch.no_grad():
        model[0].wr.add_(1.0)
        assert not torch.equal(model(x), plain)
