"""The fused TopK encoder against addmm + topk: time per encode and the extra memory one encode takes.

    flock /tmp/mechscope-heavy.lock python benchmarks/fused_topk.py

Memory: the process's peak RSS (VmHWM, reset through /proc/self/clear_refs) during one encode, minus the
RSS before it; the inputs already exist. The fused path should need the tile and k entries per row, the
plain path the whole [batch, d_sae] pre-activation matrix.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from mechscope.dictionaries.kernels import fused, fused_topk


def rss_kb(field: str) -> int:
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(field))
    return int(line.split()[1])


def extra_peak_mb(run) -> float:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    before = rss_kb("VmRSS")
    run()
    return (rss_kb("VmHWM") - before) / 1024


def per_call_ms(run, repeats: int) -> float:
    run()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--d-in", type=int, default=1024)
    parser.add_argument("--d-sae", default="16384,65536")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"batch {args.batch}, d_in {args.d_in}, k {args.k}, torch threads {torch.get_num_threads()}\n")
    print("| d_sae | path | ms/encode | extra peak MB | dense pre-activations MB |\n|---|---|---|---|---|")
    for d_sae in (int(v) for v in args.d_sae.split(",")):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(args.batch, args.d_in, generator=g)
        W = torch.randn(args.d_in, d_sae, generator=g) / args.d_in ** 0.5
        b = torch.randn(d_sae, generator=g) * 0.1
        for path, setting in (("fused (C++)", "1"), ("addmm + topk", "0")):
            os.environ[fused.DISABLE_VARIABLE] = setting
            fused.reset()

            def run():
                return fused_topk(x, W, b, args.k)

            memory = extra_peak_mb(run)
            print(f"| {d_sae} | {path} | {per_call_ms(run, args.repeats):.0f} | {memory:.0f} | "
                  f"{args.batch * d_sae * 4 / 2**20:.0f} |", flush=True)


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    main()
