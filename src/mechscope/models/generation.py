"""Text generation through the unmodified HF forward pass, with hooks that know which positions they edit.

Prompts are left-padded into one batch; each step runs the HF model with its own KV cache (or, with
use_cache=False, re-runs the whole sequence) and makes `Positions` current, so a hook scoped to
"prompt", "generated" or chosen positions edits the same tokens either way. Rows stop independently,
at an EOS token, a stop string or a hook's `halt`, and the call returns each row's new tokens and text.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mechscope.errors import GenerationError
from mechscope.models import positions
from mechscope.models.positions import HookFn, Positions
from mechscope.models.sampling import next_tokens

if TYPE_CHECKING:
    from mechscope.models.hooked_model import HookedModel


@dataclass(frozen=True)
class GenerationConfig:
    """How to generate; temperature 0 is greedy decoding, above 0 samples (with top_k / top_p if set)."""

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None  # sampling seed: the same seed gives the same tokens
    stop: tuple[str, ...] = ()  # a row ends once its new text contains one of these
    eos_token_ids: tuple[int, ...] | None = None  # None: the model's generation_config EOS; () never stops
    use_cache: bool = True  # False re-runs the whole sequence every step (the reference the cache must match)
    output_logits: bool = False  # keep the raw logits of every new token

    def __post_init__(self):
        object.__setattr__(self, "stop", (self.stop,) if isinstance(self.stop, str) else tuple(self.stop))
        if self.eos_token_ids is not None:
            eos = self.eos_token_ids
            object.__setattr__(self, "eos_token_ids", (eos,) if isinstance(eos, int) else tuple(eos))
        problems = [f"{name} must be {rule}, got {value!r}" for name, value, rule, ok in (
            ("max_new_tokens", self.max_new_tokens, "an int >= 1", isinstance(self.max_new_tokens, int)
             and self.max_new_tokens >= 1),
            ("temperature", self.temperature, ">= 0", self.temperature >= 0),
            ("top_k", self.top_k, "None or an int >= 1", self.top_k is None or self.top_k >= 1),
            ("top_p", self.top_p, "None or in (0, 1]", self.top_p is None or 0 < self.top_p <= 1),
            ("stop", self.stop, "non-empty strings", all(isinstance(s, str) and s for s in self.stop)),
        ) if not ok]
        if problems:
            raise GenerationError("; ".join(problems))

    def updated(self, **settings) -> GenerationConfig:
        """A copy with `settings` changed, or an error naming the settings there are."""
        unknown = sorted(set(settings) - {f.name for f in fields(self)})
        if unknown:
            raise GenerationError(f"unknown generation settings {unknown}; expected some of "
                                  f"{[f.name for f in fields(self)]}")
        return replace(self, **settings)


@dataclass(frozen=True)
class Generation:
    """What generate returns, one entry per input row."""

    tokens: list[list[int]]  # new token ids, through the EOS or stop-string token that ended the row
    texts: list[str] | None  # new text without special tokens, cut before the stop string (None: no tokenizer)
    finish_reasons: list[str]  # "eos", "stop", "halted" (by a hook) or "length"
    prompt_lengths: list[int]  # tokens in each prompt, padding excluded
    logits: list[Tensor] | None = field(default=None, repr=False)  # [n_new, vocab] per row, if asked


def left_pad(input_ids: Tensor, attention_mask: Tensor, pad_id: int) -> tuple[Tensor, Tensor]:
    """The same rows with their tokens moved right and the padding to the left ([batch, pos] each)."""
    real = attention_mask.bool()
    lengths = real.sum(-1)
    width = int(lengths.max())
    columns = (width - lengths)[:, None] + real.long().cumsum(-1) - 1
    rows = torch.arange(len(real), device=real.device)[:, None].expand_as(real)
    ids = torch.full((len(real), width), pad_id, dtype=input_ids.dtype, device=input_ids.device)
    mask = torch.zeros((len(real), width), dtype=torch.long, device=input_ids.device)
    ids[rows[real], columns[real]] = input_ids[real]
    mask[rows[real], columns[real]] = 1
    return ids, mask


class _Sequence:
    """A growing left-padded batch and its KV cache; each call runs the HF model on what it has not seen."""

    def __init__(self, model: HookedModel, ids: Tensor, mask: Tensor, use_cache: bool):
        self.model, self.ids, self.mask = model, ids, mask
        self.prompt_width = ids.shape[1]
        self.use_cache = use_cache
        self.cache = None
        self.seen = 0
        # only the last position's logits are needed; HF's generate asks for the same where the model allows
        accepts = inspect.signature(model.hf.forward).parameters
        self.extra = {"logits_to_keep": 1} if "logits_to_keep" in accepts else {}

    def next_logits(self) -> Tensor:  # [batch, vocab]
        """Logits at the last position, from one HF forward call over the unseen tokens."""
        start = self.seen if self.use_cache else 0
        rank = self.mask.cumsum(-1) - 1
        is_prompt = self.mask.bool().clone()
        is_prompt[:, self.prompt_width:] = False
        covered = Positions(absolute=torch.where(self.mask.bool(), rank, -1)[:, start:],
                            is_prompt=is_prompt[:, start:])
        with positions.covering(covered):
            out = self.model.hf(input_ids=self.ids[:, start:], attention_mask=self.mask,
                                position_ids=rank.clamp(min=0)[:, start:], cache=self.cache,
                                use_cache=self.use_cache, **self.extra)
        self.cache = out.cache if self.use_cache else None
        self.seen = self.ids.shape[1]
        return out.logits[:, -1]

    def append(self, tokens: Tensor) -> None:  # [batch]
        self.ids = torch.cat([self.ids, tokens[:, None]], dim=1)
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)


_HALTED: ContextVar[set[int] | None] = ContextVar("mechscope_halted", default=None)


def halt(rows: Iterable[int]) -> bool:
    """From a hook during generate: end these rows at the token being processed (finish reason "halted"), so
    nothing after it is generated. False when no generation is running (a plain forward has no rows to end)."""
    halted = _HALTED.get()
    if halted is None:
        return False
    halted.update(int(row) for row in rows)
    return True


@contextmanager
def _halting() -> Iterator[set[int]]:
    """The rows hooks halt during the block."""
    halted: set[int] = set()
    token = _HALTED.set(halted)
    try:
        yield halted
    finally:
        _HALTED.reset(token)


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    """Index where the earliest stop string starts in `text`, or None."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _special_ids(model: HookedModel, config: GenerationConfig) -> tuple[int, tuple[int, ...]]:
    """(pad id, EOS ids) for this model and config."""
    generation_config = model.hf.generation_config
    eos = config.eos_token_ids
    if eos is None:
        eos = generation_config.eos_token_id
        eos = () if eos is None else (eos,) if isinstance(eos, int) else tuple(eos)
    tokenizer_pad = model.tokenizer.pad_token_id if model.tokenizer is not None else None
    pad = next((p for p in (tokenizer_pad, generation_config.pad_token_id, *eos) if p is not None), 0)
    return pad, eos


