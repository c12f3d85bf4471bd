"""Explainers and scorers on latents with a known trigger word: right labels score high, random ones at chance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mechscope.autointerp.completion import Completion
from mechscope.autointerp.explainers import LLMExplainer, OfflineExplainer
from mechscope.autointerp.records import Example, ExampleOverlapError, LatentRecord, join_tokens
from mechscope.autointerp.scorers import DetectionScorer, EmbeddingScorer, FuzzingScorer, SimulationScorer, make_scorers

from .oracle import LiteralOracle, synthetic_record


def test_held_out_examples_may_not_share_windows_with_training_ones():
    a = Example(("x",), (1.0,), window=7)
    with pytest.raises(ExampleOverlapError, match=r"\[7\]"):
        LatentRecord(0, train=[a], test=[Example(("y",), (1.0,), window=7)])
    LatentRecord(0, train=[a], test=[Example(("y",), (1.0,), window=8)])  # disjoint: fine


def test_token_pieces_join_back_to_text_and_marks_survive():
    assert join_tokens(["the", "play", "##ing", "field"]) == "the playing field"
    assert join_tokens(["The", " cat", " sat", "."]) == "The cat sat."
    example = Example(("the", "play", "##ing"), (0.0, 2.0, 0.0))
    assert example.highlighted() == "the <<play>>ing"


def test_offline_explainer_names_the_trigger_word():
    record = synthetic_record(3, "castle")
    label = OfflineExplainer().explain(record)
    assert label.latent == 3 and label.text.startswith('"castle"')


@pytest.mark.parametrize("scorer_cls", [DetectionScorer, FuzzingScorer])
def test_binary_scorers_separate_the_true_label_from_a_random_one(scorer_cls):
    record = synthetic_record(0, "castle")
    oracle = LiteralOracle()
    score = scorer_cls(client=oracle).score(record, '"castle"', baseline_label='"window"')
    assert score.value == 1.0 and score.ci_low == 1.0
    assert 0.3 <= score.baseline <= 0.7  # a label of an unrelated word is at chance
    assert oracle.calls == 2 * score.n  # the scored items, then the baseline's


def test_simulation_correlates_with_true_activations_and_not_with_a_wrong_label():
    record = synthetic_record(0, "river")
    score = SimulationScorer(client=LiteralOracle()).score(record, '"river"', baseline_label='"garden"')
    assert score.value > 0.8 and score.ci_low > 0.6
    assert abs(score.baseline) < 0.2


def test_answer_log_probabilities_give_auroc():
    class Confident:
        def complete(self, messages, **kwargs):
            positive = "castle" in messages[-1]["content"].split("Excerpt: ")[1]
            p = 0.9 if positive else 0.2
            return Completion(json.dumps({"answer": int(p > 0.5)}),
                              logprobs=[{'{"': 0.0}, {"1": np.log(p), "0": np.log(1 - p)}, {"}": 0.0}])

    score = DetectionScorer(client=Confident(), logprobs=True).score(synthetic_record(0, "castle"), "castles")
    assert score.extra["auroc"] == 1.0 and score.value == 1.0


class _FakeEmbedder:
    """Bag-of-words unit vectors over the synthetic vocabulary: cosine rises with shared words."""

    def embed(self, texts):
        from .oracle import WORDS
        vectors = np.array([[t.replace('"', "").split().count(w) for w in WORDS] for t in texts], float) + 1e-3
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_embedding_scorer_auroc_known_answer():
    record = synthetic_record(0, "engine")
    score = EmbeddingScorer(embedder=_FakeEmbedder()).score(record, '"engine"', baseline_label='"paper"')
    assert score.value == 1.0 and score.baseline < 0.75


def test_embedding_scorer_with_minilm_prefers_the_right_label():
    from mechscope.models.embedding import SentenceEmbedder

    def themed(topic_words, windows):
        return [Example(tuple(f"the {w} is here today".split()), (0, 3.0, 0, 0, 0), window=i)
                for i, w in zip(windows, topic_words)]

    record = LatentRecord(0, train=themed(["dog"], [0]), test=themed(["dog", "cat", "horse", "puppy"], range(1, 5)),
                          negatives=themed(["tax", "invoice", "budget", "audit"], range(5, 9)))
    scorer = EmbeddingScorer(embedder=SentenceEmbedder(batch_size=16))
    score = scorer.score(record, "animals and pets", baseline_label="accounting and finance")
    assert score.value == 1.0 and score.baseline == 0.0


def test_llm_explainer_parses_structured_answers_and_marks_tokens():
    seen = {}

    class Explains:
        def complete(self, messages, json_schema=None, latent=None, **kwargs):
            seen["prompt"], seen["schema"] = messages[-1]["content"], json_schema
            return Completion('Sure! {"reasoning": "all castles", "explanation": "the word <<castle>>"}')

    label = LLMExplainer(client=Explains(), chain_of_thought=True).explain(synthetic_record(1, "castle"))
    assert label.text == "the word castle" and label.reasoning == "all castles"
    assert "<<castle>>" in seen["prompt"] and seen["schema"]["required"] == ["reasoning", "explanation"]


def test_llm_scorers_need_a_client_and_names_are_checked():
    from mechscope.errors import MechscopeError

    with pytest.raises(MechscopeError, match="needs an LLM"):
        make_scorers(["detection"])
    with pytest.raises(MechscopeError, match="unknown scorer 'vibes'"):
        make_scorers(["vibes"], client=LiteralOracle())
