"""The kernel contract (DESIGN.md §10), walked over blocks.kernels.TWINS as the block contract walks the registry:
every Triton kernel names its torch twin, and on each example below the kernel (fp32, on the GPU or through Triton's
interpreter on CPU) gives the twin's result in fp64, forward and backward (forward only where a kernel has no
backward, as PAM's decode step); every custom op it calls passes torch.library.opcheck; in half precision (bf16 on a
GPU, fp16 in the interpreter, whose bf16 products are wrong) its error is within the twin's own half-precision error.
Without a way to run the kernels those checks skip, and the twin-side ones still run: the table is complete, every
twin exists and keeps the contract's shapes.

A new kernel: list it in its module's `__all__`, name its twin in TWINS, add a new module to MODULES in
blocks/kernels/ops.py (fastpath.kernel's door), and give it examples here.
"""
import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from helpers import CustomOps

import blocks.kernels
from archsearch.testing import rel_error
from blocks import fastpath
from blocks.kernels import TWINS

FOLDER = Path(blocks.kernels.__file__).parent
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
HALF = torch.bfloat16 if DEVICE == "cuda" else torch.float16
needs_kernels = pytest.mark.skipif(not fastpath.kernels_available(torch.device(DEVICE)),
                                   reason="needs Triton and a GPU of compute capability 8.0+, or a working interpreter")


@dataclass
class Example:
    args: list  # fp64 on CPU; the walker moves and casts them (copies: a kernel may update an argument in place)
    shapes: list  # the contract: the shape of each output
    grad: tuple  # which args get gradients; () for a kernel without a backward (then forward only)
    half: tuple = ()  # which args are activations, cast to half precision in the half-precision check (the rest fp32)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _memory(b, h, g, t, dk, dv):
    gen = _gen()
    q = torch.randn(b, h, g, t, dk, generator=gen, dtype=torch.float64) / dk ** 0.5
    k, v = (torch.randn(b, h, t, w, generator=gen, dtype=torch.float64) for w in (dk, dv))
    log_g = -torch.rand(b, h, t, generator=gen, dtype=torch.float64) * 0.5
    return Example([q, k, v, log_g], [(b, h, g, t, dv)], grad=(0, 1, 2, 3), half=(0, 1, 2))


def _pair(b, h, t, d, sigma):
    gen = _gen(2)
    q, k, v = (torch.randn(b, h, t, 2 * d, generator=gen, dtype=torch.float64) / d ** 0.5 for _ in range(3))
    log_g = -torch.rand(b, h, t, generator=gen, dtype=torch.float64) * 0.3
    return Example([q, k, v, log_g, sigma], [(b, h, t, 2 * d)], grad=(0, 1, 2, 3), half=(0, 1, 2))


def _qkv(keep_width, sign, b=2, t=45, h=3, d=12):
    gen = _gen()
    y = torch.randn(b, t, 6 * h * d, generator=gen, dtype=torch.float64)
    angle = torch.arange(t, dtype=torch.float64)[:, None] * torch.rand(d, generator=gen, dtype=torch.float64)
    keep = None if keep_width is None else torch.rand(b, h, t, keep_width, generator=gen, dtype=torch.float64)
    return Example([y, angle.cos(), angle.sin(), keep, h, d, 0.3, sign], [(b, h, t, 2 * d)] * 3,
                   grad=(0,) if keep is None else (0, 3), half=(0,))


def _cgu(shape, gate_bias: bool):
    gen = _gen()
    *lead, h = shape
    y = torch.randn(*lead, 4 * h, generator=gen, dtype=torch.float64)
    b = -0.1 + 0.3 * torch.randn(h, generator=gen, dtype=torch.float64)  # some modReLUs closed, some open
    c = 0.5 * torch.randn(h, generator=gen, dtype=torch.float64) if gate_bias else None
    return Example([y, b, c], [(*lead, 2 * h)], grad=(0, 1, 2) if gate_bias else (0, 1), half=(0,))


def _loss(width, vocab=300, lead=(3, 45)):
    gen = _gen()
    x = 4 * torch.randn(*lead, width, generator=gen, dtype=torch.float64)
    x[..., vocab:] = 0.0  # the model's padding
    y = torch.randint(0, vocab, lead, generator=gen)
    y[0, :5], y[1, 0], y[1, 1] = -100, 0, vocab - 1  # ignored rows, the first and last classes
    return Example([x, y, vocab], [()], grad=(0,), half=(0,))


