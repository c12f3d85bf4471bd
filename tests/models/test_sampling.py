"""Next-token filters against Hugging Face's own logits warpers and hand-worked cases."""

from __future__ import annotations

import math

import pytest
import torch
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

from mechscope.models.sampling import top_k_filter, top_p_filter

LOGITS = torch.randn(6, 97, generator=torch.Generator().manual_seed(0)) * 3


@pytest.mark.parametrize("k", [1, 5, 97, 200])
def test_top_k_keeps_what_hf_keeps(k):
    assert torch.equal(top_k_filter(LOGITS, k), TopKLogitsWarper(min(k, 97))(None, LOGITS.clone()))


@pytest.mark.parametrize("p", [0.05, 0.3, 0.9, 0.999])
def test_top_p_keeps_what_hf_keeps(p):
    assert torch.equal(top_p_filter(LOGITS, p), TopPLogitsWarper(p)(None, LOGITS.clone()))


def test_top_p_keeps_the_smallest_set_that_reaches_p():
    logits = torch.tensor([[math.log(0.2), math.log(0.5), math.log(0.3)]])
    assert torch.isinf(top_p_filter(logits, 0.5)).tolist() == [[True, False, True]]
    assert torch.isinf(top_p_filter(logits, 0.6)).tolist() == [[True, False, False]]
