"""Crosscoder latent classes and Latent Scaling recover planted shared and model-specific features."""

from __future__ import annotations

import pytest
import torch

from mechscope.dictionaries import Dictionary, DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.formats import load_dictionary
from mechscope.diffing import CLASSES, classify_latents, latent_scaling, plot_crosscoder_latents
from mechscope.errors import MechscopeError
from tests.diffing.planted import PlantedPair

PAIR = PlantedPair()


@pytest.fixture(scope="module")
def crosscoder(tmp_path_factory):
    cfg = DictionaryConfig(2 * PAIR.d, 64, "crosscoder", k=3)
    (path,) = train(PAIR.batches(256), cfg, tmp_path_factory.mktemp("cc"),
                    TrainConfig(tokens=1500 * 256, batch_size=256, log_every=500, device="cpu"))
    return load_dictionary(path)


def _best_latent(d, direction: torch.Tensor, in_a: bool, in_b: bool) -> int:
    """The latent whose whole decoder [d_A, d_B] best matches the planted feature's [u or 0, u or 0]."""
    planted = torch.cat([direction * in_a, direction * in_b])
    return int(torch.nn.functional.cosine_similarity(d.W_dec.detach(), planted[None], dim=-1).argmax())


def test_planted_features_land_in_their_class_with_decoder_cosine_near_one(crosscoder):
    classes = classify_latents(crosscoder)
    found = {"shared": [], "a_only": [], "b_only": []}
    for i, direction in enumerate(PAIR.directions):
        truth = "shared" if PAIR.in_a[i] and PAIR.in_b[i] else "a_only" if PAIR.in_a[i] else "b_only"
        j = _best_latent(crosscoder, direction, bool(PAIR.in_a[i]), bool(PAIR.in_b[i]))
        found[truth].append(CLASSES[int(classes.classes[j])])
        if truth == "shared":
            assert classes.cosine[j] > 0.95
    for truth, got in found.items():
        assert sum(g == truth for g in got) >= len(got) - 1, (truth, got)


def test_latent_scaling_separates_specific_from_shared(crosscoder):
    classes = classify_latents(crosscoder)
    scaling = latent_scaling(crosscoder, (PAIR.sample(4096, 10**6 + s)[0] for s in range(4)))
    for name in ("a_only", "b_only"):
        index = classes.indices(name)
        index = index[scaling.active[index] > 50]
        assert index.numel() >= 4
        assert scaling.nu_error[index].abs().median() < 0.1
        assert scaling.truly_specific()[index].float().mean() > 0.8
    shared = classes.indices("shared")
    shared = shared[scaling.active[shared] > 50]
    assert (scaling.nu_error[shared].median() - 1).abs() < 0.1
    assert not scaling.truly_specific()[shared].any()


def test_plots_and_two_sources_required(crosscoder, tmp_path):
    classes = classify_latents(crosscoder)
    scaling = latent_scaling(crosscoder, [PAIR.sample(1024, 7)[0]])
    assert plot_crosscoder_latents(classes, scaling, tmp_path / "latents.png").stat().st_size > 10_000
    three = Dictionary(DictionaryConfig(48, 32, "crosscoder", n_sources=3))
    with pytest.raises(MechscopeError, match="two-source crosscoder"):
        classify_latents(three)
