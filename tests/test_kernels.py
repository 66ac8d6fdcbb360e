"""What the gated memory's Triton kernels (blocks/kernels/memory*.py) do beyond their twins' contract
(tests/test_kernel_twins.py): other chunk lengths, half-precision chunk states, y in the inputs' dtype, tuning, the
block glue around the complex pair; and when they cannot run. On CPU through Triton's interpreter (tests/conftest.py
sets TRITON_INTERPRET=1 without a GPU), natively on a GPU."""
import pytest
import torch

from archsearch.testing import rel_error
from blocks import fastpath, linear_core

DEVICES = ["cuda"] if torch.cuda.is_available() else ["cpu"]
pytestmark = pytest.mark.skipif(not fastpath.kernels_available(torch.device(DEVICES[0])),
                                reason="needs Triton (and a GPU or a working interpreter)")
SHAPES = [  # B, H, G, T, dk, dv: PAM's split-real read (G = 2), real linear attention, a normaliser column (dv = d+1)
    (1, 2, 2, 40, 16, 16),
    (2, 1, 1, 100, 8, 9),
    (1, 1, 2, 130, 32, 20),
]


def _inputs(b, h, g, t, dk, dv, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, g, t, dk, generator=gen, dtype=torch.float64) / dk ** 0.5
    k = torch.randn(b, h, t, dk, generator=gen, dtype=torch.float64)
    v = torch.randn(b, h, t, dv, generator=gen, dtype=torch.float64)
    log_g = -torch.rand(b, h, t, generator=gen, dtype=torch.float64) * 0.5
    return [x.requires_grad_() for x in (q, k, v, log_g)]


@pytest.mark.parametrize("chunk", [32, 128])
def test_other_chunk_lengths_match_dual(chunk):
    from blocks.kernels.memory import chunked_memory

    ref = _inputs(*SHAPES[2])
    mine = [x.detach().float().to(DEVICES[0]).requires_grad_() for x in ref]
    y = chunked_memory(*mine, chunk=chunk)
    y_ref = linear_core.dual(*ref)
    y_ref.sum().backward()
    y.sum().backward()
    assert rel_error(y.detach().cpu(), y_ref) < 1e-5
    for name, a, b in zip(("q", "k", "v", "log_g"), mine, ref):
        assert rel_error(a.grad.cpu(), b.grad) < 1e-5, name


