"""Fused pre-norm residual sublayer steps in a model's decode step: inside blocks.fastpath.fused_decode(),
SequenceModel.step runs add(r, block(norm(r))) as the block's `fused_sublayer_step` (CGU: blocks/kernels/cgu_step.py,
two kernels; PAM: pam_step.pam_sublayer_step, three) and gives the plain step's logits and state. The kernels run
natively on a GPU, through Triton's interpreter on CPU (tests/conftest.py); their numbers against their torch twins
are tests/test_kernel_twins.py's. The runtime's part (which ops form a sublayer, the fallback) needs no kernels."""
import pytest
import torch
import yaml
from torch import nn

from helpers import CustomOps

from archsearch.build import build
from archsearch.decode import copy_state, to_device_state
from archsearch.lower import lower
from archsearch.passes import run_passes
from archsearch.runtime import SequenceModel
from archsearch.spec import parse
from blocks import fastpath
from blocks.complex import frozen_weights

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
needs_kernels = pytest.mark.skipif(not fastpath.kernels_available(DEVICE),
                                   reason="needs Triton (and a GPU or a working interpreter)")
# fp32 throughout: the kernels accumulate in another order than torch's products (and read the state the last step
# wrote), so the logits after 10 tokens differ by float rounding (~1e-7 seen on CPU), not more
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
HEAD = ["head_normed_complex_linear", "head_normed_linear"]  # the paper's head: norm → linear, norm → tied logits


def _paper_model(root, sublayer_norm: str = "complex_norm", tied: bool = True):
    """examples/paper_pam_100m.yaml's skeleton (complex embedding and head; per layer a CGU then a PAM sublayer, each
    pre-normed, the residual scales 1.0 and 0.1) at width 16 (8 complex channels), 2 layers, 2 heads of 8, no
    dropout: small, since the interpreter's time goes with the kernels' programs."""
    doc = yaml.safe_load((root / "examples/paper_pam_100m.yaml").read_text())
    doc["model"] |= {"d_model": 16, "seq_len": 32, "vocab": 50, "dropout": 0.0}
    doc["stack"] |= {"depth": 2, "norm": sublayer_norm}
    doc["stack"]["sublayers"][1]["config"] |= {"heads": 2, "head_dim": 8}
    doc["head"]["tied"] = tied
    doc.pop("task")
    torch.manual_seed(0)
    model = lower(run_passes(build(parse(doc)))).to(DEVICE).eval()
    with torch.no_grad():  # learned scales away from their init, so that reading them is checked
        for i, s in enumerate(model.scales.values()):
            s.mul_(1.0 + 0.1 * i)
    return model


def _decode(model, ids, fused: bool):
    """Each step's logits and the final state of decoding ids [B, T] from a fresh state (positions as device
    tensors and the buffers updated in place, as a graphed decoder does), and the custom ops of the last step."""
    state = to_device_state(model.init_state(ids.shape[0], device=DEVICE), DEVICE)
    logits = []
    with torch.no_grad(), fastpath.fused_decode() if fused else torch.no_grad():
        for t in range(ids.shape[1]):
            with CustomOps() as ops:
                y, new = model.step(ids[:, t], state)
            copy_state(state, new)
            logits.append(y)
    return torch.stack(logits), state, ops.names


@needs_kernels
@pytest.mark.parametrize("batch, tied", [(1, True), (1, False), (10, True)])
def test_a_fused_decode_gives_the_plain_steps_logits_and_state_in_five_kernels_a_layer(root, batch, tied):
    # batch 1 is the benchmark's; past 8 sequences the logits run as written (complex.FUSED_LOGITS_MAX_BATCH). 10
    # tokens for the benchmark's case, 2 for the others (the interpreter's time goes with programs × tokens)
    model = _paper_model(root, tied=tied)
    ids = torch.randint(0, 50, (batch, 10 if (batch, tied) == (1, True) else 2), device=DEVICE)
    want, want_state, plain_ops = _decode(model, ids, fused=False)
    got, state, ops = _decode(model, ids, fused=True)
    torch.testing.assert_close(got, want, **TOLERANCE)
    torch.testing.assert_close(state, want_state, **TOLERANCE)
    layer = ["cgu_step_gate_up", "residual_linear", "pam_step_project", "pam_step_state", "residual_linear"]
    assert plain_ops == ["cgu_fwd"] * 2 * fastpath.use_kernels(DEVICE)  # on a GPU the CGU's own kernel, else torch
    assert ops == 2 * layer + (HEAD if batch <= 8 else HEAD[:1])


