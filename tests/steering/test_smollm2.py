"""Monitors and ITI on SmolLM2-135M-Instruct (slow): a difference-in-means direction from training requests
separates held-out harmful from harmless requests, plain and jailbreak-wrapped; ITI's head probes read truth and a
moderate shift widens the truth margin (figures: benchmarks/RESULTS.md)."""

from __future__ import annotations

import random

import pytest

from mechscope.steering import ITIConfig, Monitor, calibrate, fit_iti, projection, prompt_scores, truth_margin
from mechscope.steering.calibration import mean_difference
from mechscope.tasks import Refusal
from mechscope.tasks.jailbreak import KINDS, jailbreak_set
from mechscope.tasks.prose import attach_punctuation
from mechscope.tasks.uncertainty import statements

HOOK = "blocks.24.hook_resid_post"  # picked on a validation split by benchmarks/monitors_smollm2.py


def requests(harmful: bool, split: str, n: int | None = None) -> list[str]:
    """`n` requests drawn across every act and phrasing of the split (all of them for n=None)."""
    texts = [attach_punctuation(t) for t in Refusal().instructions(harmful, split)]
    return random.Random(0).sample(texts, n or len(texts))


@pytest.mark.slow
def test_smollm2_monitor_separates_harmful_from_harmless_requests_plain_and_wrapped(smollm2):
    direction = mean_difference(smollm2, HOOK, requests(True, "train", 100), requests(False, "train", 100))
    monitor = Monitor(HOOK, projection(direction))
    harmless = prompt_scores(smollm2, monitor, requests(False, "test")).tolist()
    wrapped = jailbreak_set("test", n=40)
    for kind in ("plain", *KINDS):
        harmful = prompt_scores(smollm2, monitor, [w.text for w in wrapped if w.kind == kind]).tolist()
        result = calibrate([1] * len(harmful) + [0] * len(harmless), harmful + harmless)
        assert result.auroc >= 0.9, kind  # measured: 0.95 plain, 0.99-1.0 wrapped


@pytest.mark.slow
def test_smollm2_iti_finds_heads_that_read_truth_and_a_moderate_shift_widens_the_truth_margin(smollm2):
    iti = fit_iti(smollm2, *statements("train"), ITIConfig(top_k=16))
    assert iti.heads[0].accuracy >= 0.9 and float(iti.accuracy.median()) < 0.8  # measured 0.95 vs median 0.70
    held_out = statements("test")
    assert truth_margin(smollm2, *held_out, iti.interventions(5.0)) > truth_margin(smollm2, *held_out) + 0.3


@pytest.mark.slow
def test_smollm2_persona_vector_steers_the_judged_trait(smollm2):
    from mechscope.steering import TRAITS, EmbeddingJudge, PersonaConfig, evaluate_persona, persona_vector

    config = PersonaConfig(layers=(18,), coefficients=(-2.0, 2.0), evaluation_pairs=1)
    judge, trait = EmbeddingJudge(), TRAITS["optimistic"]
    persona = persona_vector(smollm2, trait, judge, config)
    scores = persona.vector.metrics["mean_score"]
    assert scores["positive"] > scores["negative"] + 5  # the system prompts move the judged trait
    steered = evaluate_persona(smollm2, persona, trait, judge, config)["steering"]["coefficients"]
    assert steered["2.0"]["mean_score"] > steered["0.0"]["mean_score"] + 10 > steered["-2.0"]["mean_score"] + 20
