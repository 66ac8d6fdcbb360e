"""The fused elementwise kernels (blocks/kernels: the CGU's gate product, PAM's qkv preparation, the loss) against the torch forms they replace, forward
and backward (every input and parameter gradient): on CPU through Triton's interpreter, natively on a GPU."""
import pytest
import torch

from archsearch.testing import rel_error
from blocks import linear_core
from blocks.complex import gate_product

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.skipif(not linear_core.triton_usable(torch.device(DEVICE)),
                                reason="needs Triton (and a GPU or a working interpreter)")



def _grads(fn, inputs, weight):
    out = fn(*inputs)
    grads = torch.autograd.grad(out, [x for x in inputs if x is not None], weight)
    return [out, *grads]


@pytest.mark.parametrize("gate_bias", [False, True])
@pytest.mark.parametrize("shape", [(2, 37, 150), (5, 16)])  # leading dims and h (tile edges in both)
def test_cgu_gate_matches_the_torch_form(shape, gate_bias):
    from blocks.kernels.cgu import cgu_gate

    gen = torch.Generator().manual_seed(0)
    *lead, h = shape
    y = torch.randn(*lead, 4 * h, generator=gen, dtype=torch.float64)
    b = -0.1 + 0.3 * torch.randn(h, generator=gen, dtype=torch.float64)  # some modReLUs closed, some open
    c = 0.5 * torch.randn(h, generator=gen, dtype=torch.float64) if gate_bias else None
    weight = torch.randn(*lead, 2 * h, generator=gen, dtype=torch.float64)
    ref = _grads(gate_product, [x if x is None else x.requires_grad_() for x in (y, b, c)], weight)
    mine = [None if x is None else x.detach().float().to(DEVICE).requires_grad_() for x in (y, b, c)]
    got = _grads(cgu_gate, mine, weight.float().to(DEVICE))
    assert len(got) == len(ref)
    for name, a, r in zip(("h", "dy", "d modrelu_bias", "d gate_bias"), got, ref):
        assert rel_error(a.cpu(), r) < 1e-5, name


def _qkv_reference(y, cos, sin, keep, h, d, scale, sign):
    b, t = y.shape[:2]
    parts = y.view(b, t, 2, 3, h, d).permute(2, 3, 0, 4, 1, 5)  # [re/im, q/k/v, B, H, T, d]
    rot = lambda re, im: (re * cos - im * sin, re * sin + im * cos)  # noqa: E731
    (qr, qi), (kr, ki) = rot(parts[0, 0], parts[1, 0]), rot(parts[0, 1], parts[1, 1])
    vr, vi = parts[0, 2], parts[1, 2]
    if keep is not None:
        vr, vi = vr * keep, vi * keep
    return (scale * torch.cat([qr, sign * qi], -1), torch.cat([kr, ki], -1), torch.cat([vr, vi], -1))


@pytest.mark.parametrize("keep_width", [None, 1, 12])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_complex_qkv_matches_the_torch_form(keep_width, sign):
    from blocks.kernels.complex_qkv import complex_qkv

    gen = torch.Generator().manual_seed(0)
    b, t, h, d = 2, 45, 3, 12
    y = torch.randn(b, t, 6 * h * d, generator=gen, dtype=torch.float64)
    angle = torch.arange(t, dtype=torch.float64)[:, None] * torch.rand(d, generator=gen, dtype=torch.float64)
    keep = None if keep_width is None else torch.rand(b, h, t, keep_width, generator=gen, dtype=torch.float64)
    weights = [torch.randn(b, h, t, 2 * d, generator=gen, dtype=torch.float64) for _ in range(3)]

    def run(fn, y, keep, device):
        out = fn(y, angle.cos().to(y), angle.sin().to(y), keep, h, d, 0.3, sign)
        loss = sum((o * w.to(device, o.dtype)).sum() for o, w in zip(out, weights))
        return [*out, *torch.autograd.grad(loss, [x for x in (y, keep) if x is not None])]

    ref = run(_qkv_reference, y.requires_grad_(), keep if keep is None else keep.requires_grad_(), "cpu")
    mine = [None if x is None else x.detach().float().to(DEVICE).requires_grad_() for x in (y, keep)]
    got = run(complex_qkv, *mine, DEVICE)
    assert len(got) == len(ref)
    for name, a, r in zip(("q", "k", "v", "dy", "dkeep"), got, ref):
        assert rel_error(a.cpu(), r) < 1e-5, name


