"""blocks/kernels/ops.py: under torch.compile every custom op gets inductor's fallback before inductor lowers it, so
inductor never writes out an op's arguments (exponential in the depth of a chain of custom ops: a decode step's head,
after 16 layers, stalled its compile on the GPU's torch), and eager use of the kernels never loads inductor. Checked in
a fresh process: once any compile in a process has lowered an op, its fallback exists whichever path made it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from blocks import fastpath

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# the kernels once eagerly, then a compiled chain of four residual_linear ops (each output both the residual and the
# input of the next) under inductor's INFO log, which makes torch 2.13 write out what torch 2.11 always writes out
SCRIPT = r"""
import json, logging, sys
import torch
from blocks import fastpath

device = torch.device(sys.argv[1])
gen = torch.Generator().manual_seed(0)
r, wr, wi = (torch.randn(shape, generator=gen).to(device) for shape in ((1, 16), (8, 8), (8, 8)))

def chain(r):
    sublayer = fastpath.kernel("sublayer", r.device)
    for _ in range(4):
        r = sublayer.residual_linear(r, r, wr, wi, None)
    return r

want = chain(r)
eager_loads_inductor = "torch._inductor.lowering" in sys.modules
from torch._inductor import exc, lowering
from torch._library.utils import get_layout_constraint_tag
from blocks.kernels.ops import custom_ops
written = []
exc.OperatorIssue.operator_str = staticmethod(lambda target, *_: written.append(str(target)) or "")
torch._logging.set_logs(inductor=logging.INFO)
with torch._inductor.config.patch(force_disable_caches=True):  # a graph from the disk cache is not lowered
    got = torch.compile(chain, fullgraph=True)(r)
torch._logging.set_logs()
print(json.dumps({
    "eager_loads_inductor": eager_loads_inductor, "written": written, "error": (got - want).abs().max().item(),
    "ops": len(custom_ops()),
    "not_as_inductor_would": [str(op) for op in custom_ops() if op not in lowering.lowerings
                              or lowering.maybe_layout_constraints(op)
                              is not lowering.tag_to_layout_constraint(get_layout_constraint_tag(op))]}))
"""


@pytest.mark.skipif(not fastpath.kernels_available(DEVICE), reason="needs Triton (and a GPU or a working interpreter)")
def test_a_compile_registers_every_ops_fallback_first_and_eager_use_never_loads_inductor(root):
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    if DEVICE.type == "cpu":
        env["TRITON_INTERPRET"] = "1"
    r = subprocess.run([sys.executable, "-c", SCRIPT, DEVICE.type], capture_output=True, text=True, cwd=root, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert not got["eager_loads_inductor"]
    assert not [t for t in got["written"] if "archsearch" in t], got["written"]  # none of ours written out
    assert got["error"] < 1e-5
    assert got["ops"] >= 14 and not got["not_as_inductor_would"], got
