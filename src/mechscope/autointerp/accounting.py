"""Token and cost accounting: a price table per model and a ledger per latent and per run."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

from mechscope.autointerp.completion import Completion


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float


# List prices (USD per million tokens) as published mid-2025; pass `prices=` to override or extend.
PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-3-7-sonnet": Price(3.00, 15.00),
    "claude-haiku-4-5": Price(1.00, 5.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-opus-4": Price(15.00, 75.00),
    "claude-opus-4-5": Price(5.00, 25.00),
}


def price_for(model: str, prices: Mapping[str, Price] = PRICES) -> Price | None:
    """The price of `model`: an exact entry, else the longest entry it starts with (dated snapshots), else None.

    A router prefix ("openai/gpt-4o-mini") is dropped before matching.
    """
    name = model.rsplit("/", 1)[-1]
    if name in prices:
        return prices[name]
    matches = [entry for entry in prices if name.startswith(entry + "-")]
    return prices[max(matches, key=len)] if matches else None


def cost_usd(price: Price | None, input_tokens: int, output_tokens: int) -> float | None:
    return None if price is None else (input_tokens * price.input + output_tokens * price.output) / 1e6


@dataclass
class Usage:
    """What a set of calls spent; cached calls are counted but spend no tokens or money."""

    calls: int = 0
    cached_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # of the priced calls
    unpriced_calls: int = 0  # fresh calls to a model the price table does not know

    def add(self, completion: Completion) -> None:
        self.calls += 1
        if completion.cached:
            self.cached_calls += 1
            return
        self.input_tokens += completion.input_tokens
        self.output_tokens += completion.output_tokens
        if completion.cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd += completion.cost_usd


@dataclass
class UsageLedger:
    """Usage of one run in total and per latent id; safe to record into from many threads."""

    total: Usage = field(default_factory=Usage)
    per_latent: dict[Hashable, Usage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, completion: Completion, latent: Hashable | None = None) -> None:
        with self._lock:
            self.total.add(completion)
            if latent is not None:
                self.per_latent.setdefault(latent, Usage()).add(completion)
