"""GPU paths (skipped without a GPU; run on the device machine): every memory's parallel form against its step form
on the GPU in fp32, the measured costs under bf16 autocast, and a short bf16 training run that learns."""
import dataclasses
from contextlib import nullcontext

import pytest
import torch

from archsearch.build import build
from archsearch.lower import lower
from archsearch.measure import measure
from archsearch.passes import run_passes
from archsearch.spec import parse
from archsearch.testing import rel_error
from blocks import fastpath
from blocks.kernels.tuning import TILES, candidates

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
MIXERS = ("softmax_attention", "pam", "linear_attention", "holographic")


def _model(mixer: str, dropout: float = 0.0, block: dict | None = None):
    """`dropout` is the model's (residual) dropout; `block` adds to the mixer's own config."""
    spec = {"model": {"d_model": 64, "seq_len": 64, "vocab": 100, "dropout": dropout},
            "stack": {"depth": 2, "sublayers": [{"block": mixer, "config": {"heads": 2, **(block or {})}},
                                                {"block": "swiglu"}]}}
    torch.manual_seed(0)
    return lower(run_passes(build(parse(spec)))).cuda()


def test_logits_padded_to_aligned_rows_are_the_plain_product():
    model = _model("softmax_attention")  # vocab 100: padded to 128 columns on the GPU from 256 tokens on
    x = torch.randn(2, 150, 64, device="cuda")
    logits = model.logits(x)
    assert logits.shape == (2, 150, 100) and logits.stride(1) == 128
    w = model.lm_head.weight if model.lm_head is not None else model.blocks[model.tie_to].weight
    torch.testing.assert_close(logits, x @ w.t())
    from archsearch import flops  # counted FLOPs stay those of the vocabulary's own rows

    assert flops.count(model.logits, x, model=model)[0] == 2 * 300 * 64 * 100
    assert model.pad_logits and model.logits(x).stride(1) == 128  # the setting is the model's again


def test_the_loss_over_padded_logits_equals_torchs_over_the_vocabulary():
    """LMLoss on the GPU: the loss kernel reads the padded logits (128 columns for vocab 100) and leaves the padding
    out; loss and every gradient as torch's cross-entropy over the sliced logits."""
    from archsearch.graph_step import LMLoss

    model = _model("softmax_attention")
    x, y = torch.randint(0, 100, (2, 150), device="cuda"), torch.randint(0, 100, (2, 150), device="cuda")
    assert model(x, keep_padding=True).shape[-1] == 128
    got = LMLoss(model)(x, y)
    got.backward()
    mine = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    ref = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
    ref.backward()
    assert rel_error(got.detach(), ref.detach()) < 1e-5
    for a, p in zip(mine, model.parameters()):
        assert rel_error(a, p.grad) < 1e-4


@pytest.mark.parametrize("mixer", MIXERS)
def test_parallel_equals_step_on_gpu(mixer):
    model = _model(mixer).eval()
    ids = torch.randint(0, 100, (2, 48), device="cuda")
    with torch.no_grad():
        full = model(ids)
        state = model.init_state(2, device="cuda")
        steps = []
        for t in range(ids.shape[1]):
            y, state = model.step(ids[:, t], state)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=2e-4, rtol=2e-4)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_measured_costs_under_bf16(cuda_graph):
    model = _model("pam")
    out = measure(model, 100, 4, 64, torch.device("cuda"), torch.autocast("cuda", dtype=torch.bfloat16),
                  decode_context=63, cuda_graph=cuda_graph)
    assert out["latency_train_ms"] > 0 and out["latency_decode_ms"] > 0 and out["peak_memory_bytes"] > 0
    assert out["flops_train_step"] > 0  # counted on an eager step: a replayed graph dispatches no op to count


def test_bf16_training_learns(root):
    from archsearch.experiment import train_spec, with_overrides
    from archsearch.spec import load_spec

    spec = with_overrides(load_spec(root / "examples/tiny_transformer.yaml"), device="cuda", tokens=500_000)
    m = train_spec(spec, progress=False)
    assert m["status"] == "completed" and m["val_ppl"] < 20 and m["card"] != "cpu"


@pytest.mark.parametrize("mixer, compile, fused", [("pam", False, False), ("linear_attention", False, False),
                                                    ("holographic", False, False), ("softmax_attention", False, False),
                                                    ("pam", True, False), ("pam", False, True), ("pam", True, True)])
