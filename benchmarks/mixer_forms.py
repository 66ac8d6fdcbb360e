"""Time the training forms of the recurrent mixers side by side (forward + backward of one block after warm-up:
the median of repeats by CUDA events on GPU, the fastest repeat on CPU), to pick what `mode: auto` should use on this
device.

    python benchmarks/mixer_forms.py [--batch-tokens 16384] [--seq 256 512 1024 2048]

One process suffices here: it sets `auto`'s crossover length, not a published ratio; near the crossover the two
forms are within a process's noise of each other, so either choice there costs little.
"""
from __future__ import annotations

import argparse

import torch

from archsearch.measure import time_ms
from blocks.linear_attention import LinearAttention
from blocks.pam import PAM


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch-tokens", type=int, default=16384)
    p.add_argument("--seq", type=int, nargs="+", default=[256, 512, 1024, 2048])
    p.add_argument("--d-model", type=int, default=256)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    card = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    blocks = {"pam 4×16": (PAM, dict(heads=4, head_dim=16)), "pam 6×64": (PAM, dict(heads=6, head_dim=64)),
              "linear_attention 8×16": (LinearAttention, dict(heads=8, head_dim=16))}
    print(f"fwd+bwd ms of one block, B·T = {args.batch_tokens}, d_model {args.d_model}, on {card}")
    print(f"{'block':24s} {'T':>6s} {'dual':>9s} {'chunked':>9s} {'chunked/dual':>13s}")
    for name, (cls, kw) in blocks.items():
        for t in args.seq:
            b = max(1, args.batch_tokens // t)
            x = torch.randn(b, t, args.d_model, device=device, requires_grad=True)
            res = {}
            for mode in ("dual", "chunked"):
                m = cls(cls.Config(mode=mode, **kw), d_model=args.d_model).to(device)

                def step():
                    with amp:
                        y = m(x)
                    y.float().sum().backward()

                try:
                    res[mode] = time_ms(step, device, repeats=10, warmup=3)
                except torch.OutOfMemoryError:
                    res[mode] = float("nan")
                    torch.cuda.empty_cache()
            print(f"{name:24s} {t:6d} {res['dual']:9.2f} {res['chunked']:9.2f} {res['chunked'] / res['dual']:13.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
