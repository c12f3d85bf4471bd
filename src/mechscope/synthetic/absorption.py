"""Feature absorption toy (Chanin et al. 2024; the Matryoshka SAE papers): a parent feature that is
active whenever one of its mutually exclusive children is. A plain sparse dictionary saves L0 by folding
the parent into each child's latent, so its "parent" latent stops firing on child tokens; nested
(Matryoshka) prefixes must reconstruct the parent on their own and keep it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.synthetic.features import SyntheticFeatures


@dataclass
class AbsorptionFeatures(SyntheticFeatures):
    """Feature 0 is the parent, 1..n_children its children, the rest independent background features."""

    n_features: int = 24
    d: int = 32
    n_children: int = 4
    parent_probability: float = 0.3
    child_given_parent: float = 0.8
    background_probability: float = 0.05

    def __post_init__(self):
        g = torch.Generator().manual_seed(self.seed)
        directions = torch.linalg.qr(torch.randn(self.d, self.n_features, generator=g))[0].T  # orthonormal
        self.directions = directions[: self.n_features]
        probabilities = torch.full((self.n_features,), self.background_probability)
        probabilities[0] = self.parent_probability
        probabilities[1:1 + self.n_children] = self.parent_probability * self.child_given_parent / self.n_children
        self.probabilities = probabilities

    def sample(self, batch: int, step: int = 0) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 1)
        codes = (torch.rand(batch, self.n_features, generator=g) < self.background_probability).float()
        codes[:, : 1 + self.n_children] = 0
        parent = torch.rand(batch, generator=g) < self.parent_probability
        with_child = parent & (torch.rand(batch, generator=g) < self.child_given_parent)
        child = 1 + torch.randint(self.n_children, (batch,), generator=g)
        codes[:, 0] = parent.float()
        codes[with_child, child[with_child]] = 1.0
        codes = codes * (0.5 + 0.5 * torch.rand(batch, self.n_features, generator=g))
        return codes @ self.directions, codes


def absorption_scores(dictionary, data: AbsorptionFeatures, held_out: int = 8192) -> dict[str, float]:
    """Parent latent: decoder cosine to the parent and its recall where the parent is active (children
    included); children: mean best decoder cosine to the pure child directions."""
    x, codes = data.sample(held_out, step=10**7)
    decoder = dictionary.W_dec.detach()
    unit = decoder / decoder.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = data.directions @ unit.T  # [true, latent]
    parent_latent = int(cos[0].argmax())
    with torch.no_grad():
        fires = dictionary.encode(x)[:, parent_latent] > 0
    active = codes[:, 0] > 0
    on_child_tokens = active & (codes[:, 1:1 + data.n_children] > 0).any(1)
    return {"parent_cosine": float(cos[0, parent_latent]),
            "parent_recall": float(fires[active].float().mean()),
            "parent_recall_with_child": float(fires[on_child_tokens].float().mean()),
            "child_cosine": float(cos[1:1 + data.n_children].max(dim=1).values.mean())}
