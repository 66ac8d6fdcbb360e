"""Tile choices per kernel: the key (BK) and value (BV) tile widths, warps and pipeline stages; the chunk length is
fixed by the caller (64 by default).

By default every kernel runs its first candidate (64 × 64 tiles, 4 warps, 2 stages): what the complex-pair numbers
in docs/performance.md used. ARCHSEARCH_KERNEL_TUNING=1 autotunes over all candidates (each is compiled on the first
use of a shape). Opt-in because an earlier form of the complex-pair kernels crashed with an illegal address under
autotuning (suspected: a `%` in the column swap, since rewritten) and the rewrite has not been autotuned on a GPU.
fp32 inputs mean a check run (ieee products): first candidate only. Under the Triton interpreter (CPU tests) one
small config, since every candidate would run in Python."""
from __future__ import annotations

import itertools
import os

import triton

CANDIDATES = {  # (BK, BV) tiles per kernel; the first is the untuned default
    "states": [(64, 64), (32, 64), (64, 128)],
    "output": [(64, 64), (128, 64), (128, 128)],
    "dv": [(64, 64), (128, 64), (128, 128)],
    "dqk": [(64, 64), (32, 64), (64, 128)],
}


def configs(kind: str) -> list:
    if os.environ.get("TRITON_INTERPRET") == "1":
        return [triton.Config({"BK": 32, "BV": 32}, num_warps=4)]
    return [triton.Config({"BK": bk, "BV": bv}, num_warps=w, num_stages=s)
            for (bk, bv), w, s in itertools.product(CANDIDATES[kind], (4, 8), (2, 3))]


def prune(configs_, named_args, **kwargs) -> list:
    """The first candidate, unless tuning is switched on (and the run is not an fp32 check)."""
    check = named_args.get("PREC", kwargs.get("PREC")) == "ieee"
    return configs_ if os.environ.get("ARCHSEARCH_KERNEL_TUNING") == "1" and not check else configs_[:1]


PRUNE = {"early_config_prune": prune}
