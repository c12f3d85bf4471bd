"""SteeringVector files: save -> load is identical; bad inputs are named."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.errors import SteeringError
from mechscope.steering import SteeringVector
from tests.conftest import tiny_hf


def _vector() -> SteeringVector:
    generator = torch.Generator().manual_seed(0)
    return SteeringVector({0: torch.randn(32, generator=generator), 2: torch.randn(32, generator=generator)},
                          method="pca", model={"name": "tiny", "fingerprint": "abc"}, positions=[-1, -2],
                          metrics={"separation": {"0": 0.9}}, metadata={"trait": "cats"})


def test_save_then_load_gives_identical_tensors_and_metadata(tmp_path):
    vector = _vector()
    loaded = SteeringVector.load(vector.save(tmp_path / "v"))
    assert loaded.layers == [0, 2] and all(torch.equal(loaded.vectors[k], vector.vectors[k]) for k in (0, 2))
    assert (loaded.hook, loaded.method, loaded.positions, loaded.metadata) == (vector.hook, "pca", [-1, -2],
                                                                               {"trait": "cats"})
    assert loaded.model["fingerprint"] == "abc" and loaded.norms == vector.norms


def test_dict_round_trip_is_exact():
    vector = _vector()
    again = SteeringVector.from_dict(vector.to_dict(), hook=vector.hook)
    assert all(torch.equal(again.vectors[k], vector.vectors[k]) for k in vector.layers)


def test_a_vector_that_does_not_fit_the_model_is_named():
    model = mechscope.load_model(tiny_hf("llama"), device="cpu", check=False)
    with pytest.raises(SteeringError, match="d_model=16"):
        SteeringVector({0: torch.ones(16)}).check(model)
    with pytest.raises(SteeringError, match=r"layers \[5\] do not exist"):
        SteeringVector({5: torch.ones(32)}).check(model)
    with pytest.raises(SteeringError, match="no direction for layer 1"):
        _vector().direction(1)
    with pytest.raises(SteeringError, match="same width"):
        SteeringVector({0: torch.ones(32), 1: torch.ones(16)})
    with pytest.raises(SteeringError, match=r"\{layer\}"):
        SteeringVector({0: torch.ones(32)}, hook="blocks.0.hook_resid_pre")


def test_loading_a_directory_without_a_vector_is_named(tmp_path):
    with pytest.raises(SteeringError, match="holds no steering vector"):
        SteeringVector.load(tmp_path)


def test_a_latent_as_a_vector_adds_exactly_its_decoder_row_and_raises_its_pre_activation_by_the_value():
    from mechscope.dictionaries import Dictionary, DictionaryConfig
    from mechscope.dictionaries.binding import bind_dictionary
    from mechscope.steering import latent_vector, steer, vector_interventions

    model = mechscope.load_model(tiny_hf("llama"), device="cpu", check=False)
    dictionary = Dictionary(DictionaryConfig(32, 64, "topk", k=8, hook_name="blocks.1.hook_resid_post"))
    dictionary.reset_parameters(seed=0)  # unit decoder rows, encoder tied to their transpose
    vector = latent_vector(bind_dictionary(model, dictionary), 5)
    assert vector.layers == [1] and vector.hook_name(1) == "blocks.1.hook_resid_post"
    assert torch.equal(vector.direction(1), dictionary.W_dec[5].detach())
    ids = torch.tensor([[5, 6, 7, 8]])
    _, plain = model.run_with_cache(ids, names=["blocks.1.hook_resid_post"])
    with steer(model, vector_interventions(vector, "add", 2.5)):
        _, steered = model.run_with_cache(ids, names=["blocks.1.hook_resid_post"])
    pre = [dictionary.pre_activations(c["blocks.1.hook_resid_post"])[..., 5] for c in (plain, steered)]
    torch.testing.assert_close(pre[1] - pre[0], torch.full_like(pre[0], 2.5), atol=1e-5, rtol=0)