def test_graphed_decode_matches_eager_steps(mixer, compile, fused):
    """fused: PAM's decode step by its two Triton kernels (fastpath.fused_decode), captured natively."""
    from archsearch.decode import GraphedDecoder, cut_caches

    model = _model(mixer).eval()
    ids = torch.randint(0, 100, (2, 12), device="cuda")
    # KV caches cut to what 12 tokens need, as benchmarks/decode.py does (a recurrent state passes unchanged)
    template = cut_caches(model, model.init_state(2, device="cuda"), 16)
    dec = GraphedDecoder(model, batch=2, device=torch.device("cuda"), compile=compile, state=template, fused=fused)
    with torch.no_grad():
        state = model.init_state(2, device="cuda")
        for t in range(ids.shape[1]):
            eager, state = model.step(ids[:, t], state)
            torch.testing.assert_close(dec(ids[:, t]).clone(), eager, atol=1e-4, rtol=1e-4)


def _paper_skeleton(root, width: int, depth: int, heads: int, head_dim: int, seq_len: int = 64):
    """examples/paper_pam_100m.yaml's skeleton (CN, CGU, PAM with GSP) at a small size, vocabulary 300, no dropout,
    on the GPU."""
    import yaml

    doc = yaml.safe_load((root / "examples/paper_pam_100m.yaml").read_text())
    doc["model"] |= {"d_model": width, "seq_len": seq_len, "vocab": 300, "dropout": 0.0}
    doc["stack"]["depth"] = depth
    doc["stack"]["sublayers"][1]["config"] |= {"heads": heads, "head_dim": head_dim}
    torch.manual_seed(0)
    return lower(run_passes(build(parse(doc)))).cuda()


@pytest.mark.parametrize("weights", [torch.float32, torch.bfloat16])
def test_fused_sublayer_decode_under_bf16_is_as_accurate_as_the_compiled_step(root, weights):
    """The paper's skeleton (CN, CGU, PAM with GSP) at a small width, 12 tokens graphed and compiled under bf16
    autocast (benchmarks/decode.py --fused-step's form, weights as trained or cast to bf16): with the fused
    pre-norm sublayer steps (5 kernels a layer, blocks/kernels/cgu_step.py and pam_step.py) the logits are as close
    to the fp32 eager step's as the unfused compiled step's are (within twice its error, plus 1e-3): the kernels
    compute in fp32 where the compiled step rounds the normed input and the GEMVs' outputs to bf16."""
    from archsearch.decode import GraphedDecoder

    model = _paper_skeleton(root, 128, 2, 2, 32).eval()
    ids = torch.randint(0, 300, (1, 12), device="cuda")
    with torch.no_grad():
        state, ref = model.init_state(1, device="cuda"), []
        for t in range(ids.shape[1]):
            y, state = model.step(ids[:, t], state)
            ref.append(y)
    ref = torch.stack(ref)
    model.to(weights)
    got = {}
    for fused in (False, True):
        dec = GraphedDecoder(model, batch=1, device=torch.device("cuda"), autocast=torch.bfloat16, compile=True,
                             fused=fused)
        got[fused] = torch.stack([dec(ids[:, t]).clone().float() for t in range(ids.shape[1])])
    assert rel_error(got[True], ref) <= 2 * rel_error(got[False], ref) + 1e-3, (rel_error(got[True], ref),
                                                                                rel_error(got[False], ref))


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 9,
                    reason="programmatic dependent launch needs compute capability 9 (Hopper) or more")
def test_the_fused_decode_launched_dependently_gives_the_same_numbers(root, monkeypatch):
    """With programmatic dependent launch (blocks/kernels/sublayer.py: each kernel reads its first weights before
    the kernel before it ends) a graphed fused decode of the paper's skeleton, 4 layers, batch 2, 16 tokens, gives
    bit for bit the logits (which carry the state) of the same decode launched one kernel after another
    (ARCHSEARCH_PDL=0): the same sums in the same order, so a difference would be a read before the wait of
    something a kernel wrote (equal logits from one run do not rule a race out; the widths keep each GEMV's weights
    in its first tile, the part read before the wait)."""
    from archsearch.decode import GraphedDecoder
    from blocks.kernels import sublayer

    model = _paper_skeleton(root, 256, 4, 4, 32).eval()
    ids = torch.randint(0, 300, (2, 16), device="cuda")
    got = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("ARCHSEARCH_PDL", flag)
        assert sublayer.pdl(ids, ids) == (flag == "1")
        dec = GraphedDecoder(model, batch=2, device=torch.device("cuda"), fused=True)
        got[flag] = torch.stack([dec(ids[:, t]).clone() for t in range(ids.shape[1])])
    assert torch.equal(got["1"], got["0"])