@needs_kernels
def test_the_gemvs_read_the_complex_weights_not_the_block_matrices(root):
    """gate_up, project and residual_linear read each ComplexLinear's Wr and Wi (the parameters themselves), not the
    block matrices frozen_weights builds (each weight twice): inside frozen_weights, as a graphed decoder steps."""
    model = _paper_model(root)
    params = {id(p) for p in model.parameters()}
    weights = {"cgu_step_gate_up": (3, 4), "pam_step_project": (1, 2), "residual_linear": (2, 3),
               "head_normed_complex_linear": (3, 4), "head_normed_linear": (3,)}  # the last: the embedding table
    state = to_device_state(model.init_state(1, device=DEVICE), DEVICE)
    with torch.no_grad(), frozen_weights(model) as frozen, fastpath.fused_decode(), CustomOps() as ops:
        model.step(torch.tensor([3], device=DEVICE), state)
    read = [(op, args[i]) for op, (func, args, _) in zip(ops.names, ops.calls) for i in weights.get(op, ())]
    assert len(read) == 2 * 8 + 3 and all(id(w) in params for _, w in read), [(op, tuple(w.shape)) for op, w in read]
    assert not any(w is f for _, w in read for f in frozen)


@needs_kernels
def test_with_another_norm_the_sublayer_runs_as_written(root):
    """The fused sublayer steps fold complex_norm only: after an RMSNorm the three ops run, PAM's step by its two
    fused kernels as before (fastpath.fused_decode), and the numbers are the plain step's."""
    model = _paper_model(root, sublayer_norm="rmsnorm")
    ids = torch.randint(0, 50, (1, 2), device=DEVICE)
    want, _, _ = _decode(model, ids, fused=False)
    got, _, ops = _decode(model, ids, fused=True)
    torch.testing.assert_close(got, want, **TOLERANCE)
    cgu = ["cgu_fwd"] * fastpath.use_kernels(DEVICE)  # the CGU's own kernel on a GPU, as in the plain step
    assert ops == 2 * (cgu + ["pam_step_project", "pam_step_state"]) + HEAD  # the head's norms are complex_norm


@needs_kernels
def test_a_compiled_fused_step_is_one_graph_and_matches_eager(root):
    """The kernels are custom ops to torch.compile: the model's whole step with the fused sublayers traces with
    fullgraph (aot_eager: no C++ compiler needed) and gives the eager fused step's logits and state, 3 steps. With
    device position counters (a graphed decode's) the PAM state kernel advances each in place: the state it returns
    holds the same counter, one more per step."""
    model = _paper_model(root)
    ids = torch.randint(0, 50, (3, 2), device=DEVICE)
    step = torch.compile(model.step, backend="aot_eager", fullgraph=True)
    out = {}
    for name, fn in (("eager", model.step), ("compiled", step)):
        state, ys = to_device_state(model.init_state(2, device=DEVICE), DEVICE), []
        for t in range(3):
            with torch.no_grad(), fastpath.fused_decode():
                y, new = fn(ids[t], state)
            counters = [s[2] for key, s in new.items() if key.endswith("__pam")]
            assert counters and all(c is s[2] for c, s in zip(counters, (state[k] for k in new if k.endswith("__pam"))))
            assert all(int(c) == t + 1 for c in counters), (name, t, counters)
            ys.append(y)
            state = new
        out[name] = (torch.stack(ys), state)
    torch.testing.assert_close(out["compiled"], out["eager"], rtol=1e-6, atol=1e-6)


# -------------------------------------------------------------------------------------- the runtime's part, no kernels
class _Norm(nn.Module):
    def forward(self, x):
        return x / 2


class _Twice(nn.Module):
    """2x, with a fused sublayer step that computes the same where `fused` (and records its calls), else declines."""

    def __init__(self, fused: bool):
        super().__init__()
        self.fused, self.calls = fused, []

    def forward(self, x):
        return 2 * x

    def fused_sublayer_step(self, norm, x, state, scale):
        self.calls.append((type(norm), scale))
        return (x + scale * self(norm(x)), state) if self.fused else None


def _tiny(fused: bool, norm_read_again: bool = False) -> SequenceModel:
    """embed → add(r, twice(norm(r))) with a learned scale → logits; `norm_read_again`: a second add reads the
    norm's value too (then it is no sublayer to fold)."""
    program = [("input", "input", [], "input"), ("embed", "block", [0], "embed"), ("n", "block", [1], "n"),
               ("b", "block", [2], "b"), ("add", "add", [1, 3], "add")]
    program += [("again", "add", [4, 2], "again"), ("output", "output", [5], "output")] if norm_read_again else \
        [("output", "output", [4], "output")]
    torch.manual_seed(0)
    return SequenceModel(program, {"embed": nn.Embedding(10, 8), "n": _Norm(), "b": _Twice(fused)}, {"add": 0.3},
                         vocab=10, d_model=8, dropout=0.0, tie_to=None, embed_key="embed").eval()


