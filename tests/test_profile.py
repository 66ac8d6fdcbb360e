"""`archsearch profile`: a TensorBoard trace that torch-tb-profiler parses, and a per-node table covering every node."""
import importlib.util
import json
import subprocess
import sys

import torch

from archsearch import profile
from archsearch.compiler import compile_spec, compile_text
from blocks import fastpath

from helpers import COMPILED_BATCH, COMPILED_SPEC


def test_profile_trace_parses_and_the_table_covers_every_node(root, tmp_path):
    ir = compile_spec(str(root / "examples/hybrid_four_memories.yaml"), vocab=64)
    prof = profile.run(ir, tmp_path, device=torch.device("cpu"), batch=1, seq_len=32, steps=1, decode=2)
    rows, phases = prof.rows, prof.phases
    names = [n.name for n in ir.nodes()]
    train_rows = [r for r in rows if not r.name.startswith("decode/")]
    assert [r.name for r in train_rows] == names and all(r.calls == 1 and r.cpu_ms > 0 for r in train_rows)
    assert [r.name for r in rows if r.name.startswith("decode/")] == [f"decode/{n}" for n in names]
    assert set(phases) == {"forward", "loss", "backward", "optimizer", "decode_step"}
    traces = sorted(tmp_path.glob("*.pt.trace.json"))
    assert len(traces) == 2
    from torch_tb_profiler.profiler.data import RunProfileData

    for trace in traces:  # TensorBoard's profiler plugin loads both (training steps, decode steps)
        data = RunProfileData.parse("worker", None, str(trace), str(tmp_path))
        assert data.events and data.op_list_groupby_name
        ranges = {e["name"] for e in json.loads(trace.read_text())["traceEvents"] if e.get("cat") == "user_annotation"}
        assert set(names) <= ranges  # every node's range is in the trace
    table = profile.format_table(prof, torch.device("cpu"), ops=5)
    assert all(n in table for n in names)
    # the op table: aten ops (the optimizer's marked so), most expensive first, five of them listed
    assert prof.ops and all(r.name.removeprefix("optimizer: ").startswith("aten::") and r.calls > 0 for r in prof.ops)
    names = {r.name for r in prof.ops}  # AdamW on CPU: its ops inside its range; the model's outside it
    assert "optimizer: aten::lerp_" in names and "aten::mm" in names and "optimizer: aten::mm" not in names
    assert [r.ms for r in prof.ops] == sorted((r.ms for r in prof.ops), reverse=True)
    listed = [" ".join(line.split()[:-3]) for line in table.split("top 5 of")[1].splitlines()[2:] if line.strip()]
    assert listed == [r.name for r in prof.ops[:5]]


