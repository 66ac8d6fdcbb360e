"""blocks/kernels/ops.py: every custom op has inductor's fallback before a compile lowers it, so inductor never
writes out an op's arguments (exponential in the depth of a chain of custom ops: a decode step's head, after 16
layers, stalled its compile on the GPU's torch)."""
from __future__ import annotations

import logging

import pytest
import torch

pytest.importorskip("triton")

from blocks import fastpath  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_every_custom_op_has_the_fallback_inductor_would_make():
    from torch._inductor import lowering
    from torch._library.utils import get_layout_constraint_tag

    from blocks.kernels import ops as kernel_ops

    ops = kernel_ops.custom_ops()
    assert len(ops) >= 14 and {op.name() for op in ops} >= {"archsearch::head_normed_linear",
                                                             "archsearch::residual_linear"}
    for op in ops:  # the layout constraint inductor's own fallback takes: the op's tag, else the custom ops' default
        assert op in lowering.lowerings, op
        want = lowering.tag_to_layout_constraint(get_layout_constraint_tag(op, with_default=True))
        assert lowering.maybe_layout_constraints(op) is want, op


@pytest.mark.skipif(not fastpath.kernels_available(DEVICE), reason="needs Triton (and a GPU or a working interpreter)")
def test_a_compiled_chain_of_custom_ops_never_writes_out_their_arguments(monkeypatch):
    # inductor's INFO log builds the text that torch 2.11 builds for every first fallback of an op
    from torch._inductor import exc

    written = []
    monkeypatch.setattr(exc.OperatorIssue, "operator_str", staticmethod(lambda target, *_: written.append(target)))
    sublayer = fastpath.kernel("sublayer", DEVICE)
    gen = torch.Generator().manual_seed(0)
    r, wr, wi = (torch.randn(shape, generator=gen).to(DEVICE) for shape in ((1, 16), (8, 8), (8, 8)))

    def chain(r):
        for _ in range(4):  # each output both the residual and the input of the next
            r = sublayer.residual_linear(r, r, wr, wi, None)
        return r

    torch.compiler.reset()
    torch._logging.set_logs(inductor=logging.INFO)
    try:
        with torch._inductor.config.patch(force_disable_caches=True):  # a cached graph is not lowered again
            got = torch.compile(chain)(r)
    finally:
        torch._logging.set_logs()
    torch.testing.assert_close(got, chain(r))
    assert not [t for t in written if "archsearch" in str(t)], written
