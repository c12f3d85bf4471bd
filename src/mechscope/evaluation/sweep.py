"""Sweeps: a grid of variants x sparsity settings trained from one pass over a cache, each evaluated."""

from __future__ import annotations

import json
from pathlib import Path

from mechscope.data.atomic import atomic_write_json
from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.batches import as_batch_source
from mechscope.dictionaries.variants import variant_type
from mechscope.evaluation.evaluate import evaluate
from mechscope.errors import MechscopeError

SUMMARY_FILE = "sweep.json"


def grid(d_in: int, d_sae: int, architectures: list[str], l0s: list[int], l1s: list[float]) -> list[DictionaryConfig]:
    """One config per (variant, sparsity): each variant takes the `l0s` or the `l1s` list as its sweep knob."""
    configs = []
    for arch in architectures:
        variant = variant_type(arch)
        values = l0s if variant.sweep_axis == "l0" else l1s
        configs += [DictionaryConfig(d_in, d_sae, arch, **variant.sweep_overrides(v)) for v in values]
    return configs


def sweep(cache, model, out: str | Path, architectures: list[str], l0s: list[int], l1s: list[float] = (1.0, 3.0),
          expansion: float = 8.0, train_config: TrainConfig | None = None, source="pydocs",
          eval_tokens: int = 20_000, hook: str | None = None) -> list[dict]:
    """Train the grid from one pass over `cache`, evaluate each dictionary on `source`; writes sweep.json."""
    src = as_batch_source(cache, hook)
    configs = grid(src.d_in, int(expansion * src.d_in), architectures, list(l0s), list(l1s))
    directories = train(src, configs, out, train_config or TrainConfig(), hook=hook)
    rows = []
    for directory in directories:
        result = evaluate(model, directory, source, tokens=eval_tokens)
        rows.append({"name": directory.name, "dir": str(directory), **result.to_dict()})
    atomic_write_json(Path(out) / SUMMARY_FILE, json.loads(json.dumps(rows, default=float)))
    return rows


def load_results(directory: str | Path) -> list[dict]:
    """Every eval.json below a directory (a sweep's output), with its dictionary's directory name."""
    rows = []
    for path in sorted(Path(directory).rglob("eval.json")):
        rows.append({"name": path.parent.name, **json.loads(path.read_text())})
    if not rows:
        raise MechscopeError(f"no eval.json below {directory}: run `mechscope sweep` or `mechscope eval` first")
    return rows
