"""The block contract suite (DESIGN.md §13), reusable for any block, built-in or user:

    from archsearch.testing import check_block
    check_block(MyBlock)                       # raises AssertionError naming the block, config and check

Checks, each over every config in the block's optional `test_configs` (a tuple of small config dicts; default:
the Config defaults): shape preserved; causality; step form == parallel form (fp32, relative error ≤ 1e-5 after 64
steps); every parallel form (the Config's `mode` choices, those the block's optional `mode_usable(mode, device)` allows
here) == the recurrence, forward and backward; gradients reach every parameter;
analytic params == built params; analytic FLOPs == FLOPs counted on the reference (step) path within 2%; no NaN/inf
in fp32 and under bf16 autocast; reported state bytes == bytes of the real step state; after an optimiser step (fused
AdamW, which leaves the parameters' version counters alone) the no-grad forward and step forms change (no module keeps
weights derived from its parameters across calls).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

import torch

from . import coerce, flops, registry
from .decode import leaves
from .errors import Loc

D_MODEL, SEQ_LEN, VOCAB, BATCH = 32, 64, 50, 2
REL_TOL, FLOP_TOL = 1e-5, 0.02
CHECKS = ("shape", "causality", "step", "forms", "gradients", "params", "flops", "finite", "state_bytes", "updates")


@dataclass(frozen=True)
class Case:
    cls: type
    cfg: object
    d_model: int = D_MODEL
    seq_len: int = SEQ_LEN
    vocab: int = VOCAB

    def __str__(self) -> str:
        changed = {f.name: getattr(self.cfg, f.name) for f in dataclasses.fields(self.cfg)
                   if getattr(self.cfg, f.name) != f.default}
        return f"{self.cls.name}{changed or ''}"

    def build(self, cfg=None, dtype=torch.float32, seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        m = registry.call_with_dims(self.cls, cfg or self.cfg, d_model=self.d_model, seq_len=self.seq_len,
                                    vocab=self.vocab, layer_idx=0, n_layers=2)
        return m.to(dtype).eval()

    def inputs(self, dtype=torch.float32, seed: int = 1, batch: int = BATCH) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        if self.cls.kind == "embedding":
            return torch.randint(0, self.vocab, (batch, self.seq_len), generator=g)
        return torch.randn(batch, self.seq_len, self.d_model, generator=g).to(dtype)

    def cost(self) -> dict:
        return registry.call_with_dims(self.cls.cost, self.cfg, d_model=self.d_model, seq_len=self.seq_len,
                                       vocab=self.vocab)


def cases(cls) -> list[Case]:
    raw = getattr(cls, "test_configs", None) or ({},)
    return [Case(cls, coerce.coerce(cls.Config, c, Loc(f"{cls.name}.test_configs[{i}]"))) for i, c in enumerate(raw)]


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ (dtypes promoted): how every form and kernel is compared with its reference."""
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def _stateful(m) -> bool:
    return hasattr(m, "init_state") and hasattr(m, "step")


def run_steps(m, x: torch.Tensor) -> torch.Tensor:
    """The step (recurrent/decode) form over a whole sequence, stacked like the parallel form's output."""
    state = m.init_state(x.shape[0], device=x.device, dtype=torch.float32)
    ys = []
    for t in range(x.shape[1]):
        y, state = m.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, 1)


# ------------------------------------------------------------------------------------------------- checks
def check_shape(case: Case) -> None:
    x = case.inputs()
    y = case.build()(x)
    assert y.shape == (BATCH, case.seq_len, case.d_model), f"output shape {tuple(y.shape)}"


def check_causality(case: Case) -> None:
    m, x, t = case.build(), case.inputs(), case.seq_len // 2
    x2 = x.clone()
    x2[:, t + 1:] = case.inputs(seed=7)[:, t + 1:]
    with torch.no_grad():
        y, y2 = m(x), m(x2)
    err = (y[:, :t + 1] - y2[:, :t + 1]).abs().max().item()
    assert err <= 1e-6 * max(1.0, y.abs().max().item()), f"changing x[t+1:] moved y[:t+1] by {err:.3g}"


def check_step(case: Case) -> None:
    m = case.build()
    if not _stateful(m):
        return
    x = case.inputs()
    with torch.no_grad():
        rel = rel_error(run_steps(m, x), m(x))
    assert rel <= REL_TOL, f"step form differs from the parallel form: relative error {rel:.3g}"


def _modes(cls) -> tuple:
    hints = coerce.field_types(cls.Config)
    if "mode" not in hints or typing.get_origin(hints["mode"]) is not typing.Literal:
        return ()
    return typing.get_args(hints["mode"])


