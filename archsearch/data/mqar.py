"""Multi-query associative recall (MQAR): the standard probe of how much a memory can store and retrieve.

A sequence starts with n key-value pairs (k1 v1 k2 v2 …); later, each key appears again once, at a gap drawn from a
power law (short gaps likelier), and the model must output its value at that position. Keys come from the lower
half of the vocabulary, values from the upper half; everything else is token 0 and is not scored. Accuracy counts
query positions only.
"""
from __future__ import annotations

import numpy as np
import torch

IGNORE = -100


def batch(n: int, seq_len: int, num_kv_pairs: int, vocab: int, power_a: float = 0.01,
          rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences: inputs [n, seq_len] (int64) and targets [n, seq_len] with IGNORE off the query positions."""
    rng = rng or np.random.default_rng(0)
    context = 2 * num_kv_pairs
    space = (seq_len - context) // 2  # query slots: every other position after the pairs
    if space < num_kv_pairs:
        raise ValueError(f"mqar: seq_len {seq_len} is too short for {num_kv_pairs} pairs (needs {4 * num_kv_pairs})")
    half = vocab // 2
    if half - 1 < num_kv_pairs:
        raise ValueError(f"mqar: vocab {vocab} has too few keys for {num_kv_pairs} distinct pairs")
    # Vectorised over rows (per-row rng.choice calls took 6.7 ms for 128 sequences, longer than a small model's
    # graphed GPU step): distinct keys are the first num_kv_pairs of a random permutation, and the query slots are
    # drawn without replacement with probabilities p by the Gumbel-top-k trick (the law of successive weighted draws).
    keys = rng.random((n, half - 1)).argsort(1)[:, :num_kv_pairs] + 1
    values = rng.integers(half, vocab, size=(n, num_kv_pairs))
    p = power_a * np.arange(1, space + 1, dtype=np.float64) ** (power_a - 1)
    gumbel = -np.log(-np.log(rng.random((n, space))))
    slots = np.argsort(-(np.log(p) + gumbel), axis=1)[:, :num_kv_pairs]
    inputs = np.zeros((n, seq_len), dtype=np.int64)
    targets = np.full((n, seq_len), IGNORE, dtype=np.int64)
    inputs[:, 0:context:2], inputs[:, 1:context:2] = keys, values
    rows = np.arange(n)[:, None]
    pos = context + 2 * slots
    inputs[rows, pos] = keys
    targets[rows, pos] = values
    return torch.from_numpy(inputs), torch.from_numpy(targets)


def floors(inputs: torch.Tensor, targets: torch.Tensor, num_kv_pairs: int) -> dict:
    """What a model without associative recall can score on these sequences: `uniform`, the expected accuracy of
    guessing among the context's values (1/num_kv_pairs); `positional`, the accuracy of answering the j-th query with
    the j-th pair's value (query order follows pair order more often than chance: gaps are power-law, and the pairs'
    slots are drawn in order)."""
    mask = targets != IGNORE
    values = inputs[:, 1:2 * num_kv_pairs:2]  # [n, pairs], in pair order
    answers = targets[mask].view(len(targets), num_kv_pairs)  # row-major: each sequence's queries in position order
    return {"uniform": 1.0 / num_kv_pairs, "positional": (answers == values).float().mean().item()}
