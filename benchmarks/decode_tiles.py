"""The fused decode kernels one at a time (blocks/kernels/cgu_step.py, pam_step.py, sublayer.py, head_step.py), at the
100M PAM's shapes (examples/paper_pam_100m.yaml: width 768, CGU hidden 1,152 complex, 6 heads of 64, the head's
complex map and GPT-2's 50,257-token table) and batch 1, over a grid of
tiles: programs' rows, columns per loop iteration and warps. Prints µs per launch (a CUDA graph of --launches
launches, replayed --repeats times, CUDA events) and, for the GEMVs, the rate at which they stream Wr and Wi, best
first per kernel, with the current tiles marked; every tile's output is checked against the current tiles' output
(the same sums in another order). Issue 27: the first tiles were guesses, and the H200's decode profile found the
GEMVs streaming at 0.4-0.6 TB/s (docs/performance.md). Each timed launch reads a copy of its weights (or state)
that is cold in L2, as in a decode step. One process: it chooses tiles and publishes no ratio. On CPU (Triton's
interpreter) it runs each tile once at a width of 128 (2 heads of 16, a table of 100 tokens), which checks the
indexing of every split into programs and times nothing (the interpreter ignores warps).

    python benchmarks/decode_tiles.py [--weights fp32 | bf16] [--kernels gate_up project state down out head logits]
                                      [--top 5]
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
KERNELS = ("gate_up", "project", "state", "down", "out", "head", "logits")
# module constant → the values tried (the module's current value is timed too, and is the reference)
GRID = {
    "gate_up": ("cgu_step", {"CGU_CHANNELS": (1, 2, 4, 8), "GATE_UP_TILE": (512, 1024, 2048),
                             "GATE_UP_WARPS": (2, 4, 8)}),
    "project": ("pam_step", {"PROJECT_CHANNELS": (1, 2, 4, 8), "PROJECT_TILE": (512, 1024, 2048),
                             "PROJECT_WARPS": (2, 4, 8)}),
    "state": ("pam_step", {"STATE_ROWS": (8, 16, 32, 64), "STATE_WARPS": (2, 4, 8)}),
    "down": ("sublayer", {"RESIDUAL_ROWS": (1, 2, 4), "RESIDUAL_TILE": (1024, 2048, 4096),
                          "RESIDUAL_WARPS": (2, 4, 8)}),
}
GRID["out"] = GRID["down"]
GRID["head"] = ("head_step", {"LINEAR_ROWS": (1, 2, 4), "LINEAR_TILE": (1024, 2048, 4096), "LINEAR_WARPS": (2, 4, 8)})
GRID["logits"] = ("head_step", {"HEAD_ROWS": (4, 8, 16, 32), "HEAD_TILE": (4096, 8192, 16384),
                                "HEAD_WARPS": (2, 4, 8)})
VOCAB = 50257  # GPT-2's, the paper's tied table (100 on CPU: the interpreter runs every program)
COLD_BYTES = 120e6  # weight copies cycled through per graph: more than twice the H200's L2 (~50 MB), so that each
# launch reads its weights from HBM, as a decode step does (its layers' ~245 MB evict one another)


def layer(width: int, device, weights: torch.dtype):
    """One layer of the paper's 100M skeleton (a CGU and a PAM sublayer, pre-normed) at `width`, on `device`, its
    parameters (not its buffers, as benchmarks/decode.py --weights) in `weights`."""
    doc = yaml.safe_load((ROOT / "examples/paper_pam_100m.yaml").read_text())
    doc["model"] |= {"d_model": width, "vocab": 64, "dropout": 0.0}
    doc["stack"]["depth"] = 1
    if width < 768:  # 2 heads of width / 8: more than one block of state rows for the smaller STATE_ROWS
        doc["stack"]["sublayers"][1]["config"] |= {"heads": 2, "head_dim": width // 8}
    doc.pop("task")
    torch.manual_seed(0)
    model = lower(run_passes(build(parse(doc)))).to(device).eval()
    for prm in model.parameters():
        prm.data = prm.data.to(weights)
    return model


class Launches:
    """Each kernel's launch on the layer's own tensors (x a random residual row in the weights' dtype), as a
    function of a copy index: the GEMVs cycle through copies of their weights, the state kernel through copies of
    its state (cold in L2, as in a decode step)."""

    def __init__(self, model, width: int, device):
        cgu, pam = model.blocks["l0__cgu"], model.blocks["l0__pam"]
        norm_c, norm_p = model.blocks["l0__cgu__norm"], model.blocks["l0__pam__norm"]
        k = {name: fastpath.kernel(name, device) for name in ("cgu_step", "pam_step", "sublayer", "head_step")}
        x = torch.randn(1, width, device=device, dtype=cgu.gate_up.wr.dtype)
        scale = torch.tensor(0.1, device=device)
        wr, wi, theta, pos, dw, db, fixed, gw, gb = pam._step_tensors(7, device)
        d, theta, pos = theta.shape[0], theta.float(), pos.reshape(1)  # as pam_sublayer_step passes them
        gate_up = lambda w: k["cgu_step"].gate_up_op(x, norm_c.weight, norm_c.eps / 2, *w,  # noqa: E731
                                                     cgu.modrelu_bias, cgu.gate_bias, torch.bfloat16)
        project = lambda w: k["pam_step"].project_op(x, *w, theta, pos, pam.heads, 1.0 / math.sqrt(d),  # noqa: E731
                                                     norm_p.weight, norm_p.eps / 2)
        h = gate_up((cgu.gate_up.wr, cgu.gate_up.wi))
        qkv, z = project((wr, wi))
        sr, si, _ = pam.init_state(1, device=device)
        self.start = (torch.randn_like(sr), torch.randn_like(si))  # a state the checked launch decays and reads
        y = k["pam_step"].state_op(z, qkv, dw, db, fixed, gw, gb, sr, si, 1.0, torch.bfloat16, None)

        def state(st):  # → (y, and the state it updated in place)
            return (k["pam_step"].state_op(z, qkv, dw, db, fixed, gw, gb, *st, 1.0, torch.bfloat16, None), *st)

        # the head: a complex map of the stream's width and a tied table (random: the layer has no such head)
        gen = torch.Generator(device=device).manual_seed(1)
        n, dtype = width // 2, x.dtype
        head = [torch.randn(n, n, generator=gen, device=device).div(width ** 0.5).to(dtype) for _ in range(2)]
        vocab = VOCAB if device.type == "cuda" else 100
        table = 0.02 * torch.randn(vocab, width, generator=gen, device=device)
        normed = lambda op, w: op(x, norm_c.weight, norm_c.eps / 2, *w, torch.bfloat16)  # noqa: E731
        self.fns = {"gate_up": gate_up, "project": lambda w: project(w)[0], "state": state,
                    "down": lambda w: k["sublayer"].residual_op(x, h, *w, scale),
                    "out": lambda w: k["sublayer"].residual_op(x, y, *w, scale),
                    "head": lambda w: normed(k["head_step"].linear_op, w),
                    "logits": lambda w: normed(k["head_step"].logits_op, w)}
        self.tensors = {"gate_up": (cgu.gate_up.wr, cgu.gate_up.wi), "project": (wr, wi), "state": (sr, si),
                        "down": (cgu.down.wr, cgu.down.wi), "out": (pam.out.wr, pam.out.wi), "head": tuple(head),
                        "logits": (table.to(dtype),)}

    def checked(self, name: str):
        """The kernel's outputs from fixed inputs (the state from self.start), in fp32."""
        if name == "state":
            st = tuple(t.clone() for t in self.start)
            return [t.float() for t in self.fns[name](st)]
        return [self.fns[name](self.tensors[name]).float()]

    def timed(self, name: str, launches: int):
        """A function of nothing that launches the kernel `launches` times over enough copies of its tensors to be
        cold in L2."""
        size = sum(t.numel() * t.element_size() for t in self.tensors[name])
        n = min(launches, math.ceil(COLD_BYTES / size))
        copies = [tuple(t.clone() for t in self.tensors[name]) for _ in range(n)]
        fn = self.fns[name]
        return lambda: [fn(copies[i % len(copies)]) for i in range(launches)]


def time_us(fn, launches: int, repeats: int) -> float:
    """µs per launch: a CUDA graph of fn (`launches` launches), replayed `repeats` times (the median replay)."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
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


def close(got: list, want: list) -> bool:
    """The same sums in another order, to 1% of each value or of the output's largest: an output rounded to bf16 may
    land one bf16 step (2⁻⁸) away where the fp32 sums straddle a rounding boundary; a wrong index or mask is off by
    far more."""
    return all(torch.allclose(g, w, rtol=1e-2, atol=1e-2 * w.abs().max().item()) for g, w in zip(got, want))


def sweep(name: str, launches: Launches, args, device) -> list[tuple]:
    """[(µs or None, TB/s or None, settings, is current, error or None)] over the kernel's grid and its current
    tiles; a tile whose output differs from the current tiles' raises."""
    module = fastpath.kernel(GRID[name][0], device)
    grid = GRID[name][1]
    current = {c: getattr(module, c) for c in grid}
    tiles = [current] + [t for t in (dict(zip(grid, v)) for v in itertools.product(*grid.values())) if t != current]
    weights = 0 if name == "state" else sum(t.numel() * t.element_size() for t in launches.tensors[name])
    rows, want = [], None
    try:
        for settings in tiles:
            for c, v in settings.items():
                setattr(module, c, v)
            try:
                got = launches.checked(name)
                us = time_us(launches.timed(name, args.launches), args.launches, args.repeats) \
                    if device.type == "cuda" else None
            except AssertionError:
                raise
            except Exception as e:  # e.g. a tile that does not fit the GPU's shared memory: say so, go on
                rows.append((None, None, settings, settings == current, " ".join(str(e).split())[:120]))
                continue
            want = got if want is None else want
            if not close(got, want):
                raise AssertionError(f"{name} with {settings}: output differs from the current tiles' by "
                                     f"{max((g - w).abs().max().item() for g, w in zip(got, want)):.3g}")
            rate = weights / (us * 1e-6) / 1e12 if us and weights else None
            rows.append((us, rate, settings, settings == current, None))
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
    width = 768 if device.type == "cuda" else 128
    model = layer(width, device, torch.bfloat16 if args.weights == "bf16" else torch.float32)
    launches = Launches(model, width, device)
    probe = next(model.parameters())
    order = ("launched dependently, each overlapping the last (PDL; ARCHSEARCH_PDL=0 for one after another)"
             if fastpath.kernel("sublayer", device).pdl(probe, probe) else "launched one after another")
    print(f"fused decode kernels at batch 1, width {width}, {args.weights} weights, on {device_name(device)}; "
          f"weights cold in L2 (copies cycled, {COLD_BYTES / 1e6:.0f} MB); {order}")
    with torch.no_grad():
        for name in args.kernels:
            rows = sweep(name, launches, args, device)
            ok = [r for r in rows if r[4] is None]
            timed = sorted(ok, key=lambda r: r[0]) if ok and ok[0][0] is not None else ok
            print(f"\n{name}: {len(ok)} tiles, every output equal to the current tiles' (to a bf16 step where "
                  f"rounded to bf16)" + (f"; {len(rows) - len(ok)} could not run" if len(ok) < len(rows) else ""))
            for us, rate, settings, now, _ in timed[:args.top] + [r for r in timed[args.top:] if r[3]]:
                cost = f"{us:8.2f} µs" + (f"  {rate:5.2f} TB/s" if rate else "") if us else "   (not timed on CPU)"
                print(f"  {cost}  {', '.join(f'{c} {v}' for c, v in settings.items())}{'  ← current' if now else ''}")
            for _, _, settings, _, error in rows:
                if error:
                    print(f"  could not run {', '.join(f'{c} {v}' for c, v in settings.items())}: {error}")


if __name__ == "__main__":
    main()
