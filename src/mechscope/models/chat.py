"""Chat-formatted inputs built with the model's own chat template (system/user/assistant turns).

What steering, refusal checks and local auto-interp feed a chat model: token ids ready for the
forward pass, left-padded so that position -1 is the last prompt token of every row (position_ids
skip the padding, so a padded row computes what it would alone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from mechscope.errors import MechscopeError

ROLES = ("system", "user", "assistant")


class ChatTemplateError(MechscopeError):
    """A tokenizer without a chat template, or a conversation the template cannot take."""


def conversation(user: str, system: str | None = None, history: Sequence[tuple[str, str]] = ()) -> list[dict]:
    """Messages for one user turn after earlier (user, assistant) pairs; `system` replaces the template's default."""
    messages = [{"role": "system", "content": system}] if system is not None else []
    for asked, answered in history:
        messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
    return messages + [{"role": "user", "content": user}]


def _messages(chat) -> list[dict]:
    if isinstance(chat, str):
        return conversation(chat)
    messages = [dict(m) for m in chat]
    for number, message in enumerate(messages):
        if message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ChatTemplateError(f"message {number} must be {{'role': one of {ROLES}, 'content': str}}, "
                                    f"got {message!r}")
    if not messages:
        raise ChatTemplateError("a conversation needs at least one message, got none")
    return messages


def _tokenizer(model_or_tokenizer):
    tokenizer = getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)
    if getattr(tokenizer, "chat_template", None) is None:
        name = getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__
        raise ChatTemplateError(f"expected a tokenizer with a chat template (an instruct model such as "
                                f"'smollm2'), got {name!r} which has none")
    return tokenizer


def chat_text(model_or_tokenizer, chat, add_generation_prompt: bool = True) -> str:
    """The conversation rendered by the model's template; a user string becomes one user turn."""
    tokenizer = _tokenizer(model_or_tokenizer)
    return tokenizer.apply_chat_template(_messages(chat), tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def chat_inputs(model_or_tokenizer, chats, add_generation_prompt: bool = True) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and position_ids [batch, pos] for one conversation or a list of them.

    A conversation is a user string or a list of {"role", "content"} messages; rows are left-padded.
    """
    tokenizer = _tokenizer(model_or_tokenizer)
    single = isinstance(chats, str) or (isinstance(chats, Sequence) and bool(chats) and isinstance(chats[0], Mapping))
    chats = [chats] if single else list(chats)
    if not chats:
        raise ChatTemplateError("expected a conversation or a list of them, got an empty list")
    texts = [chat_text(tokenizer, chat, add_generation_prompt) for chat in chats]
    rows = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]  # the template has them
    width = max(len(row) for row in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    batch = {"input_ids": torch.tensor([[pad] * (width - len(row)) + row for row in rows]),
             "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp_min(0)}
    device = getattr(model_or_tokenizer, "device", None)
    return {k: v.to(device) for k, v in batch.items()} if device is not None else batch
