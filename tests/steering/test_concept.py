"""Concept steering on a tiny chat GPT-2 whose blocks write nothing, so the last residual is read straight off the
tied unembedding: clamping the residual's projection on the embedding of "cat" (or a latent whose decoder row is
that embedding) makes every answer "cat cat ...", which MiniLM scores as closer to the concept "cat" than the
unsteered answers, with one distinct bigram in four."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import mechscope
from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.binding import bind_dictionary
from mechscope.errors import SteeringError
from mechscope.steering import ConceptConfig, Direction, concept_steering, latent_concept
from mechscope.steering.answers import answer_nll, chat_answers
from mechscope.steering.concept import distinct_bigrams
from tests.conftest import silent_gpt2, word_tokenizer
from tests.server.conftest import CHAT_WORDS, TEMPLATE

HOOK = "blocks.1.hook_resid_post"
CONFIG = ConceptConfig(values=(30.0,), max_new_tokens=5, prompts=("the dog ran", "a bird sang", "the mat"),
                       prompted="{prompt} {concept}")


@pytest.fixture(scope="module")
def silent_lm():
    hf = silent_gpt2()
    tokenizer = word_tokenizer(CHAT_WORDS)
    tokenizer.chat_template = TEMPLATE
    return mechscope.load_model(hf, tokenizer=tokenizer, device="cpu", check=False)


@pytest.fixture(scope="module")
def embedder(minilm):
    from mechscope.models.embedding import SentenceEmbedder

    return SentenceEmbedder(minilm)


def _cat(model) -> torch.Tensor:
    return model.hf.transformer.wte.weight[model.tokenizer.convert_tokens_to_ids("cat")].detach()


def test_clamping_the_concept_direction_moves_answers_to_it_and_repeats_them(silent_lm, embedder):
    result = concept_steering(silent_lm, HOOK, Direction(_cat(silent_lm)), "cat", CONFIG, embedder=embedder)
    steered, plain = result.best(), result.row("unsteered")
    assert all(text.split() == ["cat"] * 5 for text in steered["examples"])
    assert steered["gain"] > 0.2 and plain["gain"] == 0
    assert steered["distinct2"] == 0.25 < plain["distinct2"]  # four identical bigrams
    assert [r["setting"] for r in result.rows] == ["unsteered", "prompted", "steered"]


def test_a_latent_with_the_concept_as_decoder_row_steers_the_same_way(silent_lm, embedder):
    d = Dictionary(DictionaryConfig(32, 4, "relu", relu_form="classic", hook_name=HOOK))
    with torch.no_grad():
        d.W_dec.copy_(torch.randn(4, 32, generator=torch.Generator().manual_seed(0)))
        d.W_dec[2] = _cat(silent_lm) / _cat(silent_lm).norm()
    bound = bind_dictionary(silent_lm, d)
    catalog = SimpleNamespace(get=lambda latent: SimpleNamespace(labels=[SimpleNamespace(text="cat")],
                                                                 max_activation=3.0))
    target, label, maximum = latent_concept(bound, 2, catalog)
    assert (label, maximum) == ("cat", 3.0) and latent_concept(bound, 2)[1:] == (None, None)
    result = concept_steering(silent_lm, HOOK, target, label, CONFIG, scale=maximum, embedder=embedder)
    assert result.scale == 3.0 and all(t.split() == ["cat"] * 5 for t in result.best()["examples"])


def test_answer_nll_is_the_mean_negative_log_likelihood_of_the_answer(silent_lm):
    answers = chat_answers(silent_lm, ["the dog ran", "a bird sang"], max_new_tokens=3)
    nll = answer_nll(silent_lm, answers)
    for row in range(2):
        ids = torch.tensor([answers.prompt_ids[row] + answers.answer_ids[row]])
        with torch.no_grad():
            logprobs = silent_lm({"input_ids": ids}).log_softmax(-1)[0]
        n = len(answers.answer_ids[row])
        expected = -logprobs[-n - 1:-1].gather(1, ids[0, -n:, None]).mean()
        assert nll[row] == pytest.approx(float(expected), abs=1e-4)


def test_distinct_bigrams_and_bad_settings():
    assert distinct_bigrams([1, 2, 1, 2]) == pytest.approx(2 / 3) and distinct_bigrams([5]) is None
    with pytest.raises(SteeringError, match="add, clamp or cap"):
        ConceptConfig(op="ablate")
    with pytest.raises(SteeringError, match="the concept's text"):
        concept_steering(None, HOOK, None, "  ", CONFIG, embedder=object())


def test_cli_steers_a_saved_dictionary_latent(silent_lm, tmp_path, capsys):
    import json

    from mechscope.cli import main
    from mechscope.dictionaries.formats import save_dictionary

    d = Dictionary(DictionaryConfig(32, 4, "relu", relu_form="classic", hook_name=HOOK))
    with torch.no_grad():
        d.W_dec[1] = _cat(silent_lm) / _cat(silent_lm).norm()
    silent_lm.hf.save_pretrained(tmp_path / "lm")
    silent_lm.tokenizer.save_pretrained(tmp_path / "lm")
    save_dictionary(d, tmp_path / "sae")
    argv = ["steer", "concept", str(tmp_path / "lm"), "--dictionary", str(tmp_path / "sae"), "--latent", "1",
            "--out", str(tmp_path / "concept.json"), "--device", "cpu", "--values", "30", "--max-new-tokens", "4",
            "--json"]
    assert main(argv + ["--concept", "cat", "--scale", "1"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"]
    assert rows[-1]["setting"] == "steered" and rows[-1]["distinct2"] == pytest.approx(1 / 3)
    assert json.loads((tmp_path / "concept.json").read_text())["rows"][-1]["examples"][0].split() == ["cat"] * 4
    assert main(argv) == 2 and "needs a concept and a scale" in capsys.readouterr().err
