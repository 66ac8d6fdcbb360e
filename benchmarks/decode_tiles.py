"""The fused decode kernels one at a time (blocks/kernels/cgu_step.py, pam_step.py, sublayer.py), at the 100M PAM's
shapes (examples/paper_pam_100m.yaml: width 768, CGU hidden 1,152 complex, 6 heads of 64) and batch 1, over a grid of
tiles: programs' rows, columns per loop iteration and warps. Prints µs per launch (a CUDA graph of --launches
launches, replayed --repeats times, CUDA events) and, for the GEMVs, the rate at which they stream Wr and Wi, best
first per kernel, with the current tiles marked; every tile's output is checked against the current tiles' output
(the same sums in another order). Issue 27: the tiles were first guesses, and the H200's decode profile found the
GEMVs streaming at 0.4-0.6 TB/s (docs/performance.md). One process: it chooses tiles and publishes no ratio. On CPU
(Triton's interpreter) it runs each tile once at a width of 64, which checks the outputs and times nothing.

    python benchmarks/decode_tiles.py [--weights fp32 | bf16] [--kernels gate_up project state down out] [--top 5]
"""
from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import torch
import yaml

from archsearch.build import build
from archsearch.context import device_name, resolve_device
from archsearch.lower import lower
from archsearch.passes import run_passes
from archsearch.spec import parse
from blocks import fastpath

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ("gate_up", "project", "state", "down", "out")
# module constant → the values tried; the first is each kernel's current setting, restored after its sweep
GRID = {
    "gate_up": ("cgu_step", {"CGU_CHANNELS": (8, 1, 2, 4), "GATE_UP_TILE": (1024, 512, 2048),
                             "GATE_UP_WARPS": (4, 2, 8)}),
    "project": ("pam_step", {"PROJECT_CHANNELS": (8, 1, 2, 4), "PROJECT_TILE": (2048, 512, 1024),
                             "PROJECT_WARPS": (4, 2, 8)}),
    "state": ("pam_step", {"STATE_ROWS": (16, 8, 32, 64), "STATE_WARPS": (4, 2, 8)}),
    "down": ("sublayer", {"RESIDUAL_ROWS": (2, 1, 4), "RESIDUAL_TILE": (2048, 1024, 4096),
                          "RESIDUAL_WARPS": (4, 2, 8)}),
}
GRID["out"] = GRID["down"]


