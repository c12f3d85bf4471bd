"""Weight orthogonalisation: the saved copy, loaded by plain transformers, computes the hooked ablation's logits."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

import mechscope
from mechscope.errors import SteeringError
from mechscope.steering import contrast, directional_ablation, steer
from mechscope.steering.orthogonalize import orthogonalize, save_orthogonalized
from tests.conftest import tiny_hf

IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 40, 41, 42]])


def _hooked_and_saved(model, direction, out):
    with steer(model, directional_ablation(model, direction)), torch.no_grad():
        hooked = model(IDS if model.tokenizer is None else model.encode(["How do I bake bread ?"]))
    saved = AutoModelForCausalLM.from_pretrained(save_orthogonalized(model, direction, out)).eval()
    with torch.no_grad():
        plain = saved(IDS if model.tokenizer is None else model.encode(["How do I bake bread ?"])["input_ids"]).logits
    return hooked, plain


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox"])
def test_plain_transformers_loads_the_copy_and_its_logits_equal_the_hooked_ablation(family, tmp_path):
    model = mechscope.load_model(tiny_hf(family), device="cpu", check=False)
    direction = torch.randn(32, generator=torch.Generator().manual_seed(0))
    hooked, plain = _hooked_and_saved(model, direction, tmp_path / family)
    torch.testing.assert_close(plain, hooked, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(model(IDS), hooked, atol=1e-3)  # the ablation changed something


def test_the_organism_orthogonalised_along_its_refusal_direction_matches_and_keeps_its_unembedding(small_organism,
                                                                                                   tmp_path):
    organism = small_organism("refusal")
    model = organism.model
    harmful = organism.task.instructions(True, "train")[:64]
    harmless = organism.task.instructions(False, "train")[:64]
    direction = contrast(model, harmful, harmless, layers=[1]).diff_in_means()[0, 0].float()
    hooked, plain = _hooked_and_saved(model, direction, tmp_path / "organism")
    torch.testing.assert_close(plain, hooked, atol=1e-5, rtol=1e-5)
    edited = orthogonalize(model, direction)
    assert torch.equal(edited.hf.get_output_embeddings().weight, model.hf.get_output_embeddings().weight)
    assert model.hf.config.tie_word_embeddings  # the original is untouched


def test_families_whose_outputs_pass_through_a_norm_are_refused():
    model = mechscope.load_model(tiny_hf("gemma2"), device="cpu", check=False)
    with pytest.raises(SteeringError, match="plain projections"):
        orthogonalize(model, torch.ones(32))
    llama = mechscope.load_model(tiny_hf("llama"), device="cpu", check=False)
    with pytest.raises(SteeringError, match=r"d_model=32"):
        orthogonalize(llama, torch.ones(16))
