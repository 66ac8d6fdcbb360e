"""A training micro-step (forward, loss, backward) captured once as a CUDA graph and replayed for every later one
(`train.cuda_graph`). Replaying sends the GPU a step's hundreds of kernels at once, without Python launching each;
small models and the PAM kernels' launches are bound by exactly that host time (docs/performance.md).

The optimiser, gradient clipping, the divergence check and evaluations stay outside the graph. Gradients live in
fixed tensors that the captured backward adds into (zeroed in place between steps, never set to None), so gradient
accumulation works as in eager mode. A model the graph cannot hold (a host sync in its forward, say) is reported
in one line and trained eagerly. The model is captured with its loss (LMLoss, over blocks.fused_loss), compiled with
it under `train.compile`."""
from __future__ import annotations

import sys

import torch

from blocks.fused_loss import lm_loss


def compile_afresh(fn, **options):
    """torch.compile(fn, **options) as a new process would compile it: dynamo's caches of the models compiled before
    in this process are dropped first. They count against its recompile limit (8), past which it runs a model eagerly
    without an error, so the 9th model of a ladder call, a search or a benchmark would have trained uncompiled.
    Callables compiled earlier recompile on their next call (a captured CUDA graph replays without dynamo). Every
    compile of a model (training, profiling, decoding, the benchmarks) goes through here."""
    torch.compiler.reset()
    return torch.compile(fn, **options)


class LMLoss(torch.nn.Module):
    """A SequenceModel and its next-token loss as one module: (x, y) → lm_loss. Compiled whole (`train.compile`),
    model and loss stay one graph (the loss kernels are custom ops)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return lm_loss(self.model(x, keep_padding=True), y, self.model.vocab)


def micro_loss(loss_fn, amp, x: torch.Tensor, y: torch.Tensor, accum: int) -> torch.Tensor:
    """One micro-step of `accum`: loss_fn(x, y) (an LMLoss, perhaps compiled) under `amp`, whose backward (divided by
    `accum`) accumulates into .grad."""
    with amp:
        loss = loss_fn(x, y)
    (loss / accum).backward()
    return loss.detach()


class GraphedMicroStep:
    """micro_loss on CUDA as a graph: the first call warms up on a side stream and captures; later calls copy their
    batch into the captured inputs and replay. Returns the loss as a tensor (no sync) that the next call overwrites:
    use it, or copy it, before then."""

    WARMUP = 2  # eager runs before capture: lazy initialisation, Triton compiles, cuBLAS workspaces

    def __init__(self, loss_fn: torch.nn.Module, amp, accum: int, label: str = "train"):
        """loss_fn: an LMLoss, perhaps compiled."""
        self.loss_fn, self.amp, self.accum, self.label = loss_fn, amp, accum, label
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager = False  # capture failed: every step runs eagerly

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.eager:
            return micro_loss(self.loss_fn, self.amp, x, y, self.accum)
        if self.graph is None:
            self._capture(x, y)
            if self.eager:
                return micro_loss(self.loss_fn, self.amp, x, y, self.accum)
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return self.loss

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        params = [p for p in self.loss_fn.parameters() if p.requires_grad]
        # warm up on the very tensors the graph will read: a torch.compile'd model guards on its inputs' strides,
        # and a batch that is a view (strided) would otherwise recompile, and autotune, inside the capture
        self.x, self.y = x.clone(memory_format=torch.contiguous_format), y.clone(memory_format=torch.contiguous_format)
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        # the warm-up's dropout masks are given back to the random stream: the replays draw what eager steps would
        # from here, wherever the capture falls (a run resumed from its checkpoint captures again, at another step)
        rng = torch.cuda.get_rng_state(x.device)
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP):
                micro_loss(self.loss_fn, self.amp, self.x, self.y, self.accum)
        torch.cuda.current_stream(x.device).wait_stream(side)
        torch.cuda.set_rng_state(rng, x.device)
        for p in params:  # fixed gradient tensors for the captured backward to add into
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            else:
                p.grad.zero_()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.loss = micro_loss(self.loss_fn, self.amp, self.x, self.y, self.accum)
        except RuntimeError as e:  # out of memory too: the graph's private pool may not fit where eager steps do
            graph = self.loss = None  # releases the pool
            _end_rng_capture(x.device)
            torch.cuda.synchronize(x.device)
            torch.cuda.empty_cache()
            for p in params:
                p.grad.zero_()
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"{self.label}: cuda_graph: the training step could not be captured ({first}); training eagerly",
                  file=sys.stderr)
            self.eager = True
            return
        self.graph = graph


def _end_rng_capture(device: torch.device) -> None:
    """A capture that failed part-way never ran the CUDA generator's capture epilogue, so the generator still counts
    its offsets as inside a graph and the next random op on the device (dropout, in the eager steps that follow)
    raises "Offset increment outside graph capture". A clone of its state (same seed and offset) starts outside any
    capture."""
    gen = torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()]
    gen.graphsafe_set_state(gen.clone_state())
