"""Losses read a step late: in order, all of them by the end, and none held when the lag is 0."""
import torch

from archsearch.loss_queue import LossQueue


def test_take_leaves_the_latest_lag_steps_and_everything_reads_the_rest():
    q = LossQueue(torch.device("cpu"))
    q.put(1, torch.tensor(2.5))
    assert q.take() == []
    q.put(2, torch.tensor(float("nan")))
    q.put(3, torch.tensor(1.0))
    first = q.take()
    assert first == [(1, 2.5), (2, first[1][1])] and first[1][1] != first[1][1]  # NaN, read as a float
    assert q.take(everything=True) == [(3, 1.0)] and q.take(everything=True) == []


def test_lag_zero_reads_each_loss_as_it_is_put():
    q = LossQueue(torch.device("cpu"), lag=0)
    q.put(1, torch.tensor(3.0, requires_grad=True) * 2)
    assert q.take() == [(1, 6.0)]
