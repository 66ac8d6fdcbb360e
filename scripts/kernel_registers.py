"""Registers and spills of the fused decode GEMVs (blocks/kernels: cgu_step.gate_up, pam_step.project,
sublayer.residual (also as the head's linear) and head_step.logits) compiled for sm_90a on a machine without a GPU:
triton.compile to PTX for an H200's target, then ptxas -v, the one Triton runs for sm_90 (the `ptxas-blackwell` it
ships). At the 100M paper model's shapes (n 384, h 1152, H·d 384, GPT-2's 50,257-token table), batch 1 and 8, fp32
and bf16 weights; arguments specialized as Triton's launcher does (an int 1 a constant; 16-byte aligned pointers and
ints divisible by 16 marked so).

    PYTHONPATH=. python scripts/kernel_registers.py
"""
import re
import subprocess
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import get_ptxas
from triton.compiler import ASTSource

from blocks.kernels import cgu_step, head_step, pam_step, sublayer

N, HIDDEN, HEADS, D, VOCAB = 384, 1152, 6, 64, 50257


def registers(fn, args: dict, consts: dict, warps: int) -> str:
    """fn compiled for sm_90a with `warps` warps: args name → (Triton type, the int's value or None), consts its
    constexprs."""
    sig, attrs, consts = {}, {}, dict(consts)
    for i, name in enumerate(fn.arg_names):
        ty, value = args.get(name, ("constexpr", None))
        if ty == "i32" and value == 1:
            ty, consts[name] = "constexpr", 1
        elif ty.startswith("*") or (ty == "i32" and value % 16 == 0):
            attrs[(i,)] = [["tt.divisibility", 16]]
        sig[name] = ty
    ptx = triton.compile(ASTSource(fn, sig, consts, attrs), target=GPUTarget("cuda", 90, 32),
                         options={"num_warps": warps}).asm["ptx"]
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as f:
        f.write(ptx)
        f.flush()
        log = subprocess.run([get_ptxas(90).path, "-lineinfo", "-v", "--regAllocOptLevel=2", "--gpu-name=sm_90a",
                              f.name, "-o", f.name + ".o"], capture_output=True, text=True, check=True).stderr
    regs = re.search(r"Used (\d+) registers", log).group(1)
    stack, stores, loads = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads",
                                     log).groups()
    return f"{regs} registers, stack frame {stack} B, spill stores {stores} B, loads {loads} B"


def main():
    f32 = ("*fp32", None)
    for w in ("*fp32", "*bf16"):
        half = ("*bf16", None) if w == "*bf16" else f32  # h and y between kernels: the compute dtype
        for b in (1, 8):
            print(f"weights {w[1:]}, batch {b}")
            bb, bk = sublayer.tiles(b, cgu_step.CGU_CHANNELS, N, cgu_step.GATE_UP_TILE)
            print(f"  gate_up (BK {bk}):", registers(cgu_step.gate_up, {
                "x_ptr": f32, "nw_ptr": f32, "wr_ptr": (w, None), "wi_ptr": (w, None), "mb_ptr": f32, "gb_ptr": f32,
                "h_ptr": half, "B": ("i32", b), "N": ("i32", N), "H": ("i32", HIDDEN), "eps": ("fp32", None)},
                {"HAS_GB": False, "BB": bb, "BJ": cgu_step.CGU_CHANNELS, "BK": bk, "PDL": True},
                cgu_step.GATE_UP_WARPS))
            bj = min(pam_step.PROJECT_CHANNELS, D)  # as project_op
            bb, bk = sublayer.tiles(b, bj, N, pam_step.PROJECT_TILE)
            print(f"  project (BK {bk}):", registers(pam_step.project, {
                "x_ptr": f32, "nw_ptr": f32, "z_ptr": f32, "wr_ptr": (w, None), "wi_ptr": (w, None),
                "theta_ptr": f32, "pos_ptr": ("*i64", None), "out_ptr": f32, "B": ("i32", b), "N": ("i32", N),
                "H": ("i32", HEADS), "d": ("i32", D), "scale": ("fp32", None), "eps": ("fp32", None)},
                {"NORM": True, "BB": bb, "BJ": bj, "BK": bk, "PDL": True}, pam_step.PROJECT_WARPS))
            for label, k in (("down", HIDDEN), ("out", HEADS * D)):
                bb, bk = sublayer.tiles(b, 2 * sublayer.RESIDUAL_ROWS, k, sublayer.RESIDUAL_TILE)
                print(f"  residual, {label} (BK {bk}):", registers(sublayer.residual, {
                    "r_ptr": f32, "h_ptr": half, "nw_ptr": f32, "wr_ptr": (w, None), "wi_ptr": (w, None),
                    "s_ptr": f32, "out_ptr": f32, "B": ("i32", b), "M": ("i32", N), "K": ("i32", k),
                    "eps": ("fp32", None)},
                    {"HAS_RESIDUAL": True, "HAS_SCALE": True, "NORM": False, "BB": bb,
                     "BJ": sublayer.RESIDUAL_ROWS, "BK": bk, "PDL": True}, sublayer.RESIDUAL_WARPS))
            bb, bk = sublayer.tiles(b, 2 * head_step.LINEAR_ROWS, N, head_step.LINEAR_TILE)
            print(f"  head linear (BK {bk}):", registers(sublayer.residual, {
                "r_ptr": f32, "h_ptr": f32, "nw_ptr": f32, "wr_ptr": (w, None), "wi_ptr": (w, None), "s_ptr": f32,
                "out_ptr": half, "B": ("i32", b), "M": ("i32", N), "K": ("i32", N), "eps": ("fp32", None)},
                {"HAS_RESIDUAL": False, "HAS_SCALE": False, "NORM": True, "BB": bb, "BJ": head_step.LINEAR_ROWS,
                 "BK": bk, "PDL": True}, head_step.LINEAR_WARPS))
            bb, bk = sublayer.tiles(b, 2 * head_step.HEAD_ROWS, N, head_step.HEAD_TILE)
            print(f"  head logits (BK {bk}):", registers(head_step.logits, {
                "x_ptr": f32, "nw_ptr": f32, "w_ptr": (w, None), "out_ptr": half, "B": ("i32", b),
                "M": ("i32", VOCAB), "N": ("i32", N), "eps": ("fp32", None)},
                {"BB": bb, "BJ": head_step.HEAD_ROWS, "BK": bk, "PDL": True}, head_step.HEAD_WARPS))


if __name__ == "__main__":
    main()
