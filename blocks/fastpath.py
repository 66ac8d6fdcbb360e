"""Which form of a fast path runs: a Triton kernel (blocks/kernels) or its torch twin. The one owner of that choice
(DESIGN.md §10) and the only door to the Triton package; block files ask here and nowhere else.

- Mode: the parallel forms of a matrix memory (`mode` in pam and linear_attention); ModeChoice resolves `auto`.
- reference_forms(): inside it every choice falls on the torch twins. FLOPs are counted there (archsearch.flops),
  since a counter sees nothing inside a kernel.
- kernels_available(device): whether the kernels can run on `device` at all (what an explicit `mode: triton` needs).
- use_kernels(device): the one check a fast path asks: run the kernel here? A CUDA GPU that can run them, outside
  reference_forms(). On CPU the interpreter runs them only when a block asks for them by name (tests).
- fused_decode(): inside it a model's decode step runs each pre-norm residual sublayer x + s·block(complex_norm(x))
  of a CGU or a PAM as a few Triton kernels (the block's fused_sublayer_step, asked by archsearch.runtime: CGU 2,
  blocks/kernels/cgu_step.py; PAM 3, pam_step.pam_sublayer_step), and a PAM step outside that pattern as two
  (blocks/kernels/pam_step.py: projection with RoPE, then gates, state update and read), and the paper's head
  (complex norm → complex linear → complex norm → logits) as two (blocks/kernels/head_step.py: each norm the
  prologue of the GEMV after it) instead of their torch forms, where use_fused_decode(device) says so: the kernels
  can run on the device, no gradients, outside reference_forms(). Off unless entered; GraphedDecoder enters it by
  default where it is the quicker step, at batch 1 (archsearch.decode.FUSED_MAX_BATCH; the measurements: its
  docstring). The state is then updated in place.
- compiled_decode(): the one rule for a compiled decode step (traced by torch.compile, no gradients): blocks write
  their few-token work as products and sums that inductor fuses instead of launching kernels and GEMMs of their own.
- kernel(name, device): the kernel module blocks/kernels/<name>.py, or a one-line error where it cannot run.

Torch only: `export` copies this file beside the blocks, and an exported file has no kernel package, so
kernels_available() is False there and every block runs its torch twin.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Literal

import torch

Mode = Literal["auto", "recurrent", "dual", "chunked", "triton"]

_REFERENCE = [False]  # set inside reference_forms() only
_FUSED = [False]  # set inside fused_decode() only


@contextmanager
def _switched_on(switch: list):
    switch[0], before = True, switch[0]
    try:
        yield
    finally:
        switch[0] = before


def reference_forms():
    """Within this context every fast path runs its torch twin and `mode: auto` a pure-torch form."""
    return _switched_on(_REFERENCE)


def fused_decode():
    """Within this context a decode step runs the fused sublayer and PAM kernels where use_fused_decode() says so."""
    return _switched_on(_FUSED)


def _package():
    """blocks.kernels, or None where it cannot be imported (no Triton package here, or an exported file: no
    package at all). Imported inside a function so that importing a block never imports Triton."""
    try:
        from . import kernels
    except ImportError:
        return None
    return kernels


def kernels_available(device: torch.device) -> bool:
    package = _package()
    return package is not None and package.usable(device)


# Asked once while tracing, not a graph break in every compiled block: what torch.compiler.assume_constant_result
# does, without its import of torch._dynamo (1.5 s of every process's start; tests/test_fastpath.py checks the mark).
kernels_available._dynamo_marked_constant = True


def use_kernels(device: torch.device) -> bool:
    return device.type == "cuda" and not _REFERENCE[0] and kernels_available(device)


def use_fused_decode(device: torch.device) -> bool:
    return _FUSED[0] and not _REFERENCE[0] and not torch.is_grad_enabled() and kernels_available(device)


def compiled_decode() -> bool:
    return torch.compiler.is_compiling() and not torch.is_grad_enabled()


def mode_usable(mode: str, device) -> bool:
    """Whether a block's `mode` can run on `device` (only the Triton form has requirements)."""
    return mode != "triton" or kernels_available(torch.device(device))


def auto_mode(seq_len: int, chunk: int, device: torch.device) -> str:
    """The fastest form here: the Triton kernels where use_kernels() says so (benchmarks/mixers.py), else the faster
    pure-torch form as measured by benchmarks/mixer_forms.py (docs/performance.md): on an H200 the O(T²) dual form
    wins up to T = 1024 (fewer, larger kernels) and the chunked form beyond; on CPU the chunked form wins as soon as
    T exceeds one chunk."""
    if use_kernels(device):
        return "triton"
    limit = 16 * chunk if device.type == "cuda" else chunk
    return "dual" if seq_len <= limit else "chunked"


class ModeChoice:
    """What the matrix memories (PAM, linear attention) share about their `mode` field: whether a form runs on a
    device, and the form `auto` stands for."""

    mode_usable = staticmethod(mode_usable)

    def resolve_mode(self, seq_len: int, device: torch.device) -> str:
        if self.cfg.mode != "auto":
            return self.cfg.mode
        return auto_mode(seq_len, self.cfg.chunk, device)


def require_kernels(device) -> None:
    if not kernels_available(device):
        raise RuntimeError("mode 'triton' needs Triton and a CUDA GPU of compute capability 8.0 or newer (or "
                           "TRITON_INTERPRET=1 on CPU with a Triton "
                           "whose interpreter runs here); use mode 'auto'")


@functools.cache
def kernel_names() -> frozenset[str]:
    """The names of the Triton functions in blocks/kernels, or none where the package cannot be imported: its kernels,
    as a CUDA trace names them (archsearch profile's kinds of work), and its @triton.jit helpers, which are inlined
    and never launched, so never in a trace. Looked up once a process."""
    package = _package()
    if package is None:
        return frozenset()
    import importlib
    import pkgutil

    import triton.runtime

    names = set()
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        names |= {k for k, v in vars(module).items() if isinstance(v, triton.runtime.KernelInterface)}
    return frozenset(names)


def kernel(name: str, device: torch.device):
    """The kernel module blocks/kernels/<name>.py (its table entry names its torch twin: blocks.kernels.TWINS).
    Raises a one-line error where the kernels cannot run on `device`."""
    require_kernels(device)
    from .kernels.ops import MODULES, register_fallbacks
    if torch.compiler.is_compiling():  # inductor lowers their custom ops next: its fallbacks first (ops.py)
        register_fallbacks()
    return MODULES[name]
