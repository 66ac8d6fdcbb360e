"""The block contract, run over every registered block (built-in, dropped into blocks/, or in $ARCHSEARCH_BLOCKS)."""
import pytest
from helpers import stub_block

from archsearch import registry
from archsearch.testing import CHECKS, check_block, run_check


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", registry.names())
def test_contract(name, check):
    run_check(registry.get(name), check)


def test_example_custom_block_passes_the_contract(root):
    found = registry.load_dir(root / "examples/custom_block")
    check_block(next(c for c in found if c.name == "short_conv"))


def test_a_broken_block_fails_the_contract():
    import torch
    from torch import nn

    def init(self, cfg, *, d_model):
        nn.Module.__init__(self)
        self.w = nn.Parameter(torch.ones(d_model))

    # mixes in the next token (acausal), and its cost under-reports its parameters
    peeks = stub_block("test_peeks", __init__=init, forward=lambda self, x: x * self.w + torch.roll(x, -1, 1))
    with pytest.raises(AssertionError, match="test_peeks: causality: changing x\\[t\\+1:\\] moved y"):
        run_check(peeks, "causality")
    with pytest.raises(AssertionError, match="test_peeks: params: built 32 parameters, analytic 0"):
        run_check(peeks, "params")