def test_profile_cli(root, tmp_path):
    r = subprocess.run([sys.executable, "-m", "archsearch", "profile", str(root / "examples/tiny_transformer.yaml"),
                        "--steps", "1", "--batch", "2", "--seq-len", "32", "--logdir", str(tmp_path / "p")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "l0.softmax_attention" in r.stdout and "per step: forward" in r.stdout
    # nothing on stderr but the embedded data's tokenising progress (run alone, this test's session cache is cold)
    assert all(line.startswith(("embedded: tokenising", "tokenising ")) for line in
               r.stderr.replace("\r", "\n").splitlines() if line.strip()), r.stderr
    assert "top 20 of" in r.stdout and "aten::" in r.stdout
    assert list((tmp_path / "p").glob("*.pt.trace.json"))


def test_profile_of_the_compiled_step_lists_ops_not_nodes(root, tmp_path):
    ir = compile_text(COMPILED_SPEC)  # the compiled training test's model and shape: its kernels are built once
    prof = profile.run(ir, tmp_path, device=torch.device("cpu"), batch=COMPILED_BATCH, seq_len=32, steps=1,
                       compiled=True)
    assert prof.rows == [] and set(prof.phases) == {"forward + loss", "backward", "optimizer"} and prof.ops
    table = profile.format_table(prof, torch.device("cpu"), ops=3)
    assert table.startswith("training steps compiled: no per-node times") and "top 3 of" in table


def test_gpu_op_table_counts_inductors_kernels_but_not_a_ranges_twin():
    # A CUDA profile's host events as the profiler hands them over (no GPU needed): a user range ("forward") carries
    # its GPU-side twin under its own name; inductor launches a kernel inside a host range of the kernel's name,
    # which is no user annotation; an aten op carries the kernels it launched.
    from types import SimpleNamespace as NS

    cpu = torch.autograd.DeviceType.CPU
    kernel = lambda name, us: NS(name=name, duration=us)  # noqa: E731
    events = [NS(name="forward", device_type=cpu, is_user_annotation=True, kernels=[kernel("forward", 900.0)]),
              NS(name="triton_poi_fused_add_0", device_type=cpu, is_user_annotation=False,
                 kernels=[kernel("triton_poi_fused_add_0", 30.0)]),
              NS(name="aten::mm", device_type=cpu, is_user_annotation=False,
                 kernels=[kernel("void sm90_xmma_gemm<float>(Params)", 200.0)]),
              NS(name="kernel_on_gpu", device_type=torch.autograd.DeviceType.CUDA, is_user_annotation=False,
                 kernels=[]),
              NS(name="aten::_fused_adamw_", device_type=cpu, is_user_annotation=False,  # inside the optimizer range
                 cpu_parent=NS(name="optimizer", cpu_parent=None), kernels=[kernel("multi_tensor_apply_kernel", 50.0)])]
    rows = {r.name: r for r in profile._ops(NS(events=lambda: events), steps=1, cuda=True)}
    assert set(rows) == {"kernel triton_poi_fused_add_0", "aten::mm", "optimizer: aten::_fused_adamw_"}
    assert rows["aten::mm"].ms == 0.2 and rows["kernel triton_poi_fused_add_0"].calls == 1


def test_the_op_table_sums_each_kind_of_work():
    # what a compiled GPU step's op table holds: cuBLAS under aten::mm, this project's kernels and inductor's by name
    rows = [profile.OpRow("aten::mm", 10, 6.0), profile.OpRow("kernel bwd_dqk", 2, 2.0),
            profile.OpRow("kernel triton_red_fused_mul_sum_3", 4, 1.0),
            profile.OpRow("optimizer: aten::_fused_adamw_", 1, 0.5),
            profile.OpRow("aten::_scaled_dot_product_cudnn_attention_backward", 1, 0.4),
            profile.OpRow("aten::copy_", 3, 0.1)]
    triton = importlib.util.find_spec("triton") is not None
    assert [profile.kind_of(r.name) for r in rows] == [
        "matrix products", "archsearch's Triton kernels" if triton else "other kernels",
        "inductor's generated kernels", "optimizer", "attention", "other aten ops"]
    if triton:  # every kernel module's kernels, by the names a CUDA trace gives them
        assert {"fwd_states", "bwd_dqk", "gate_up", "logits", "ce_fwd", "cgu_fwd"} <= fastpath.kernel_names()
    # kernels launched outside an aten op, by name: library and template GEMMs, attention, the rest
    assert [profile.kind_of(f"kernel {k}") for k in (
        "sm90_xmma_gemm_bf16bf16_bf16f32", "nvjet_hsh_128x256_64x4", "triton_tem_fused_mm_4", "flash_fwd_kernel",
        "triton_tem_fused_flex_attention_0", "triton_per_fused_native_layer_norm_2", "memcpy32_post")] == [
        "matrix products", "matrix products", "matrix products", "attention", "attention",
        "inductor's generated kernels", "other kernels"]
    kinds, top = profile._format_ops(rows, 2, cuda=True).strip("\n").split("\n\n")
    assert kinds.splitlines()[0].endswith("10.00 ms in all)")  # every op's time, not just the listed ones'
    assert kinds.splitlines()[1].split() == ["kind", "ms", "share"] and len(kinds.splitlines()) == 8
    assert kinds.splitlines()[2].split() == ["matrix", "products", "6.000", "60.0%"]  # the most first
    assert top.startswith("top 2 of 6 ops")
