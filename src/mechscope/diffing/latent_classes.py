"""Which crosscoder latents belong to model A, model B or both: relative decoder norms and decoder cosines.

Relative norm of latent j (Minder et al. 2025's Delta-norm, the quantity Lindsey et al. 2024 histogram):
r_j = 0.5 * ((||d_j^B|| - ||d_j^A||) / max(||d_j^A||, ||d_j^B||) + 1), 0 for A-only, 1 for B-only, 0.5 shared.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.dictionaries.crosscoder import source_decoder, source_decoder_norms
from mechscope.errors import MechscopeError

CLASSES = ("shared", "a_only", "b_only", "other")


@dataclass
class LatentThresholds:
    """Minder et al.'s cut-offs on the relative norm: A-only below 0.1, B-only above 0.9, shared in (0.4, 0.6)."""

    specific: float = 0.1
    shared_low: float = 0.4
    shared_high: float = 0.6
    dead_norm: float = 1e-6  # latents whose decoder is this small in both sources are left out as dead


@dataclass
class LatentClasses:
    """Per-latent relative norm, class (index into CLASSES, -1 dead) and cosine between its two decoder vectors."""

    relative_norm: Tensor  # [d_sae]
    classes: Tensor  # [d_sae] int
    cosine: Tensor  # [d_sae]

    def indices(self, name: str) -> Tensor:
        return (self.classes == CLASSES.index(name)).nonzero().flatten()

    def counts(self) -> dict[str, int]:
        return {name: int((self.classes == i).sum()) for i, name in enumerate(CLASSES)}

    def summary(self) -> dict:
        shared = self.cosine[self.indices("shared")]
        return {"counts": self.counts(), "dead": int((self.classes < 0).sum()),
                "shared_cosine_median": float(shared.median()) if shared.numel() else None,
                "shared_cosine_mean": float(shared.mean()) if shared.numel() else None}


def relative_norms(d) -> Tensor:
    """[d_sae] relative decoder norm of model B per latent (0: A-only, 0.5: equal, 1: B-only)."""
    norms = _two_source_norms(d)
    a, b = norms[:, 0], norms[:, 1]
    return 0.5 * ((b - a) / torch.maximum(a, b).clamp_min(1e-12) + 1)


def decoder_cosines(d) -> Tensor:
    """[d_sae] cosine between each latent's decoder vectors in source A and source B."""
    _two_source_norms(d)
    dec = source_decoder(d).detach()
    return torch.nn.functional.cosine_similarity(dec[:, 0], dec[:, 1], dim=-1)


def classify_latents(d, thresholds: LatentThresholds | None = None) -> LatentClasses:
    """Relative norm, class and decoder cosine of every latent of a two-source crosscoder."""
    t = thresholds or LatentThresholds()
    r = relative_norms(d)
    classes = torch.full_like(r, CLASSES.index("other"), dtype=torch.long)
    classes[(r > t.shared_low) & (r < t.shared_high)] = CLASSES.index("shared")
    classes[r < t.specific] = CLASSES.index("a_only")
    classes[r > 1 - t.specific] = CLASSES.index("b_only")
    classes[_two_source_norms(d).max(dim=1).values <= t.dead_norm] = -1
    return LatentClasses(r, classes, decoder_cosines(d))


def _two_source_norms(d) -> Tensor:
    norms = source_decoder_norms(d)
    if norms.shape[1] != 2:
        raise MechscopeError(f"model-diffing latent classes need a two-source crosscoder (model A, model B); "
                             f"this one has {norms.shape[1]} sources")
    return norms
