"""LatentSlots: per latent, the entries of highest priority seen so far, merged batch by batch on tensors.

With priority = activation this keeps the exact top-k; with priority = a uniform random key it is
reservoir sampling (a uniform sample without replacement). Each entry keeps its context: the latent's
activation at every token of a span around it, gathered from the batch at the moment it is admitted.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mechscope.features.batches import CodeBatch


class LatentSlots:
    """`size` slots per latent; `offer` admits the entries that beat a latent's lowest kept priority."""

    def __init__(self, d_sae: int, size: int, span: int, before: int, device: torch.device):
        self.size, self.span, self.before = size, span, before
        self.priority = torch.full((d_sae, size), float("-inf"), device=device)
        self.value = torch.zeros(d_sae, size, device=device)
        self.window = torch.full((d_sae, size), -1, dtype=torch.int64, device=device)
        self.position = torch.zeros(d_sae, size, dtype=torch.int64, device=device)
        self.start = torch.zeros(d_sae, size, dtype=torch.int64, device=device)
        self.context = torch.zeros(d_sae, size, span, device=device)
        self.floor = torch.full((d_sae,), float("-inf"), device=device)  # lowest kept priority per latent

    def offer(self, latents: Tensor, priority: Tensor, values: Tensor, rows: Tensor, batch: CodeBatch) -> None:
        """Offer entries (latent, priority, value, row of `batch.codes`); keep the `size` best per latent."""
        if self.size == 0:
            return
        keep = priority > self.floor[latents]  # most entries stop here once the slots have filled
        latents, priority, values, rows = latents[keep], priority[keep], values[keep], rows[keep]
        if latents.numel() == 0:
            return
        touched, local, rank, order = _best_per_group(latents, priority, self.size)
        n = touched.numel()
        candidate = torch.full((n, self.size), float("-inf"), device=priority.device)
        candidate[local, rank] = priority[order]
        source = torch.full((n, self.size), -1, dtype=torch.int64, device=priority.device)
        source[local, rank] = order

        chosen = torch.zeros(n, 2 * self.size, dtype=torch.bool, device=priority.device)
        chosen.scatter_(1, torch.cat([self.priority[touched], candidate], 1).topk(self.size, dim=1).indices, True)
        evicted = ~chosen[:, :self.size]
        admitted = chosen[:, self.size:] & (source >= 0)
        # pair the i-th admitted candidate with the i-th evicted slot (a real entry is only ever evicted when
        # all chosen entries are real, and then as many are admitted as evicted)
        out_slot = evicted.to(torch.int8).sort(dim=1, descending=True, stable=True).indices
        in_slot = admitted.to(torch.int8).sort(dim=1, descending=True, stable=True).indices
        pair = torch.arange(self.size, device=priority.device) < admitted.sum(1, keepdim=True)
        group = torch.arange(n, device=priority.device)[:, None].expand(-1, self.size)[pair]
        latent, slot = touched[group], out_slot[pair]
        entry = source[group, in_slot[pair]]

        self.priority[latent, slot] = priority[entry]
        self.value[latent, slot] = values[entry]
        self.window[latent, slot] = batch.window[rows[entry]]
        self.position[latent, slot] = batch.position[rows[entry]]
        start, context = batch.contexts(rows[entry], latents[entry], self.before, self.span)
        self.start[latent, slot] = start
        self.context[latent, slot] = context.to(self.context.dtype)
        self.floor[touched] = self.priority[touched].min(1).values

    def filled(self) -> dict[str, np.ndarray]:
        """Kept entries as flat numpy arrays, sorted by latent then value (descending)."""
        latent, slot = (self.window >= 0).nonzero(as_tuple=True)
        value = self.value[latent, slot]
        order = np.lexsort((-value.cpu().numpy(), latent.cpu().numpy()))
        latent, slot = latent[order], slot[order]
        fields = {"latent": latent, "activation": self.value[latent, slot], "window": self.window[latent, slot],
                  "position": self.position[latent, slot], "start": self.start[latent, slot],
                  "context": self.context[latent, slot]}
        return {k: v.cpu().numpy() for k, v in fields.items()}


def _best_per_group(groups: Tensor, priority: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Up to `size` entries of highest priority per group: (unique groups, group slot, rank, entry index)."""
    order = priority.argsort(descending=True)
    order = order[groups[order].argsort(stable=True)]
    touched, counts = torch.unique_consecutive(groups[order], return_counts=True)
    starts = counts.cumsum(0) - counts
    local = torch.repeat_interleave(torch.arange(touched.numel(), device=groups.device), counts)
    rank = torch.arange(order.numel(), device=groups.device) - starts[local]
    best = rank < size
    return touched, local[best], rank[best], order[best]
