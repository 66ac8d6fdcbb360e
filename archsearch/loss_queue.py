"""Each training step's loss, read on the host a step late. Reading it at once (`.item()`) makes the host wait for the
GPU to finish the step, and the GPU then waits while Python clips the gradients, steps the optimiser, samples and
copies the next batch: on the H200 the scaling ladder's 20M steps took about 3 ms longer than the same step timed
back to back (benchmarks/rungs.py). Queued, the copy of step s's loss lands in page-locked memory while step s + 1 is
already on its way, and the host waits only for the step before the one it has just queued."""
from __future__ import annotations

from collections import deque

import torch


class LossQueue:
    def __init__(self, device: torch.device, lag: int = 1):
        """lag: how many of the latest steps take() leaves unread (0: every loss is read as soon as it is put)."""
        self.cuda = device.type == "cuda"
        self.lag = lag
        self.queue = deque()

    def put(self, step: int, loss: torch.Tensor) -> None:
        """Queue `loss` (a 0-d tensor on the device; nothing waits for it here) as step `step`'s."""
        if self.cuda:
            host = torch.empty((), dtype=loss.dtype, pin_memory=True)
            host.copy_(loss.detach(), non_blocking=True)
            done = torch.cuda.Event()
            done.record(torch.cuda.current_stream(loss.device))  # the copy's stream: the loss's device, not the current
            self.queue.append((step, host, done))
        else:
            self.queue.append((step, loss.detach(), None))

    def take(self, everything: bool = False) -> list[tuple[int, float]]:
        """[(step, loss)] of every step put but the latest `lag` (all of them if `everything`), oldest first; waits
        for each one's copy, and so for its step, not for any step queued after it."""
        out = []
        while len(self.queue) > (0 if everything else self.lag):
            step, host, done = self.queue.popleft()
            if done is not None:
                done.synchronize()
            out.append((step, host.item()))
        return out
