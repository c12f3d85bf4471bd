"""Known answers on SmolLM2-135M: it solves IOI built with its own tokenizer, DLA adds up to the logit
difference, and patching finds the IOI information moving from the name positions to the final one."""

from __future__ import annotations

import pytest

from mechscope import circuits, tasks
from mechscope.circuits import Patch, run_patches
from mechscope.circuits.patching import mean_metric, paired_inputs


@pytest.fixture(scope="module")
def ioi(smollm2):
    return tasks.make_task("ioi").batch(smollm2.tokenizer, 48)


def test_smollm2_predicts_the_indirect_object(smollm2, ioi):
    clean, corrupted = tasks.clean_and_corrupted(smollm2, ioi)
    diff = tasks.logit_diff(clean, ioi)
    # measured (48 test prompts, seed 0): top-1 is IO on 62.5%, IO beats S on 87.5%, mean logit diff 2.93
    assert tasks.accuracy(clean, ioi).mean() > 0.5  # top-1 over 49,152 tokens: chance is ~0
    assert (diff > 0).float().mean() > 0.75  # IO against S: chance is 0.5
    assert diff.mean() > 2.0
    assert tasks.logit_diff(corrupted, ioi).mean() < 0  # ABC names remove the answer


def test_smollm2_dla_sums_to_the_logit_difference(smollm2, ioi):
    few = ioi.select(list(range(4)))
    result = circuits.task_dla(smollm2, few)
    expected = tasks.logit_diff(few.logits(smollm2), few).mean()
    assert result.info["max_sum_error"] < 1e-4
    assert result.info["total"] == pytest.approx(float(expected), abs=1e-4)
    assert float(result.values.sum()) == pytest.approx(float(expected), abs=1e-3)


@pytest.fixture(scope="module")
def one_template(ioi):
    return circuits.same_shape(ioi)


def name_positions(batch: tasks.TaskBatch) -> set[int]:
    """Positions where the ABC corruption replaced a name (the same for every row of a same_shape batch)."""
    return set((batch.clean[0] != batch.corrupted[0]).nonzero()[:, 0].tolist())


@pytest.mark.slow
def test_smollm2_residual_patching_moves_from_the_names_to_the_final_position(smollm2, one_template):
    result = circuits.patch(smollm2, one_template, "resid", max_rows=128)
    best = result.normalized().argmax(1).tolist()  # [layer] -> position restoring the most
    final = one_template.clean.shape[1] - 1
    # measured: a name position for layers 0-23, the final position ("to") for layers 24-29
    assert all(pos in name_positions(one_template) for pos in best[:smollm2.n_layers // 2])
    assert all(pos == final for pos in best[-5:])
    switch = best.index(final)
    assert all(pos == final for pos in best[switch:])


@pytest.mark.slow
def test_smollm2_last_residual_at_the_final_position_restores_the_clean_run(smollm2, one_template):
    batch = one_template
    metric = circuits.task_metric(smollm2, batch)
    clean_in, corrupt_in = paired_inputs(smollm2, batch.clean, batch.corrupted, batch.attention_mask)
    site = Patch(f"blocks.{smollm2.n_layers - 1}.hook_resid_post", pos=batch.clean.shape[1] - 1)
    clean_logits, source = smollm2.run_with_cache(clean_in, [site.hook])
    value = float(run_patches(smollm2, corrupt_in, source, [site], metric)[0])
    clean, corrupted = mean_metric(clean_logits, metric), mean_metric(smollm2(corrupt_in), metric)
    assert (value - corrupted) / (clean - corrupted) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
def test_smollm2_attribution_patching_ranks_heads_like_exact_patching(smollm2, one_template):
    exact = circuits.patch(smollm2, one_template, "heads", max_rows=128)
    estimate = circuits.patch(smollm2, one_template, "heads", method="attribution")
    scores = circuits.agreement(estimate, exact)
    # measured on 12 prompts of one template: Spearman 0.97, top-10 overlap 1.0; the strongest head is the same
    assert scores["spearman"] > 0.9
    assert scores["top10_overlap"] >= 0.8
    strongest = [divmod(int(r.effect().abs().argmax()), smollm2.info.n_heads) for r in (exact, estimate)]
    assert strongest == [(23, 3), (23, 3)]  # L23H3 alone restores 72% of the clean logit difference
