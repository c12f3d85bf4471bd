"""Prompt texts and JSON schemas for the explainer and the LLM scorers, in one place.

Activating tokens are marked <<like this>> (delphi's convention); every answer is asked for as JSON
that a schema describes, so backends with structured output cannot return something unparseable.
"""

from __future__ import annotations

EXPLAIN_SYSTEM = (
    "You are a meticulous interpretability researcher. You are shown text excerpts in which one neuron of a "
    "language model is active. Tokens where it fires are marked <<like this>>. Describe in a short phrase "
    "(at most 15 words) the pattern that makes the neuron fire: the marked tokens and, where it matters, the "
    "context around them. Do not list the examples; name the common concept.")
EXPLAIN_COT = (" First reason briefly about what the marked tokens and their contexts have in common, then give "
               "the explanation.")


def explain_schema(chain_of_thought: bool) -> dict:
    properties = {"explanation": {"type": "string"}}
    if chain_of_thought:
        properties = {"reasoning": {"type": "string"}, **properties}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def explain_user(examples: list[str]) -> str:
    body = "\n".join(f"Example {i + 1}: {text}" for i, text in enumerate(examples))
    return f"{body}\n\nAnswer as JSON with the field \"explanation\"."


ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer", "enum": [0, 1]}},
                 "required": ["answer"], "additionalProperties": False}

DETECTION_SYSTEM = (
    "A neuron of a language model has been described as follows. You will see one text excerpt. Answer 1 if "
    "the neuron would fire somewhere in this excerpt according to the description, otherwise 0. Answer as "
    "JSON: {\"answer\": 0 or 1}.")

FUZZING_SYSTEM = (
    "A neuron of a language model has been described as follows. You will see one text excerpt in which some "
    "tokens are marked <<like this>>. Answer 1 if the marked tokens are exactly the kind of tokens the "
    "description says the neuron fires on, otherwise 0. Answer as JSON: {\"answer\": 0 or 1}.")

SIMULATION_SYSTEM = (
    "A neuron of a language model has been described as follows. For each token of the excerpt, predict the "
    "neuron's activation on an integer scale from 0 (silent) to 10 (maximal). Answer as JSON: "
    "{\"activations\": [one integer per token, in order]}.")


def simulation_schema(n_tokens: int) -> dict:
    values = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 10},
              "minItems": n_tokens, "maxItems": n_tokens}
    return {"type": "object", "properties": {"activations": values}, "required": ["activations"],
            "additionalProperties": False}


def scorer_user(label: str, excerpt: str) -> str:
    return f"Description: {label}\n\nExcerpt: {excerpt}"


def simulation_user(label: str, tokens: list[str]) -> str:
    listing = "\n".join(f"{i}\t{token}" for i, token in enumerate(tokens))
    return f"Description: {label}\n\nTokens (index, token):\n{listing}"
