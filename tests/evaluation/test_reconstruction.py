"""Reconstruction metrics against known answers: FVU's definition, pooling, bias, densities."""

from __future__ import annotations

import pytest
import torch

from mechscope.evaluation import ReconstructionStats, fraction_of_variance_unexplained


def test_fvu_is_one_for_the_mean_and_zero_for_the_identity_even_with_a_large_mean():
    torch.manual_seed(0)
    x = torch.randn(500, 8) + 100.0  # variance about zero would call the mean prediction ~100% explained
    assert fraction_of_variance_unexplained(x, x.mean(0).expand_as(x)) == pytest.approx(1.0)
    assert fraction_of_variance_unexplained(x, x) == 0.0


def test_stats_pool_over_batches_not_average_per_batch():
    torch.manual_seed(0)
    x = torch.randn(300, 6) * torch.linspace(0.5, 3, 300)[:, None]
    x_hat = x + 0.3 * torch.randn_like(x)
    stats = ReconstructionStats(d_sae=4)
    for a, b in ((0, 50), (50, 300)):  # unequal batches: a mean of per-batch FVUs would differ
        stats.update(x[a:b], x_hat[a:b], torch.ones(b - a, 4))
    result = stats.result()
    assert result["fvu"] == pytest.approx(fraction_of_variance_unexplained(x, x_hat), rel=1e-6)
    assert result["mse"] == pytest.approx(((x - x_hat) ** 2).mean().item(), rel=1e-6)
    assert result["l0"] == 4.0 and result["dense_fraction"] == 1.0 and result["dead_fraction"] == 0.0


def test_relative_reconstruction_bias_and_cosine_for_a_shrunk_reconstruction():
    x = torch.randn(100, 5)
    codes = torch.zeros(100, 3)
    codes[:, 0] = 1.0  # latent 0 always, latent 1 on 5 tokens (5%), latent 2 never
    codes[:5, 1] = 1.0
    stats = ReconstructionStats(d_sae=3)
    stats.update(x, 0.5 * x, codes)
    result = stats.result()
    assert result["relative_reconstruction_bias"] == pytest.approx(0.5)
    assert result["cosine"] == pytest.approx(1.0)
    assert result["dead_fraction"] == pytest.approx(1 / 3) and result["dense_fraction"] == pytest.approx(1 / 3)
    hist = result["density_histogram"]
    assert hist["dead"] == 1 and sum(hist["counts"]) == 2  # the two alive latents, at log10 0 and log10 0.05
