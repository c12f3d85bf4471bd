"""Ground truth: every variant trained side by side on activations built from known feature directions."""

from __future__ import annotations

from pathlib import Path

import torch

from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.formats import load_dictionary
from mechscope.evaluation.reconstruction import fraction_of_variance_unexplained
from mechscope.synthetic import SyntheticFeatures, feature_recovery

DUPLICATE_COSINE = 0.9


def default_configs(data: SyntheticFeatures, k: int = 5) -> list[DictionaryConfig]:
    """One dictionary per variant, as wide as the true feature set, at comparable sparsity."""
    d, n = data.d, data.n_features
    return [DictionaryConfig(d, n, "topk", k=k), DictionaryConfig(d, n, "batchtopk", k=k),
            DictionaryConfig(d, n, "matryoshka", k=k), DictionaryConfig(d, n, "jumprelu"),
            DictionaryConfig(d, n, "gated"), DictionaryConfig(d, n, "relu", l1_coefficient=2.0),
            DictionaryConfig(d, n, "relu", relu_form="classic", l1_coefficient=2.0)]


def score(dictionary, data: SyntheticFeatures, held_out: int = 8192) -> dict:
    """MMCS, fraction recovered above 0.9, Hungarian MCC, dead and duplicate latents, FVU and L0."""
    x, _ = data.sample(held_out, step=10**7)
    with torch.no_grad():
        codes = dictionary.encode(x)
        x_hat = dictionary.decode(codes)
    decoder = dictionary.W_dec.detach()
    unit = decoder / decoder.norm(dim=1, keepdim=True).clamp_min(1e-12)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(0)
    return {**feature_recovery(data.directions, decoder),
            "dead_fraction": float(((codes > 0).sum(0) == 0).float().mean()),
            "duplicate_fraction": float((similarity.max(dim=1).values > DUPLICATE_COSINE).float().mean()),
            "fvu": fraction_of_variance_unexplained(x, x_hat), "l0": float((codes > 0).sum(-1).float().mean())}


def ground_truth_benchmark(out: str | Path, data: SyntheticFeatures | None = None,
                           configs: list[DictionaryConfig] | None = None, steps: int = 3000,
                           batch_size: int = 1024) -> list[dict]:
    """Train `configs` (default: every variant) from one pass over `data`; a row of scores per dictionary."""
    data = data or SyntheticFeatures(n_features=512, d=256, active=5, seed=0)
    configs = configs or default_configs(data)
    directories = train(data, configs, out, TrainConfig(tokens=steps * batch_size, batch_size=batch_size,
                                                        checkpoint_every=10**9, log_every=100))
    return [{"name": p.name, "architecture": load_dictionary(p).cfg.architecture, **score(load_dictionary(p), data)}
            for p in directories]


def markdown_table(rows: list[dict]) -> str:
    head = "| dictionary | MCC | MMCS | recovered >0.9 | dead | duplicates | FVU | L0 |\n|---|---|---|---|---|---|---|---|"
    lines = [f"| {r['name']} | {r['mcc']:.3f} | {r['mmcs']:.3f} | {r['matched']:.1%} | {r['dead_fraction']:.1%} | "
             f"{r['duplicate_fraction']:.1%} | {r['fvu']:.3f} | {r['l0']:.1f} |" for r in rows]
    return "\n".join([head, *lines])
