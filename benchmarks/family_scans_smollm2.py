"""Feature-family scans on SmolLM2-135M-Instruct: per-family held-out probe AUROC (with its bootstrap interval
and the shuffled-label control) for each probe method and pooling at one hook, the catalogue matches of a mined
catalogue when one is given, and the scan's wall time. Prints a Markdown table.

    python benchmarks/family_scans_smollm2.py [--catalog mechscope-demo/features] [--hook blocks.15.hook_resid_post]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import mechscope
from mechscope.scans import FamilyScanConfig, scan_families


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--catalog", help="a SmolLM2 catalogue (e.g. the demo's features/)")
    parser.add_argument("--hook", default="blocks.15.hook_resid_post")
    args = parser.parse_args()
    model = mechscope.load_model("smollm2", device="cpu")
    runs = {}
    for method in ("logistic", "diff_in_means"):
        for pooling in ("mean", "last"):
            config = FamilyScanConfig(hook=args.hook, method=method, pooling=pooling)
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                runs[method, pooling] = scan_families(model, args.catalog, out, config)
            print(f"{method}/{pooling}: {time.perf_counter() - started:.1f} s", flush=True)
    names = [f.name for f in next(iter(runs.values())).families]
    print("\n| family | " + " | ".join(f"{m} / {p}" for m, p in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for index, name in enumerate(names):
        cells = [f"{r.families[index].probe.auroc:.2f} [{r.families[index].probe.auroc_ci[0]:.2f}, "
                 f"{r.families[index].probe.auroc_ci[1]:.2f}] (control {r.families[index].probe.control_auroc:.2f})"
                 for r in runs.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    means = [sum(f.probe.auroc for f in r.families) / len(names) for r in runs.values()]
    controls = [sum(f.probe.control_auroc for f in r.families) / len(names) for r in runs.values()]
    print("| mean | " + " | ".join(f"{m:.3f} (control {c:.3f})" for m, c in zip(means, controls)) + " |")
    if args.catalog:
        print("\nmatches (logistic / mean):")
        for family in runs["logistic", "mean"].families:
            for match in family.matches:
                print(f"  {family.name}: latent {match.latent} {match.label!r} by {match.match}, similarity "
                      f"{match.similarity if match.similarity is None else round(match.similarity, 2)}, "
                      f"held-out AUROC {match.auroc if match.auroc is None else round(match.auroc, 2)}")


if __name__ == "__main__":
    main()
