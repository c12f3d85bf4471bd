"""Interventions: exact ablation at every scope, padding- and KV-cache-invariance, heads, latents, conditions."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.binding import bind_dictionary
from mechscope.errors import SteeringError
from mechscope.steering import Condition, Direction, Intervention, Latent, directional_ablation, steer
from tests.conftest import tiny_hf

HOOK = "blocks.1.hook_resid_pre"
IDS = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 11, 12, 13], [0, 0, 0, 40, 41]])
MASK = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 1, 1]])


@pytest.fixture(scope="module")
def llama():
    return mechscope.load_model(tiny_hf("llama"), device="cpu", check=False)


def _vector(d: int = 32, seed: int = 3) -> torch.Tensor:
    return torch.randn(d, generator=torch.Generator().manual_seed(seed))


def _cached(model, hook, interventions, inputs):
    with steer(model, interventions), torch.no_grad():
        return model.run_with_cache(inputs, names=[hook])


@pytest.mark.parametrize("where", ["all", "prompt", {1, 3}])
def test_ablation_makes_the_projection_zero_at_every_selected_position_and_leaves_the_rest(llama, where):
    vector = _vector()
    unit = vector / vector.norm()
    inputs = {"input_ids": IDS, "attention_mask": MASK}
    _, plain = _cached(llama, HOOK, [], inputs)
    _, ablated = _cached(llama, HOOK, Intervention(HOOK, Direction(vector), "ablate", where=where), inputs)
    absolute = torch.where(MASK.bool(), MASK.cumsum(-1) - 1, -1)
    chosen = MASK.bool() if isinstance(where, str) else torch.isin(absolute, torch.tensor(sorted(where)))
    projection = ablated[HOOK] @ unit
    assert projection[chosen].abs().max() < 1e-4 * (plain[HOOK] @ unit)[chosen].abs().min()  # float rounding only
    assert torch.equal(ablated[HOOK][~chosen], plain[HOOK][~chosen])


def test_add_under_left_padding_equals_add_on_each_row_alone(llama):
    steering = Intervention("blocks.0.hook_resid_post", Direction(_vector()), "add", 3.0)
    with steer(llama, steering), torch.no_grad():
        batched = llama({"input_ids": IDS, "attention_mask": MASK,
                         "position_ids": (MASK.cumsum(-1) - 1).clamp(min=0)})
        for row in range(len(IDS)):
            alone = llama(IDS[row][MASK[row].bool()][None])
            torch.testing.assert_close(batched[row][MASK[row].bool()], alone[0], atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(llama(IDS[:1]), batched[:1], atol=1e-2)  # the steering did something


@pytest.mark.parametrize("where", ["all", "generated", "prompt"])
def test_kv_cache_generation_with_steering_equals_full_recompute(llama, where):
    steering = [Intervention("blocks.1.hook_resid_pre", Direction(_vector()), "add", 4.0, where=where),
                Intervention("blocks.2.hook_resid_pre", Direction(_vector(seed=5)), "cap", 0.1, where=where)]
    inputs = {"input_ids": IDS, "attention_mask": MASK}
    with steer(llama, steering):
        cached = llama.generate(inputs, max_new_tokens=6, eos_token_ids=(), output_logits=True)
        full = llama.generate(inputs, max_new_tokens=6, eos_token_ids=(), output_logits=True, use_cache=False)
    plain = llama.generate(inputs, max_new_tokens=6, eos_token_ids=())
    assert cached.tokens == full.tokens and cached.tokens != plain.tokens
    for ours, reference in zip(cached.logits, full.logits):
        torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)


def test_clamp_and_cap_set_and_limit_the_projection_in_units_of_the_vector_length(llama):
    vector = _vector()
    unit, length = vector / vector.norm(), vector.norm()
    _, clamped = _cached(llama, HOOK, Intervention(HOOK, Direction(vector), "clamp", 0.5), IDS)
    torch.testing.assert_close(clamped[HOOK] @ unit, torch.full(IDS.shape, 0.5 * float(length)), atol=1e-5, rtol=0)
    _, plain = _cached(llama, HOOK, [], IDS)
    _, capped = _cached(llama, HOOK, Intervention(HOOK, Direction(vector), "cap", -0.01), IDS)
    torch.testing.assert_close(capped[HOOK] @ unit, (plain[HOOK] @ unit).clamp(max=-0.01 * float(length)),
                               atol=1e-5, rtol=0)


def test_scale_multiplies_the_projection_whatever_the_vector_length_and_leaves_the_rest(llama):
    vector = 7 * _vector()
    unit = vector / vector.norm()
    _, plain = _cached(llama, HOOK, [], IDS)
    _, scaled = _cached(llama, HOOK, Intervention(HOOK, Direction(vector), "scale", 0.25), IDS)
    torch.testing.assert_close(scaled[HOOK] @ unit, 0.25 * (plain[HOOK] @ unit), atol=1e-5, rtol=0)
    rest = lambda act: act - (act @ unit)[..., None] * unit  # noqa: E731
    torch.testing.assert_close(rest(scaled[HOOK]), rest(plain[HOOK]), atol=1e-5, rtol=0)


def test_head_intervention_edits_only_that_head(llama):
    hook = "blocks.1.attn.hook_z"
    _, plain = _cached(llama, hook, [], IDS)
    direction = Direction(_vector(8), head=2)
    _, ablated = _cached(llama, hook, Intervention(hook, direction, "ablate"), IDS)
    unit = direction.vector / direction.vector.norm()
    assert (ablated[hook][:, :, 2] @ unit).abs().max() < 1e-5
    others = [0, 1, 3]
    assert torch.equal(ablated[hook][:, :, others], plain[hook][:, :, others])
    with pytest.raises(SteeringError, match="give the Direction a head"):
        _cached(llama, hook, Intervention(hook, Direction(_vector(8)), "ablate"), IDS)


def _dictionary(llama):
    dictionary = Dictionary(DictionaryConfig(32, 64, "topk", k=8, hook_name=HOOK))
    dictionary.reset_parameters(seed=0)
    return bind_dictionary(llama, dictionary)


def test_identity_edit_in_latent_space_returns_the_activations_unchanged_bit_for_bit(llama):
    bound = _dictionary(llama)
    _, plain = _cached(llama, HOOK, [], IDS)
    identity = Intervention(HOOK, Latent(bound, 3), "add", 0.0)
    _, edited = _cached(llama, HOOK, identity, IDS)
    assert torch.equal(edited[HOOK], plain[HOOK])


def test_latent_clamp_sets_that_latent_and_keeps_the_error_term(llama):
    bound = _dictionary(llama)
    _, plain = _cached(llama, HOOK, [], IDS)
    _, edited = _cached(llama, HOOK, Intervention(HOOK, Latent(bound, 3), "clamp", 5.0), IDS)
    module = bound.dictionary
    x, y = plain[HOOK], edited[HOOK]
    codes, new_codes = module.encode(x), module.encode(y)
    torch.testing.assert_close(y - x, (codes.new_full(codes[..., 3].shape, 5.0) - codes[..., 3])[..., None]
                               * module.W_dec[3], atol=1e-5, rtol=1e-5)
    assert new_codes.shape == codes.shape


def test_conditional_steering_applies_only_to_rows_whose_prompt_crosses_the_threshold(llama):
    probe = Direction(_vector(seed=11))
    _, plain = _cached(llama, "blocks.0.hook_resid_post", [], {"input_ids": IDS, "attention_mask": MASK})
    coordinate = plain["blocks.0.hook_resid_post"] @ (probe.vector / probe.vector.norm())
    prompt_mean = (coordinate * MASK).sum(1) / MASK.sum(1)
    threshold = float(prompt_mean.median())
    condition = Condition("blocks.0.hook_resid_post", probe, threshold)
    behaviour = Intervention(HOOK, Direction(_vector()), "add", 3.0, where="generated", condition=condition)
    inputs = {"input_ids": IDS, "attention_mask": MASK}
    with steer(llama, behaviour):
        steered = llama.generate(inputs, max_new_tokens=5, eos_token_ids=(), output_logits=True)
    with steer(llama, Intervention(HOOK, Direction(_vector()), "add", 3.0, where="generated")):
        always = llama.generate(inputs, max_new_tokens=5, eos_token_ids=(), output_logits=True)
    plain_run = llama.generate(inputs, max_new_tokens=5, eos_token_ids=(), output_logits=True)
    for row in range(len(IDS)):
        expected = always if prompt_mean[row] > threshold else plain_run
        torch.testing.assert_close(steered.logits[row], expected.logits[row], atol=1e-5, rtol=1e-5)


def test_condition_reading_a_later_hook_than_its_edit_is_refused(llama):
    condition = Condition("blocks.2.hook_resid_pre", Direction(_vector()), 0.0)
    with pytest.raises(SteeringError, match="fires after"):
        with steer(llama, Intervention(HOOK, Direction(_vector()), condition=condition)):
            pass


def test_directional_ablation_zeroes_the_direction_in_the_final_residual_stream(llama):
    vector = _vector()
    last = f"blocks.{llama.n_layers - 1}.hook_resid_post"
    _, cache = _cached(llama, last, directional_ablation(llama, vector), IDS)
    assert (cache[last] @ (vector / vector.norm())).abs().max() < 1e-5