def _output_and_grads(m, x: torch.Tensor, weight: torch.Tensor):
    """y and the gradients of Σ y·weight for the input and every parameter, flattened into one vector."""
    x = x.clone().requires_grad_()
    y = m(x)
    (y * weight).sum().backward()
    grads = [x.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for p in m.parameters()]
    return y.detach(), torch.cat([g.flatten() for g in grads])


def check_forms(case: Case) -> None:
    modes = _modes(case.cls)
    if "recurrent" not in modes:
        return
    usable = getattr(case.cls, "mode_usable", lambda mode, device: True)  # e.g. a GPU kernel's mode on CPU
    x = case.inputs()
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)).to(x.dtype)
    ref, ref_grads = _output_and_grads(case.build(dataclasses.replace(case.cfg, mode="recurrent")), x, weight)
    for mode in (m for m in modes if usable(m, x.device)):
        y, grads = _output_and_grads(case.build(dataclasses.replace(case.cfg, mode=mode)), x, weight)
        rel = rel_error(y, ref)
        assert rel <= REL_TOL, f"mode {mode!r} differs from the recurrence: relative error {rel:.3g}"
        rel = rel_error(grads, ref_grads)
        assert rel <= REL_TOL, f"mode {mode!r}: gradients differ from the recurrence's: relative error {rel:.3g}"


def check_gradients(case: Case) -> None:
    m = case.build()
    y = m(case.inputs())
    (y * torch.randn_like(y)).sum().backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum().item() > 0]
    assert not dead, f"no gradient reaches {dead}"
    bad = [n for n, p in m.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients in {bad}"


def check_params(case: Case) -> None:
    built = sum(p.numel() for p in case.build().parameters())
    assert built == case.cost()["params"], f"built {built} parameters, analytic {case.cost()['params']}"


def check_flops(case: Case) -> None:
    m, x = case.build(), case.inputs(batch=1)
    reference = (lambda: run_steps(m, x)) if _stateful(m) else (lambda: m(x))  # the step form where there is one
    with torch.no_grad():
        counted, _ = flops.count(reference)
    per_token, analytic = counted / case.seq_len, case.cost()["flops"]
    ok = abs(per_token - analytic) <= FLOP_TOL * max(analytic, 1) if analytic else per_token == 0
    assert ok, f"counted {per_token:.1f} FLOPs/token on the reference path, analytic {analytic}"


def check_finite(case: Case) -> None:
    m, x = case.build(), case.inputs()
    with torch.no_grad():
        assert torch.isfinite(m(x)).all(), "NaN/inf in fp32"
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.isfinite(m(x)).all(), "NaN/inf under bf16 autocast"


def check_state_bytes(case: Case) -> None:
    m = case.build()
    real = sum(t.numel() * t.element_size() for t in leaves(m.init_state(1))) if _stateful(m) else 0
    assert real == case.cost()["state_bytes"], f"step state holds {real} bytes, analytic {case.cost()['state_bytes']}"


def check_updates(case: Case) -> None:
    m, x = case.build(), case.inputs()
    params = [p for p in m.parameters() if p.requires_grad]
    if not params:
        return

    def no_grad_outputs(module):
        with torch.no_grad():
            return [module(x)] + ([run_steps(module, x[:, :4])] if _stateful(module) else [])
    before = no_grad_outputs(m)  # evaluation before the step: whatever a module might keep is built here
    m.train()
    y = m(x)
    (y * torch.randn(y.shape, generator=torch.Generator().manual_seed(5))).sum().backward()
    torch.optim.AdamW(params, lr=1e-2, fused=True).step()  # fused: no version counter moves
    m.eval()
    fresh = case.build(seed=1)
    fresh.load_state_dict(m.state_dict())
    for name, a, b, c in zip(("forward", "step form"), before, no_grad_outputs(m), no_grad_outputs(fresh)):
        assert not torch.equal(a, b), f"the no-grad {name} is unchanged by an optimiser step: stale derived weights"
        assert torch.equal(b, c), f"the no-grad {name} differs from a fresh module's with the same state dict " \
                                  f"(relative error {rel_error(b, c):.3g}): state derived from old weights"


def run_check(cls, check: str) -> None:
    fn = globals()[f"check_{check}"]
    for case in cases(cls):
        try:
            fn(case)
        except AssertionError as e:
            raise AssertionError(f"{case}: {check}: {e}") from None


def check_block(cls) -> None:
    """Every contract check on every test config of one block class."""
    for check in CHECKS:
        run_check(cls, check)
