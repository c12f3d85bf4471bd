"""A cross-layer transcoder's measured training peak against `estimate_clt_memory`, and the step's floats per
[rows, n_layers, latents] entry (`CLT_STEP_ACTIVATIONS`) from the peak's growth between two batch sizes.

Each run is a fresh process training a few steps of `train_clt` on a synthetic stream; its peak RSS (VmHWM) less
the RSS before training is compared with the estimate. Run under `flock /tmp/mechscope-heavy.lock`:
    PYTHONPATH=src python benchmarks/clt_memory.py [--layers 4 --d-in 256 --d-latent 8192 --batches 1024,2048]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from mechscope.dictionaries import CLTConfig, TrainConfig, train_clt
from mechscope.dictionaries.clt import CLT_STEP_ACTIVATIONS
from mechscope.dictionaries.memory import estimate_clt_memory

GIB = 2**30


def _kib(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def _pairs(layers: int, d_in: int):
    g = torch.Generator().manual_seed(0)
    while True:
        yield torch.randn(1024, layers, d_in, generator=g), torch.randn(1024, layers, d_in, generator=g)


def measure(cfg: CLTConfig, batch: int, init_tokens: int) -> int:
    """Bytes the peak RSS grows by over 3 training steps (this process)."""
    tcfg = TrainConfig(tokens=3 * batch, batch_size=batch, init_tokens=init_tokens, device="cpu", log_every=10**6,
                       checkpoint_every=10**9)
    before = _kib("VmRSS") * 1024
    with tempfile.TemporaryDirectory() as out:
        train_clt(_pairs(cfg.n_layers, cfg.d_in), cfg, out, tcfg)
    return _kib("VmHWM") * 1024 - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-in", type=int, default=256)
    parser.add_argument("--d-latent", type=int, default=8192)
    parser.add_argument("--batches", default="1024,2048")
    parser.add_argument("--init-tokens", type=int, default=1024)
    parser.add_argument("--child", help="ACTIVATION,BATCH: measure one run in this process (the driver's child)")
    args = parser.parse_args()

    def config(activation: str) -> CLTConfig:
        return CLTConfig(args.layers, args.d_in, args.d_latent, activation=activation, k=64)
    if args.child:
        activation, batch = args.child.split(",")
        print(json.dumps({"grown": measure(config(activation), int(batch), args.init_tokens)}))
        return
    batches = [int(b) for b in args.batches.split(",")]
    results = {}
    for activation in ("topk", "jumprelu"):
        rows = []
        for batch in batches:
            command = [sys.executable, __file__, "--child", f"{activation},{batch}", "--layers", str(args.layers),
                       "--d-in", str(args.d_in), "--d-latent", str(args.d_latent),
                       "--init-tokens", str(args.init_tokens)]
            child = subprocess.run(command, capture_output=True, text=True, check=True)
            grown = json.loads(child.stdout.splitlines()[-1])["grown"]
            estimate = estimate_clt_memory(config(activation), batch, init_tokens=args.init_tokens)
            rows.append({"batch": batch, "measured_gib": round(grown / GIB, 3),
                         "estimate_gib": round(estimate.per_rank / GIB, 3)})
        unit = (batches[-1] - batches[0]) * args.layers * args.d_latent * 4  # bytes of one float per entry
        implied = CLT_STEP_ACTIVATIONS[activation] + ((rows[-1]["measured_gib"] - rows[0]["measured_gib"]) -
                                                      (rows[-1]["estimate_gib"] - rows[0]["estimate_gib"])) * GIB / unit
        results[activation] = {"runs": rows, "step_activations": CLT_STEP_ACTIVATIONS[activation],
                               "implied_by_growth": round(implied, 2)}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
