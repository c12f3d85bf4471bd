"""Metrics equal hand-computed values on fixed logits."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.errors import TaskError
from mechscope.tasks import (TokenPair, accuracy, collate, kl_to_clean, logit_diff, metric, normalized_logit_diff,
                             prob_diff)


@pytest.fixture
def batch():
    """Row 0: answer 1 vs wrong 2, scored at position 1 of 2. Row 1: answer set {0, 3} vs wrong 1, at position 2."""
    pairs = [TokenPair((5, 6), (5, 7), 1, (1,), (2,)), TokenPair((5, 6, 8), (5, 7, 8), 2, (0, 3), (1,))]
    return collate(pairs, pad_token_id=0)


def final(rows: list[list[float]], batch) -> torch.Tensor:
    """Logits [batch, pos, vocab] that are `rows` at the answer positions and noise elsewhere."""
    logits = torch.randn(2, 3, 4) * 10
    logits[0, 1], logits[1, 2] = torch.tensor(rows[0]), torch.tensor(rows[1])
    return logits


def test_batch_layout(batch):
    assert batch.clean.tolist() == [[5, 6, 0], [5, 6, 8]] and batch.attention_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch.answers.tolist() == [[1, -1], [0, 3]] and batch.wrong.tolist() == [[2], [1]]


def test_logit_and_prob_diff_by_hand(batch):
    logits = final([[0, 2, -1, 0], [1, 0, 0, 3]], batch)
    assert logit_diff(logits, batch).tolist() == pytest.approx([3.0, 2.0])  # 2 - (-1); mean(1, 3) - 0
    z0, z1 = 2 + math.e ** 2 + math.e ** -1, math.e + 2 + math.e ** 3
    assert prob_diff(logits, batch).tolist() == pytest.approx([(math.e ** 2 - math.e ** -1) / z0,
                                                               (math.e + math.e ** 3 - 1) / z1])
    assert accuracy(logits, batch).tolist() == [1.0, 1.0]
    assert torch.equal(logit_diff(logits, batch), logit_diff(batch.at_positions(logits), batch))


def test_normalized_logit_diff_is_one_at_clean_and_zero_at_corrupted(batch):
    clean = final([[0, 2, -1, 0], [1, 0, 0, 3]], batch)  # logit diffs 3, 2: mean 2.5
    corrupted = final([[0, 0, 1, 0], [0, 0, 0, 0]], batch)  # -1, 0: mean -0.5
    run = final([[0, 1, 0, 0], [2, 0, 0, 0]], batch)  # 1, 1
    assert normalized_logit_diff(clean, batch, clean, corrupted).mean() == pytest.approx(1.0)
    assert normalized_logit_diff(corrupted, batch, clean, corrupted).mean() == pytest.approx(0.0)
    assert normalized_logit_diff(run, batch, clean, corrupted).tolist() == pytest.approx([0.5, 0.5])  # 1.5 / 3


def test_kl_to_clean_by_hand(batch):
    clean = final([[0, math.log(3), -math.inf, -math.inf], [0, 0, 0, 0]], batch)  # p = (1/4, 3/4, 0, 0), uniform
    run = final([[0, 0, -math.inf, -math.inf], [0, 0, 0, 0]], batch)  # q = (1/2, 1/2, 0, 0), uniform
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert kl_to_clean(run, batch, clean).tolist() == pytest.approx([expected, 0.0], abs=1e-6)
    assert kl_to_clean(clean, batch, clean).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_metrics_by_name():
    assert metric("prob_diff") is prob_diff
    with pytest.raises(TaskError, match="unknown metric 'logitdiff'; expected one of logit_diff"):
        metric("logitdiff")


def test_select_keeps_rows_and_trims_padding(batch):
    first = batch.select([0])
    assert first.clean.tolist() == [[5, 6]] and first.answers.tolist() == [[1, -1]] and first.positions.tolist() == [1]
    logits = final([[0, 2, -1, 0], [1, 0, 0, 3]], batch)
    assert logit_diff(logits[:1, :2], first).tolist() == pytest.approx([3.0])
