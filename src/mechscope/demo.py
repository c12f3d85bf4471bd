"""`mechscope demo`: every capability that exists, on the built-in SmolLM2 and corpora, in minutes on a CPU.

The demo is the shipped pipeline config `demo` (src/mechscope/pipeline/configs/demo.toml): each step is a stage,
a rerun skips the finished ones.
"""

from __future__ import annotations

import json
from pathlib import Path

STAGE_MANIFEST = "stage manifest"


def run_demo(out: str | Path = "mechscope-demo") -> dict:
    """Run the demo pipeline into `out` and return where everything landed."""
    from mechscope.pipeline import run_pipeline

    result = run_pipeline("demo", out)
    outputs = {f"{stage}: {label}": str(result.out / path)  # an absolute path (the zoo cache) stays as it is
               for stage, record in result.stages.items() for label, path in record["artefacts"].items()
               if label != STAGE_MANIFEST}
    (result.out / "outputs.json").write_text(json.dumps(outputs, indent=2))
    print(f"\nDone in {result.seconds:.1f}s ({len(result.ran)} stages run, {len(result.skipped)} skipped as up to "
          f"date). Outputs:")
    for what, where in outputs.items():
        print(f"  {what:48s} {where}")
    print(f"  {'run state (every stage, its metrics)':48s} {result.out / 'run.json'}")
    for what in ("report: report (HTML)", "dashboard: feature dashboard"):
        if what in outputs:
            print(f"Open the {what.split(': ')[1]}: {outputs[what]}")
    return {"out": str(result.out), "outputs": outputs, "ran": result.ran, "skipped": result.skipped,
            "seconds": result.seconds}
