"""Evaluation arithmetic: windows cover a split exactly once; perplexity and bits per byte by hand."""
import math

import numpy as np
import torch
from torch import nn

from archsearch.data.lm import eval_windows
from archsearch.tasks import LMTask


class FixedDistribution(nn.Module):
    """Predicts the same next-token distribution everywhere."""

    def __init__(self, probs):
        super().__init__()
        self.logits = torch.log(torch.tensor(probs))

    def forward(self, ids):
        return self.logits.expand(*ids.shape, -1)


def test_windows_predict_every_token_once():
    stream = np.arange(1000) % 97
    for seq_len, batch in [(64, 3), (100, 4), (999, 1), (2000, 2)]:
        targets = torch.cat([y.flatten() for _, y in eval_windows(stream, seq_len, batch)])
        assert targets.tolist() == stream[1:].tolist()
        for x, y in eval_windows(stream, seq_len, batch):
            assert torch.equal(x[:, 1:], y[:, :-1])  # inputs are the targets shifted: context from the window only


def test_perplexity_and_bits_per_byte_by_hand():
    # stream: separator, then tokens 1 2 1 0 1; predicted: 1 2 1 0 1 with p = (0.5, 0.25, 0.25)
    streams = {"validation": np.array([2, 1, 2, 1, 0, 1])}
    task = LMTask.from_streams(streams, {"validation": 7}, vocab_size=3)
    got = task.evaluate(FixedDistribution([0.5, 0.25, 0.25]), seq_len=2, device="cpu")
    nll = -(4 * math.log(0.25) + math.log(0.5))
    assert got["tokens"] == 5 and got["full"]
    assert math.isclose(got["loss"], nll / 5, rel_tol=1e-6) and math.isclose(got["ppl"], math.exp(nll / 5), rel_tol=1e-6)
    assert math.isclose(got["bpb"], nll / math.log(2) / 7, rel_tol=1e-6)


def test_uniform_model_has_perplexity_vocab():
    streams = {"validation": np.random.default_rng(0).integers(0, 50, 777)}
    task = LMTask.from_streams(streams, {"validation": 1000}, vocab_size=50)
    got = task.evaluate(FixedDistribution([1 / 50] * 50), seq_len=64, device="cpu")
    assert math.isclose(got["ppl"], 50, rel_tol=1e-5)


def test_capped_evaluation_reports_a_prefix():
    streams = {"validation": np.zeros(1000, dtype=np.int64)}
    task = LMTask.from_streams(streams, {"validation": 1000}, vocab_size=2)
    got = task.evaluate(FixedDistribution([0.5, 0.5]), seq_len=10, device="cpu", max_tokens=95)
    assert got["tokens"] == 95 and not got["full"]
