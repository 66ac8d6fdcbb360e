"""Triton kernels for the matrix-state memories (issue 7). Optional: nothing here is imported unless a block runs
`mode: triton` (or `auto` on a CUDA GPU with Triton installed); the pure-torch forms in linear_core stay the
reference and the CPU path. Exported model files do not carry these kernels (they import torch only).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os

import torch


def _version(package: str) -> tuple:
    try:
        return tuple(int(p) for p in importlib.metadata.version(package).split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return (0, 0)


def interpreter_works() -> bool:
    """Triton 3.6's interpreter fails on numpy ≥ 2.4 (a loop bound read as a 1-element array: triton-lang/triton
    #9171); 3.9 is checked to run these kernels with numpy 2.4."""
    return _version("numpy") < (2, 4) or _version("triton") >= (3, 9)


def usable(device: torch.device) -> bool:
    """Whether the kernels can run on `device`: Triton installed, and a CUDA device or a working interpreter."""
    if importlib.util.find_spec("triton") is None:
        return False
    if device.type == "cuda":
        return True
    return os.environ.get("TRITON_INTERPRET") == "1" and interpreter_works()
