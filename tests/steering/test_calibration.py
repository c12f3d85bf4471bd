"""Calibration: ROC figures and thresholds against hand-computed answers; prompt scores against cached activations."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.errors import MechscopeError
from mechscope.steering.calibration import CalibrationConfig, calibrate, prompt_scores, roc_curve
from mechscope.steering.monitors import Monitor, projection
from tests.conftest import tiny_hf

LABELS = [1, 1, 1, 0, 0, 0, 0]
SCORES = [0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.0]


def test_roc_points_by_hand():
    fpr, tpr, thresholds = roc_curve(LABELS, SCORES)
    assert thresholds[:4].tolist() == [0.9, 0.8, 0.7, 0.3]
    assert tpr[:4].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1.0])
    assert fpr[:4].tolist() == pytest.approx([0.0, 0.0, 0.25, 0.25])


def test_auroc_tpr_at_one_percent_fpr_and_the_fpr_threshold_by_hand():
    result = calibrate(LABELS, SCORES)  # positives win 4 + 4 + 3 of the 12 pairs
    assert result.auroc == pytest.approx(11 / 12)
    assert (result.tpr_at_target_fpr, result.threshold, result.tpr, result.fpr) == pytest.approx((2 / 3, 0.8, 2 / 3, 0))
    looser = calibrate(LABELS, SCORES, CalibrationConfig(target_fpr=0.25))
    assert (looser.threshold, looser.tpr, looser.fpr) == pytest.approx((0.3, 1.0, 0.25))


def test_youden_threshold_maximises_tpr_minus_fpr():
    result = calibrate(LABELS, SCORES, CalibrationConfig(rule="youden"))
    assert (result.threshold, result.tpr, result.fpr) == pytest.approx((0.3, 1.0, 0.25))  # 1 - 0.25 beats 2/3 - 0


def test_when_the_top_score_is_negative_the_fpr_rule_flags_nothing():
    result = calibrate([0, 1, 1], [1.0, 0.5, 0.2])
    assert result.threshold > 1.0 and (result.tpr, result.fpr, result.tpr_at_target_fpr) == (0.0, 0.0, 0.0)
    with pytest.raises(MechscopeError, match="both classes"):
        calibrate([1, 1], [0.1, 0.2])
    with pytest.raises(MechscopeError, match="reduce"):
        CalibrationConfig(reduce="median")


def test_prompt_scores_reduce_the_projection_of_cached_activations():
    model = mechscope.load_model(tiny_hf("llama"), device="cpu", check=False)
    direction = torch.randn(32, generator=torch.Generator().manual_seed(1))
    ids = torch.randint(1, 97, (5, 6), generator=torch.Generator().manual_seed(2))
    hook = "blocks.2.hook_resid_post"
    _, cache = model.run_with_cache(ids, hook)
    expected = cache[hook] @ (direction / direction.norm())  # [prompt, pos]
    monitor = Monitor(hook, projection(direction))
    for reduce, value in (("last", expected[:, -1]), ("max", expected.max(1).values), ("mean", expected.mean(1))):
        config = CalibrationConfig(reduce=reduce, batch_size=2, chat=False)
        torch.testing.assert_close(prompt_scores(model, monitor, ids, config), value)
