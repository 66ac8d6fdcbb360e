"""linear_attention against the paper's equations, written out per step here rather than taken from linear_core, so a
fault shared by every form (they all go through _project) shows up."""
import math

import pytest
import torch

from blocks.linear_attention import LinearAttention


def _by_hand(m: LinearAttention, x: torch.Tensor) -> torch.Tensor:
    """S_t = γ'_t S_{t−1} + k_tᵀ ((1 − p_t)·v_t), y_t = q_t S_t / √d; γ = exp(−softplus(w·x + b)), p = σ(W_p x + b_p),
    γ' = mean over channels of γ(1 − p) + p. Float64, no RoPE."""
    b, t, _ = x.shape
    h, d = m.heads, m.head_dim
    x = x.double()
    q, k, v = (x @ m.qkv.weight.double().T).view(b, t, 3, h, d).unbind(2)  # each [B, T, H, d]
    gamma = torch.exp(-torch.nn.functional.softplus(x @ m.gates.decay.weight.double().T
                                                    + m.gates.decay.bias.double()))  # [B, T, H]
    p = torch.sigmoid(x @ m.gates.gsp.weight.double().T + m.gates.gsp.bias.double()).view(b, t, h, -1)
    p = p.expand(b, t, h, d)  # a per-head p scales every channel of that head's value
    gamma = (gamma[..., None] * (1 - p) + p).mean(-1)
    s = torch.zeros(b, h, d, d, dtype=torch.float64)
    ys = []
    for i in range(t):
        write = k[:, i, :, :, None] * ((1 - p[:, i]) * v[:, i])[:, :, None, :]
        s = gamma[:, i, :, None, None] * s + write
        ys.append(torch.einsum("bhd,bhde->bhe", q[:, i], s) / math.sqrt(d))
    y = torch.stack(ys, 1).reshape(b, t, h * d)
    return y @ m.out.weight.double().T


@pytest.mark.parametrize("gsp", ["head", "channel"])
@pytest.mark.parametrize("mode", ["recurrent", "dual", "chunked"])
def test_every_form_matches_the_equations_by_hand(gsp, mode):
    torch.manual_seed(0)
    cfg = LinearAttention.Config(heads=2, head_dim=8, chunk=4, rope=False, gsp=gsp, gsp_bias=0.0, mode=mode)
    m = LinearAttention(cfg, d_model=12)
    for lin in (m.gates.gsp, m.gates.decay):  # gates far from their init, so (1 − p) differs channel to channel
        torch.nn.init.normal_(lin.weight, 0.0, 0.5)
    x = torch.randn(2, 9, 12)
    torch.testing.assert_close(m(x).double(), _by_hand(m, x), rtol=1e-4, atol=1e-5)


def test_the_step_matches_the_equations_by_hand():
    torch.manual_seed(1)
    m = LinearAttention(LinearAttention.Config(heads=2, head_dim=8, rope=False, gsp_bias=0.0), d_model=12)
    torch.nn.init.normal_(m.gates.gsp.weight, 0.0, 0.5)
    x = torch.randn(1, 6, 12)
    state, ys = m.init_state(1), []
    for i in range(6):
        y, state = m.step(x[:, i], state)
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys, 1).double(), _by_hand(m, x), rtol=1e-4, atol=1e-5)