def test_graphed_decode_uses_the_fused_kernels_by_default_at_batch_1_only(root):
    """GraphedDecoder(fused=None) captures the step inside fused_decode at batch 1, where the kernels are quicker,
    and with the ops as written at batch 2 (docs/performance.md: 4× slower than the compiled step at batch 64)."""
    from archsearch.decode import GraphedDecoder

    model = _paper_skeleton(root, 256, 4, 4, 32).eval()
    one = GraphedDecoder(model, batch=1, device=torch.device("cuda"))
    two = GraphedDecoder(model, batch=2, device=torch.device("cuda"))
    assert one._forms is fastpath.fused_decode and two._forms is nullcontext


def test_the_100m_pam_layout_with_kernels_under_bf16_is_as_accurate_as_the_torch_forms(root):
    """The paper's block structure (CN, CGU, PAM with GSP) at a small width: with every fused kernel (CGU's gate
    product, PAM's qkv preparation and memory) under bf16 autocast, the logits and every parameter's gradient are
    as close to the fp32 torch forms as the torch forms under bf16 are (a gradient that is a sum of cancelling terms
    is far off in bf16 either way)."""
    model = _paper_skeleton(root, 128, 2, 2, 32, seq_len=256)
    ids = torch.randint(0, 300, (2, 256), device="cuda")
    out = {}
    for run, forms, half in (("fp32", fastpath.reference_forms, False), ("torch bf16", fastpath.reference_forms, True),
                             ("kernels bf16", nullcontext, True)):
        model.zero_grad()
        with forms(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=half):
            logits = model(ids)
        logits.float().square().mean().backward()
        out[run] = [logits.float()] + [p.grad.float() for p in model.parameters()]
    names = ["logits"] + [n for n, _ in model.named_parameters()]
    for name, ref, torch_half, kernels in zip(names, out["fp32"], out["torch bf16"], out["kernels bf16"]):
        assert rel_error(kernels, ref) <= 2 * rel_error(torch_half, ref) + 1e-2, name


@pytest.mark.parametrize("mixer", ["pam", "linear_attention"])
def test_triton_form_under_bf16_is_close_to_the_torch_form(mixer):
    from blocks.linear_attention import LinearAttention
    from blocks.pam import PAM

    cls = {"pam": PAM, "linear_attention": LinearAttention}[mixer]
    x = torch.randn(2, 300, 128, device="cuda", requires_grad=True)
    out = {}
    for mode in ("chunked", "triton"):
        torch.manual_seed(0)
        m = cls(cls.Config(heads=4, head_dim=32, mode=mode), d_model=128).cuda()
        x.grad = None
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = m(x)
        y.float().square().sum().backward()
        out[mode] = (y.float(), x.grad.clone())
    for a, b in zip(out["triton"], out["chunked"]):
        assert rel_error(a, b) < 2e-2


