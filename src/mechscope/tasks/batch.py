"""The protocol every prompt task speaks: clean/corrupted pairs, tokenised so they line up token for token.

A `PromptPair` is text; `tokenize_pair` turns it into a `TokenPair` for one tokenizer, or names why it
cannot (the corruption changes the token count, an answer is not one token, ...); `collate` pads the
kept pairs into a `TaskBatch` whose `report` says how many were dropped or repaired, and why.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mechscope.errors import TaskError

LENGTH_MISMATCH = "clean and corrupted prompts differ in token count"
ANSWER_SPLITS = "an answer is not a single token"
WRONG_SPLITS = "a wrong answer is not a single token"
ANSWER_MERGES = "an answer merges with the prompt's last token"
UNKNOWN_ANSWER = "an answer is the unknown token"
SAME_ANSWER = "answer and wrong answer are the same token"
FRAMING = "the tokenizer cuts the prompt differently once it adds its special tokens"


@dataclass(frozen=True)
class PromptPair:
    """A clean prompt, its corruption, and the completions scored after both (with any leading space)."""

    clean: str
    corrupted: str
    answers: tuple[str, ...]  # completions that are right after `clean` (a set: greater-than's later years)
    wrong: tuple[str, ...]  # completions the corruption favours, or that are wrong after `clean`
    meta: dict = field(default_factory=dict, hash=False)
    repairs: tuple[str, ...] = ()  # what the generator changed so the pair fits the tokenizer
    rendered: bool = False  # the prompts already carry the tokenizer's special tokens (a chat template's output)


@dataclass(frozen=True)
class TokenPair:
    """A pair as token ids: equal lengths, answers scored at `position`."""

    clean: tuple[int, ...]
    corrupted: tuple[int, ...]
    position: int
    answers: tuple[int, ...]
    wrong: tuple[int, ...]
    meta: dict = field(default_factory=dict, hash=False)
    repairs: tuple[str, ...] = ()


@dataclass
class AlignmentReport:
    """How many pairs a generator made, kept, dropped (per reason) and repaired (per repair)."""

    requested: int
    kept: int
    dropped: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [f"kept {self.kept} of {self.requested} pairs"]
        parts += [f"dropped {n}: {reason}" for reason, n in self.dropped.items()]
        parts += [f"repaired {n}: {repair}" for repair, n in self.repaired.items()]
        return "; ".join(parts)


@dataclass
class TaskBatch:
    """Clean and corrupted token ids of equal shape, right-padded; answers are scored at `positions`."""

    clean: Tensor  # [batch, pos]
    corrupted: Tensor  # [batch, pos], the same length row by row
    attention_mask: Tensor  # [batch, pos], shared by both sides
    positions: Tensor  # [batch] where each row's answer is predicted (its last prompt token)
    answers: Tensor  # [batch, n_answers] token ids, -1 where a row has fewer
    wrong: Tensor  # [batch, n_wrong] token ids, -1 where a row has fewer
    meta: list[dict]
    report: AlignmentReport

    def __len__(self) -> int:
        return self.clean.shape[0]

    def select(self, rows: Tensor | list[int]) -> TaskBatch:
        """The given rows only, with padding trimmed to the longest of them (the report is kept as it was)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        width = int(self.attention_mask[rows].sum(1).max())
        return TaskBatch(self.clean[rows, :width], self.corrupted[rows, :width], self.attention_mask[rows, :width],
                         self.positions[rows], self.answers[rows], self.wrong[rows], [self.meta[i] for i in rows.tolist()],
                         self.report)

    def tokens(self, corrupted: bool = False) -> Tensor:
        return self.corrupted if corrupted else self.clean

    def at_positions(self, logits: Tensor) -> Tensor:
        """Logits [batch, vocab] at each row's answer position, from logits [batch, pos, vocab]."""
        rows = torch.arange(len(self), device=logits.device)
        return logits[rows, self.positions.to(logits.device)]

    def logits(self, model, corrupted: bool = False) -> Tensor:
        """`model`'s logits [batch, vocab] (float32, CPU) at the answer positions; hooks active on it apply."""
        with torch.no_grad():
            out = model(self.tokens(corrupted).to(model.device), attention_mask=self.attention_mask.to(model.device))
        return self.at_positions(out).float().cpu()


def continuation(tokenizer, prompt: str, completion: str) -> list[int] | None:
    """Ids `completion` adds after `prompt`, or None when appending it retokenises the prompt's end."""
    head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    whole = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    return whole[len(head):] if whole[:len(head)] == head else None


def single_token(tokenizer, prompt: str, completion: str) -> int | None:
    """The id of `completion` after `prompt` when it is one known token, else None."""
    ids = continuation(tokenizer, prompt, completion)
    return ids[0] if ids is not None and len(ids) == 1 and ids[0] != tokenizer.unk_token_id else None


