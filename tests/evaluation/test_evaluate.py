"""evaluate(): splice scores with known answers on a causal LM, embedding fidelity on MiniLM, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

import mechscope
from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.formats import save_dictionary
from mechscope.evaluation import evaluate
from tests.conftest import tiny_hf, word_tokenizer

WORDS = "the cat sat on a mat and dog ran far away while birds sang in trees".split()
TEXT = [" ".join(WORDS[i % 7:] + WORDS[: i % 7]) for i in range(60)]


def identity(d_in: int, hook: str) -> Dictionary:
    """x_hat = ReLU(x) - ReLU(-x) = x exactly."""
    d = Dictionary(DictionaryConfig(d_in, 2 * d_in, "relu", relu_form="classic", hook_name=hook))
    eye = torch.eye(d_in)
    with torch.no_grad():
        d.W_enc.copy_(torch.cat([eye, -eye], 1))
        d.W_dec.copy_(torch.cat([eye, -eye], 0))
        d.b_enc.zero_()
        d.b_dec.zero_()
    return d


def zero(d_in: int, hook: str) -> Dictionary:
    d = identity(d_in, hook)
    with torch.no_grad():
        d.W_dec.zero_()
    return d


@pytest.fixture(scope="module")
def lm():
    return mechscope.load_model(tiny_hf("gpt2"), tokenizer=word_tokenizer(WORDS), device="cpu")


def test_a_perfect_dictionary_scores_one_and_zero_kl(lm):
    result = evaluate(lm, identity(32, "blocks.1.hook_resid_post"), TEXT, tokens=300, context=16, batch_size=4)
    assert result.fvu == 0.0 and result.cosine == pytest.approx(1.0) and result.tokens >= 300
    ds = result.downstream
    assert ds["ce_spliced"] == ds["ce_clean"] and ds["kl_spliced"] == 0.0
    assert ds["ce_score_zero"] == 1.0 and ds["ce_score_mean"] == 1.0 and ds["kl_score_zero"] == 1.0
    assert ds["kl_zero"] > 0 and ds["lm_tokens"] > 0


def test_a_zero_dictionary_scores_zero_against_zero_ablation(lm):
    result = evaluate(lm, zero(32, "blocks.1.hook_resid_post"), TEXT, tokens=200, context=16, batch_size=4)
    assert result.downstream["ce_score_zero"] == pytest.approx(0.0, abs=1e-12)
    assert result.downstream["kl_score_zero"] == pytest.approx(0.0, abs=1e-12)
    assert result.fvu > 1.0  # predicting zero is worse than predicting the mean


def test_minilm_embedding_fidelity_and_saved_result(minilm, tmp_path):
    save_dictionary(identity(384, "blocks.2.hook_resid_post"), tmp_path / "sae")
    result = evaluate(minilm, tmp_path / "sae", "pydocs", tokens=500, context=32, batch_size=8)
    ds = result.downstream
    assert ds["embedding_fidelity"] == pytest.approx(1.0) and ds["embedding_fidelity_zero"] < 0.5
    saved = json.loads((tmp_path / "sae/eval.json").read_text())
    assert saved["fvu"] == result.fvu and saved["hook"] == "blocks.2.hook_resid_post"


def test_wrong_width_and_missing_hook_are_named(lm):
    with pytest.raises(mechscope.MechscopeError, match="width 32.*d_in=16"):
        evaluate(lm, identity(16, "blocks.0.hook_resid_post"), TEXT, tokens=50, context=16)
    with pytest.raises(mechscope.MechscopeError, match="hook_name"):
        evaluate(lm, identity(32, ""), TEXT, tokens=50, context=16)


def test_cli_eval_json(tmp_path, capsys):
    from mechscope.cli import main

    save_dictionary(identity(384, "blocks.1.hook_resid_post"), tmp_path / "sae")
    assert main(["eval", "minilm", str(tmp_path / "sae"), "--tokens", "200", "--context", "32", "--device", "cpu",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["fvu"] == 0.0 and result["downstream"]["embedding_fidelity"] == pytest.approx(1.0)
