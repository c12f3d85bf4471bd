"""Wall time of a shipped pipeline run from scratch, then of the rerun that skips every finished stage.

    python benchmarks/pipeline_runs.py demo --out /tmp/pipeline-bench
    python benchmarks/pipeline_runs.py jailbreak-monitor --out /tmp/pipeline-jbm

Organisms come from the zoo cache (built once per machine, not timed here). Prints per-stage seconds from run.json.
"""

from __future__ import annotations

import argparse
import shutil
import time

from mechscope.pipeline import run_pipeline


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", help="a shipped config name or a TOML file")
    parser.add_argument("--out", required=True, help="run directory (deleted first)")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    started = time.perf_counter()
    first = run_pipeline(args.config, args.out)
    fresh = time.perf_counter() - started
    started = time.perf_counter()
    again = run_pipeline(args.config, args.out)
    rerun = time.perf_counter() - started
    print("\n| stage | kind | seconds | metrics |\n|---|---|---|---|")
    for name, record in first.stages.items():
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record["metrics"].items())
        print(f"| {name} | {record['kind']} | {record['seconds']:.1f} | {shown} |")
    print(f"\nfrom scratch: {fresh:.1f} s ({len(first.ran)} stages); rerun: {rerun:.1f} s "
          f"({len(again.skipped)} skipped, {len(again.ran)} run)")


if __name__ == "__main__":
    main()