def equal_length_partner(tokenizer, prompt: str, candidates: list[str]) -> int:
    """Index of the first candidate with as many tokens as `prompt`; 0 when none has (that pair is dropped)."""
    length = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    counts = (len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in candidates)
    return next((i for i, count in enumerate(counts) if count == length), 0)


def _offset(framed: list[int], plain: list[int]) -> int | None:
    return next((i for i in range(len(framed) - len(plain) + 1) if framed[i:i + len(plain)] == plain), None)


def _framed(tokenizer, text: str, rendered: bool) -> tuple[list[int], int] | None:
    """Model input ids of `text` and the index of its last own token (BERT's [SEP] and the like excluded)."""
    plain = tokenizer(text, add_special_tokens=False)["input_ids"]
    if rendered:
        return plain, len(plain) - 1
    framed = tokenizer(text)["input_ids"]
    offset = _offset(framed, plain)
    return None if offset is None else (framed, offset + len(plain) - 1)


def special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """The ids `tokenizer` puts before and after any text: ([bos], []) for Llama, ([], []) for GPT-2, ([CLS], [SEP])."""
    plain = tokenizer("frame", add_special_tokens=False)["input_ids"]
    framed = tokenizer("frame")["input_ids"]
    offset = _offset(framed, plain)
    if offset is None:
        raise TaskError(f"expected the tokenizer to frame text with special tokens around it; it turns {plain} into "
                        f"{framed}")
    return framed[:offset], framed[offset + len(plain):]


def _completion_ids(tokenizer, prompt: str, completions: tuple[str, ...], splits: str) -> tuple[int, ...] | str:
    ids = []
    for completion in completions:
        tokens = continuation(tokenizer, prompt, completion)
        if tokens is None:
            return ANSWER_MERGES
        if len(tokens) != 1:
            return splits
        if tokens[0] == tokenizer.unk_token_id:
            return UNKNOWN_ANSWER
        ids.append(tokens[0])
    return tuple(ids)


def tokenize_pair(pair: PromptPair, tokenizer) -> TokenPair | str:
    """`pair` as ids for `tokenizer`, or the reason it does not line up (one of this module's constants)."""
    answers = _completion_ids(tokenizer, pair.clean, pair.answers, ANSWER_SPLITS)
    if isinstance(answers, str):
        return answers
    wrong = _completion_ids(tokenizer, pair.clean, pair.wrong, WRONG_SPLITS)
    if isinstance(wrong, str):
        return wrong
    if set(answers) & set(wrong):
        return SAME_ANSWER
    clean, corrupted = _framed(tokenizer, pair.clean, pair.rendered), _framed(tokenizer, pair.corrupted, pair.rendered)
    if clean is None or corrupted is None:
        return FRAMING
    (clean, position), (corrupted, corrupted_position) = clean, corrupted
    if len(clean) != len(corrupted) or position != corrupted_position:
        return LENGTH_MISMATCH
    return TokenPair(tuple(clean), tuple(corrupted), position, answers, wrong, pair.meta, pair.repairs)


def _padded(rows: list[tuple[int, ...]], fill: int) -> Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([list(row) + [fill] * (width - len(row)) for row in rows], dtype=torch.long)


def collate(pairs: list[TokenPair], pad_token_id: int, requested: int | None = None,
            dropped: Counter | None = None) -> TaskBatch:
    """Kept `pairs` right-padded into one batch; `requested` and `dropped` fill its report."""
    dropped = dropped or Counter()
    report = AlignmentReport(requested if requested is not None else len(pairs), len(pairs), dict(dropped),
                             dict(Counter(repair for pair in pairs for repair in pair.repairs)))
    if not pairs:
        raise TaskError(f"no clean/corrupted pair lines up on this tokenizer ({report})")
    lengths = torch.tensor([len(pair.clean) for pair in pairs])
    mask = (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).long()
    return TaskBatch(_padded([p.clean for p in pairs], pad_token_id), _padded([p.corrupted for p in pairs], pad_token_id),
                     mask, torch.tensor([p.position for p in pairs]), _padded([p.answers for p in pairs], -1),
                     _padded([p.wrong for p in pairs], -1), [p.meta for p in pairs], report)


def pad_id(tokenizer) -> int:
    """The id padding uses: the pad token, else end-of-sequence, else 0 (the mask hides it either way)."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


def build_batch(pairs: list[PromptPair], tokenizer) -> TaskBatch:
    """Every pair that lines up on `tokenizer`, as one batch; the report counts the rest by reason."""
    kept, dropped = [], Counter()
    for pair in pairs:
        tokens = tokenize_pair(pair, tokenizer)
        if isinstance(tokens, str):
            dropped[tokens] += 1
        else:
            kept.append(tokens)
    return collate(kept, pad_id(tokenizer), len(pairs), dropped)