def generate(model: HookedModel, inputs, hooks: Mapping[str, HookFn] | Iterable[tuple[str, HookFn]] | None = None,
             config: GenerationConfig = GenerationConfig(), on_token: Callable[[int, int], None] | None = None,
             on_text: Callable[[int, str], None] | None = None) -> Generation:
    """New tokens for each prompt (text, texts, token ids or an encode() dict), with `hooks` active throughout.

    `on_token(row, token)` is called as each new token is chosen and `on_text(row, text)` with the row's text so far
    (decoded incrementally, once, shared with the stop-string check); an exception either raises ends the
    generation and propagates, with the hooks and the model's lock released."""
    if model.hf.get_output_embeddings() is None:
        raise GenerationError(f"generate needs a language model with an unembedding; {model.info.name} "
                              f"({model.info.model_type}) has none")
    if (config.stop or on_text) and model.tokenizer is None:
        needs = "stop strings need" if config.stop else "on_text needs"
        raise GenerationError(f"{needs} a tokenizer; this model has none (stop on eos_token_ids instead, stream "
                              "tokens with on_token)")
    batch = model.encode(inputs)
    prompt_ids = batch["input_ids"]
    pad, eos = _special_ids(model, config)
    ids, mask = left_pad(prompt_ids, batch.get("attention_mask", torch.ones_like(prompt_ids)), pad)
    sequence = _Sequence(model, ids, mask, config.use_cache)
    generator = torch.Generator(device=model.device)
    if config.seed is not None:
        generator.manual_seed(config.seed)
    else:
        generator.seed()
    n_rows = len(ids)
    new: list[list[int]] = [[] for _ in range(n_rows)]
    kept: list[list[Tensor]] = [[] for _ in range(n_rows)]
    reasons: list[str | None] = [None] * n_rows
    decoding = bool(config.stop) or on_text is not None
    texts = [IncrementalText(model.tokenizer) for _ in range(n_rows)] if decoding else []
    eos_ids = torch.tensor(eos, dtype=torch.long, device=ids.device)
    with model.hooks(hooks or {}), torch.no_grad(), _halting() as halted:  # hooks() holds the model's lock
        for step in range(config.max_new_tokens):
            logits = sequence.next_logits()
            for row in halted:
                reasons[row] = reasons[row] or "halted"
            chosen = next_tokens(logits, config.temperature, config.top_k, config.top_p, generator)
            running = torch.tensor([r is None for r in reasons], device=ids.device)
            chosen = torch.where(running, chosen, pad)
            at_eos = torch.isin(chosen, eos_ids) & running
            for row in running.nonzero()[:, 0].tolist():
                new[row].append(int(chosen[row]))
                if on_token is not None:
                    on_token(row, new[row][-1])
                text = texts[row].push(new[row][-1]) if decoding else ""
                if on_text is not None:
                    on_text(row, text)
                if config.output_logits:
                    kept[row].append(logits[row])
                if at_eos[row]:
                    reasons[row] = "eos"
                elif config.stop and _first_stop(text, config.stop) is not None:
                    reasons[row] = "stop"
            if all(r is not None for r in reasons):
                break
            if step + 1 < config.max_new_tokens:
                sequence.append(chosen)
    reasons = [r or "length" for r in reasons]
    return Generation(
        tokens=new, texts=None if model.tokenizer is None else [_text(model, t, r, config.stop)
                                                                for t, r in zip(new, reasons)],
        finish_reasons=reasons, prompt_lengths=mask.sum(-1).tolist(),
        logits=[torch.stack(rows) if rows else logits.new_zeros(0, logits.shape[-1]) for rows in kept]
        if config.output_logits else None)


class IncrementalText:
    """A row's text as tokens arrive, decoding only the last few tokens per step (the window since the last
    complete character, with one token of context so leading spaces survive) instead of the whole row: linear, not
    quadratic, in the row's length; equals decoding every token at once wherever that ends on a whole character."""

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        self.tokenizer, self.skip = tokenizer, skip_special_tokens
        self.tokens: list[int] = []
        self.text, self.prefix, self.read = "", 0, 0

    def push(self, token: int) -> str:
        self.tokens.append(int(token))
        before = self._decode(self.tokens[self.prefix:self.read])
        after = self._decode(self.tokens[self.prefix:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before):]
            self.prefix, self.read = self.read, len(self.tokens)
        return self.text

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=self.skip) if tokens else ""


def _decode(model: HookedModel, tokens: list[int]) -> str:
    return model.tokenizer.decode(tokens, skip_special_tokens=True)


def _text(model: HookedModel, tokens: list[int], reason: str, stops: tuple[str, ...]) -> str:
    """A row's new text: the EOS token left out, and cut where a stop string begins."""
    text = _decode(model, tokens[:-1] if reason == "eos" else tokens)
    cut = _first_stop(text, stops) if reason == "stop" else None
    return text if cut is None else text[:cut]
