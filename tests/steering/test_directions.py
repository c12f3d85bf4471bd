"""Directions: difference in means (left padding, float64), PCA of paired differences and probes on known geometry."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.errors import SteeringError
from mechscope.steering import DirectionConfig, contrast, directions, pca_of_differences, probe_direction
from tests.conftest import tiny_hf, word_tokenizer

WORDS = "the cat dog sat ran on a mat fast slow red big small house tree".split()


@pytest.fixture(scope="module")
def gpt2():
    return mechscope.load_model(tiny_hf("gpt2"), tokenizer=word_tokenizer(WORDS), device="cpu", check=False)


POSITIVE = ["the cat sat on a mat", "the dog ran", "a big red house", "the tree"]
NEGATIVE = ["a small tree ran fast", "the mat", "the big dog sat on the slow cat", "red tree"]


def test_diff_in_means_over_a_padded_batch_equals_the_mean_of_each_prompt_run_alone(gpt2):
    read = contrast(gpt2, POSITIVE, NEGATIVE, hook="blocks.{layer}.hook_resid_post", positions=(-1, -2),
                    batch_size=3)
    expected = []
    for prompts in (POSITIVE, NEGATIVE):
        rows = []
        for prompt in prompts:
            ids = gpt2.to_tokens(prompt)
            _, cache = gpt2.run_with_cache(ids, names=[f"blocks.{layer}.hook_resid_post" for layer in range(3)])
            rows.append(torch.stack([torch.stack([cache[f"blocks.{layer}.hook_resid_post"][0, pos]
                                                  for layer in range(3)]) for pos in (-1, -2)]))
        expected.append(torch.stack(rows).double().mean(0))
    assert read.diff_in_means().dtype == torch.float64
    torch.testing.assert_close(read.diff_in_means(), expected[0] - expected[1], atol=1e-5, rtol=1e-5)


def test_a_vector_per_layer_with_its_norm_and_metrics(gpt2):
    vector = directions(gpt2, POSITIVE, NEGATIVE, DirectionConfig(layers=(0, 2), position=-1))
    read = contrast(gpt2, POSITIVE, NEGATIVE, layers=(0, 2))
    assert vector.layers == [0, 2] and vector.method == "diff_in_means" and vector.positions == [-1]
    torch.testing.assert_close(vector.direction(2), read.diff_in_means()[0, 1].float())
    assert vector.norms[2] == pytest.approx(float(read.diff_in_means()[0, 1].norm()), rel=1e-6)
    assert vector.model["fingerprint"] == gpt2.fingerprint() and vector.metrics["n_positive"] == 4


def _clusters(seed: int = 0, n: int = 200, d: int = 16):
    generator = torch.Generator().manual_seed(seed)
    axis = torch.randn(d, generator=generator)
    axis /= axis.norm()
    base = torch.randn(n, d, generator=generator)
    noise = 0.05 * torch.randn(n, d, generator=generator)
    shift = (2.0 + 0.5 * torch.rand(n, 1, generator=generator)) * axis
    return base + shift + noise, base, axis


def test_pca_of_paired_differences_recovers_the_axis_they_vary_along():
    positive, negative, axis = _clusters()
    component = pca_of_differences(positive, negative)
    assert torch.nn.functional.cosine_similarity(component.float(), axis, dim=0) > 0.99
    assert float(component.norm()) == pytest.approx(2.25, abs=0.1)  # the mean shift's length
    with pytest.raises(SteeringError, match="paired"):
        pca_of_differences(positive, negative[:-1])


def test_probe_direction_separates_two_gaussians_along_the_true_axis():
    generator = torch.Generator().manual_seed(1)
    axis = torch.zeros(16)
    axis[3] = 1.0
    positive = torch.randn(300, 16, generator=generator) + 3 * axis
    negative = torch.randn(300, 16, generator=generator)
    direction, accuracy = probe_direction(positive, negative)
    assert torch.nn.functional.cosine_similarity(direction.float(), axis, dim=0) > 0.95
    assert accuracy > 0.9


def test_bad_method_and_hook_are_named(gpt2):
    with pytest.raises(SteeringError, match="method must be one of"):
        DirectionConfig(method="mean")
    with pytest.raises(mechscope.MechscopeError, match="unknown hook name"):
        contrast(gpt2, POSITIVE, NEGATIVE, hook="blocks.{layer}.hook_resid")