@pytest.mark.parametrize("fused", [True, False])
def test_the_runtime_asks_the_block_for_a_fused_sublayer_step_only_when_decoding(fused):
    model = _tiny(fused)
    ids = torch.tensor([1, 2])
    with torch.no_grad():
        plain = model.logits(model.blocks["embed"](ids) * (1 + 0.3))  # r + 0.3·2·(r/2)
        got, _ = model.step(ids, {})
        torch.testing.assert_close(got, plain)
        assert model.blocks["b"].calls == [(_Norm, model.scales["add"])]
        model(ids[None])
    assert len(model.blocks["b"].calls) == 1  # forward (training's form) runs the ops as written


def test_a_norm_whose_value_is_read_again_is_no_sublayer():
    assert _tiny(True)._sublayers == {2: ("n", "b", "add")}
    assert _tiny(True, norm_read_again=True)._sublayers == {}


class _Scaled(nn.Module):
    """c·x, with the fused forms of a norm (the logits after it) or of a block (after a norm), each recording its calls
    and computing the plain ops' numbers where `fused`, else declining."""

    def __init__(self, c: float, fused: bool):
        super().__init__()
        self.c, self.fused, self.calls = c, fused, []

    def forward(self, x):
        return self.c * x

    def fused_logits(self, x, w):
        self.calls.append("logits")
        return nn.functional.linear(self(x), w) if self.fused else None

    def fused_normed_step(self, norm, x):
        self.calls.append(norm)
        return self(norm(x)) if self.fused else None


@pytest.mark.parametrize("fused", [True, False])
def test_the_runtime_runs_a_norm_as_the_prologue_of_the_block_or_the_logits_after_it_only_when_decoding(fused):
    """embed → n1 → lin → n2 → logits, the paper's head: n1 as lin's prologue (lin's fused_normed_step), n2 as the
    logits' (n2's fused_logits); the embedding never (its value is dropped out); a declined fused form runs the ops."""
    program = [("input", "input", [], "input"), ("embed", "block", [0], "embed"), ("n1", "block", [1], "n1"),
               ("lin", "block", [2], "lin"), ("n2", "block", [3], "n2"), ("output", "output", [4], "output")]
    torch.manual_seed(0)
    blocks = {"embed": nn.Embedding(10, 8), "n1": _Scaled(0.5, fused), "lin": _Scaled(3.0, fused),
              "n2": _Scaled(0.25, fused)}
    model = SequenceModel(program, blocks, {}, vocab=10, d_model=8, dropout=0.0, tie_to=None,
                          embed_key="embed").eval()
    assert model._prologues == {2, 3, 4}
    ids = torch.tensor([1, 2])
    with torch.no_grad():
        plain = model.logits(blocks["embed"](ids) * 0.5 * 3.0 * 0.25)
        got, _ = model.step(ids, {})
        torch.testing.assert_close(got, plain)
        # fused: n1 + lin in one call, n2 + logits in another; declined: each asked, and lin asked by n2 in between
        assert blocks["lin"].calls == [blocks["n1"]]
        assert blocks["n2"].calls == (["logits"] if fused else [blocks["lin"], "logits"])
        model(ids[None])
    assert len(blocks["lin"].calls) + len(blocks["n2"].calls) == (2 if fused else 3)  # forward runs the ops


class _Counting(_Scaled):
    """A stateful _Scaled: its state counts its steps."""

    def init_state(self, batch, device=None, dtype=None):
        return 0

    def step(self, x, state):
        return self(x), state + 1


def test_a_stateful_block_or_a_value_read_twice_is_no_prologue():
    """A stateful block steps as written even where its reader has a fused form (fusing it would skip its step), and
    a norm whose value a later op reads again is no prologue of the op after it."""
    program = [("input", "input", [], "input"), ("embed", "block", [0], "embed"), ("st", "block", [1], "st"),
               ("lin", "block", [2], "lin"), ("output", "output", [3], "output")]
    torch.manual_seed(0)
    blocks = {"embed": nn.Embedding(10, 8), "st": _Counting(0.5, True), "lin": _Scaled(3.0, True)}
    model = SequenceModel(program, blocks, {}, vocab=10, d_model=8, dropout=0.0, tie_to=None,
                          embed_key="embed").eval()
    assert model._prologues == {2, 3}
    ids = torch.tensor([1, 2])
    with torch.no_grad():
        got, state = model.step(ids, model.init_state(2))
        torch.testing.assert_close(got, model.logits(blocks["embed"](ids) * 1.5))
    assert state == {"st": 1} and blocks["lin"].calls == ["logits"]  # lin never took st as its prologue

    program = [("input", "input", [], "input"), ("embed", "block", [0], "embed"), ("n", "block", [1], "n"),
               ("lin", "block", [2], "lin"), ("add", "add", [2, 3], "add"), ("output", "output", [4], "output")]
    blocks = {"embed": nn.Embedding(10, 8), "n": _Scaled(0.5, True), "lin": _Scaled(3.0, True)}
    model = SequenceModel(program, blocks, {}, vocab=10, d_model=8, dropout=0.0, tie_to=None, embed_key="embed")
    assert model._prologues == set()
