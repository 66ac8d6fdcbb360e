"""Decode without per-layer Python overhead: a model's whole decode step captured once in a CUDA graph and replayed
per token. Every block's step has fixed shapes once its position counter is a device tensor: the
recurrent memories (pam, linear_attention, holographic) by construction, and softmax attention by attending over its
whole preallocated KV cache with the entries not yet written masked out — so a graphed attention step costs the
cache's length, whatever the context; pass a `state` whose caches are as long as the decode needs.

    dec = GraphedDecoder(model, batch=1, device=torch.device("cuda"), autocast=torch.bfloat16, compile=True)
    logits = dec(token_ids)          # [B] → [B, V]; the state advances inside the graph

A graph removes the CPU's per-op launch cost but still runs every small kernel of the step (a 100M PAM step is
~2,160 of them on an H200); `compile=True` first fuses the step with torch.compile (inductor), so the graph replays
far fewer (~440; ~280 with compile="max-autotune-no-cudagraphs", docs/performance.md). `fused=True` runs each
pre-norm CGU or PAM sublayer (complex_norm, the block, the scaled residual add) as two or three Triton kernels,
and the paper's head as two (blocks.fastpath.fused_decode; the default at batch 1, where it measured 2.1× quicker
than the compiled step on an H100; at batch 4 it measured 1.2× slower and at 64 4× slower, its one-token GEMVs
re-reading the weights for every 8 sequences, so larger batches default to the ops as written, fused=False).
The weights must not change after construction: the step is captured inside blocks.complex.frozen_weights, so the
graph reads complex block matrices built once, which the decoder keeps alive (the model itself keeps nothing); the
fused sublayer kernels read the complex layers' parameters Wr and Wi themselves (each weight once).

Position counters (Python ints in the eager state) become 0-d device tensors, so the graph reads and advances them
on the GPU; the state lives in fixed buffers that each replay updates in place.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from blocks import fastpath
from blocks.complex import frozen_weights

from .graph_step import compile_afresh

WARMUP_STEPS = 3  # eager steps on a side stream before capture (lazy caches, cuBLAS workspaces)
# the largest batch that decodes with the fused sublayer kernels by default (the docstring's measurements; batch 2 is
# not measured)
FUSED_MAX_BATCH = 1


def fused_by_default(batch: int) -> bool:
    """Whether GraphedDecoder(fused=None) decodes `batch` sequences with the fused sublayer kernels."""
    return batch <= FUSED_MAX_BATCH


def map_state(fn, state):
    """A decode state (nested tuples, lists and dicts of tensors and ints) with fn applied to every leaf."""
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(fn, s) for s in state)
    if isinstance(state, dict):
        return {k: map_state(fn, v) for k, v in state.items()}
    return fn(state)


def leaves(state):
    """The tensors of a decode state, in a fixed order."""
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, (tuple, list)):
        for s in state:
            yield from leaves(s)
    elif isinstance(state, dict):
        for s in state.values():
            yield from leaves(s)


def to_device_state(state, device):
    """The eager state with every Python int (a position counter) as a 0-d long tensor on `device`."""
    as_tensor = lambda x: torch.tensor(x, device=device, dtype=torch.long)  # noqa: E731
    return map_state(lambda x: as_tensor(x) if isinstance(x, int) and not isinstance(x, bool) else x, state)


def clone_state(state):
    return map_state(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, state)


def copy_state(dst, src) -> None:
    """Copy a state into buffers of the same structure, in place."""
    for d, s in zip(leaves(dst), leaves(src)):
        if d is not s:
            d.copy_(s)


def cut_caches(model, state, length: int):
    """`state` with every cache cut to its first `length` entries, by the blocks that keep one (`cut_cache`, e.g.
    softmax attention's KV cache); other blocks' states pass unchanged. A graphed attention step attends over its
    whole cache, so a GraphedDecoder(state=…) template should hold only what the decode needs. The cut states are
    views of the same buffers."""
    return {key: model.blocks[key].cut_cache(s, length) if hasattr(model.blocks[key], "cut_cache") else s
            for key, s in state.items()}


def _snapshot(model, state):
    """What a step changes that a later step reads: everything but the caches' entries (cut to none: entries past
    the position counter are masked until written again, so restoring the counter restores the cache). Copying a
    batch-64 32k cache instead would double the largest allocation of the decode."""
    return clone_state(cut_caches(model, state, 0))


def _restore(model, state, snapshot) -> None:
    copy_state(cut_caches(model, state, 0), snapshot)


def _step_and_update(model, tokens, state):
    logits, new = model.step(tokens, state)
    copy_state(state, new)
    return logits


class GraphedDecoder:
    """One CUDA graph of `model.step` at a fixed batch; call it with token ids [B] to get logits [B, V]."""

    def __init__(self, model, batch: int, device: torch.device, autocast: torch.dtype | None = None,
                 state_dtype: torch.dtype | None = None, compile: bool | str = False, state=None,
                 fused: bool | None = None):
        """`state`: the state buffers to decode in (taken over, not copied: e.g. KV caches cut to the length the
        decode needs, or a state already at some context), default model.init_state(batch). `compile`: True, or a
        torch.compile mode (e.g. "max-autotune-no-cudagraphs"; a mode with its own CUDA graphs would nest them).
        `fused`: True, the step traced and captured inside blocks.fastpath.fused_decode(), the fused sublayer
        kernels where they apply; False: the plain ops; None (default): fused_by_default(batch), the kernels up to
        FUSED_MAX_BATCH sequences only (measured above)."""
        if device.type != "cuda":
            raise ValueError(f"CUDA-graph decode needs a CUDA device, got {device}")
        self.model = model
        self._amp = (lambda: torch.autocast("cuda", dtype=autocast)) if autocast else nullcontext
        if fused is None:
            fused = fused_by_default(batch)
        self._forms = fastpath.fused_decode if fused else nullcontext
        template = model.init_state(batch, device=device, dtype=state_dtype) if state is None else state
        self.state = to_device_state(template, device)
        self.tokens = torch.zeros(batch, dtype=torch.long, device=device)
        start = _snapshot(model, self.state)
        self._body = _step_and_update
        with frozen_weights(model) as self._frozen:  # the graph reads these; the model drops them on exit
            if compile:
                with torch.no_grad(), self._amp(), self._forms():  # one eager step first: lazy initialisation
                    model.step(self.tokens, clone_state(self.state))
                mode = compile if isinstance(compile, str) else None
                self._body = compile_afresh(_step_and_update, dynamic=False, mode=mode)
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    self._step()
            torch.cuda.current_stream(device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.logits = self._step()
        _restore(model, self.state, start)  # capture ran the step once more; warm-up ran it three times

    def _step(self) -> torch.Tensor:
        with torch.no_grad(), self._amp(), self._forms():
            return self._body(self.model, self.tokens, self.state)

    def load(self, state) -> None:
        """Continue from an eager state (e.g. after a prefill), copied into the graph's buffers."""
        copy_state(self.state, to_device_state(state, self.tokens.device))

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] for the next tokens [B]; the returned tensor is overwritten by the next call."""
        self.tokens.copy_(tokens)
        self.graph.replay()
        return self.logits
