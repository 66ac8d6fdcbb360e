"""Triton kernels: the matrix-state memories (memory*.py), PAM's input preparation (complex_qkv.py) and decode
step (pam_step.py), the CGU's gate product (cgu.py) and decode sublayer (cgu_step.py), what the fused pre-norm
residual sublayers share (sublayer.py), the decode step's head (head_step.py) and the language-model loss
(cross_entropy.py). Optional: only
blocks/fastpath.py imports them, where fastpath.use_kernels() says they run (a CUDA GPU of compute capability ≥ 8.0
with Triton installed), a block asks for `mode: triton` or a decode step for fastpath.fused_decode(); their torch twins
stay the reference and the CPU path. Exported model files do not carry these kernels (they import torch only).

Each kernel (what a kernel module lists in `__all__`) names its torch twin in TWINS: a function in blocks/ with the
same arguments and result in plain torch, the obvious form the kernel is checked against (tests/test_kernel_twins.py
walks the table).
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os

import torch

TWINS = {  # kernel (module.function in blocks/kernels) → its torch twin (module.function in blocks/)
    "memory.chunked_memory": "linear_core.chunked",
    "memory.complex_pair_memory": "pam.pair_memory",
    "complex_qkv.complex_qkv": "pam.pair_qkv",
    "cgu.cgu_gate": "complex.gate_product",
    "cross_entropy.cross_entropy": "fused_loss.cross_entropy",
    "pam_step.pam_step": "pam.decode_step",
    "pam_step.pam_sublayer_step": "pam.sublayer_step",
    "cgu_step.cgu_sublayer_step": "complex.cgu_sublayer_step",
    "sublayer.residual_linear": "complex.residual_linear",
    "head_step.normed_complex_linear": "complex.normed_complex_linear",
    "head_step.normed_linear": "complex.normed_linear",
}


def _version(package: str) -> tuple:
    try:
        return tuple(int(p) for p in importlib.metadata.version(package).split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return (0, 0)


def interpreter_works() -> bool:
    """Triton 3.6's interpreter fails on numpy ≥ 2.4 (a loop bound read as a 1-element array: triton-lang/triton
    #9171); 3.9 is checked to run these kernels with numpy 2.4."""
    return _version("numpy") < (2, 4) or _version("triton") >= (3, 9)


MIN_CAPABILITY = (8, 0)  # bf16 tensor-core products (tl.dot on bf16) need Ampere or newer


def usable(device: torch.device) -> bool:
    """Whether the kernels can run on `device`: Triton installed, and a CUDA GPU of compute capability ≥ 8.0 or a
    working interpreter. Asked on every forward of every block that has kernels, so the answer is kept."""
    return _usable(device.type, device.index, os.environ.get("TRITON_INTERPRET"))


@functools.lru_cache(maxsize=None)
def _usable(kind: str, index: int | None, interpret: str | None) -> bool:
    if importlib.util.find_spec("triton") is None:
        return False
    if kind == "cuda":
        return torch.cuda.get_device_capability(index) >= MIN_CAPABILITY
    return interpret == "1" and interpreter_works()
