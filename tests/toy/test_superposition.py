"""Toy models of superposition reproduce Elhage et al. 2022 (tolerances as in the issue)."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.toy import (ToyConfig, dimensions_per_feature, feature_dimensionality, feature_norms,
                           plot_superposition, train_toy)


def _angles(w: torch.Tensor) -> list[float]:
    return sorted(math.degrees(math.atan2(float(w[1, j]), float(w[0, j]))) % 360 for j in range(w.shape[1]))


def test_twenty_features_in_five_dimensions(tmp_path):
    model = train_toy(ToyConfig(20, 5, [1.0, 0.1, 0.03], importance_decay=0.7, steps=6000))
    norms, d_star = feature_norms(model), dimensions_per_feature(model)
    dense = norms[0]
    assert bool(((dense[:5] > 0.95) & (dense[:5] < 1.05)).all()) and bool((dense[5:] < 0.05).all())
    assert d_star[0] > 0.98
    assert int((norms[1] > 0.5).sum()) >= 9  # S = 0.9
    assert int((norms[2] > 0.5).sum()) >= 10  # S = 0.97
    path = plot_superposition(model, tmp_path / "toy.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_five_features_in_two_dimensions_antipodal_pairs_and_pentagons():
    dense = train_toy(ToyConfig(5, 2, [1.0], importance_decay=0.7, steps=5000))
    w = dense.W.detach()[0]
    norms = w.norm(dim=0)
    top = norms.topk(2).indices
    assert bool((norms[top] > 0.9).all())
    assert abs(float(torch.nn.functional.cosine_similarity(w[:, top[0]], w[:, top[1]], dim=0))) < 0.05
    assert float(norms.sort().values[:3].max()) < 0.15  # the other three are (nearly) dropped

    # several instances side by side, as the paper trains them: near the transition (p = 0.2) some settle
    # into two antipodal pairs and some already into the pentagon, which takes over as features get sparser
    sparse = train_toy(ToyConfig(5, 2, [0.2] * 5 + [0.05] * 5, steps=6000, seed=1))
    w_all = sparse.W.detach()
    antipodal = 0
    for i in range(5):  # feature probability 0.2: >= 4 features in >= 2 antipodal pairs
        w = w_all[i]
        represented = (w.norm(dim=0) > 0.5).nonzero().squeeze(1)
        unit = w / w.norm(dim=0, keepdim=True).clamp_min(1e-9)
        cos = unit.T @ unit
        pairs = sum(1 for a in represented for b in represented if a < b and cos[a, b] < -0.95)
        antipodal += len(represented) >= 4 and pairs >= 2
    assert antipodal >= 1
    pentagons = 0
    for i in range(5, 10):
        w = w_all[i]
        norms = w.norm(dim=0)
        angles = _angles(w)
        gaps = [(angles[(k + 1) % 5] - angles[k]) % 360 for k in range(5)]
        if float(norms.min() / norms.max()) > 0.9 and all(abs(g - 72) < 6 for g in gaps):
            pentagons += 1
    assert pentagons >= 1


def test_two_hundred_features_in_twenty_dimensions_sticky_half():
    probabilities = [0.4, 0.3, 0.2, 0.1]
    model = train_toy(ToyConfig(200, 20, probabilities, steps=3000))
    d_star = dimensions_per_feature(model)
    assert all(abs(float(d) - 0.5) < 0.03 for d in d_star[:2])  # the 1/2 plateau over a range of sparsity
    assert all(float(a) >= float(b) for a, b in zip(d_star, d_star[1:]))  # falls as sparsity grows
    norms, dims = feature_norms(model), feature_dimensionality(model)
    half = dims[1][norms[1] > 0.5]
    assert float(((half - 0.5).abs() < 0.03).float().mean()) > 0.9  # antipodal pairs: D_i = 1/2
    tetra = dims[2][norms[2] > 0.5]
    clustered = ((tetra - 0.4).abs() < 0.03) | ((tetra - 0.375).abs() < 0.03)
    assert float(clustered.float().mean()) > 0.5  # denser packings: 2/5 (pentagons) or 3/8


@pytest.mark.parametrize("p", [0.0, 1.5])
def test_bad_probability_is_refused(p):
    with pytest.raises(ValueError, match="feature_probability"):
        ToyConfig(5, 2, [p])
