"""How many float [batch, d_sae] tensors one training step (loss + backward) of each variant holds at its peak.

Each variant runs in a fresh process: a warm-up step on 8 rows allocates the gradients, then one step on the
full batch; the growth of the peak RSS over [batch, d_sae] floats is the variant's `step_activations`, which
`estimate_memory` multiplies by each rank's rows x latents. Run under `flock /tmp/mechscope-heavy.lock`:
    PYTHONPATH=src python benchmarks/step_activations.py [--batch 2048 --d-sae 32768 --d-in 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.variants import StepContext, make_variant

ARCHITECTURES = ("topk", "batchtopk", "matryoshka", "relu", "jumprelu", "gated")


def measure(arch: str, batch: int, d_sae: int, d_in: int) -> float:
    """[batch, d_sae] floats the step adds to the peak RSS (AuxK active on half the latents)."""
    d = Dictionary(DictionaryConfig(d_in, d_sae, arch, k=32, l1_coefficient=1.0))
    x = torch.randn(batch, d_in)
    dead = torch.zeros(d_sae, dtype=torch.bool)
    dead[: d_sae // 2] = True
    ctx = StepContext(variance=float(d_in), dead_mask=dead)
    d.variant.loss(d, x[:8], ctx)["total"].backward()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    d.variant.loss(d, x, ctx)["total"].backward()
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    return grown / (batch * d_sae * 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--d-sae", type=int, default=32768)
    parser.add_argument("--d-in", type=int, default=64)
    parser.add_argument("--arch", help="measure this one in this process (the driver's child)")
    args = parser.parse_args()
    if args.arch:
        print(json.dumps({"measured": measure(args.arch, args.batch, args.d_sae, args.d_in)}))
        return
    print(f"batch {args.batch}, d_sae {args.d_sae}, d_in {args.d_in}: [batch, d_sae] floats per step")
    for arch in ARCHITECTURES:
        child = subprocess.run([sys.executable, __file__, "--arch", arch, "--batch", str(args.batch), "--d-sae",
                                str(args.d_sae), "--d-in", str(args.d_in)], capture_output=True, text=True, check=True)
        measured = json.loads(child.stdout.splitlines()[-1])["measured"]
        declared = make_variant(DictionaryConfig(args.d_in, args.d_sae, arch)).step_activations
        print(f"  {arch:<11} measured {measured:5.2f}  step_activations {declared:5.2f}")


if __name__ == "__main__":
    main()