@pytest.mark.parametrize("sigma", [0.0, 1.0])
def test_half_precision_inputs_save_chunk_states_in_their_dtype_and_stay_accurate(sigma):
    # The chunk states are stored in the inputs' dtype (every reader rounds them to it anyway): under half-precision
    # inputs the saved states are half precision, and the output and every gradient stay as close to float64 as such
    # inputs allow. bf16 on a GPU; fp16 through the interpreter, whose bf16 matmuls return garbage (before this
    # change too).
    from blocks.kernels import memory

    half = torch.bfloat16 if DEVICES[0] == "cuda" else torch.float16
    b, h, g, t, d = 1, 2, 2, 100, 16
    ref = _inputs(b, h, g, t, d, d, seed=3)
    if sigma:  # a complex pair: one query tensor; the kernels derive group 1 from it
        ref[0] = ref[0][:, :, 0].detach().requires_grad_()
    mine = [x.detach().to(DEVICES[0], half if i < 3 else torch.float32).requires_grad_() for i, x in enumerate(ref)]
    y, states = memory.memory_fwd_op(*mine, sigma, 16)
    assert states.dtype == half and y.dtype == torch.float32
    if sigma:  # PAM's reference read on the [re | im] halves (σ = +1: q = [qr | qi])
        from blocks.pam import complex_memory

        halves = [part for x in ref[:3] for part in x.split(d // 2, -1)]
        y_ref = torch.cat(complex_memory(*halves, ref[3], mode="dual", chunk=16), -1)
    else:
        y_ref = linear_core.dual(*ref)
    weight = torch.randn(y_ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (y_ref * weight).sum().backward()
    (y * weight.float().to(y.device)).sum().backward()
    assert rel_error(y.detach().cpu().double(), y_ref) < 2e-2
    for name, a, b in zip(("q", "k", "v", "log_g"), mine, ref):
        assert rel_error(a.grad.cpu().double(), b.grad) < 3e-2, name


def test_y_in_the_inputs_dtype_is_the_fp32_output_rounded_with_the_same_gradients():
    # PAM's kernel path asks for y in q's dtype because it rounds y to that dtype next: the result must be exactly
    # the fp32 output rounded, and the gradients (dy arriving in that dtype) exactly those of the fp32 path fed the
    # same rounded dy. fp16 through the interpreter (its bf16 matmuls are broken), bf16 on a GPU.
    from blocks.kernels import memory

    half = torch.bfloat16 if DEVICES[0] == "cuda" else torch.float16
    b, h, t, d = 1, 2, 40, 16  # three chunks of 16, the last one partial
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(b, h, t, 2 * d, generator=gen) / d ** 0.5 for _ in range(3))
    log_g = -torch.rand(b, h, t, generator=gen) * 0.5
    dy = torch.randn(b, h, t, 2 * d, generator=gen).to(half)
    out = {}
    for low in (False, True):
        ins = [x.to(DEVICES[0], half).requires_grad_() for x in (q, k, v)] + [log_g.to(DEVICES[0]).requires_grad_()]
        y, _ = memory.memory_fwd_op(*ins, 1.0, 16, low)
        assert y.dtype == (half if low else torch.float32)
        y.backward(dy.to(y.device, y.dtype))
        out[low] = [y.detach()] + [x.grad for x in ins]
    assert torch.equal(out[True][0], out[False][0].to(half))
    for name, a, b in zip(("q", "k", "v", "log_g"), out[True][1:], out[False][1:]):
        assert torch.equal(a, b), name
    ins = [x.to(DEVICES[0], half).requires_grad_() for x in (q, k, v)] + [log_g.to(DEVICES[0]).requires_grad_()]
    result = torch.library.opcheck(memory.memory_fwd_op, (*ins, 1.0, 16, True))  # the variant the contract skips
    assert set(result.values()) == {"SUCCESS"}, result


def test_a_token_major_output_holds_the_same_numbers_and_gives_the_same_gradients():
    # PAM asks for y token-major ([B, T, H, 2d]) so that its heads merge into the output projection without a copy:
    # the output kernel only stores elsewhere and the backward's read dy from there, so every number is equal.
    from blocks.kernels import memory

    b, h, t, d = 2, 2, 40, 24  # three chunks of 16, the last one partial; 48 columns, two tiles, the last partial
    gen = torch.Generator().manual_seed(6)
    q, k, v = (torch.randn(b, h, t, 2 * d, generator=gen) / d ** 0.5 for _ in range(3))
    log_g = -torch.rand(b, h, t, generator=gen) * 0.5
    dy = torch.randn(b, t, h, 2 * d, generator=gen)
    out = {}
    for token_major in (False, True):
        ins = [x.to(DEVICES[0]).requires_grad_() for x in (q, k, v, log_g)]
        y, _ = memory.memory_fwd_op(*ins, -1.0, 16, False, token_major)
        y = y if token_major else y.transpose(1, 2)
        assert y.shape == (b, t, h, 2 * d)
        y.backward(dy.to(y.device))
        out[token_major] = [y.detach()] + [x.grad for x in ins]
    for name, a, b_ in zip(("y", "q", "k", "v", "log_g"), out[True], out[False]):
        assert torch.equal(a, b_), name
    ins = [x.to(DEVICES[0]).requires_grad_() for x in (q, k, v, log_g)]
    result = torch.library.opcheck(memory.memory_fwd_op, (*ins, 1.0, 16, False, True))  # a variant the contract skips
    assert set(result.values()) == {"SUCCESS"}, result
    with pytest.raises(ValueError, match="token_major is for a complex pair"):
        memory.memory_fwd_op(q.unsqueeze(2), k, v, log_g, 0.0, 16, False, True)
    q, k, v, log_g = (x.detach() for x in ins)
    _, states = memory.memory_fwd_op(q, k, v, log_g, 1.0, 16, False, True)
    with pytest.raises(ValueError, match=r"dy of shape \(2, 2, 40, 48\) for y of shape \(2, 40, 2, 48\)"):
        memory.memory_bwd_op(dy.to(q.device).transpose(1, 2), q, k, v, log_g, states, 1.0, 16, True)


def test_tuning_picks_a_chunk_length_once_per_shape(monkeypatch):
    from blocks.kernels import memory

    monkeypatch.setenv("ARCHSEARCH_KERNEL_TUNING", "1")
    monkeypatch.setattr(memory, "_TUNED_CHUNK", {})
    ref = _inputs(*SHAPES[1])
    mine = [x.detach().float().to(DEVICES[0]).requires_grad_() for x in ref]
    for _ in range(2):
        y = linear_core.fused(*mine)
    assert list(memory._TUNED_CHUNK.values())[0] in memory.CHUNKS and len(memory._TUNED_CHUNK) == 1
    assert rel_error(y.detach().cpu(), linear_core.dual(*ref)) < 1e-5


def test_tuning_remembers_a_chunk_per_split_setting(monkeypatch):
    # a chunk length timed with the state loops whole is not known to be the fastest once they split
    from blocks.kernels import memory

    monkeypatch.setenv("ARCHSEARCH_KERNEL_TUNING", "1")
    monkeypatch.setattr(memory, "_TUNED_CHUNK", {})
    mine = [x.detach().float().to(DEVICES[0]) for x in _inputs(*SHAPES[1])]
    with torch.no_grad():
        linear_core.fused(*mine)
        monkeypatch.setattr(memory, "SPLIT_WAVES", 0)
        linear_core.fused(*mine)
    assert len(memory._TUNED_CHUNK) == 2


def test_tuning_times_a_pairs_chunk_in_the_outputs_layout(monkeypatch):
    # the token-major output stores and reads elsewhere: a chunk length timed head-major is not known to be its fastest
    from blocks.kernels import memory

    monkeypatch.setenv("ARCHSEARCH_KERNEL_TUNING", "1")
    monkeypatch.setattr(memory, "_TUNED_CHUNK", {})
    gen = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(1, 2, 40, 16, generator=gen).to(DEVICES[0]) for _ in range(3))
    log_g = (-torch.rand(1, 2, 40, generator=gen)).to(DEVICES[0])
    with torch.no_grad():
        for token_major in (False, True):
            memory.complex_pair_memory(q, k, v, log_g, 1.0, token_major=token_major)
    assert len(memory._TUNED_CHUNK) == 2 and set(memory._TUNED_CHUNK.values()) <= set(memory.CHUNKS)


@pytest.mark.parametrize("sigma", [0.0, 1.0])
def test_no_tokens_give_an_empty_output_and_zero_gradients(sigma):
    from blocks.kernels import memory

    b, h, d = 2, 1, 8
    q = torch.randn(b, h, 0, d) if sigma else torch.randn(b, h, 2, 0, d)
    ins = [x.to(DEVICES[0]).requires_grad_() for x in (q, torch.randn(b, h, 0, d), torch.randn(b, h, 0, d),
                                                        torch.randn(b, h, 0))]
    y = memory.memory_fwd_op(*ins, sigma, 16)[0]
    assert y.numel() == 0
    y.sum().backward()
    for x in ins:
        assert x.grad.shape == x.shape and x.grad.numel() == 0


def test_fastest_skips_a_candidate_the_gpu_lacks_the_resources_for():
    import time

    import triton

    from blocks.kernels.tuning import fastest

    def run(c):
        if c == 3:
            raise triton.runtime.errors.OutOfResources(300_000, 232_448, "shared memory")
        time.sleep(0.01 * c)  # gaps far above timer and scheduler noise

    assert fastest([2, 3, 1], run, torch.device("cpu")) == 1
    with pytest.raises(RuntimeError, match="no candidate"):
        fastest([3], run, torch.device("cpu"))


def test_a_gpu_older_than_ampere_keeps_the_torch_forms(monkeypatch):
    from blocks import kernels

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # a V100
    kernels._usable.cache_clear()
    try:
        assert not kernels.usable(torch.device("cuda"))
        assert fastpath.auto_mode(4096, 64, torch.device("cuda")) == "chunked"
        with pytest.raises(RuntimeError, match="compute capability 8.0 or newer"):  # mode: triton asked for
            fastpath.kernel("memory", torch.device("cuda"))
    finally:
        kernels._usable.cache_clear()


def test_triton_mode_without_a_way_to_run_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q, k, v, log_g = _inputs(*SHAPES[0])
    with pytest.raises(RuntimeError, match="mode 'triton' needs Triton and a CUDA GPU"):
        linear_core.fused(q.float(), k.float(), v.float(), log_g.float())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("conjugate", [True, False])
@pytest.mark.parametrize("b, h, t, d", [(1, 2, 70, 8), (2, 1, 40, 24)])
def test_complex_pair_matches_the_grouped_form(b, h, t, d, conjugate, device):
    """PAM's read with the Im query derived inside the kernels equals the explicit two-group form, both ways."""
    from blocks.pam import complex_memory

    gen = torch.Generator().manual_seed(2)
    parts = [torch.randn(b, h, t, d, generator=gen, dtype=torch.float64) / d ** 0.5 for _ in range(6)]
    log_g = -torch.rand(b, h, t, generator=gen, dtype=torch.float64) * 0.3
    weight = torch.randn(2, b, h, t, d, generator=gen, dtype=torch.float64)

    def run(mode, dtype, dev):
        ins = [x.to(dev, dtype).requires_grad_() for x in (*parts, log_g)]
        yr, yi = complex_memory(*ins[:6], ins[6], mode=mode, chunk=32, conjugate=conjugate)
        ((yr * weight[0].to(dev, yr.dtype)).sum() + (yi * weight[1].to(dev, yi.dtype)).sum()).backward()
        return [yr, yi] + [x.grad for x in ins]

    for a, r in zip(run("triton", torch.float32, device), run("dual", torch.float64, "cpu")):
        assert rel_error(a.detach().cpu(), r.detach()) < 1e-5


@pytest.mark.parametrize("gsp, conjugate, rope", [("head", True, "v1"), ("channel", False, "v2"), ("off", True, "none")])
def test_pam_on_the_kernels_gives_the_torch_forms_output_and_gradients(gsp, conjugate, rope):
    """The block's kernel path (complex_qkv, the pair memory, the heads merged into the output projection) against
    its torch path on the same weights, fp32: the output, the input's gradient and every parameter's."""
    from blocks.pam import PAM

    torch.manual_seed(0)
    blocks = {mode: PAM(PAM.Config(heads=2, head_dim=8, gsp=gsp, conjugate=conjugate, rope=rope, mode=mode,
                                   chunk=32), d_model=32).to(DEVICES[0]) for mode in ("triton", "chunked")}
    blocks["chunked"].load_state_dict(blocks["triton"].state_dict())
    x = torch.randn(2, 70, 32, device=DEVICES[0])
    out = {}
    for mode, block in blocks.items():
        xm = x.clone().requires_grad_()
        y = block(xm)
        (y * torch.linspace(-1, 1, 32, device=y.device)).square().sum().backward()
        out[mode] = [y.detach(), xm.grad] + [p.grad for p in block.parameters()]
    names = ["y", "x"] + [name for name, _ in blocks["triton"].named_parameters()]
    for name, a, b in zip(names, out["triton"], out["chunked"]):
        assert rel_error(a, b) < 1e-5, name


def _candidate_rounds() -> list[dict]:
    """Round i launches every kernel at its i-th tuning candidate other than the interpreter's default (those with
    fewer candidates at the default): every candidate runs in some round."""
    from blocks.kernels.tuning import INTERPRETED, TILES
    others = {kind: [t for t in tiles if t != INTERPRETED[kind][0]] for kind, tiles in TILES.items()}
    rounds = max(len(o) for o in others.values())
    return [{kind: o[i] for kind, o in others.items() if i < len(o)} for i in range(rounds)]


@pytest.mark.skipif(DEVICES[0] == "cuda", reason="a GPU launches every candidate directly (test_gpu.py)")
@pytest.mark.parametrize("tiles", _candidate_rounds(), ids=lambda r: "+".join(f"{k}{t}" for k, t in r.items()))
def test_each_tile_candidate_launched_directly_gives_the_default_tiles_numbers(monkeypatch, tiles):
    """The kernels at other tuning candidates (launched directly, as the defaults are) on a complex pair of d = 32,
    K = V = 64: one key tile or two, tiles wider than the state: the output and every gradient as the default tiles
    give them, to fp32 rounding (a tile changes only how the sums split)."""
    from blocks.kernels import memory, tuning

    gen = torch.Generator().manual_seed(0)
    q, k, v = [(torch.randn(1, 2, 100, 64, generator=gen) / 4).requires_grad_() for _ in range(3)]
    log_g = (-torch.rand(1, 2, 100, generator=gen) * 0.1).requires_grad_()

    def run():
        for x in (q, k, v, log_g):
            x.grad = None
        y = memory.complex_pair_memory(q, k, v, log_g, 1.0, chunk=64)
        (y * torch.linspace(-1, 1, 64)).square().sum().backward()
        return [y.detach()] + [x.grad for x in (q, k, v, log_g)]
    want = run()
    for kind, tile in tiles.items():
        monkeypatch.setitem(tuning.INTERPRETED, kind, (tile, 4, 1))
    tuning._direct.cache_clear()
    try:
        got = run()
    finally:
        tuning._direct.cache_clear()
    for name, a, b in zip(("y", "q", "k", "v", "log_g"), got, want):
        assert rel_error(a, b) < 1e-5, name


def test_a_state_loop_is_split_only_where_few_programs_would_run_it(monkeypatch):
    from blocks.kernels import memory

    monkeypatch.setattr(memory, "_multiprocessors", lambda device: 132)  # an H100's or H200's
    cuda = torch.device("cuda")
    assert (memory.SPLIT_BELOW, memory.SPLIT_WAVES, memory.MIN_SEGMENTS, memory.MIN_SEGMENT) == (1, 8, 4, 16)
    # the mixer benchmark's shapes at B·T = 32k (6 heads of 128 columns; forward 16 tiles a row, backward 8)
    assert memory.segment_length(128, 16 * 24, cuda) == 128  # T = 8k: a wave of programs and more, no split
    assert memory.segment_length(128, 8 * 24, cuda) == 128  # (splitting these 192 lost 8% on an H100)
    assert memory.segment_length(256, 16 * 12, cuda) == 256  # 16k forward: 192 programs
    assert memory.segment_length(256, 8 * 12, cuda) == 24  # 16k backward: 96, in 11 segments
    assert memory.segment_length(512, 16 * 6, cuda) == 47  # 32k forward: 96, in 11 segments
    assert memory.segment_length(512, 8 * 6, cuda) == 24  # 32k backward: 48, in 22 segments
    assert memory.segment_length(63, 1, cuda) == 63  # too few chunks for 4 segments of 16
    assert memory.segment_length(100, 66, cuda) == 17  # 16 segments wanted, 6 possible (of 16 chunks or more)
    assert memory.segment_length(64, 100, cuda) == 16  # 4 segments possible: just enough


@pytest.mark.parametrize("sigma", [0.0, 1.0])
@pytest.mark.parametrize("length", [1, 4])
def test_a_chunk_loop_split_into_segments_gives_the_whole_loops_numbers(monkeypatch, sigma, length):
    # 7 chunks of 16 (the last one short) in segments of 1 and 4 chunks (7 and 2 segments, the last shorter):
    # output and every gradient as the whole loop gives them and as the float64 dual form does, both state kernels
    from blocks.kernels import memory

    b, h, g, t, d = 2, 1, 2, 100, 16
    ref = _inputs(b, h, g, t, d, d, seed=4)
    # weak decay (a segment of 4 chunks decays by ~e^-0.6, not e^-16): a wrong decay carried across segments shows
    ref[3] = (ref[3].detach() * 0.02).requires_grad_()
    if sigma:
        ref[0] = ref[0][:, :, 0].detach().requires_grad_()
    weight = torch.randn(b, h, *([g] if not sigma else []), t, d, generator=torch.Generator().manual_seed(6),
                         dtype=torch.float64)

    def run(split: bool):
        monkeypatch.setattr(memory, "segment_length", lambda n, programs, device: length if split else n)
        mine = [x.detach().float().to(DEVICES[0]).requires_grad_() for x in ref]
        y, _ = memory.memory_fwd_op(*mine, sigma, 16)
        (y * weight.float().to(y.device)).sum().backward()
        return [y.detach().cpu()] + [x.grad.cpu() for x in mine]

    whole, split = run(False), run(True)
    if sigma:
        from blocks.pam import complex_memory

        halves = [part for x in ref[:3] for part in x.split(d // 2, -1)]
        y_ref = torch.cat(complex_memory(*halves, ref[3], mode="dual", chunk=16), -1)
    else:
        y_ref = linear_core.dual(*ref)
    (y_ref * weight).sum().backward()
    for name, a, w, r in zip(("y", "q", "k", "v", "log_g"), split, whole, [y_ref] + [x.grad for x in ref]):
        assert rel_error(a, w) < 1e-6, name
        assert rel_error(a, r.detach()) < 1e-5, name


def test_the_decay_gradients_scan_adds_every_later_chunks_sum():
    # bwd_decay with 2 chunk sums read at a time, so its loop over later chunks runs many blocks (N of 1 to 9, odd
    # and even; 3 key tiles; a short last chunk): d log g_j = the reverse cumulative sum of d c over the key tiles
    from blocks.kernels import memory_bwd

    gen = torch.Generator().manual_seed(7)
    for n_chunks in (1, 2, 5, 9):
        nk, bh, c = 3, 2, 16
        t = n_chunks * c - 5
        dc = torch.randn(nk, bh, t, generator=gen)
        sums = torch.stack([dc[..., i * c:(i + 1) * c].sum(-1) for i in range(n_chunks)], -1)
        out = torch.empty(bh, t, device=DEVICES[0])
        memory_bwd.bwd_decay[(n_chunks, bh)](dc.to(DEVICES[0]), sums.contiguous().to(DEVICES[0]), out, bh, t,
                                             n_chunks, NK=nk, C=c, BN=2)
        want = dc.double().sum(0).flip(-1).cumsum(-1).flip(-1)
        assert rel_error(out.cpu().double(), want) < 1e-5, n_chunks
