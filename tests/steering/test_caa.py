"""CAA on a tiny GPT-2 whose blocks write nothing, so the residual stream is the embedding and the answer letter's
probability is read off the tied unembedding: the vector is exactly the letters' embedding difference when the
behaviour always sits under (A), cancels when the letters alternate, and the sweep moves P(A) with the
coefficient's sign."""

from __future__ import annotations

import pytest
import torch

import mechscope
from mechscope.errors import SteeringError
from mechscope.steering import ab_tokens, caa_vector, layer_sweep
from mechscope.tasks.ab_choice import ABQuestion, alternate_letters, refusal_questions
from tests.conftest import silent_gpt2, word_tokenizer

OBJECTS = ["bread", "a bomb", "a poem", "malware", "a cake", "a virus", "a song", "poison"]
WORDS = ("How do I make Choices Answer ( ) A B : ? I can't help Sure here is how . , a bread bomb poem malware cake "
         "virus song poison").split()


def _questions(letters: str) -> list[ABQuestion]:
    return [ABQuestion(f"How do I make {thing} ?", "I can't help .", "Sure , here is how .", letter)
            for thing, letter in zip(OBJECTS, letters)]


@pytest.fixture(scope="module")
def letter_model():
    hf = silent_gpt2()
    model = mechscope.load_model(hf, device="cpu", check=False)
    model.tokenizer = word_tokenizer(WORDS)
    return model


def test_questions_split_at_the_letter_token_under_left_padding(letter_model):
    tokens = ab_tokens(letter_model, _questions("AB")[1])
    vocab = letter_model.tokenizer
    assert vocab.convert_ids_to_tokens(tokens.prefix[-3:]) == ["Answer", ":", "("]
    assert vocab.convert_ids_to_tokens([tokens.behaviour, tokens.other]) == ["B", "A"]


def test_the_vector_is_the_letter_difference_and_alternating_letters_cancel_it(letter_model):
    wte = letter_model.hf.transformer.wte.weight
    a, b = (letter_model.tokenizer.convert_tokens_to_ids(letter) for letter in "AB")
    always_a = caa_vector(letter_model, _questions("AAAAAAAA"))
    for layer in always_a.layers:  # questions differ in length: the read must land on each row's letter
        torch.testing.assert_close(always_a.direction(layer), (wte[a] - wte[b]).detach(), atol=1e-5, rtol=1e-5)
    alternating = caa_vector(letter_model, _questions("ABBABAAB"))
    assert max(alternating.norms.values()) < 1e-5 and alternating.metrics["behaviour_under_a"] == 0.5


def test_the_sweep_moves_the_behaviour_probability_with_the_coefficient(letter_model):
    vector = caa_vector(letter_model, _questions("AAAAAAAA"), layers=[0, 2])
    sweep = layer_sweep(letter_model, vector, _questions("AAAAAAAA"), coefficients=(-2.0, -1.0, 0.0, 1.0, 2.0))
    for layer in (0, 2):
        shifts = [row["shift"] for row in sweep.rows if row["layer"] == layer]
        assert shifts[2] == 0 and shifts == sorted(shifts) and shifts[0] < -0.05 and shifts[-1] > 0.05
    assert sweep.best(2.0)["steered_fraction"] == 1.0
    with pytest.raises(SteeringError, match="no coefficient 3"):
        sweep.best(3.0)


def test_refusal_questions_alternate_letters_and_keep_the_split():
    train, test = refusal_questions("train"), refusal_questions("test")
    assert abs(sum(q.behaviour_letter == "A" for q in train) - len(train) / 2) <= 0.5
    assert not {q.question for q in train} & {q.question for q in test}
    assert ABQuestion("Q?", "yes", "no", "B").text() == "Q?\n\nChoices:\n(A) no\n(B) yes"
    assert {q.behaviour_letter for q in alternate_letters([("Q?", "yes", "no")] * 4)} == {"A", "B"}


def test_cli_writes_the_vector_and_its_sweep(letter_model, tmp_path, capsys):
    import json
    from dataclasses import asdict

    from mechscope.cli import main
    from mechscope.steering import SteeringVector

    letter_model.hf.save_pretrained(tmp_path / "model")
    letter_model.tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "q.jsonl").write_text("\n".join(json.dumps(asdict(q)) for q in _questions("AAAAAAAA") * 2))
    assert main(["steer", "caa", str(tmp_path / "model"), "--questions", str(tmp_path / "q.jsonl"), "--out",
                 str(tmp_path / "caa"), "--layers", "1", "--coefficients=-1,1", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["best"]["1.0"]["shift"] > 0 > result["best"]["-1.0"]["shift"]
    vector = SteeringVector.load(tmp_path / "caa")
    wte = letter_model.hf.transformer.wte.weight.detach()
    a, b = (letter_model.tokenizer.convert_tokens_to_ids(letter) for letter in "AB")
    torch.testing.assert_close(vector.direction(1), wte[a] - wte[b], atol=1e-5, rtol=1e-5)
    assert vector.method == "caa" and len(vector.metrics["sweep"]) == 2
