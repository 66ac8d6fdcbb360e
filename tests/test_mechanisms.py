"""The science: what each memory can and cannot store. Each test runs the blocks' own memory code and can fail."""
import math

import pytest
import torch

from blocks import linear_core
from blocks.holographic import bind, unbind
from blocks.pam import complex_memory

MODES = ("recurrent", "dual", "chunked")


def _complex(*shape, gen):
    return torch.randn(*shape, generator=gen), torch.randn(*shape, generator=gen)


def _pam_recall(keys, values, queries, *, mode="dual", conjugate=True, chunk=8):
    """Write n (key, value) pairs with decay and GSP off, then read with each query. Split-real [n, d] pairs."""
    (kr, ki), (vr, vi), (qr, qi) = keys, values, queries
    n, d = kr.shape
    zeros = torch.zeros(n, d, dtype=kr.dtype)
    seq = lambda w, r: torch.cat([w, r])[None, None]  # noqa: E731 — [1, 1, 2n, d]: n writes, then n reads
    yr, yi = complex_memory(seq(zeros, qr), seq(zeros, qi), seq(kr, zeros), seq(ki, zeros), seq(vr, zeros),
                            seq(vi, zeros), torch.zeros(1, 1, 2 * n, dtype=kr.dtype), mode=mode, chunk=chunk,
                            conjugate=conjugate)
    return yr[0, 0, n:], yi[0, 0, n:]


def _unitary(d, gen):
    a = torch.complex(*_complex(d, d, gen=gen)).to(torch.complex128)
    q, _ = torch.linalg.qr(a)
    return q.real.float(), q.imag.float()  # columns are orthonormal: rows of the transpose are keys


def _rel_err(yr, yi, vr, vi):
    return (((yr - vr) ** 2 + (yi - vi) ** 2).sum(-1).sqrt() / (vr ** 2 + vi ** 2).sum(-1).sqrt()).mean().item()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 7, 16])
def test_pam_recalls_up_to_d_orthonormal_keys_exactly(mode, n):
    g, d = torch.Generator().manual_seed(n), 16
    ur, ui = _unitary(d, g)
    keys = (ur.T[:n].contiguous(), ui.T[:n].contiguous())
    values = _complex(n, d, gen=g)
    yr, yi = _pam_recall(keys, values, keys, mode=mode)
    assert (yr - values[0]).abs().max() <= 1e-5 and (yi - values[1]).abs().max() <= 1e-5


def test_pam_error_grows_past_d_random_keys():
    g, d = torch.Generator().manual_seed(0), 16
    errs = []
    for n in (d, 4 * d, 16 * d):
        kr, ki = _complex(n, d, gen=g)
        norm = (kr ** 2 + ki ** 2).sum(-1, keepdim=True).sqrt()
        keys, values = (kr / norm, ki / norm), _complex(n, d, gen=g)
        errs.append(_rel_err(*_pam_recall(keys, values, keys, mode="chunked"), *values))
    assert 0.3 < errs[0] < errs[1] < errs[2], errs


def test_the_conjugate_matters():
    g, d = torch.Generator().manual_seed(3), 16
    ur, ui = _unitary(d, g)
    keys, values = (ur.T.contiguous(), ui.T.contiguous()), _complex(d, d, gen=g)
    assert _rel_err(*_pam_recall(keys, values, keys, conjugate=True), *values) < 1e-5
    assert _rel_err(*_pam_recall(keys, values, keys, conjugate=False), *values) > 0.5


def _holographic_cosine(n, b, gen):
    """Mean cosine between retrieved and true values, n random-phase keys in one width-b complex state."""
    phase = torch.rand(n, b, generator=gen) * 2 * math.pi
    kr, ki = phase.cos(), phase.sin()
    vr, vi = _complex(n, b, gen=gen)
    state = linear_core.decayed_cumsum(bind(kr, ki, vr, vi)[None, None], torch.zeros(1, 1, n))[0, 0, -1]
    got = unbind(state.expand(n, 2 * b), kr, ki)
    true = torch.cat([vr, vi], -1)
    return torch.nn.functional.cosine_similarity(got, true, dim=-1).mean().item()


def test_holographic_recall_falls_like_one_over_sqrt_n():
    g, b = torch.Generator().manual_seed(0), 256
    ns = [4, 8, 16, 32, 64, 128, 256]
    cos = [sum(_holographic_cosine(n, b, g) for _ in range(4)) / 4 for n in ns]
    slope = torch.linalg.lstsq(torch.tensor([[math.log(n), 1.0] for n in ns]),
                               torch.tensor([[math.log(c)] for c in cos])).solution[0, 0].item()
    assert -0.65 <= slope <= -0.35, (slope, cos)


def test_pam_beats_holographic_at_equal_state_bytes():
    g, d, n = torch.Generator().manual_seed(1), 8, 8
    b = d * d  # a d×d complex matrix state holds as many bytes as a width-d² complex vector state
    kr, ki = _complex(n, d, gen=g)
    norm = (kr ** 2 + ki ** 2).sum(-1, keepdim=True).sqrt()
    keys, values = (kr / norm, ki / norm), _complex(n, d, gen=g)
    pam_err = _rel_err(*_pam_recall(keys, values, keys), *values)
    phase = torch.rand(n, b, generator=g) * 2 * math.pi
    hr, hi = phase.cos(), phase.sin()
    vr, vi = _complex(n, b, gen=g)
    state = bind(hr, hi, vr, vi).sum(0)
    got = unbind(state.expand(n, 2 * b), hr, hi)
    holo_err = _rel_err(got[:, :b], got[:, b:], vr, vi)
    assert pam_err < 0.5 * holo_err, (pam_err, holo_err)