def _pair_inputs():
    """A complex pair at PAM's head width (d 64: K = V = 128) over 4 chunks, bf16: key tiles narrower than a half and
    as wide as both. Shared by the candidate tests, so the autotuner's runs reuse the direct launches' compiles."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = [(torch.randn(2, 3, 256, 128, generator=gen) / 8).cuda().bfloat16().requires_grad_() for _ in range(3)]
    log_g = (-torch.rand(2, 3, 256, generator=gen) * 0.1).cuda().requires_grad_()
    return q, k, v, log_g


def _pair_run(q, k, v, log_g, memory=None) -> list:
    """memory(q, k, v, log_g) → y [B, H, T, 2d] (default: the kernels, their output read token-major as PAM asks
    for it) and the four gradients, fp32."""
    if memory is None:
        from blocks.kernels.memory import complex_pair_memory

        def memory(*inputs):
            return complex_pair_memory(*inputs, 1.0, chunk=64, token_major=True).transpose(1, 2)
    for x in (q, k, v, log_g):
        x.grad = None
    y = memory(q, k, v, log_g)
    (y * torch.linspace(-1, 1, 128, device="cuda")).square().sum().backward()
    return [y.float()] + [x.grad.float() for x in (q, k, v, log_g)]


CANDIDATES = [(kind, c) for kind in TILES for c in candidates(kind)[1:]]


@pytest.mark.parametrize("kind, config", CANDIDATES,
                         ids=[f"{k}-{c[0][0]}x{c[0][1]}-w{c[1]}-s{c[2]}" for k, c in CANDIDATES])
def test_each_tuning_candidate_gives_the_default_configs_numbers(monkeypatch, kind, config):
    """Each kernel launched directly at each of its other tuning candidates (tiles, warps, stages), the rest at their
    defaults: the output and every gradient the default config gives, to bf16 rounding (the same sums split
    otherwise). The autotuner would run a wrong candidate without a word unless it were the fastest; bwd_dqk's
    key tiles once departed on an H100 alone (a form not landed). A candidate this GPU lacks the resources for is
    skipped, as the autotuner skips it. Select a kernel's with -k NAME."""
    import triton

    from blocks.kernels import tuning

    inputs = _pair_inputs()
    want = _pair_run(*inputs)
    monkeypatch.setitem(tuning.DEFAULT, kind, config)
    tuning._direct.cache_clear()
    try:
        got = _pair_run(*inputs)
    except triton.runtime.errors.OutOfResources as e:  # the autotuner skips such a candidate too
        pytest.skip(f"{kind} at {config} needs more than this GPU has: {e}")
    finally:
        tuning._direct.cache_clear()
    for name, a, b in zip(("y", "q", "k", "v", "log_g"), got, want):
        assert rel_error(a, b) < 1e-2, name


@pytest.mark.parametrize("kind", list(TILES))
def test_the_autotuner_runs_every_candidate_of_a_kernel_and_its_pick_matches_the_torch_form(monkeypatch, kind):
    """Autotuning one kernel (the others at their defaults) runs every candidate on real data (an earlier form
    crashed under some), and what it picks gives the torch form's numbers. One kernel a case: all five at once ran
    past 350 s on an H100, longer than a lent call holds beside other work."""
    from blocks.kernels import memory_bwd, memory_fwd
    from blocks.pam import pair_memory

    monkeypatch.setenv("ARCHSEARCH_KERNEL_TUNING", "1")
    for other in TILES:
        tuner = getattr(memory_fwd, other, None) or getattr(memory_bwd, other)
        if other == kind:
            monkeypatch.setattr(tuner, "cache", {})  # an earlier pick for this shape would skip the candidates
        else:
            monkeypatch.setattr(tuner, "configs", tuner.configs[:1])  # the default only
    inputs = _pair_inputs()
    got = _pair_run(*inputs)
    want = _pair_run(*inputs, memory=lambda *xs: pair_memory(*xs, 1.0))
    for name, a, b in zip(("y", "q", "k", "v", "log_g"), got, want):
        assert rel_error(a, b) < 3e-2, name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_long_sequence_splits_its_chunk_loops_and_keeps_the_whole_loops_numbers(monkeypatch, dtype):
    """One sequence of 8k tokens, two heads: few enough programs that both state kernels split their chunk loop into
    segments (memory.segment_length); output and every gradient as the whole loop (SPLIT_WAVES = 0) gives them, and
    in fp32 as the torch twin does (the decay gradient's scan, new with the split, is in both kernel forms). The
    decay is weak, so a wrong decay carried across segments of 1,024 tokens shows."""
    from blocks import pam
    from blocks.kernels import memory

    gen = torch.Generator().manual_seed(0)
    b, h, t, d2 = 1, 2, 8192, 128
    q, k, v = [(torch.randn(b, h, t, d2, generator=gen) / 8).cuda().to(dtype) for _ in range(3)]
    log_g = (-torch.rand(b, h, t, generator=gen) * 2e-3).cuda()
    weight = torch.randn(b, h, t, d2, generator=gen).cuda()
    n = t // memory.CHUNK
    programs = 4 * 4 * h  # the forward's 32 × 32 state tiles of a 128-wide head (the backward's 32 × 64: half)
    assert memory.segment_length(n, programs, torch.device("cuda")) < n  # it splits here

    def run(form):
        ins = [x.detach().requires_grad_() for x in (q, k, v, log_g)]
        y = form(*ins, 1.0)
        (y.float() * weight).sum().backward()
        return [y.float()] + [x.grad.float() for x in ins]

    split = run(memory.complex_pair_memory)
    monkeypatch.setattr(memory, "SPLIT_WAVES", 0)
    whole = run(memory.complex_pair_memory)
    for name, a, w in zip(("y", "q", "k", "v", "log_g"), split, whole):
        assert rel_error(a, w) < (1e-5 if dtype == torch.float32 else 1e-2), name
    if dtype == torch.float32:
        for name, a, r in zip(("y", "q", "k", "v", "log_g"), split, run(pam.pair_memory)):
            assert rel_error(a, r) < 1e-4, name