def _decode(b, h, d, n, decay, gsp, conjugate):
    """One PAM decode step (forward only: a decode step has no backward), the state updated in place and returned:
    the walker compares the updated state too."""
    gen = _gen(3)
    r = lambda *shape, scale=1.0: scale * torch.randn(*shape, generator=gen, dtype=torch.float64)  # noqa: E731
    theta = 10000.0 ** (-torch.arange(d, dtype=torch.float64) / d)
    decay_w, decay_b = (r(h, 2 * n, scale=0.3), r(h)) if decay == "data" else (None, None)
    fixed = -0.3 * torch.rand(h, generator=gen, dtype=torch.float64) if decay == "fixed" else None
    width = {"head": h, "channel": h * d, "off": 0}[gsp]
    gsp_w, gsp_b = (r(width, n, scale=0.3), r(width)) if width else (None, None)
    args = [r(b, 2 * n), *_complex_weights(gen, 3 * h * d, n), theta, torch.tensor(37), decay_w, decay_b, fixed,
            gsp_w, gsp_b, r(b, h, d, d, scale=0.3), r(b, h, d, d, scale=0.3), conjugate]
    return Example(args, [(b, 2 * h * d), (b, h, d, d), (b, h, d, d)], grad=(), half=(0, 1, 2))


def _complex_weights(gen, m, n):
    """A ComplexLinear's Wr and Wi [m, n] (n_in = n), scaled so that W z keeps z's size."""
    return [torch.randn(m, n, generator=gen, dtype=torch.float64) / (2 * n) ** 0.5 for _ in range(2)]


def _norm(gen, n):
    """The complex norm's σ [n] (around 1) and eps, for a fused pre-norm sublayer step."""
    return 1.0 + 0.3 * torch.randn(n, generator=gen, dtype=torch.float64), 1e-6


def _residual(b, m, k, scaled: bool):
    """r [b, 2m] plus a complex map [m, k] of h [b, 2k]."""
    gen = _gen(4)
    r = lambda *shape: torch.randn(*shape, generator=gen, dtype=torch.float64)  # noqa: E731
    scale = torch.tensor(0.3, dtype=torch.float64) if scaled else None
    return Example([r(b, 2 * m), r(b, 2 * k), *_complex_weights(gen, m, k), scale], [(b, 2 * m)], grad=(),
                   half=(0, 1, 2, 3))


def _cgu_sublayer(b, n, h, gate_bias: bool):
    """One CGU sublayer decode step (forward only) on a stream with rows of different sizes."""
    gen = _gen(5)
    r = lambda *shape, scale=1.0: scale * torch.randn(*shape, generator=gen, dtype=torch.float64)  # noqa: E731
    x = r(b, 2 * n) * torch.linspace(0.5, 4.0, b, dtype=torch.float64)[:, None]
    args = [x, *_norm(gen, n), *_complex_weights(gen, 2 * h, n), -0.1 + 0.3 * r(h), 0.5 * r(h) if gate_bias else None,
            *_complex_weights(gen, n, h), r(()) if gate_bias else None]
    return Example(args, [(b, 2 * n)], grad=(), half=(0, 3, 4, 7, 8))


def _pam_sublayer(b, h, d, n, gsp, conjugate):
    """One PAM sublayer decode step: _decode's PAM step between a complex norm and a scaled residual output
    projection (forward only), the state updated in place."""
    step = _decode(b, h, d, n, "data", gsp, conjugate).args
    gen = _gen(6)
    x = 3 * torch.randn(b, 2 * n, generator=gen, dtype=torch.float64)
    args = [x, *_norm(gen, n), *step[1:], *_complex_weights(gen, n, h * d), torch.tensor(0.1, dtype=torch.float64)]
    return Example(args, [(b, 2 * n), (b, h, d, d), (b, h, d, d)], grad=(), half=(0, 3, 4, 15, 16))


def _head(b, n, rows, complex_rows: bool):
    """The decode step's head on a stream with rows of different sizes: a norm, then a complex map [rows, n] or a
    real table [rows, 2n] (the tied logits)."""
    gen = _gen(7)
    x = 2 * torch.randn(b, 2 * n, generator=gen, dtype=torch.float64) * torch.linspace(0.5, 4.0, b,
                                                                                      dtype=torch.float64)[:, None]
    w = _complex_weights(gen, rows, n) if complex_rows else [torch.randn(rows, 2 * n, generator=gen,
                                                                         dtype=torch.float64) / (2 * n) ** 0.5]
    return Example([x, *_norm(gen, n), *w], [(b, 2 * rows if complex_rows else rows)], grad=(),
                   half=(0, 3, 4) if complex_rows else (0, 3))


