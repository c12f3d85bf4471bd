"""Random non-activating contexts: a reservoir of random windows, and which latents fire anywhere in each."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mechscope.features.batches import CodeBatch


class NegativePool:
    """A uniform random sample of `size` windows (reservoir by random keys) with each one's firing latents."""

    def __init__(self, size: int, d_sae: int, device: torch.device, generator: torch.Generator):
        self.size, self.generator = size, generator
        self.key = torch.full((size,), -1.0, device=device)
        self.window = torch.full((size,), -1, dtype=torch.int64, device=device)
        self.fires = torch.zeros(size, d_sae, dtype=torch.bool, device=device)

    def offer(self, windows: Tensor, batch: CodeBatch, rows: Tensor, latents: Tensor) -> None:
        """Offer whole windows of `batch` (window numbers, each present at most once); (rows, latents) are the
        batch's firing entries."""
        if self.size == 0 or windows.numel() == 0:
            return
        keys = torch.rand(windows.numel(), device=self.key.device, generator=self.generator)
        chosen = torch.zeros(self.size + windows.numel(), dtype=torch.bool, device=self.key.device)
        chosen[torch.cat([self.key, keys]).topk(self.size).indices] = True
        admitted = chosen[self.size:].nonzero().squeeze(1)
        if admitted.numel() == 0:
            return
        slots = (~chosen[:self.size]).nonzero().squeeze(1)[:admitted.numel()]
        self.key[slots], self.window[slots] = keys[admitted], windows[admitted]
        self.fires[slots] = False
        slot_of = torch.full((batch.windows.shape[0],), -1, dtype=torch.int64, device=self.key.device)
        slot_of[windows[admitted] - batch.first_window] = slots
        entry_slot = slot_of[batch.window[rows] - batch.first_window]
        hit = entry_slot >= 0
        self.fires[entry_slot[hit], latents[hit]] = True

    def choose(self, count: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Up to `count` random pool windows per latent in which it never fires: (latent, window) pairs."""
        d_sae = self.fires.shape[1]
        if count == 0 or self.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        score = torch.rand(d_sae, self.size, device=self.key.device, generator=generator)
        usable = (~self.fires.T) & (self.window >= 0)[None, :]
        score = torch.where(usable, score, torch.full_like(score, float("inf")))
        top = score.topk(min(count, self.size), dim=1, largest=False)
        latent, rank = top.values.isfinite().nonzero(as_tuple=True)
        return latent.cpu().numpy(), self.window[top.indices[latent, rank]].cpu().numpy()
