"""Autotuning candidates per kernel: tiles of the key (BK) and value (BV) widths, warps and pipeline stages; the
chunk length is fixed by the caller (64 by default). fp32 inputs mean a check run (ieee products), which takes the
first candidate without tuning; under the Triton interpreter (CPU tests) there is one small config, since every
candidate would run in Python."""
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
    """Only the first candidate for fp32 (check) runs: their speed is not the point."""
    return configs_[:1] if named_args.get("PREC", kwargs.get("PREC")) == "ieee" else configs_


PRUNE = {"early_config_prune": prune}