EXAMPLES = {  # per kernel: tile edges, several column blocks, both signs, with and without the optional inputs
    "memory.chunked_memory": [_memory(1, 2, 2, 40, 16, 16), _memory(2, 1, 1, 100, 8, 9), _memory(1, 1, 2, 130, 32, 20)],
    "memory.complex_pair_memory": [_pair(1, 2, 70, 8, 1.0), _pair(2, 1, 40, 24, -1.0)],
    "complex_qkv.complex_qkv": [_qkv(None, 1.0), _qkv(1, -1.0), _qkv(12, 1.0)],
    "cgu.cgu_gate": [_cgu((2, 37, 150), True), _cgu((5, 16), False)],
    "cross_entropy.cross_entropy": [_loss(300), _loss(320)],
    "pam_step.pam_step": [_decode(2, 2, 8, 16, "data", "head", True), _decode(3, 2, 12, 10, "fixed", "channel", False),
                          _decode(1, 1, 24, 300, "none", "off", True)],
    "pam_step.pam_sublayer_step": [_pam_sublayer(2, 2, 12, 20, "channel", True),
                                   _pam_sublayer(10, 1, 8, 20, "head", True),  # two groups of up to 8 sequences
                                   _pam_sublayer(1, 1, 8, 300, "head", False)],
    "cgu_step.cgu_sublayer_step": [_cgu_sublayer(3, 40, 30, True), _cgu_sublayer(10, 9, 12, True),
                                   _cgu_sublayer(1, 9, 27, False)],
    "sublayer.residual_linear": [_residual(3, 21, 300, True), _residual(9, 6, 16, False)],
    # column blocks: one (n 20), two (n 300 at b 10); rows past a program's last (the table's 50 over 8 a program)
    "head_step.normed_complex_linear": [_head(1, 20, 7, True), _head(10, 300, 5, True)],
    "head_step.normed_linear": [_head(1, 20, 50, False), _head(10, 300, 9, False), _head(2, 12, 3, False)],
}
CASES = [(name, i) for name in TWINS for i in range(len(EXAMPLES.get(name, [])))]


def _twin(name: str):
    module, fn = TWINS[name].split(".")
    return getattr(importlib.import_module(f"blocks.{module}"), fn)


def _kernel(name: str):
    module, fn = name.split(".")
    return getattr(fastpath.kernel(module, torch.device(DEVICE)), fn)


