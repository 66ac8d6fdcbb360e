"""Complex linear maps, 4 vs 3 real multiplications (issue 7): forward + backward of y = W z on a split-real stream,
side by side, at the 100M PAM's shapes (complex width 384, 6 × 64 heads, CGU expansion 3).

- 4-mult: one real GEMM with the block matrix [[Wr, −Wi], [Wi, Wr]] (what ComplexLinear runs): 8mn FLOPs per token.
- 3-mult (Gauss): k1 = (Wr + Wi) xr, k2 = Wr (xi − xr), k3 = Wi (xr + xi); Re = k1 − k3, Im = k1 + k2:
  three real GEMMs of m×n, 6mn FLOPs per token, plus elementwise sums of inputs and weights.

Prints ms, the ratio 3-mult / 4-mult, and each form's bf16 error against an fp64 reference; then the card.

    python benchmarks/complex_products.py [--tokens 16384]

One process suffices here: it informs a design choice, not a target. ComplexLinear keeps the 4-mult GEMM, which
was faster (3-mult 1.39–1.97× its time on the H200) and more accurate in bf16; the accuracy alone would decide it.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from archsearch.measure import time_ms

SHAPES = {"pam qkv 384→1152": (384, 1152), "cgu gate+up 384→2304": (384, 2304), "cgu down 1152→384": (1152, 384),
          "pam out 384→384": (384, 384)}


def four(x, wr, wi):
    return F.linear(x, torch.cat([torch.cat([wr, -wi], 1), torch.cat([wi, wr], 1)], 0))


def three(x, wr, wi):
    n = x.shape[-1] // 2
    xr, xi = x[..., :n], x[..., n:]
    k1 = F.linear(xr, wr + wi)
    k2 = F.linear(xi - xr, wr)
    k3 = F.linear(xr + xi, wi)
    return torch.cat([k1 - k3, k1 + k2], -1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=16384)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    card = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    print(f"complex linear y = W z, forward + backward, {args.tokens} tokens, {dtype}, on {card}")
    print(f"{'shape':24s} {'4-mult ms':>10s} {'3-mult ms':>10s} {'3/4':>6s} {'4-mult err':>11s} {'3-mult err':>11s}")
    g = torch.Generator().manual_seed(0)
    for name, (n, m) in SHAPES.items():
        x64 = torch.randn(args.tokens, 2 * n, generator=g, dtype=torch.float64)
        wr64, wi64 = (torch.randn(m, n, generator=g, dtype=torch.float64) / n ** 0.5 for _ in range(2))
        ref = four(x64, wr64, wi64)
        ins = [t.to(device, dtype).requires_grad_() for t in (x64, wr64, wi64)]
        row = []
        for form in (four, three):
            err = ((form(*ins).double().cpu() - ref).norm() / ref.norm()).item()
            ms = time_ms(lambda: form(*ins).float().sum().backward(), device, repeats=args.repeats, warmup=3)
            row.append((ms, err))
        (ms4, e4), (ms3, e3) = row
        print(f"{name:24s} {ms4:10.3f} {ms3:10.3f} {ms3 / ms4:6.2f} {e4:11.2e} {e3:11.2e}", flush=True)


if __name__ == "__main__":
    main()