def layer(width: int, device, weights: torch.dtype):
    """One layer of the paper's 100M skeleton (a CGU and a PAM sublayer, pre-normed) at `width`, on `device`."""
    doc = yaml.safe_load((ROOT / "examples/paper_pam_100m.yaml").read_text())
    doc["model"] |= {"d_model": width, "vocab": 64, "dropout": 0.0}
    doc["stack"]["depth"] = 1
    if width < 768:
        doc["stack"]["sublayers"][1]["config"] |= {"heads": 2, "head_dim": width // 8}
    doc.pop("task")
    torch.manual_seed(0)
    return lower(run_passes(build(parse(doc)))).to(device=device, dtype=weights).eval()


def calls(model, width: int, device):
    """({kernel: its launch, a function of nothing}, {kernel: its Wr, for the bytes streamed}, a function that zeroes
    the PAM state), on the layer's own tensors; x is a random residual row in the weights' dtype."""
    cgu, pam = model.blocks["l0__cgu"], model.blocks["l0__pam"]
    norm_c, norm_p = model.blocks["l0__cgu__norm"], model.blocks["l0__pam__norm"]
    k = {name: fastpath.kernel(name, device) for name in ("cgu_step", "pam_step", "sublayer")}
    x = torch.randn(1, width, device=device, dtype=cgu.gate_up.wr.dtype)
    scale = torch.tensor(0.1, device=device)
    h = k["cgu_step"].gate_up_op(x, norm_c.weight, norm_c.eps / 2, cgu.gate_up.wr, cgu.gate_up.wi,
                                 cgu.modrelu_bias, cgu.gate_bias, torch.bfloat16)
    wr, wi, theta, pos, dw, db, fixed, gw, gb = pam._step_tensors(7, device)
    d, theta, pos = theta.shape[0], theta.float(), pos.reshape(1)  # as pam_sublayer_step passes them, cast once
    project = lambda: k["pam_step"].project_op(x, wr, wi, theta, pos, pam.heads, 1.0 / math.sqrt(d),  # noqa: E731
                                               norm_p.weight, norm_p.eps / 2)
    qkv, z = project()
    sr, si, _ = pam.init_state(1, device=device)
    y = k["pam_step"].state_op(z, qkv, dw, db, fixed, gw, gb, sr.clone(), si.clone(), 1.0, torch.bfloat16)
    return {
        "gate_up": lambda: k["cgu_step"].gate_up_op(x, norm_c.weight, norm_c.eps / 2, cgu.gate_up.wr,
                                                    cgu.gate_up.wi, cgu.modrelu_bias, cgu.gate_bias, torch.bfloat16),
        "project": lambda: project()[0],
        # the state carries on from launch to launch (the work does not depend on its values); zeroed before the
        # launch whose output is checked
        "state": lambda: k["pam_step"].state_op(z, qkv, dw, db, fixed, gw, gb, sr, si, 1.0, torch.bfloat16),
        "down": lambda: k["sublayer"].residual_op(x, h, cgu.down.wr, cgu.down.wi, scale),
        "out": lambda: k["sublayer"].residual_op(x, y, pam.out.wr, pam.out.wi, scale),
    }, {"gate_up": cgu.gate_up.wr, "project": wr, "state": None, "down": cgu.down.wr, "out": pam.out.wr}, \
        lambda: (sr.zero_(), si.zero_())


def time_us(fn, launches: int, repeats: int) -> float:
    """µs per launch: a CUDA graph of `launches` launches, replayed `repeats` times (the median replay)."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(launches):
            fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / launches)
    return sorted(times)[len(times) // 2]


def sweep(name: str, fn, weight, reset, args, device) -> list[tuple]:
    """[(µs or None, TB/s or None, settings)] over the kernel's grid; raises where a tile's output differs."""
    module = fastpath.kernel(GRID[name][0], device)
    grid = GRID[name][1]
    current = {c: getattr(module, c) for c in grid}
    rows, want = [], None
    try:
        for values in itertools.product(*grid.values()):
            settings = dict(zip(grid, values))
            for c, v in settings.items():
                setattr(module, c, v)
            reset()
            got = fn().float()
            if want is None:
                want = got
            elif not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
                raise AssertionError(f"{name} with {settings}: output differs from the current tiles' by "
                                     f"{(got - want).abs().max().item():.3g}")
            us = time_us(fn, args.launches, args.repeats) if device.type == "cuda" else None
            rate = 2 * weight.numel() * weight.element_size() / (us * 1e-6) / 1e12 if us and weight is not None \
                else None
            rows.append((us, rate, settings, settings == current))
    finally:
        for c, v in current.items():
            setattr(module, c, v)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS))
    p.add_argument("--launches", type=int, default=50, help="launches per CUDA graph (default 50)")
    p.add_argument("--repeats", type=int, default=20, help="replays of the graph (default 20; the median is kept)")
    p.add_argument("--top", type=int, default=5, help="rows printed per kernel, best first (default 5)")
    args = p.parse_args(argv)
    device = resolve_device("auto")
    if not fastpath.kernels_available(device):
        p.error("the kernels cannot run here: they need Triton and a CUDA GPU (or TRITON_INTERPRET=1 on CPU)")
    width = 768 if device.type == "cuda" else 64
    model = layer(width, device, torch.bfloat16 if args.weights == "bf16" else torch.float32)
    fns, weights, reset = calls(model, width, device)
    print(f"fused decode kernels at batch 1, width {width}, {args.weights} weights, on {device_name(device)}")
    with torch.no_grad():
        for name in args.kernels:
            rows = sweep(name, fns[name], weights[name], reset, args, device)
            timed = sorted(rows, key=lambda r: r[0]) if rows[0][0] is not None else rows
            print(f"\n{name}: {len(rows)} tiles, every output equal to the current tiles' (rtol 1e-4)")
            for us, rate, settings, now in timed[:args.top] + [r for r in timed[args.top:] if r[3]]:
                cost = f"{us:8.2f} µs" + (f"  {rate:5.2f} TB/s" if rate else "") if us else "   (not timed on CPU)"
                print(f"  {cost}  {', '.join(f'{c} {v}' for c, v in settings.items())}{'  ← current' if now else ''}")


if __name__ == "__main__":
    main()
