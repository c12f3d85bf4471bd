"""The model's own greedy answers to chat conversations, as token ids and text, and how surprised the model is by
them: what judged steering evaluations (persona vectors, concept steering) generate and score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mechscope.models.chat import chat_inputs
from mechscope.steering.directions import token_inputs
from mechscope.steering.interventions import steer


@dataclass
class ChatAnswers:
    """Each conversation's prompt tokens (no padding), answer tokens (no final EOS) and answer text."""

    prompt_ids: list[list[int]]
    answer_ids: list[list[int]]
    texts: list[str]


def chat_answers(model, chats: Sequence, max_new_tokens: int = 32, batch_size: int = 16, edits=()) -> ChatAnswers:
    """Greedy answers to each conversation (a user string or a message list), with `edits` active."""
    out = ChatAnswers([], [], [])
    eos = getattr(model.tokenizer, "eos_token_id", None)
    for start in range(0, len(chats), batch_size):
        inputs = chat_inputs(model, list(chats[start:start + batch_size]))
        with steer(model, edits):
            generated = model.generate({k: inputs[k] for k in ("input_ids", "attention_mask")},
                                       max_new_tokens=max_new_tokens, temperature=0.0)
        for ids, mask, new, text in zip(inputs["input_ids"], inputs["attention_mask"], generated.tokens,
                                        generated.texts):
            out.prompt_ids.append(ids[mask.bool()].tolist())
            out.answer_ids.append(new[:-1] if new and new[-1] == eos else list(new))
            out.texts.append(text)
    return out


@torch.no_grad()
def answer_nll(model, answers: ChatAnswers, batch_size: int = 16) -> list[float | None]:
    """Mean negative log-likelihood (nats per token) of each answer given its prompt under `model` as it is
    (call it outside any steering block for the unsteered model's judgement of fluency); None for empty answers."""
    pad = getattr(model.tokenizer, "pad_token_id", None) or 0
    out = []
    for start in range(0, len(answers.prompt_ids), batch_size):
        prompts = answers.prompt_ids[start:start + batch_size]
        replies = answers.answer_ids[start:start + batch_size]
        rows = [p + a for p, a in zip(prompts, replies)]
        inputs = token_inputs(rows, pad)
        logprobs = model(inputs).float().log_softmax(-1).cpu()
        width = inputs["input_ids"].shape[1]
        for row, reply in enumerate(replies):
            if not reply:
                out.append(None)
                continue
            positions = torch.arange(width - len(reply), width)
            picked = logprobs[row, positions - 1, torch.tensor(reply)]
            out.append(float(-picked.mean()))
    return out
