"""Language-modelling windows over a token stream: random training windows, and non-overlapping evaluation windows
that cover a whole split so every token after the first is predicted exactly once."""
from __future__ import annotations

import numpy as np
import torch


def train_batch(stream: np.ndarray, batch: int, seq_len: int, rng: np.random.Generator):
    """`batch` random windows: inputs [batch, T] and next-token targets [batch, T]."""
    starts = rng.integers(0, len(stream) - seq_len - 1, size=batch)
    rows = np.stack([np.asarray(stream[s:s + seq_len + 1], dtype=np.int64) for s in starts])
    t = torch.from_numpy(rows)
    return t[:, :-1], t[:, 1:]


def eval_windows(stream: np.ndarray, seq_len: int, batch: int, max_tokens: int | None = None):
    """Non-overlapping windows in order: window i predicts tokens i·T+1 … i·T+T from the tokens before them inside
    the window. The last window may be shorter. Yields (inputs [b, t], targets [b, t]); windows of equal length are
    batched together."""
    n = len(stream) - 1 if max_tokens is None else min(len(stream) - 1, max_tokens)
    full, rest = divmod(n, seq_len)
    arr = np.asarray(stream[: n + 1], dtype=np.int64)
    for i in range(0, full, batch):
        k = min(batch, full - i)
        rows = np.stack([arr[(i + j) * seq_len:(i + j + 1) * seq_len + 1] for j in range(k)])
        t = torch.from_numpy(rows)
        yield t[:, :-1], t[:, 1:]
    if rest:
        t = torch.from_numpy(arr[full * seq_len:][None])
        yield t[:, :-1], t[:, 1:]
