"""Synthetic ground truth: the generator's statistics and the recovery metrics' known answers."""

from __future__ import annotations

import torch

from mechscope.synthetic import SyntheticFeatures, feature_recovery


def test_generator_has_the_requested_sparsity_and_is_deterministic():
    plain = SyntheticFeatures(n_features=256, d=64, active=5, seed=3)
    assert abs((plain.sample(8192)[1] > 0).sum(-1).float().mean().item() - 5) < 0.3
    data = SyntheticFeatures(n_features=256, d=64, active=5, correlated_groups=4, group_size=3, seed=3)
    x, codes = data.sample(8192, step=7)
    assert torch.equal(x, data.sample(8192, step=7)[0]) and not torch.equal(x, data.sample(8192, step=8)[0])
    torch.testing.assert_close(x, codes @ data.directions)
    fires = codes > 0
    assert bool((fires[:, 1:3] >= fires[:, :1]).all())  # features 1 and 2 fire whenever feature 0 does
    freq = fires.float().mean(0)
    assert freq[10] > freq[200]  # decaying frequencies


def test_exponential_magnitudes_and_noise():
    data = SyntheticFeatures(n_features=64, d=32, active=8, magnitude="exponential", noise=0.1, seed=1)
    x, codes = data.sample(20_000)
    assert abs(float(codes[codes > 0].mean()) - 1.0) < 0.05
    assert abs(float((x - codes @ data.directions).std()) - 0.1) < 0.005


def test_recovery_metrics_known_answers():
    true = torch.eye(4)
    perfect = feature_recovery(true, true[[2, 0, 3, 1]] * 3.0)
    assert perfect["mcc"] == 1.0 and perfect["mmcs"] == 1.0 and perfect["matched"] == 1.0
    duplicated = feature_recovery(true, torch.stack([true[0], true[0], true[1], true[1]]))
    assert duplicated["mmcs"] == 0.5 and duplicated["mcc"] == 0.5
    dup_plus = feature_recovery(true[:2], torch.stack([true[0], true[0], true[1]]))
    assert dup_plus["mmcs"] == 1.0 and dup_plus["mcc"] == 1.0
    half = feature_recovery(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
    assert abs(half["mcc"] - 2 ** -0.5) < 1e-6 and half["matched"] == 0.0
