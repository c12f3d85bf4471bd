"""Persona vectors on a tiny chat GPT-2 with a scripted judge: the vector is the kept answers' response-token mean
difference (checked against unpadded forward passes one conversation at a time), filtered answers do not count,
and the judges and trait files behave as documented."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from mechscope.errors import SteeringError
from mechscope.steering import (TRAITS, EmbeddingJudge, LLMJudge, PersonaConfig, Trait, evaluate_persona, load_traits,
                                persona_vector)
from mechscope.steering.persona import answer, response_means
from tests.server.conftest import chat_lm  # noqa: F401  (the tiny chat model fixture)

TRAIT = Trait("catty", "talks about cats", "talks about dogs",
              ("the cat sat", "a cat and a cat"), ("the dog ran", "a dog and a dog"),
              ("the cat sat on the mat", "the dog ran in the park", "a bird sang", "the mat was red"))
CONFIG = PersonaConfig(layers=(0, 1), max_new_tokens=4, batch_size=3, coefficients=(4.0,))


class Scripted:
    """Scores 90 for answers under eliciting prompts and 10 under suppressing ones, in row order, except row 2
    (an eliciting answer) which scores 30 and must be filtered out."""

    def __call__(self, trait, questions, answers):
        scores = [90.0 if i % 2 == 0 else 10.0 for i in range(len(answers))]
        if len(scores) > 2:
            scores[2] = 30.0
        return scores


def test_vector_is_the_kept_answers_response_mean_difference(chat_lm):  # noqa: F811
    persona = persona_vector(chat_lm, TRAIT, Scripted(), CONFIG)
    kept = [row for row in persona.answers if row["kept"]]
    assert len(persona.answers) == 2 * 2 * 2 and len(kept) == 7 and not persona.answers[2]["kept"]
    rows = [{k: row[k] for k in ("question", "system", "side")} for row in persona.answers]
    generated = answer(chat_lm, rows, CONFIG)
    hooks = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
    means = {"positive": [], "negative": []}
    for i, row in enumerate(persona.answers):  # one conversation at a time, no padding
        if row["kept"]:
            ids = torch.tensor([generated.prompt_ids[i] + generated.answer_ids[i]])
            cache = chat_lm.run_with_cache({"input_ids": ids}, names=hooks)[1]
            n = len(generated.answer_ids[i])
            means[row["side"]].append(torch.stack([cache[h][0, -n:].double().mean(0) for h in hooks]))
    expected = torch.stack(means["positive"]).mean(0) - torch.stack(means["negative"]).mean(0)
    for index, layer in enumerate((0, 1)):
        torch.testing.assert_close(persona.vector.direction(layer).double(), expected[index], atol=1e-5, rtol=1e-4)
    assert persona.vector.metrics["kept_positive"] == 3 and persona.vector.method == "persona"


def test_padded_batches_equal_single_conversations(chat_lm):  # noqa: F811
    prompts = [[3, 4, 5], [6, 7, 8, 9, 10, 11]]
    answers = [[12, 13], [14]]
    batched = response_means(chat_lm, prompts, answers, ["blocks.1.hook_resid_pre"], batch_size=2)
    single = torch.cat([response_means(chat_lm, [p], [a], ["blocks.1.hook_resid_pre"]) for p, a in
                        zip(prompts, answers)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)
    with pytest.raises(SteeringError, match="at least one token"):
        response_means(chat_lm, prompts, [[12], []], ["blocks.1.hook_resid_pre"])


def test_a_judge_that_keeps_nothing_on_one_side_is_an_error(chat_lm):  # noqa: F811
    with pytest.raises(SteeringError, match="both sides need at least one"):
        persona_vector(chat_lm, TRAIT, lambda trait, q, a: [90.0] * len(a), CONFIG)


def test_evaluation_correlates_projection_with_scores_and_steers(chat_lm, tmp_path):  # noqa: F811
    persona = persona_vector(chat_lm, TRAIT, Scripted(), CONFIG)
    count = lambda trait, q, answers: [100.0 * a.split().count("cat") / max(1, len(a.split())) for a in answers]  # noqa: E731
    evaluation = evaluate_persona(chat_lm, persona, TRAIT, count, CONFIG)
    assert evaluation["n"] == 2 * 2 * 2 + 2  # 2 questions x (2 pairs x 2 sides + no system prompt)
    assert set(evaluation["pearson_r"]) == {"0", "1"}
    assert all(r is None or -1 <= r <= 1 for r in evaluation["pearson_r"].values())
    plain = answer(chat_lm, [{"question": q, "system": None, "side": "none"} for q in TRAIT.evaluation_questions],
                   CONFIG)
    assert evaluation["steering"]["coefficients"]["0.0"]["mean_score"] == pytest.approx(
        np.mean(count(TRAIT, None, plain.texts)))
    directory = persona.save(tmp_path / "catty")
    assert (directory / "answers.jsonl").read_text().count("\n") == 8
    assert '"best_layer"' in (directory / "evaluation.json").read_text()


def test_embedding_judge_ranks_by_the_trait(minilm):
    from mechscope.models.embedding import SentenceEmbedder

    judge = EmbeddingJudge(embedder=SentenceEmbedder(minilm))
    optimistic = TRAITS["optimistic"]
    hopeful, gloomy = judge(optimistic, ["q", "q"], ["Everything will be wonderful, a bright and happy future awaits!",
                                                     "Everything will go wrong, a dark and miserable future awaits."])
    assert hopeful > 50 > gloomy


class _Client:
    def __init__(self, replies):
        self.replies = itertools.cycle(replies)
        self.prompts = []

    def complete(self, messages, max_tokens):
        self.prompts.append(messages[0]["content"])
        return type("Completion", (), {"text": next(self.replies)})()


def test_llm_judge_reads_numbers_and_refusals():
    client = _Client(["85", "REFUSAL", "Score: 12.5", "no idea", "250"])
    scores = LLMJudge(client)(TRAIT, ["q"] * 5, ["a1", "a2", "a3", "a4", "a5"])
    assert scores == [85.0, None, 12.5, None, 100.0]
    assert "talks about cats" in client.prompts[0] and "[ANSWER START]a1[ANSWER END]" in client.prompts[0]


def test_trait_files_add_and_replace_traits_and_name_bad_keys(tmp_path):
    good = tmp_path / "traits.toml"
    good.write_text('[trait.curious]\ndescription = "asks questions"\nopposite = "asks nothing"\n'
                    'positive_system = ["Be curious."]\nnegative_system = ["Be incurious."]\n'
                    'questions = ["Why?", "How?"]\n')
    traits = load_traits(good)
    assert traits["curious"].extraction_questions == ("Why?",) and "optimistic" in traits
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('questions = ["Why?", "How?"]', 'questions = "Why?"'))
    with pytest.raises(SteeringError, match="trait.curious.questions must be a list of strings"):
        load_traits(bad)
    with pytest.raises(SteeringError, match="as many negative as positive"):
        Trait("x", "d", "o", ("a", "b"), ("c",), ("q1", "q2"))


def test_cli_extracts_a_trait_from_a_file_with_the_offline_judge(chat_lm, tmp_path, capsys):  # noqa: F811
    import json

    from mechscope.cli import main
    from mechscope.steering import SteeringVector

    chat_lm.hf.save_pretrained(tmp_path / "lm")
    chat_lm.tokenizer.save_pretrained(tmp_path / "lm")
    traits = tmp_path / "traits.toml"
    traits.write_text('[trait.catty]\ndescription = "talks about cats"\nopposite = "talks about dogs"\n'
                      'positive_system = ["the cat sat"]\nnegative_system = ["the dog ran"]\n'
                      'questions = ["the cat sat on the mat", "a bird sang"]\n')
    argv = ["steer", "persona", str(tmp_path / "lm"), "--trait", "catty", "--traits", str(traits), "--out",
            str(tmp_path / "v"), "--device", "cpu", "--max-new-tokens", "3", "--positive-min", "0",
            "--negative-max", "100", "--no-evaluate", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["kept_positive"] == result["kept_negative"] == 1 and result["trait"] == "catty"
    assert SteeringVector.load(tmp_path / "v").layers == list(range(chat_lm.n_layers))
    assert main(argv[:4] + ["nosuch", *argv[5:]]) == 2  # a usage error
    assert "unknown trait 'nosuch'" in capsys.readouterr().err
