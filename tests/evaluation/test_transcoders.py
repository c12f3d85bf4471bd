"""evaluate_transcoders(): known answers with exact transcoders, a half-broken set, and a random one."""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.dictionaries import Dictionary, TranscoderSet
from mechscope.evaluation import evaluate_transcoders
from tests.dictionaries.exact_transcoders import TEXT, exact_set, relu_gpt2


@pytest.fixture(scope="module")
def gpt2():
    return relu_gpt2()


def test_exact_transcoders_score_zero_fvu_and_the_original_ce(gpt2, tmp_path):
    tset = exact_set(gpt2)
    tset.save(tmp_path / "set")
    result = evaluate_transcoders(gpt2, tmp_path / "set", TEXT, tokens=200, context=16, batch_size=4)
    assert max(result.fvu) < 1e-9 and result.layers == [0, 1, 2] and result.tokens >= 200
    ds = result.downstream
    assert ds["ce_spliced"] == pytest.approx(ds["ce_clean"], abs=1e-6) and ds["kl_spliced"] < 1e-9
    assert ds["next_token_agreement"] == 1.0 and ds["ce_score_zero"] == pytest.approx(1.0, abs=1e-5)
    assert min(result.l0) > 0  # a ReLU MLP's neurons: many fire
    assert json.loads((tmp_path / "set/eval.json").read_text())["fvu"] == result.fvu


def test_a_random_layer_is_seen_in_its_own_fvu_and_in_the_replaced_model(gpt2):
    tset = exact_set(gpt2)
    broken = Dictionary(tset.dictionaries[1].cfg)
    with torch.no_grad():
        broken.W_dec.mul_(0.3)
    result = evaluate_transcoders(gpt2, TranscoderSet([tset.dictionaries[0], broken, tset.dictionaries[2]], [0, 1, 2]),
                                  TEXT, tokens=200, context=16, batch_size=4)
    assert result.fvu[0] < 1e-9 and result.fvu[2] < 1e-9 and result.fvu[1] > 0.5
    ds = result.downstream
    assert ds["kl_spliced"] > 1e-4 and ds["next_token_agreement"] < 1.0
