"""The demo SAE's jailbreak fingerprint on SmolLM2-135M-Instruct: per wrapper kind, the latents whose per-prompt
maximum separates 40 held-out harmful requests under the wrapper from the same requests asked plainly.

    python benchmarks/jailbreak_fingerprint_smollm2.py [--demo mechscope-demo]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import mechscope
from mechscope.dictionaries.binding import bind_dictionary
from mechscope.features import Catalog
from mechscope.steering import FingerprintConfig, jailbreak_fingerprint


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", default="mechscope-demo")
    args = parser.parse_args()
    model = mechscope.load_model("smollm2", device="cpu")
    bound = bind_dictionary(model, Path(args.demo) / "saes" / "topk_2304_k32")
    with Catalog(Path(args.demo) / "features") as catalog:
        started = time.perf_counter()
        result = jailbreak_fingerprint(model, bound, FingerprintConfig(top=5), catalog)
    print(f"{result['n']} requests x {1 + len(result['kinds'])} kinds at {result['hook']} "
          f"({time.perf_counter() - started:.0f} s)\n")
    print("| wrapper | latent | AUROC | mean wrapped | mean plain | label |\n|---|---|---|---|---|---|")
    for kind, entries in result["kinds"].items():
        for e in entries:
            print(f"| {kind} | {e['latent']} | {e['auroc']:.3f} | {e['mean_positive']:.2f} | {e['mean_negative']:.2f} "
                  f"| {e['label'] or ''} |")


if __name__ == "__main__":
    main()
