"""Tile choices per kernel: the key (BK) and value (BV) tile widths, warps and pipeline stages; the chunk length is
fixed by the caller (64 by default).

By default every kernel runs one config, launched directly: what autotuning picked on an H200 (DEFAULT), with the
chunk length 64. ARCHSEARCH_KERNEL_TUNING=1 tunes instead: the chunk length (32, 64 or 128, by timing the whole
forward + backward once per input shape, memory.py) and each kernel's tiles, warps and stages (Triton's autotuner,
per head shape and chunk count). Every candidate is compiled on the first use of a head shape (minutes) and timed on
the first use of each length, which a search over many shapes would pay again and again. Every candidate is checked
on a GPU by tests/test_gpu.py, since a tile choice can break a kernel that the default's does not (memory_fwd's
_swap_halves says how). fp32 inputs mean a check run (ieee products): the CHECK config only. Under the Triton
interpreter (CPU tests) one small config, since every candidate would run in Python."""
from __future__ import annotations

import functools
import itertools
import os
import statistics
import time

import torch
import triton

TILES = {  # (BK, BV) candidates per kernel for autotuning
    "fwd_states": [(32, 32), (64, 64), (32, 64), (64, 128)],  # narrow tiles: more programs where B·H is small
    "bwd_states": [(32, 64), (64, 64), (32, 32), (64, 128)],
    "fwd_output": [(128, 64), (64, 64), (128, 128)],
    "bwd_dv": [(128, 128), (64, 64), (128, 64)],
    # BK = K: no key tile recomputes da vᵀ. No 32-wide key tile: on an H100 (Triton 3.6) 32 × 64 at 8 warps hit an
    # illegal address (which leaves the process's CUDA context unusable: tests/test_gpu.py, 2026-12-07),
    # and an earlier form of the kernel computed wrong numbers at 32 × 64 there; every pick recorded was 64 × 128
    "bwd_dqk": [(64, 128), (64, 64), (128, 64), (128, 128)],
}
# what a direct launch runs, per kernel: autotuning's pick on an H200 at B·T = 32768, T = 2k–32k (the same at every
# length but for bwd_states at 32k; docs/kernels.md), as (tile, warps, stages)
DEFAULT = {"fwd_states": ((32, 32), 4, 3), "bwd_states": ((32, 64), 4, 2), "fwd_output": ((128, 64), 4, 3),
           "bwd_dv": ((128, 128), 4, 3), "bwd_dqk": ((64, 128), 4, 2)}
# fp32 check runs (ieee products): small tiles, as ptxas takes minutes over wide fp32 ones (bwd_dqk at 16-wide heads:
# 24 s at 64×64, 8 s at 32×32 for sm_90), and a check of a new head shape compiles every kernel
CHECK = ((32, 32), 4, 2)
INTERPRETED = {kind: ((32, 32), 4, 1) for kind in TILES}  # under the interpreter every candidate would run in Python


def _config(tile, warps, stages) -> triton.Config:
    return triton.Config({"BK": tile[0], "BV": tile[1]}, num_warps=warps, num_stages=stages)


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def candidates(kind: str) -> list:
    """One kernel's tuning candidates on a GPU as (tile, warps, stages): its default first."""
    rest = [c for c in itertools.product(TILES[kind], (4, 8), (2, 3)) if c != DEFAULT[kind]]
    return [DEFAULT[kind], *rest]


def configs(kind: str) -> list:
    """The autotuner's candidates for one kernel: its default first."""
    if _interpreted():
        return [_config(*INTERPRETED[kind])]
    return [_config(*c) for c in candidates(kind)]


def tuning_on() -> bool:
    return os.environ.get("ARCHSEARCH_KERNEL_TUNING") == "1"


def enabled(precision: str) -> bool:
    """Whether launches go through the autotuner: tuning switched on, and not an fp32 check (ieee products)."""
    return tuning_on() and precision != "ieee" and not _interpreted()


def fastest(candidates, run, device: torch.device, repeats: int = 3):
    """The candidate c whose run(c) takes least time: the median of `repeats` timed runs after one untimed warm-up
    run (which absorbs compiling and the tile autotuning). A candidate this GPU lacks the resources for is
    skipped."""
    times = {}
    for c in candidates:
        try:
            run(c)
            samples = []
            for _ in range(repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                run(c)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                samples.append(time.perf_counter() - start)
            times[c] = statistics.median(samples)
        except (triton.runtime.errors.OutOfResources, torch.OutOfMemoryError):
            continue
    if not times:
        raise RuntimeError(f"no candidate of {list(candidates)} could run on {device}")
    return min(times, key=times.get)


def direct(kind: str, precision: str) -> dict:
    """The launch arguments (tiles, warps, stages) of a direct launch of one kernel (kept: six launches per memory
    call ask, on the host time the core is bound by)."""
    return _direct(kind, precision, _interpreted())


@functools.lru_cache(maxsize=None)
def _direct(kind: str, precision: str, interpreted: bool) -> dict:
    choice = INTERPRETED[kind] if interpreted else CHECK if precision == "ieee" else DEFAULT[kind]
    return _config(*choice).all_kwargs()


def launch(kernel, grid, *args, **kwargs) -> None:
    """Through the autotuner when tuning is on; otherwise the kernel's default config, launched directly: the
    autotuner's per-call bookkeeping is host time, and the core at B=4, T=2048 is bound by host time."""
    if enabled(kwargs["PREC"]):
        kernel[grid](*args, **kwargs)
    else:
        kernel.fn[grid](*args, **kwargs, **direct(kernel.fn.__name__, kwargs["PREC"]))


def prune(configs_, named_args, **kwargs) -> list:
    """The default candidate, unless tuning is switched on (and the run is not an fp32 check)."""
    return configs_ if enabled(named_args.get("PREC", kwargs.get("PREC"))) else configs_[:1]


PRUNE = {"early_config_prune": prune}
