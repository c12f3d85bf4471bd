"""Activation and attribution patching: exact identities on tiny models, known answers on organisms."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.circuits import Patch, activation_patching, agreement, attribution_patching, run_patches
from mechscope.circuits.patching import paired_inputs
from mechscope.circuits.task_runs import patch, same_shape
from mechscope.errors import MechscopeError
from tests.conftest import tiny_hf, token_batch


def last_token_metric(answer: torch.Tensor, wrong: torch.Tensor):
    def metric(logits):
        return logits[:, -1].gather(1, answer[:, None])[:, 0] - logits[:, -1].gather(1, wrong[:, None])[:, 0]
    return metric


@pytest.fixture(scope="module", params=["llama", "gpt2", "gpt_neox"])
def setup(request):
    model = mechscope.load_model(tiny_hf(request.param), device="cpu")
    clean, corrupted = token_batch(batch=3, pos=6, seed=1), token_batch(batch=3, pos=6, seed=2)
    metric = last_token_metric(torch.tensor([5, 6, 7]), torch.tensor([8, 9, 10]))
    return model, clean, corrupted, metric


@pytest.mark.parametrize("resume", [False, True])  # resuming finds every patch a no-op and runs none
def test_patching_with_its_own_activation_changes_nothing(setup, resume):
    model, clean, _, metric = setup
    result = activation_patching(model, clean, clean, metric, "heads-by-pos", max_rows=len(clean), resume=resume)
    assert torch.equal(result.values, torch.full_like(result.values, result.clean))


def test_patches_before_the_first_differing_token_are_no_ops(setup):
    model, clean, _, metric = setup
    corrupted = clean.clone()
    corrupted[:, 4] = (clean[:, 4] + 1) % 97
    resumed = activation_patching(model, clean, corrupted, metric, "heads-by-pos", max_rows=12)
    full = activation_patching(model, clean, corrupted, metric, "heads-by-pos", max_rows=12, resume=False)
    before = resumed.values[..., :4]
    assert torch.equal(before, torch.full_like(before, resumed.corrupted))
    torch.testing.assert_close(resumed.values, full.values, atol=1e-5, rtol=1e-5)


def test_patching_a_whole_residual_layer_reproduces_the_source_run(setup):
    model, clean, corrupted, metric = setup
    clean_in, corrupt_in = paired_inputs(model, clean, corrupted)
    patches = [Patch(f"blocks.{layer}.hook_resid_pre") for layer in range(model.n_layers)]
    _, source = model.run_with_cache(clean_in, [p.hook for p in patches])
    denoised = run_patches(model, corrupt_in, source, patches, metric)
    _, source = model.run_with_cache(corrupt_in, [p.hook for p in patches])
    noised = run_patches(model, clean_in, source, patches, metric)
    result = activation_patching(model, clean, corrupted, metric, "attn")
    torch.testing.assert_close(denoised, torch.full_like(denoised, result.clean), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(noised, torch.full_like(noised, result.corrupted), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("component", ["resid", "attn-by-pos", "mlp", "heads", "heads-by-pos", "pattern"])
@pytest.mark.parametrize("noising", [False, True])
def test_stacked_patches_equal_one_patch_per_forward(setup, component, noising):
    model, clean, corrupted, metric = setup
    stacked = activation_patching(model, clean, corrupted, metric, component, noising=noising, max_rows=64)
    alone = activation_patching(model, clean, corrupted, metric, component, noising=noising, max_rows=len(clean),
                                resume=False)
    assert stacked.info["forward_passes"] < alone.info["forward_passes"]
    torch.testing.assert_close(stacked.values, alone.values, atol=1e-5, rtol=1e-5)
    assert stacked.axes[0] == "layer" and stacked.values.shape[0] == model.n_layers


@pytest.mark.parametrize("component", ["resid", "resid-post", "attn", "attn-by-pos", "mlp", "mlp-by-pos", "heads",
                                       "heads-by-pos", "q-input", "v-input", "pattern"])
def test_resumed_patches_equal_full_forward_patches(setup, component):
    """Each pass recomputes only blocks and positions after its patches (the prefix from the recorded base run)."""
    model, clean, corrupted, metric = setup
    resumed = activation_patching(model, clean, corrupted, metric, component, max_rows=12)
    full = activation_patching(model, clean, corrupted, metric, component, max_rows=12, resume=False)
    torch.testing.assert_close(resumed.values, full.values, atol=1e-5, rtol=1e-5)
    assert (resumed.values != resumed.corrupted).any()  # the patches do something


def test_unembedding_only_the_readout_positions_changes_no_value(setup):
    model, clean, corrupted, metric = setup
    last = torch.full((len(clean),), clean.shape[1] - 1)
    full = activation_patching(model, clean, corrupted, metric, "heads-by-pos", max_rows=12)
    read = activation_patching(model, clean, corrupted, metric, "heads-by-pos", max_rows=12, readout=last)
    torch.testing.assert_close(read.values, full.values, atol=1e-5, rtol=1e-5)
    with pytest.raises(MechscopeError, match="outside the readout positions"):
        activation_patching(model, clean, corrupted, lambda logits: logits[:, 0, 0], "resid", readout=last)


def test_patches_split_differently_across_forwards_agree(setup):
    model, clean, corrupted, metric = setup
    a = activation_patching(model, clean, corrupted, metric, "heads-by-pos", max_rows=9)
    b = activation_patching(model, clean, corrupted, metric, "heads-by-pos", max_rows=21)
    torch.testing.assert_close(a.values, b.values, atol=1e-5, rtol=1e-5)


def test_attribution_is_exact_for_a_linear_readout_of_the_last_residual(setup):
    """Patching resid_pre of layer 0 at one position: the estimate is first order, so it is exact only at
    zero distance; patching with identical prompts must give exactly the baseline."""
    model, clean, _, metric = setup
    result = attribution_patching(model, clean, clean, metric, "heads-by-pos")
    torch.testing.assert_close(result.values, torch.full_like(result.values, result.corrupted))


def test_misaligned_prompts_and_bad_metrics_are_named(setup):
    model, clean, corrupted, metric = setup
    with pytest.raises(MechscopeError, match="align token for token"):
        activation_patching(model, clean, corrupted[:, :-1], metric)
    with pytest.raises(MechscopeError, match="one value per prompt"):
        activation_patching(model, clean, corrupted, lambda logits: logits.sum(), "attn")
    with pytest.raises(MechscopeError, match="unknown component"):
        activation_patching(model, clean, corrupted, metric, "neurons")


def ioi_setup(organism, n=24):
    """IOI prompts of one template shape (the same positions hold the names and the final token)."""
    return same_shape(organism.task.patching_batch(organism.model.tokenizer, 400)).select(range(n))


def test_residual_patching_on_ioi_moves_from_names_to_the_final_position(small_organism):
    ioi = small_organism("ioi")
    batch = ioi_setup(ioi)
    scores = patch(ioi.model, batch, "resid").normalized()  # [layer, pos]
    names = (batch.clean != batch.corrupted).any(0).nonzero()[:, 0]  # positions of IO, S1 and S2
    final = int(batch.positions[0])
    assert len(batch.clean) >= 8 and len(names) == 3
    first, last = scores[0], scores[-1]
    assert int(first.abs().argmax()) in names.tolist() and first.abs().max() > 0.3  # at the input: a name
    assert int(last.argmax()) == int(names.max()) and last.max() > 0.3  # before the last block: still S2
    top = patch(ioi.model, batch, "resid-post").normalized()[-1]
    assert int(top.argmax()) == final and top[final] > 0.99              # after it: the final position
    assert top[names].abs().max() < 0.01


def test_attribution_patching_ranks_ioi_heads_like_exact_patching(small_organism):
    ioi = small_organism("ioi")
    batch = ioi_setup(ioi)
    exact = patch(ioi.model, batch, "heads")
    estimate = patch(ioi.model, batch, "heads", method="attribution")
    assert agreement(estimate, exact)["spearman"] > 0.7


def test_results_do_not_depend_on_the_number_of_cpu_threads(setup):
    model, clean, corrupted, metric = setup
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = activation_patching(model, clean, corrupted, metric, "heads-by-pos")
        torch.set_num_threads(2)
        two = activation_patching(model, clean, corrupted, metric, "heads-by-pos")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one.values, two.values)


def test_an_empty_task_batch_is_named(small_organism):
    from dataclasses import replace

    from mechscope.circuits import same_shape

    batch = small_organism("ioi").task.patching_batch(small_organism("ioi").model.tokenizer, 4)
    empty = replace(batch, clean=batch.clean[:0], corrupted=batch.corrupted[:0], attention_mask=batch.attention_mask[:0],
                    positions=batch.positions[:0], answers=batch.answers[:0], wrong=batch.wrong[:0], meta=[])
    with pytest.raises(MechscopeError, match="task batch is empty"):
        same_shape(empty)
