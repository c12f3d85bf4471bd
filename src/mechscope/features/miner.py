"""Miner: the per-batch state of the mining pass, updated with batched tensor ops (no loop over latents).

Per batch: the (token, latent) pairs that fire are pulled out of the dense codes once; counts, sums,
min/max and the histogram are scatter-adds over them; top-k and the per-split random samples are
LatentSlots merges; MinHash signatures are one scatter-min; negative pools sample whole windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mechscope.features.batches import CodeBatch
from mechscope.features.config import MiningConfig
from mechscope.features.cooccurrence import CoFiring
from mechscope.features.hashing import is_test_window, token_hashes
from mechscope.features.negatives import NegativePool
from mechscope.features.slots import LatentSlots
from mechscope.features.statistics import FiringStats, histogram_edges, quantiles

SPLITS = ("train", "test")


@dataclass
class ExampleSet:
    """Examples of one kind as flat arrays, one row each, sorted by latent then activation (descending)."""

    kind: str  # "top" | "quantile" | "random_negative"
    latent: np.ndarray
    activation: np.ndarray  # at the example's token
    window: np.ndarray
    position: np.ndarray  # the example's token in its window
    start: np.ndarray  # window position of the context's first token
    context: np.ndarray  # [m, span] the latent's activation at each context token
    test: np.ndarray  # bool: the window is held out
    quantile_bin: np.ndarray  # -1 where it does not apply


class Miner:
    """Everything mining keeps about `d_sae` latents; memory is independent of the number of tokens."""

    def __init__(self, d_sae: int, cfg: MiningConfig, context: int, device: torch.device):
        self.cfg, self.d_sae, self.context = cfg, d_sae, context
        self.span = min(cfg.span, context)
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        self.edges = histogram_edges(cfg.bins_per_octave, cfg.histogram_octaves)
        self.stats = FiringStats(d_sae, self.edges, device)
        self.top = LatentSlots(d_sae, cfg.top_k, self.span, cfg.before, device)
        self.samples = {s: LatentSlots(d_sae, cfg.samples, self.span, cfg.before, device) for s in SPLITS}
        self.pools = {s: NegativePool(cfg.negative_pool, d_sae, device, self.generator) for s in SPLITS}
        self.cofiring = CoFiring(d_sae, cfg.cooccurrence_hashes, device)
        self.tokens = 0
        self.windows = 0

    def update(self, batch: CodeBatch) -> None:
        """Fold one batch of codes into every statistic."""
        device = batch.codes.device
        rows, latents = batch.codes.nonzero(as_tuple=True)
        values = batch.codes[rows, latents]
        if bool((values < 0).any()):  # firing means a positive code
            positive = values > 0
            rows, latents, values = rows[positive], latents[positive], values[positive]
        self.stats.update(latents, values)
        self.top.offer(latents, values, values, rows, batch)

        numbers = torch.arange(batch.first_window, batch.first_window + batch.windows.shape[0])
        held_out = torch.from_numpy(is_test_window(numbers.numpy(), self.cfg.test_fraction, self.cfg.seed)).to(device)
        row_test = held_out[batch.window - batch.first_window]
        keys = torch.rand(values.shape, device=device, generator=self.generator)
        for split, slots in self.samples.items():
            chosen = row_test[rows] if split == "test" else ~row_test[rows]
            slots.offer(latents[chosen], keys[chosen], values[chosen], rows[chosen], batch)
        present = torch.unique(batch.window)
        for split, pool in self.pools.items():
            in_split = held_out[present - batch.first_window]
            pool.offer(present[in_split if split == "test" else ~in_split], batch, rows, latents)

        token_hash = token_hashes(batch.window.cpu().numpy(), batch.position.cpu().numpy(), self.context,
                                  self.cfg.seed)
        self.cofiring.update(latents, torch.from_numpy(token_hash).to(device)[rows])
        self.tokens += batch.codes.shape[0]
        self.windows = max(self.windows, batch.first_window + batch.windows.shape[0])

    def examples(self) -> list[ExampleSet]:
        """Top-k, quantile-binned samples (both splits) and random negatives (both splits)."""
        stats = self.stats.as_numpy()
        edges = self.edges.numpy().astype(np.float64)
        sets = [self._example_set("top", self.top.filled())]
        for slots in self.samples.values():
            found = slots.filled()
            q = quantiles(stats["histogram"], edges, found["latent"], found["activation"].astype(np.float64))
            bins = np.minimum((q * self.cfg.quantile_bins).astype(np.int64), self.cfg.quantile_bins - 1)
            sets.append(self._example_set("quantile", found, bins))
        for pool in self.pools.values():
            latent, window = pool.choose(self.cfg.negatives, self.generator)
            start = torch.randint(0, self.context - self.span + 1, (len(latent),), generator=self.generator,
                                  device=self.generator.device).cpu().numpy()
            sets.append(self._example_set("random_negative", {
                "latent": latent, "activation": np.zeros(len(latent), np.float32), "window": window,
                "position": start + min(self.cfg.before, self.span - 1), "start": start,
                "context": np.zeros((len(latent), self.span), np.float32)}))
        return sets

    def _example_set(self, kind: str, found: dict[str, np.ndarray], bins: np.ndarray | None = None) -> ExampleSet:
        test = is_test_window(found["window"], self.cfg.test_fraction, self.cfg.seed)
        bins = np.full(len(found["latent"]), -1) if bins is None else bins
        return ExampleSet(kind=kind, test=test, quantile_bin=bins, **found)
