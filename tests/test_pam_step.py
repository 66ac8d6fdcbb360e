"""PAM's fused decode step (blocks/kernels/pam_step.py, inside blocks.fastpath.fused_decode()) against PAM.step's torch
form, block by block: every config the block supports, in fp32 and in half precision, the state updated in place,
the policy that picks it, and a compiled step that keeps the kernels in one graph. The kernels run natively on a
GPU, through Triton's interpreter on CPU (tests/conftest.py). The twin contract is tests/test_kernel_twins.py's;
a model's decode with the switch on is tests/test_decode.py's."""
import pytest
import torch

from blocks import fastpath
from blocks.pam import PAM

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.skipif(not fastpath.kernels_available(DEVICE),
                                reason="needs Triton (and a GPU or a working interpreter)")
CONFIGS = [  # every rope, GSP, decay and conjugate option; head widths that are not powers of two, and state rows
    # over several programs of a head (pam_step.STATE_ROWS 16: 20 in 2 blocks, 33 in 3 with a last block of one row)
    {"heads": 2, "head_dim": 8},
    {"heads": 2, "head_dim": 8, "rope": "v2", "gsp": "channel", "decay": "none", "conjugate": False},
    {"heads": 2, "head_dim": 12, "rope": "none", "gsp": "off", "conjugate": False, "init": "gaussian"},
    {"heads": 1, "head_dim": 20, "gsp": "channel"},
    {"heads": 2, "head_dim": 33, "gsp": "head", "conjugate": False},
]


def _block(cfg: dict, dtype=torch.float32) -> PAM:
    torch.manual_seed(0)
    return PAM(PAM.Config(**cfg), d_model=32).to(DEVICE, dtype).eval()


def _steps(block: PAM, xs: torch.Tensor, fused: bool):
    """Each step's output, and the final state, of decoding xs [T, B, D] from a fresh state."""
    state, ys = block.init_state(xs.shape[1], device=DEVICE), []
    with torch.no_grad(), fastpath.fused_decode() if fused else torch.no_grad():
        for x in xs:
            y, state = block.step(x, state)
            ys.append(y)
    return torch.stack(ys), state


@pytest.mark.parametrize("cfg", CONFIGS)
def test_the_fused_step_gives_the_torch_steps_numbers(cfg):
    block = _block(cfg)
    xs = torch.randn(2, 2, 32, device=DEVICE)
    want, (wr, wi, wpos) = _steps(block, xs, fused=False)
    got, (sr, si, pos) = _steps(block, xs, fused=True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close((sr, si), (wr, wi), rtol=1e-5, atol=1e-6)
    assert pos == wpos == 2


def test_in_half_precision_the_fused_step_is_as_accurate_as_the_torch_step():
    """Weights and inputs in half precision (fp16 in the interpreter, bf16 on a GPU): against the fp64 torch step the
    fused step's error is within twice the torch step's own, plus 1e-3 (it accumulates in fp32 throughout)."""
    cfg = CONFIGS[1] | {"gsp": "head", "decay": "data"}
    half = torch.bfloat16 if DEVICE.type == "cuda" else torch.float16
    xs = torch.randn(2, 2, 32, device=DEVICE, dtype=torch.float64)
    ref, _ = _steps(_block(cfg, torch.float64), xs, fused=False)
    twin, _ = _steps(_block(cfg, half), xs.to(half), fused=False)
    got, _ = _steps(_block(cfg, half), xs.to(half), fused=True)
    err = lambda y: ((y.double() - ref).norm() / ref.norm()).item()  # noqa: E731
    assert err(got) <= 2 * err(twin) + 1e-3, (err(got), err(twin))


def test_the_state_is_updated_in_place_and_the_next_step_reads_it():
    block = _block(CONFIGS[0])
    x = torch.randn(2, 2, 32, device=DEVICE)
    state = block.init_state(2, device=DEVICE)
    with torch.no_grad(), fastpath.fused_decode():
        _, new = block.step(x[0], state)
        assert new[0] is state[0] and new[1] is state[1] and state[0].abs().sum() > 0
        y, _ = block.step(x[1], (state[0], state[1], 1))
    want, _ = _steps(block, x, fused=False)
    torch.testing.assert_close(y, want[1], rtol=1e-5, atol=1e-6)


def test_the_switch_is_off_by_default_and_only_without_gradients_or_reference_forms():
    assert not fastpath.use_fused_decode(DEVICE)
    with fastpath.fused_decode():
        assert not fastpath.use_fused_decode(DEVICE)  # gradients on
        with torch.no_grad():
            assert fastpath.use_fused_decode(DEVICE)
            with fastpath.reference_forms():
                assert not fastpath.use_fused_decode(DEVICE)
    with torch.no_grad():
        assert not fastpath.use_fused_decode(DEVICE)


def test_a_compiled_fused_step_is_one_graph_and_matches_eager():
    """The kernels are custom ops to torch.compile (the state op declares the state it updates): the step traces
    with fullgraph (aot_eager: AOTAutograd functionalizes the in-place update, no C++ compiler needed) and gives
    the eager step's output and state, at a position held in a 0-d tensor as a graphed decoder holds it."""
    block = _block(CONFIGS[1])
    x = torch.randn(2, 32, device=DEVICE)
    step = torch.compile(block.step, backend="aot_eager", fullgraph=True)
    out = {}
    for name, fn in (("eager", block.step), ("compiled", step)):
        torch.manual_seed(1)
        state = (*[s.normal_() for s in block.init_state(2, device=DEVICE)[:2]], torch.tensor(5, device=DEVICE))
        with torch.no_grad(), fastpath.fused_decode():
            y, (sr, si, pos) = fn(x, (state[0], state[1], state[2]))
        out[name] = [y, sr, si, state[0], state[1]]
    for a, b in zip(out["compiled"], out["eager"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
