"""Co-firing neighbours from one-permutation MinHash signatures (Li, Owen & Zhang 2012).

Each latent keeps, in each of H buckets, the smallest hash of a token it fired on (the bucket is
the hash mod H): O(d_sae * H) memory whatever the token count, one scatter-min per batch. Two latents'
Jaccard similarity |A ∩ B| / |A ∪ B| of their token sets is estimated as matching buckets over buckets
non-empty in either; identical sets score exactly 1 and disjoint sets exactly 0.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

EMPTY = torch.iinfo(torch.int64).max
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


class CoFiring:
    """MinHash signatures of the token sets each latent fires on."""

    def __init__(self, d_sae: int, hashes: int, device: torch.device):
        self.hashes = hashes
        self.signature = torch.full((d_sae, hashes), EMPTY, dtype=torch.int64, device=device)

    def update(self, latents: Tensor, token_hash: Tensor) -> None:
        """Record that latents[i] fired on the token hashed to token_hash[i] (non-negative int64)."""
        self.signature.view(-1).scatter_reduce_(0, latents * self.hashes + token_hash % self.hashes, token_hash,
                                                "amin")

    def jaccard(self) -> sp.csr_matrix:
        """Estimated Jaccard similarity of every pair of latents that share a bucket minimum (sparse, no diagonal)."""
        sig = self.signature.cpu().numpy()
        rows, cols = np.nonzero(sig != EMPTY)
        _, column = np.unique(sig[rows, cols], return_inverse=True)  # a hash fixes its bucket
        member = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, column)),
                               shape=(len(sig), column.max(initial=-1) + 1))
        matches = (member @ member.T).tocoo()
        off = matches.row != matches.col
        i, j, shared = matches.row[off], matches.col[off], matches.data[off]
        nonempty = np.packbits(sig != EMPTY, axis=1)
        both = _POPCOUNT[nonempty[i] & nonempty[j]].sum(1)
        filled = (sig != EMPTY).sum(1)
        union = filled[i] + filled[j] - both
        return sp.csr_matrix((shared / union, (i, j)), shape=(len(sig), len(sig)))

    def neighbours(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-n co-firing neighbours per latent: (ids [d_sae, n], Jaccard [d_sae, n]), padded with -1 / 0."""
        return top_per_row(self.jaccard(), n)


def top_per_row(matrix: sp.csr_matrix, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n largest entries of each row of a sparse matrix, ties broken by the lower column."""
    coo = matrix.tocoo()
    order = np.lexsort((coo.col, -coo.data, coo.row))
    row, col, data = coo.row[order], coo.col[order], coo.data[order]
    starts = np.searchsorted(row, np.arange(matrix.shape[0]))
    rank = np.arange(len(row)) - starts[row]
    keep = rank < n
    ids = np.full((matrix.shape[0], n), -1, dtype=np.int64)
    values = np.zeros((matrix.shape[0], n), dtype=np.float32)
    ids[row[keep], rank[keep]] = col[keep]
    values[row[keep], rank[keep]] = data[keep]
    return ids, values
