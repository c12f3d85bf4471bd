"""What a patched forward holds of its sources' differences (replacement - output): the memory mode of the edge
engine, exact.

A destination's input gets sum_s mask[s, d] * diff_s over the sources upstream of it. Per copy of the prompts, a
source whose mask row (over every destination downstream of it) is all 1 is "fully patched": it reaches every
destination with weight 1, so only the running sum of such sources is kept. A source whose row is all 0 adds
nothing and is dropped as soon as it is read. Only sources with a mixed (or fractional) row are held one by one,
and only in the copies where the row is mixed. The running sum a destination sees must hold exactly its upstream
sources: a source joins it when the first destination whose upstream covers it is reached, not when it runs (a
GPT-NeoX block's attention runs before its MLP input is read but is not upstream of it). With a mask that requires
grad every source is held, so the gradient reaches every entry.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.circuits.graph import EdgeGraph, HookGroup


def row_kinds(graph: EdgeGraph, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(fully patched, untouched) [copies, n_sources] bool: whether each source's mask row over the destinations
    downstream of it is all 1 or all 0, per copy (mask [copies, n_sources, n_destinations])."""
    if mask.requires_grad:
        none = torch.zeros(mask.shape[:2], dtype=torch.bool, device=mask.device)
        return none, none
    off = ~graph.real.to(mask.device)
    return ((mask == 1) | off).all(-1), ((mask == 0) | off).all(-1)


def held_counts(graph: EdgeGraph, mask: Tensor, known: set[str] = frozenset()) -> int:
    """How many [batch, pos, d_model] source differences a patched forward with `mask` [copies, n_sources,
    n_destinations] holds one by one: per source group that runs, the copies times the most mixed rows any copy
    has there (`known` groups are shared with the caller and hold nothing new)."""
    full, zero = row_kinds(graph, mask)
    mixed = ~(full | zero)
    return sum(len(mask) * int(mixed[:, g.start:g.stop].sum(1).max()) for g in graph.source_groups
               if g.hook not in known)


class SourceDifferences:
    """The running sums and the held mixed sources of one patched forward (see the module doc)."""

    def __init__(self, graph: EdgeGraph, mask: Tensor):
        self.mask = mask  # [copies, n_sources, n_destinations]
        self.full, self.zero = row_kinds(graph, mask)
        self.total: Tensor | None = None  # [copies, width]: fully patched sources already folded in
        self.pending: list[tuple[int, Tensor]] = []  # (source stop, [copies, width]) read, not yet upstream of any
        self.held: list[tuple[HookGroup, Tensor, Tensor]] = []  # (group, weights [copies, m, n_dst], diffs [c|1, m, w])

    def add(self, group: HookGroup, diff: Tensor) -> None:
        """Take a source group's differences [copies or 1 (shared by every copy), n_nodes, width]."""
        full = self.full[:, group.start:group.stop]
        mixed = ~(full | self.zero[:, group.start:group.stop])
        if full.any():
            self.pending.append((group.stop, (full.to(diff.dtype)[:, None] @ diff)[:, 0]))
        most = int(mixed.sum(1).max())
        if most == 0:
            return
        weights = self.mask[:, group.start:group.stop] * mixed[..., None]
        if most < group.size and len(diff) > 1:  # hold the mixed rows only, mixed ones first in each copy
            order = torch.sort(mixed.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :most]
            weights = weights.gather(1, order[..., None].expand(-1, -1, weights.shape[-1]))
            diff = diff.gather(1, order[..., None].expand(-1, -1, diff.shape[-1]))
        self.held.append((group, weights, diff))

    def into(self, group: HookGroup) -> Tensor | None:
        """sum over upstream sources of mask * diff for one destination hook [copies or 1, size or 1, width];
        None when nothing reaches it.

        A held difference shared by every copy whose mask is too is summed once, not per copy (ACDC's candidates
        differ in one destination only). Sums accumulate in place, one allocation per destination and width: many
        short-lived tensors of one size fragment glibc's heap until the process holds gigabytes it no longer uses."""
        while self.pending and self.pending[0][0] <= group.upstream:
            part = self.pending.pop(0)[1]
            self.total = part if self.total is None else self.total.add_(part)
        totals: dict[int, Tensor] = {}
        for source, weights, diff in self.held:
            if source.stop > group.upstream:
                continue
            weights = weights[:, :, group.start:group.stop].transpose(1, 2).to(diff.dtype)
            if not weights.requires_grad and not weights.any():
                continue
            if len(diff) == 1 and bool((weights == weights[:1]).all()):
                weights = weights[:1]
            diff = diff.expand(len(weights), -1, -1)
            total = totals.get(len(weights))
            totals[len(weights)] = torch.bmm(weights, diff) if total is None else total.baddbmm_(weights, diff)
        parts = list(totals.values()) + ([] if self.total is None else [self.total[:, None]])
        return sum(parts) if parts else None
