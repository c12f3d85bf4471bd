"""Harvest MiniLM activations, train a small sweep of SAE variants from one pass, evaluate, plot.

Run: python examples/minilm_sae_sweep.py [OUT]   (about 3 minutes on 2 CPU cores)
"""

import sys
from pathlib import Path

import mechscope
from mechscope.data import harvest
from mechscope.dictionaries import TrainConfig
from mechscope.evaluation.pareto import pareto
from mechscope.evaluation.sweep import sweep

out = Path(sys.argv[1] if len(sys.argv) > 1 else "minilm-sweep")
model = mechscope.load_model("minilm")
hook = "blocks.3.hook_resid_post"

cache = harvest(model, "pydocs", [hook], tokens=200_000, out=out / "activations", dtype="float16")
rows = sweep(cache, model, out / "saes", architectures=["topk", "batchtopk", "jumprelu"], l0s=[16, 32, 64],
             expansion=4, train_config=TrainConfig(tokens=600_000, batch_size=2048), eval_tokens=8_000)
for row in rows:
    print(f"{row['name']:24s} L0 {row['l0']:6.1f}  FVU {row['fvu']:.3f}  "
          f"embedding fidelity {row['downstream']['embedding_fidelity']:.3f}")
print(pareto(out / "saes"))
