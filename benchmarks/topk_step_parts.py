"""Where a TopK SAE training step's time goes on CPU: the step's phases and each C++ extension call, timed.

    python benchmarks/topk_step_parts.py --d-in 1024 --d-sae 16384 [--no-heap-reuse]

Synthetic batches (SyntheticFeatures, normalised as benchmarks/sae_throughput.py does), data-initialised encoder,
the training loop's own step (loss, backward, decoder-gradient projection, clipping, fused Adam, renormalisation).
The extension calls (`row_topk`, `pair_dots`, `csr_dense`) are timed inside the phases that make them.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import resource
import time

import torch

from mechscope.dictionaries import DictionaryConfig, sparse_codes
from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.kernels import fused
from mechscope.dictionaries.training import adam
from mechscope.dictionaries.variants.base import StepContext
from mechscope.heap import reused_heap
from mechscope.synthetic import SyntheticFeatures

SPENT: dict[str, float] = collections.defaultdict(float)


@contextlib.contextmanager
def timed(name: str):
    start = time.perf_counter()
    yield
    SPENT[name] += time.perf_counter() - start


class TimedExtension:
    """The C++ extension with every call timed under its own name."""

    def __init__(self, module):
        self.module = module

    def __getattr__(self, name):
        function = getattr(self.module, name)

        def call(*args, **kwargs):
            with timed(name):
                return function(*args, **kwargs)
        return call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--d-in", type=int, default=1024)
    parser.add_argument("--d-sae", type=int, default=16384)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--no-heap-reuse", action="store_true")
    args = parser.parse_args()

    extension = fused.cpu_kernels()
    if extension is None:
        raise SystemExit(f"the C++ extension is unavailable: {fused.kernel_status()['cpu']}")
    spy = TimedExtension(extension)
    fused._cpu_backend = lambda: (spy, "")
    sparse_codes.cpu_kernels = lambda: spy

    torch.manual_seed(0)
    synthetic = SyntheticFeatures(n_features=4 * args.d_in, d=args.d_in, active=20, seed=0)
    rows = synthetic.sample(args.batch_size * 12, 0)[0]
    rows = rows * (math.sqrt(args.d_in) / rows.norm(dim=1).mean())
    batches = rows.split(args.batch_size)
    d = Dictionary(DictionaryConfig(args.d_in, args.d_sae, "topk", k=args.k))
    with torch.no_grad():
        d.variant.init_from_data(d, batches[0].mean(0), batches[0])
    optimizer = adam(d, 1e-4, (0.9, 0.999))
    ctx = StepContext(1.0, 1.0, torch.zeros(args.d_sae, dtype=torch.bool), None)

    def step(x: torch.Tensor) -> None:
        with timed("loss (forward)"):
            total = d.variant.loss(d, x, ctx)["total"]
        optimizer.zero_grad(set_to_none=True)
        with timed("backward"):
            total.backward()
        with timed("decoder-gradient projection"):
            d.remove_parallel_gradient()
        with timed("gradient clipping"):
            torch.nn.utils.clip_grad_norm_(d.parameters(), 1.0)
        with timed("fused Adam"):
            optimizer.step()
        with timed("decoder renormalisation"):
            d.normalize_decoder()

    with contextlib.nullcontext() if args.no_heap_reuse else reused_heap():
        for i in range(3):
            step(batches[i % len(batches)])
        SPENT.clear()
        start = time.perf_counter()
        for i in range(args.steps):
            step(batches[i % len(batches)])
        per_step = (time.perf_counter() - start) / args.steps
    print(f"d_in {args.d_in}, d_sae {args.d_sae}, k {args.k}, batch {args.batch_size}, heap reuse "
          f"{'off' if args.no_heap_reuse else 'on'}, torch threads {torch.get_num_threads()}, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    print(f"\n| part | ms/step |\n|---|---|\n| whole step | {per_step * 1000:.1f} |")
    for name, seconds in sorted(SPENT.items(), key=lambda item: -item[1]):
        print(f"| {name} | {seconds / args.steps * 1000:.1f} |")


if __name__ == "__main__":
    main()