def _outputs(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _args(ex: Example, dtype, device, half: bool = False) -> list:
    """ex.args on device, floating ones in dtype (with `half`, only ex.half's; the others fp32), ex.grad's requiring
    gradients."""
    args = []
    for i, a in enumerate(ex.args):
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            a = a.to(device, torch.float32 if half and i not in ex.half else dtype, copy=True)
            a = a.requires_grad_(i in ex.grad)
        elif isinstance(a, torch.Tensor):
            a = a.to(device, copy=True)
        args.append(a)
    return args


def _run(fn, ex: Example, dtype, device, half: bool = False) -> list:
    """fn's outputs and the gradients of Σ outputs · fixed weights for ex.grad's inputs, in fp64 on CPU."""
    args = _args(ex, dtype, device, half)
    outs = _outputs(fn(*args))
    gen = _gen(1)
    total = 0
    for o in outs:
        wide = torch.promote_types(o.dtype, torch.float32)
        total = total + (o.to(wide) * torch.randn(o.shape, generator=gen, dtype=torch.float64).to(device, wide)).sum()
    grads = torch.autograd.grad(total, [args[i] for i in ex.grad]) if ex.grad else []
    return [x.detach().cpu().double() for x in [*outs, *grads]]


# ------------------------------------------------------------------------------------------------- the table itself
def _kernel_modules() -> dict:
    """{module: its __all__} for every module of blocks/kernels that registers a torch.library custom op (read from
    the source: no Triton needed)."""
    found = {}
    for path in sorted(FOLDER.glob("*.py")):
        text = path.read_text()
        if "torch.library.custom_op" not in text:
            continue
        exported = None
        for node in ast.parse(text).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                exported = ast.literal_eval(node.value)
        found[path.stem] = exported
    return found


def test_every_kernel_names_a_twin_and_has_examples():
    modules = _kernel_modules()
    assert modules and all(names for names in modules.values()), f"a kernel module without __all__: {modules}"
    kernels = {f"{m}.{n}" for m, names in modules.items() for n in names}
    assert kernels == set(TWINS), f"kernels without a twin: {kernels - set(TWINS)}; not kernels: {set(TWINS) - kernels}"
    assert set(EXAMPLES) == set(TWINS), "every kernel needs examples here"
    door = next(n.value for n in ast.parse((FOLDER / "ops.py").read_text()).body
                if isinstance(n, ast.Assign) and [t.id for t in n.targets] == ["MODULES"])
    assert {k.value for k in door.keys} == set(modules), "ops.MODULES, fastpath.kernel's door, names every module"


def test_only_fastpath_imports_the_kernels():
    root = FOLDER.parents[1]
    for path in [*root.glob("blocks/*.py"), *root.glob("archsearch/**/*.py")]:
        if path.name == "fastpath.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [getattr(node, "module", None) or ""] + [a.name for a in node.names]
                assert not any("kernels" in n for n in names), f"{path.relative_to(root)} imports the kernels"


def test_no_custom_op_gives_an_argument_it_mutates_a_default():
    """torch 2.11's dispatcher drops a trailing argument equal to its default before the in-place bookkeeping
    indexes the mutated ones: an IndexError on CUDA, none on CPU under a later torch. So none may have one."""
    pytest.importorskip("triton")
    for module in _kernel_modules():
        importlib.import_module(f"blocks.kernels.{module}")
    ops = [n for n in torch._C._dispatch_get_all_op_names() if n.startswith("archsearch::")]
    assert len(ops) >= 12
    for name in ops:
        schema = getattr(torch.ops.archsearch, name.split("::")[1]).default._schema
        bad = [a.name for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write
               and a.has_default_value()]
        assert not bad, f"{name} mutates {bad}, which have a default"


@pytest.mark.parametrize("name, i", CASES)
def test_the_twin_keeps_the_contract(name, i):
    ex = EXAMPLES[name][i]
    outs = _run(_twin(name), ex, torch.float64, "cpu")
    assert [tuple(o.shape) for o in outs[:len(ex.shapes)]] == [tuple(s) for s in ex.shapes]
    assert all(torch.isfinite(o).all() for o in outs)


# ------------------------------------------------------------------------------------------------ kernel against twin
@needs_kernels
@pytest.mark.parametrize("name, i", CASES)
def test_the_kernel_gives_its_twins_numbers(name, i):
    ex = EXAMPLES[name][i]
    ref = _run(_twin(name), ex, torch.float64, "cpu")
    got = _run(_kernel(name), ex, torch.float32, DEVICE)
    assert len(got) == len(ref)
    for j, (a, r) in enumerate(zip(got, ref)):
        assert a.shape == r.shape and rel_error(a, r) < 1e-5, f"{'output' if j < len(ex.shapes) else 'gradient'} {j}"


@needs_kernels
@pytest.mark.parametrize("name, i", sorted({(name, i) for name in TWINS for i in (0, len(EXAMPLES[name]) - 1)}))
def test_every_custom_op_a_kernel_calls_passes_opcheck(name, i):
    """torch.library.opcheck: each op against its fake (shapes, dtypes, strides), its schema and its autograd
    registration, traced forward and backward by AOTAutograd: what torch.compile relies on. On the first and the last
    example (with and without the optional inputs)."""
    with CustomOps() as ops:
        _kernel(name)(*_args(EXAMPLES[name][i], torch.float32, DEVICE))
    assert ops.calls, f"{name} calls no custom op: torch.compile would trace into Triton"
    for op, op_args, op_kwargs in ops.calls:
        result = torch.library.opcheck(op, op_args, op_kwargs)
        assert set(result.values()) == {"SUCCESS"}, (str(op), result)


@needs_kernels
@pytest.mark.parametrize("name", list(TWINS))
def test_in_half_precision_the_kernel_is_as_accurate_as_its_twin(name):
    """Against the fp64 twin, the kernel on half-precision activations is within twice the twin's own error on the
    same inputs, plus 1e-2 (a gradient that is a sum of cancelling terms is far off in half precision either way)."""
    ex = EXAMPLES[name][0]
    ref = _run(_twin(name), ex, torch.float64, "cpu")
    twin = _run(_twin(name), ex, HALF, "cpu" if HALF == torch.float16 else DEVICE, half=True)
    got = _run(_kernel(name), ex, HALF, DEVICE, half=True)
    for j, (a, t, r) in enumerate(zip(got, twin, ref)):
        assert rel_error(a, r) <= 2 * rel_error(t, r) + 1e-2, f"{'output' if j < len(ex.shapes) else 'gradient'} {j}"
