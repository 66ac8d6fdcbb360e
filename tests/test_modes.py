"""blocks/fastpath.py, the one owner of which form runs: `mode: auto` and every fast path take the Triton kernels
only on a CUDA GPU that can run them, a torch twin elsewhere and whenever FLOPs are being counted (a counter sees
nothing inside a kernel); the one compiled-decode rule."""
import torch

from archsearch import flops
from blocks import fastpath


def test_auto_picks_the_kernels_only_on_a_gpu_that_can_run_them(monkeypatch):
    monkeypatch.setattr(fastpath, "kernels_available", lambda device: True)
    assert fastpath.use_kernels(torch.device("cuda")) and not fastpath.use_kernels(torch.device("cpu"))
    assert fastpath.auto_mode(4096, 64, torch.device("cuda")) == "triton"
    assert fastpath.auto_mode(4096, 64, torch.device("cpu")) == "chunked"  # CPU: the interpreter is for tests
    monkeypatch.setattr(fastpath, "kernels_available", lambda device: False)
    assert not fastpath.use_kernels(torch.device("cuda"))
    assert fastpath.auto_mode(4096, 64, torch.device("cuda")) == "chunked"
    assert fastpath.auto_mode(512, 64, torch.device("cuda")) == "dual"


def test_counting_flops_runs_the_reference_forms(monkeypatch):
    monkeypatch.setattr(fastpath, "kernels_available", lambda device: True)
    seen = []
    flops.count(lambda: seen.append((fastpath.auto_mode(4096, 64, torch.device("cuda")),
                                     fastpath.use_kernels(torch.device("cuda")))))
    assert seen == [("chunked", False)]
    assert fastpath.auto_mode(4096, 64, torch.device("cuda")) == "triton"  # restored afterwards
    with fastpath.reference_forms():
        with fastpath.reference_forms():
            pass
        assert not fastpath.use_kernels(torch.device("cuda"))  # an inner context restores the outer one's


def test_counting_flops_sets_the_models_logit_padding_aside():
    class Model:
        pad_logits = True

    model, seen = Model(), []
    flops.count(lambda: seen.append(model.pad_logits), model=model)
    assert seen == [False] and model.pad_logits


def test_a_compiled_decode_step_is_a_traced_step_without_gradients(monkeypatch):
    assert not fastpath.compiled_decode()
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not fastpath.compiled_decode()  # compiled training
    with torch.no_grad():
        assert fastpath.compiled_decode()


def test_the_loss_takes_the_kernel_only_where_kernels_run(monkeypatch):
    from blocks import fused_loss

    calls = []

    class Kernels:
        @staticmethod
        def cross_entropy(logits, y, vocab):
            calls.append(vocab)
            return fused_loss.cross_entropy(logits, y, vocab)

    monkeypatch.setattr(fastpath, "use_kernels", lambda device: True)
    monkeypatch.setattr(fastpath, "kernel", lambda name, device: Kernels)
    logits, y = torch.randn(2, 3, 8), torch.randint(0, 6, (2, 3))
    assert fused_loss.lm_loss(logits, y, 6) == fused_loss.cross_entropy(logits, y, 6) and calls == [6]
    monkeypatch.setattr(fastpath, "use_kernels", lambda device: False)
    fused_loss.lm_loss(logits, y, 6)
    assert calls == [6]
