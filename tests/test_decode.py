"""archsearch.decode on CPU: what a CUDA-graph decode step relies on (position counters as device tensors give the
same step as Python ints; state trees copy in place), and its errors. The capture itself runs in tests/test_gpu.py."""
from contextlib import nullcontext

import pytest
import torch

from archsearch.build import build
from archsearch.decode import GraphedDecoder, clone_state, copy_state, fused_by_default, to_device_state
from archsearch.lower import lower
from archsearch.passes import run_passes
from archsearch.spec import parse


def _model(mixer: str, positions: str = "none", **config):
    spec = {"model": {"d_model": 32, "seq_len": 32, "vocab": 50},
            "embedding": {"block": "embedding", "config": {"positions": positions}},
            "stack": {"depth": 2, "sublayers": [{"block": mixer, "config": {"heads": 2, **config}},
                                                {"block": "swiglu"}]}}
    torch.manual_seed(0)
    return lower(run_passes(build(parse(spec)))).eval()


@pytest.mark.parametrize("mixer, positions, fused", [("pam", "none", False), ("linear_attention", "learned", False),
                                                     ("holographic", "none", False),
                                                     ("softmax_attention", "learned", False), ("pam", "none", True)])
def test_tensor_positions_step_like_int_positions(mixer, positions, fused):
    """A graphed decoder's step (positions as device tensors, the state buffers updated in place) gives the eager
    step's logits at every token, so each step reads the state the last one wrote. fused: with PAM's fused decode
    kernels (fastpath.fused_decode; on CPU through Triton's interpreter), against the torch step."""
    from blocks import fastpath

    if fused and not fastpath.kernels_available(torch.device("cpu")):
        pytest.skip("the Triton interpreter does not run here")
    model = _model(mixer, positions, **({"head_dim": 8} if fused else {}))
    ids = torch.randint(0, 50, (2, 10 if fused else 6))
    eager = model.init_state(2)
    graphable = to_device_state(model.init_state(2), torch.device("cpu"))
    with torch.no_grad():
        for t in range(ids.shape[1]):
            want, eager = model.step(ids[:, t], eager)
            with fastpath.fused_decode() if fused else nullcontext():
                got, new = model.step(ids[:, t], graphable)
            copy_state(graphable, new)  # what the captured graph does: update the fixed buffers in place
            torch.testing.assert_close(got, want, **({"rtol": 1e-5, "atol": 1e-5} if fused else {}))


@pytest.mark.parametrize("name, i", [("pam", 0), ("pam", 1), ("holographic", 0)])
def test_the_forms_a_compiled_step_takes_compute_the_eager_step(name, i, monkeypatch):
    """Under torch.compile a decode step writes PAM's state update and the decay/GSP gates' few-column maps as fp32
    products and sums (for inductor to fuse; blocks/pam.py, blocks/gates.py). Run eagerly, those forms must give
    the eager step's numbers; the compiled step itself is checked against eager on a GPU (tests/test_gpu.py)."""
    from archsearch import registry

    cls = registry.get(name)
    torch.manual_seed(0)
    block = cls(cls.Config(**cls.test_configs[i]), d_model=32).eval()
    xs = torch.randn(4, 2, 32)
    with torch.no_grad():
        want, state = [], block.init_state(2)
        for x in xs:
            y, state = block.step(x, state)
            want.append(y)
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
        state = block.init_state(2)
        for x, w in zip(xs, want):
            y, state = block.step(x, state)
            torch.testing.assert_close(y, w, atol=1e-7, rtol=1e-5)


def test_state_trees_clone_and_copy_in_place():
    state = to_device_state(_model("pam").init_state(1), torch.device("cpu"))
    saved = clone_state(state)
    leaves = [s for v in state.values() for s in (v if isinstance(v, tuple) else (v,))]
    for leaf in leaves:
        leaf.add_(1)
    copy_state(state, saved)
    assert all(torch.equal(a, b) for a, b in zip(leaves, [s for v in saved.values()
                                                          for s in (v if isinstance(v, tuple) else (v,))]))


def test_attention_at_a_device_position_reads_only_what_was_written():
    """The graphable attention step attends over the whole cache with unwritten entries masked: garbage there (a
    cache reused, or cut longer than the context) changes nothing."""
    block = _model("softmax_attention").blocks["l0__softmax_attention"]
    x = torch.randn(2, 5, 32)
    clean = to_device_state(block.init_state(2), torch.device("cpu"))
    dirty = to_device_state(block.init_state(2), torch.device("cpu"))
    dirty[0].normal_(), dirty[1].normal_()
    with torch.no_grad():
        for t in range(5):
            want, clean = block.step(x[:, t], clean)
            got, dirty = block.step(x[:, t], dirty)
            torch.testing.assert_close(got, want)
    assert int(dirty[2]) == 5


def test_graph_decode_needs_a_gpu():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        GraphedDecoder(_model("pam"), batch=1, device=torch.device("cpu"))


def test_fused_kernels_decode_by_default_only_the_batches_they_were_measured_quicker_at():
    """The fused sublayer kernels were 2.1× quicker than the compiled step at batch 1, 1.22× slower at batch 4 and 4×
    slower at batch 64 (batch 2 is not measured)."""
    assert fused_by_default(1)
    assert not fused_by_default(2) and not fused_by_default(64)


def test_blocks_cut_their_own_caches_and_a_snapshot_keeps_only_what_a_step_reads():
    """decode asks a block with a cache to cut it (cut_cache): softmax attention's KV cache becomes views of its
    first entries; a recurrent state passes unchanged. A snapshot cuts the caches to nothing (their entries past the
    counter are masked), and restoring it rewinds the counters and recurrent states in place."""
    from archsearch.decode import _restore, _snapshot, cut_caches

    model = _model("softmax_attention")
    state = to_device_state(model.init_state(2), torch.device("cpu"))
    cut = cut_caches(model, state, 5)
    kv = cut["l0__softmax_attention"]
    assert kv[0].shape[2] == 5 and kv[0].data_ptr() == state["l0__softmax_attention"][0].data_ptr()
    saved = _snapshot(model, state)
    assert saved["l0__softmax_attention"][0].numel() == 0
    with torch.no_grad():
        for t in range(3):
            _, new = model.step(torch.tensor([t, t]), state)
            copy_state(state, new)
    assert int(state["l0__softmax_attention"][2]) == 3
    _restore(model, state, saved)
    assert int(state["l0__softmax_attention"][2]) == 0
    recurrent = _model("pam")
    pam_state = recurrent.init_state(1)
    assert cut_caches(recurrent, pam_state, 0)["l0__pam"] is pam_state["l0__pam"]