def _lm_task(vocab: int = 100):
    import numpy as np

    from archsearch.tasks import LMTask

    stream = np.tile(np.random.default_rng(0).integers(0, vocab, 70), 200)  # a repeating pattern: learnable
    return LMTask.from_streams({"train": stream, "validation": stream[:4000]}, {"validation": 4000}, vocab)


@pytest.mark.parametrize("mixer", ["pam", "softmax_attention"])
def test_training_with_cuda_graphs_matches_eager_training(mixer, capsys):
    """The captured micro-step (two per optimiser step: accumulation) trains to the same weights as eager steps."""
    from archsearch.task_and_train import TrainConfig
    from archsearch.train import train

    cfg = TrainConfig(tokens=64 * 8 * 12, batch_tokens=64 * 8, micro_batch=4, lr=3e-3, evals=2, eval_tokens=1024,
                      device="cuda", precision="fp32", warmup=0.1)
    task = _lm_task()
    eager, graphed = _model(mixer), _model(mixer)
    a = train(eager, task, cfg, seq_len=64, progress=False)
    b = train(graphed, task, dataclasses.replace(cfg, cuda_graph=True), seq_len=64, progress=False)
    assert "could not be captured" not in capsys.readouterr().err
    assert a.status == b.status == "completed" and a.steps == b.steps == 12
    assert (a.form, b.form) == ("eager", "graph")
    assert b.train_loss == pytest.approx(a.train_loss, rel=1e-4)
    assert b.evals[-1]["loss"] == pytest.approx(a.evals[-1]["loss"], rel=1e-4)
    for (name, p), q in zip(eager.named_parameters(), graphed.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_overlapped_steps_on_the_gpu_train_as_steps_that_wait(cuda_graph):
    """Page-locked batches and losses read a step late (loss_queue.py) give the weights of a loop that waits for every
    step; a NaN loss is still caught, at its own step."""
    from archsearch.task_and_train import TrainConfig
    from archsearch.train import train

    cfg = TrainConfig(tokens=64 * 8 * 12, batch_tokens=64 * 8, lr=3e-3, evals=2, eval_tokens=1024, device="cuda",
                      precision="fp32", warmup=0.1, cuda_graph=cuda_graph)
    task = _lm_task()
    waits, overlaps = _model("pam"), _model("pam")
    a = train(waits, task, cfg, seq_len=64, progress=False, overlap=False)
    b = train(overlaps, task, cfg, seq_len=64, progress=False)
    assert a.status == b.status == "completed" and a.steps == b.steps == 12
    assert b.train_loss == pytest.approx(a.train_loss, rel=1e-4)
    for (name, p), q in zip(waits.named_parameters(), overlaps.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5, msg=name)
    broken = _model("pam")
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    r = train(broken, task, cfg, seq_len=64, progress=False)
    assert (r.status, r.reason, r.steps) == ("diverged", "loss became nan at step 1", 0)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_a_run_paused_on_the_gpu_resumes_to_the_weights_of_a_run_that_was_not(cuda_graph, tmp_path):
    """The checkpoint holds CPU and GPU random states (a GPU-mapped CPU state cannot be set: the ladder's first
    resumed run failed so) and the fused optimiser's moments; dropout draws the same masks after the resume."""
    import time

    from archsearch.task_and_train import TrainConfig
    from archsearch.train import train

    cfg = TrainConfig(tokens=64 * 8 * 12, batch_tokens=64 * 8, lr=3e-3, evals=2, eval_tokens=1024, device="cuda",
                      precision="fp32", warmup=0.1, cuda_graph=cuda_graph)
    task, ckpt = _lm_task(), tmp_path / "ckpt.pt"
    straight = _model("pam", dropout=0.1)
    train(straight, task, cfg, seq_len=64, progress=False)
    paused = train(_model("pam", dropout=0.1), task, cfg, seq_len=64, progress=False, checkpoint=ckpt,
                   deadline=time.monotonic())
    assert paused.status == "paused" and paused.steps == 1
    resumed = _model("pam", dropout=0.1)
    r = train(resumed, task, cfg, seq_len=64, progress=False, checkpoint=ckpt, deadline=time.monotonic() + 3600)
    assert r.status == "completed" and r.steps == 12
    for (name, p), q in zip(straight.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("mixer, model_dropout, block", [("softmax_attention", 0.0, {"dropout": 0.5}),
                                                          ("softmax_attention", 0.1, None), ("pam", 0.1, None)])
def test_every_replay_of_a_graphed_step_draws_fresh_dropout_masks(mixer, model_dropout, block, compiled):
    """A captured micro-step, compiled or not, draws new dropout masks at each replay, attention's own (SDPA's
    dropout_p, alone in the first case) and the residual one: a mask frozen into the graph would regularise the
    families unequally (GPT-2 drops at more sites than PAM). Without dropout the same batch gives the same loss and
    gradients at every replay (up to the order of atomic adds in some backward kernels), so a change is the masks.
    At initialisation the loss barely feels attention's dropout (outputs are near uniform): the gradients tell."""
    from archsearch.graph_step import GraphedMicroStep, LMLoss, compile_afresh

    x = torch.randint(0, 100, (4, 64), device="cuda")
    y = torch.roll(x, -1, 1)

    def replays(dropout, block_config):
        model = _model(mixer, dropout, block_config).train()
        # compiled afresh, as the trainer does: past dynamo's recompile limit a model would run eagerly, unsaid
        step = GraphedMicroStep(compile_afresh(LMLoss(model)) if compiled else LMLoss(model), nullcontext(), accum=1)
        seen = []
        for _ in range(4):
            for p in model.parameters():  # the captured backward adds into these tensors: zero them in place
                if p.grad is not None:
                    p.grad.zero_()
            loss = step(x, y).detach().float()
            seen.append(torch.stack([loss, *(p.grad.norm() for p in model.parameters() if p.grad is not None)]))
        assert step.graph is not None and not step.eager
        return seen

    def differ(a, b, rtol):
        return not torch.allclose(a, b, rtol=rtol, atol=0)

    plain = replays(0.0, None)
    assert not any(differ(plain[0], s, 1e-5) for s in plain[1:])
    dropped = replays(model_dropout, block)
    assert all(differ(a, b, 1e-3) for i, a in enumerate(dropped) for b in dropped[i + 1:])


def test_a_step_that_cannot_be_captured_trains_eagerly(capsys):
    from archsearch.task_and_train import TrainConfig
    from archsearch.train import train

    model = _model("softmax_attention")
    plain = model.forward

    def forward_with_a_host_sync(x, **kw):
        assert x.max().item() >= 0  # reads a GPU value on the host: not allowed while a graph is captured
        return plain(x, **kw)

    model.forward = forward_with_a_host_sync
    cfg = TrainConfig(tokens=64 * 8 * 4, batch_tokens=64 * 8, lr=3e-3, evals=1, eval_tokens=512, device="cuda",
                      cuda_graph=True)
    result = train(model, _lm_task(), cfg, seq_len=64, progress=False)
    assert result.status == "completed" and result.steps == 4
    assert result.form == "eager"  # what timed it: the step ran eagerly, whatever the settings asked
    err = capsys.readouterr().err
    assert "cuda_graph: the training step could not be captured" in err and "training eagerly" in err


def test_after_a_failed_capture_dropout_still_trains_eagerly(capsys):
    """A capture that fails part-way leaves the CUDA generator mid-capture; the eager steps after it draw dropout
    masks from that generator, and must run."""
    from archsearch.task_and_train import TrainConfig
    from archsearch.train import train

    model = _model("pam", dropout=0.1)
    plain = model.forward

    def forward_with_dropout_then_a_host_sync(x, **kw):
        out = plain(x, **kw)  # dropout draws first: the generator enters the capture
        assert out.abs().max().item() >= 0
        return out

    model.forward = forward_with_dropout_then_a_host_sync
    cfg = TrainConfig(tokens=64 * 8 * 4, batch_tokens=64 * 8, lr=3e-3, evals=1, eval_tokens=512, device="cuda",
                      cuda_graph=True)
    result = train(model, _lm_task(), cfg, seq_len=64, progress=False)
    assert result.status == "completed" and result.steps == 4
    assert result.form == "eager"  # what timed it: the step ran eagerly, whatever the settings asked
    assert "training eagerly" in capsys.readouterr().err
    torch.rand(3, device="cuda")  # the generator works outside the trainer too


@pytest.mark.parametrize("mixer", ["pam", "linear_attention"])
def test_compiled_and_graphed_training_on_the_kernels_matches_eager(mixer, capsys):
    """train.compile with train.cuda_graph on the Triton kernels (custom ops to torch.compile): one compiled graph
    per micro-step, captured, and the same losses as eager training to bf16-free precision."""
    from archsearch.task_and_train import TrainConfig
    from archsearch.train import train

    cfg = TrainConfig(tokens=64 * 8 * 6, batch_tokens=64 * 8, lr=3e-3, evals=1, eval_tokens=1024, device="cuda",
                      precision="fp32", warmup=0.1)
    task = _lm_task()
    eager, compiled = _model(mixer), _model(mixer)
    torch._dynamo.reset()
    a = train(eager, task, cfg, seq_len=64, progress=False)
    b = train(compiled, task, dataclasses.replace(cfg, compile=True, cuda_graph=True), seq_len=64, progress=False)
    assert "could not be captured" not in capsys.readouterr().err
    assert a.status == b.status == "completed" and (a.form, b.form) == ("eager", "compile+graph")
    assert b.train_loss == pytest.approx(a.train_loss, rel=1e-3)
    assert b.evals[-1]["loss"] == pytest.approx(a.evals[-1]["loss"], rel=1e-3)


def test_profile_of_the_compiled_step_names_inductors_kernels(tmp_path):
    from archsearch import profile

    ir = run_passes(build(parse({"model": {"d_model": 64, "seq_len": 64, "vocab": 100},
                                 "stack": {"depth": 2, "sublayers": [{"block": "pam", "config": {"heads": 2}},
                                                                     {"block": "swiglu"}]}})))
    prof = profile.run(ir, tmp_path, device=torch.device("cuda"), batch=2, seq_len=64, steps=1, compiled=True)
    names = [r.name for r in prof.ops]
    assert prof.rows == [] and any(n.startswith("kernel triton_") for n in names), names[:10]
    kinds = {profile.kind_of(n) for n in names}  # PAM's memory on this project's kernels, fused AdamW in its range
    assert {"matrix products", "archsearch's Triton kernels", "inductor's generated kernels", "optimizer"} <= kinds, (
        sorted(kinds), names[:20])


@pytest.mark.parametrize("family", ["pam_paper", "pam", "linear_attention", "holographic", "softmax_attention"])
def test_reported_metrics_are_the_saved_weights_on_the_gpu(family, tmp_path):
    """As tests/test_saved_numbers.py, with the GPU's own settings: fused AdamW (the default there), bf16 autocast and
    CUDA graphs, through several evaluations."""
    import numpy as np

    from archsearch.compiler import compile_spec
    from archsearch.experiment import train_spec
    from archsearch.tasks import LMTask
    from archsearch.context import autocast_for
    from test_saved_numbers import _doc

    doc = _doc(family)
    del doc["train"]["fused"]
    doc["train"] |= {"device": "cuda", "cuda_graph": True}
    spec = parse(doc, f"{family}.yaml")
    rng = np.random.default_rng(0)
    stream = np.tile(rng.integers(0, 64, 50), 40)
    task = LMTask.from_streams({"train": stream, "validation": stream[:1500]}, {"validation": 1500}, 64)
    m = train_spec(spec, out=tmp_path, task=task, progress=False)
    assert m["status"] == "completed" and len(m["evals"]) == 3
    torch.manual_seed(123)
    fresh = lower(compile_spec(spec, vocab=64))
    fresh.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True))
    again = task.evaluate(fresh.cuda(), 32, torch.device("cuda"), autocast=autocast_for(torch.device("cuda"), "auto"))
    assert m["val_ppl"] == again["ppl"] and m["val_ppl"] < 64


def test_a_graphed_decoder_leaves_nothing_on_the_model():
    from archsearch.decode import GraphedDecoder

    model = _model("pam").eval()
    GraphedDecoder(model, batch=1, device=torch.device("cuda"), compile=False)
    assert not [n for n, m in model.named_modules() if "_frozen" in m.__dict__]
