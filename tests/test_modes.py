"""Which form `mode: auto` runs: the Triton kernels on a CUDA GPU that can run them, a pure-torch form elsewhere and
whenever FLOPs are being counted (a counter sees nothing inside a kernel)."""
import torch

from archsearch import flops
from blocks import linear_core


def test_auto_picks_the_kernels_only_on_a_gpu_that_can_run_them(monkeypatch):
    monkeypatch.setattr(linear_core, "triton_usable", lambda device: True)
    assert linear_core.auto_mode(4096, 64, torch.device("cuda")) == "triton"
    assert linear_core.auto_mode(4096, 64, torch.device("cpu")) == "chunked"  # CPU: the interpreter is for tests
    monkeypatch.setattr(linear_core, "triton_usable", lambda device: False)
    assert linear_core.auto_mode(4096, 64, torch.device("cuda")) == "chunked"
    assert linear_core.auto_mode(512, 64, torch.device("cuda")) == "dual"


def test_counting_flops_switches_auto_to_the_torch_forms(monkeypatch):
    monkeypatch.setattr(linear_core, "triton_usable", lambda device: True)
    seen = []
    flops.count(lambda: seen.append(linear_core.auto_mode(4096, 64, torch.device("cuda"))))
    assert seen == ["chunked"]
    assert linear_core.auto_mode(4096, 64, torch.device("cuda")) == "triton"  # restored afterwards
