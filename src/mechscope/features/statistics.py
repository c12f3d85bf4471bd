"""Exact per-latent firing statistics: counts, sums, min/max and a log-spaced activation histogram.

Histogram bin i (1 <= i < len(edges)) holds activations in [edges[i-1], edges[i]); bin 0 those below
edges[0] and the last bin those at or above edges[-1]. Edges are powers of 2^(1/bins_per_octave).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def histogram_edges(bins_per_octave: int, octaves: tuple[int, int]) -> Tensor:
    """The histogram's bin edges (float32, as used for bucketing)."""
    lo, hi = octaves
    steps = torch.arange(lo * bins_per_octave, hi * bins_per_octave + 1, dtype=torch.float64)
    return (2.0 ** (steps / bins_per_octave)).float()


class FiringStats:
    """Running exact statistics of every latent's positive activations."""

    def __init__(self, d_sae: int, edges: Tensor, device: torch.device):
        self.d_sae = d_sae
        self.edges = edges.to(device)
        self.count = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.total = torch.zeros(d_sae, dtype=torch.float64, device=device)
        self.minimum = torch.full((d_sae,), float("inf"), device=device)
        self.maximum = torch.zeros(d_sae, device=device)
        self.histogram = torch.zeros(d_sae, len(edges) + 1, dtype=torch.int64, device=device)

    def update(self, latents: Tensor, values: Tensor) -> None:
        """Add activations `values` [m] of `latents` [m]."""
        self.count += torch.bincount(latents, minlength=self.d_sae)
        self.total += torch.bincount(latents, weights=values.double(), minlength=self.d_sae)
        self.minimum.scatter_reduce_(0, latents, values, "amin")
        self.maximum.scatter_reduce_(0, latents, values, "amax")
        bins = torch.bucketize(values, self.edges, right=True)
        self.histogram.view(-1).index_add_(0, latents * self.histogram.shape[1] + bins,
                                           torch.ones_like(bins))

    def as_numpy(self) -> dict[str, np.ndarray]:
        return {"count": self.count.cpu().numpy(), "total": self.total.cpu().numpy(),
                "minimum": np.where(self.count.cpu().numpy() > 0, self.minimum.cpu().numpy(), 0.0),
                "maximum": self.maximum.cpu().numpy(), "histogram": self.histogram.cpu().numpy()}


def quantiles(histogram: np.ndarray, edges: np.ndarray, latents: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Where each value lies in its latent's distribution (0..1): exact up to the bin it falls in, and
    interpolated log-linearly inside it (under/overflow bins count as their middle)."""
    bins = np.searchsorted(edges, values, side="right")
    count = histogram[latents, bins].astype(np.float64)
    below = np.cumsum(histogram, axis=1)[latents, bins] - count
    inner = (bins > 0) & (bins < len(edges))
    lo = edges[np.clip(bins - 1, 0, len(edges) - 1)]
    hi = edges[np.clip(bins, 0, len(edges) - 1)]
    fraction = np.full(len(bins), 0.5)
    fraction[inner] = np.log(values[inner] / lo[inner]) / np.log(hi[inner] / lo[inner])
    return (below + fraction * count) / np.maximum(histogram.sum(1)[latents], 1)


def quantile_edges(histogram: np.ndarray, edges: np.ndarray, minimum: np.ndarray, maximum: np.ndarray,
                   bins: int) -> np.ndarray:
    """Activation at the boundaries of `bins` equal-count bins per latent [d_sae, bins + 1]: the exact minimum
    and maximum at the ends, the histogram's log-linear interpolation inside."""
    hist = histogram.astype(np.float64)
    cum = np.cumsum(hist, axis=1)
    total = cum[:, -1]
    out = np.zeros((len(hist), bins + 1))
    out[:, 0], out[:, -1] = minimum, maximum
    rows = np.arange(len(hist))
    for j in range(1, bins):
        target = total * j / bins
        b = np.argmax(cum >= target[:, None], axis=1)
        within = (target - (cum[rows, b] - hist[rows, b])) / np.maximum(hist[rows, b], 1)
        lo = edges[np.clip(b - 1, 0, len(edges) - 1)]
        hi = edges[np.clip(b, 0, len(edges) - 1)]
        inner = (b > 0) & (b < len(edges))
        out[:, j] = np.where(inner, lo * (hi / lo) ** within, lo)
    return np.clip(out, out[:, :1], out[:, -1:])
