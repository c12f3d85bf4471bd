"""Which patches share a forward pass, and the block and position that pass resumes the base run from.

A patch at block l changes nothing before it, and in a causal model a patch at position p changes nothing
at earlier positions, so a forward pass holding several patches need only recompute blocks min(l).. at
positions min(p).. (models.resume). Patches are ordered by layer, and by position going up and down on
alternate layers, so that neighbours in one pass start close together; each pass holds `per_forward` patches,
as many passes as without resuming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mechscope.circuits.components import Patch
from mechscope.models import HookedModel


@dataclass(frozen=True)
class PatchPass:
    """Patches (indices into the patch list) run in one forward pass recomputing blocks layer.. at positions pos.."""

    indices: tuple[int, ...]
    layer: int
    pos: int


def sequence_axis(model: HookedModel, hook: str) -> int:
    """Axis of a hook's tensor that runs over (query) positions: 2 for patterns [batch, head, q, k], else 1."""
    return 2 if model.point(hook).kind == "pattern" else 1


def start(model: HookedModel, patch: Patch, positions: bool) -> tuple[int, int]:
    """The first block and the first position a patch can change (position 0 unless `positions`)."""
    layer = model.layer_of(patch.hook) or 0  # points outside the blocks resume nothing
    by_pos = positions and patch.pos is not None and patch.pos_dim == sequence_axis(model, patch.hook)
    return layer, patch.pos if by_pos else 0


def plan(model: HookedModel, patches: Sequence[Patch], per_forward: int, *, layers: bool = True,
         positions: bool = True) -> list[PatchPass]:
    """Forward passes of `per_forward` patches each; without `layers` every pass runs from block 0 and position 0,
    in the patches' own order (what running the full forward for each pass computes)."""
    if not layers:
        return [PatchPass(tuple(range(i, min(i + per_forward, len(patches)))), 0, 0)
                for i in range(0, len(patches), per_forward)]
    starts = [start(model, patch, positions) for patch in patches]
    order = sorted(range(len(patches)), key=lambda i: (starts[i][0], starts[i][1] * (-1) ** starts[i][0]))
    passes = []
    for i in range(0, len(order), per_forward):
        chunk = tuple(order[i:i + per_forward])
        passes.append(PatchPass(chunk, min(starts[j][0] for j in chunk), min(starts[j][1] for j in chunk)))
    return passes