@pytest.mark.parametrize("width", [300, 320])  # the vocabulary alone, and padded past it (zeros, left out)
def test_cross_entropy_matches_torch(width):
    from blocks.kernels import cross_entropy

    gen = torch.Generator().manual_seed(0)
    vocab, lead = 300, (3, 45)  # rows over several column blocks of a small BLOCK (below)
    x = 4 * torch.randn(*lead, width, generator=gen, dtype=torch.float64)
    x[..., vocab:] = 0.0
    y = torch.randint(0, vocab, lead, generator=gen)
    y[0, :5], y[1, 0], y[1, 1] = -100, 0, vocab - 1  # ignored rows, the first and last classes
    ref_x = x.clone().requires_grad_()
    ref = torch.nn.functional.cross_entropy(ref_x[..., :vocab].flatten(0, 1), y.flatten()) * 0.37
    ref.backward()
    mine = x.float().to(DEVICE).requires_grad_()
    before, cross_entropy.BLOCK = cross_entropy.BLOCK, 128
    try:
        got = cross_entropy.cross_entropy(mine, y.to(DEVICE), vocab) * 0.37
        got.backward()
    finally:
        cross_entropy.BLOCK = before
    assert rel_error(got.detach().cpu(), ref.detach()) < 1e-6
    assert rel_error(mine.grad.cpu(), ref_x.grad) < 1e-5
    assert (mine.grad[..., vocab:] == 0).all() and (mine.grad[0, :5] == 0).all()
    y[2, 3] = vocab  # a token id the vocabulary does not have: nan, not a read past the row
    assert cross_entropy.cross_entropy(x.float().to(DEVICE), y.to(DEVICE), vocab).isnan()


def _opcheck_cases():
    """(op, args) for every kernel op: torch.library.opcheck runs each against its fake (shapes, dtypes, strides),
    its schema and its autograd registration, and traces forward and backward with AOTAutograd."""
    from blocks.kernels import cgu, complex_qkv, cross_entropy, memory
    torch.manual_seed(0)
    b, h, t, d = 1, 2, 20, 8

    def r(*shape):
        return torch.randn(*shape, device=DEVICE, requires_grad=True)

    log_g = (-torch.rand(b, h, t, device=DEVICE)).requires_grad_()
    cos, sin = torch.rand(t, d, device=DEVICE), torch.rand(t, d, device=DEVICE)
    keep = torch.rand(b, h, t, 1, device=DEVICE, requires_grad=True)
    return [
        ("memory pair", memory.memory_fwd_op, (r(b, h, t, 2 * d), r(b, h, t, 2 * d), r(b, h, t, 2 * d), log_g, -1.0,
                                               16)),
        ("memory groups", memory.memory_fwd_op, (r(b, h, 2, t, d), r(b, h, t, d), r(b, h, t, d), log_g, 0.0, 16)),
        ("memory pair, half y", memory.memory_fwd_op,  # fp16: the interpreter's bf16 matmuls are broken
         (*(r(b, h, t, 2 * d).detach().half().requires_grad_() for _ in range(3)), log_g, 1.0, 16, True)),
        ("cgu", cgu.cgu_fwd_op, (r(2, 5, 24), r(6), r(6))),
        ("cgu no gate bias", cgu.cgu_fwd_op, (r(2, 5, 24), r(6), None)),
        ("qkv", complex_qkv.qkv_fwd_op, (r(b, t, 6 * h * d), cos, sin, keep, h, d, 0.3, -1.0)),
        ("qkv no keep", complex_qkv.qkv_fwd_op, (r(b, t, 6 * h * d), cos, sin, None, h, d, 0.3, 1.0)),
        ("cross-entropy", cross_entropy.cross_entropy_fwd,
         (r(2, 5, 64), torch.tensor([[1, 2, -100, 3, 4], [5, 6, 7, 8, 0]], device=DEVICE), 60, -100)),
    ]


def test_every_kernel_op_passes_opcheck():
    for name, op, args in _opcheck_cases():
        result = torch.library.opcheck(op, args)
        assert set(result.values()) == {"SUCCESS"}, (name, result)
