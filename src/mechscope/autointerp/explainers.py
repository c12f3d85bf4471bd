"""Explainers turn a latent's training examples into a short label: an LLM's, or an offline one.

`LLMExplainer` follows Bills et al. (2023) and delphi: top and quantile-sampled contexts with the
activating tokens marked, a short phrase back as structured JSON. `OfflineExplainer` needs no model:
it names the tokens that are most over-represented where the latent fires, and the word before them
when one dominates, so every machine can label its features.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass

from mechscope.autointerp import prompts
from mechscope.autointerp.completion import LLMClient
from mechscope.autointerp.records import HIGHLIGHT, LatentRecord, join_tokens


@dataclass(frozen=True)
class Explanation:
    """A label for one latent, with who wrote it and (with chain of thought) why."""

    latent: int
    text: str
    explainer: str
    reasoning: str = ""


def _word(token: str) -> str:
    return join_tokens([token]).strip().lower()


@dataclass
class OfflineExplainer:
    """Label = the tokens most over-represented at firing positions (smoothed log-odds vs all positions)."""

    n_tokens: int = 3
    threshold: float = 0.5  # a position fires when its activation is >= this fraction of the example's max
    name: str = "offline"

    def explain(self, record: LatentRecord) -> Explanation:
        firing, before, background = Counter(), Counter(), Counter()
        for example in record.train + record.train_negatives:
            background.update(_word(t) for t in example.tokens)
        for example in record.train:
            top = example.max_activation
            for i, (token, act) in enumerate(zip(example.tokens, example.activations)):
                if top > 0 and act >= self.threshold * top:
                    firing[_word(token)] += 1
                    if i > 0:
                        before[_word(example.tokens[i - 1])] += 1
        firing.pop("", None)
        if not firing:
            return Explanation(record.latent, "no firing tokens seen", self.name)
        n_fire, n_all = sum(firing.values()), sum(background.values())

        def log_odds(word: str) -> float:
            return math.log((firing[word] + 0.5) / (n_fire + 1)) - math.log((background[word] + 0.5) / (n_all + 1))

        words = sorted(firing, key=lambda w: (-log_odds(w) * math.sqrt(firing[w]), w))[: self.n_tokens]
        label = ", ".join(f'"{w}"' for w in words)
        context, count = before.most_common(1)[0] if before else ("", 0)
        if context and count >= max(2, n_fire // 2):
            label += f' after "{context}"'
        return Explanation(record.latent, label, self.name)


@dataclass
class LLMExplainer:
    """Ask a language model for a short label from marked top and quantile examples (JSON answer)."""

    client: LLMClient
    name: str = "llm"
    chain_of_thought: bool = False
    max_examples: int = 20
    max_tokens: int = 300

    def explain(self, record: LatentRecord) -> Explanation:
        examples = sorted(record.train, key=lambda e: -e.max_activation)[: self.max_examples]
        shown = [e.highlighted(threshold=0.0) for e in examples]
        system = prompts.EXPLAIN_SYSTEM + (prompts.EXPLAIN_COT if self.chain_of_thought else "")
        completion = self.client.complete(
            [{"role": "system", "content": system}, {"role": "user", "content": prompts.explain_user(shown)}],
            max_tokens=self.max_tokens, json_schema=prompts.explain_schema(self.chain_of_thought),
            latent=record.latent)
        answer = parse_json(completion.text)
        text = str(answer.get("explanation", "")).strip() or completion.text.strip()
        return Explanation(record.latent, text.replace(HIGHLIGHT[0], "").replace(HIGHLIGHT[1], ""), self.name,
                           str(answer.get("reasoning", "")))


def parse_json(text: str) -> dict:
    """The first JSON object in `text` (models without structured output wrap it in prose or fences)."""
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
            if isinstance(value, dict):
                return value
        except json.JSONDecodeError:
            pass
        start = text.find("{", start + 1)
    return {}
