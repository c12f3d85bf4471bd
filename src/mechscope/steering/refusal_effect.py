"""What a refusal direction does to a chat model's replies: the known-answer check of Arditi et al. 2024.

Held-out requests are answered greedily and judged by phrase matching (tasks/refusal_judge.py): the
refusal rate of harmful requests with the direction ablated (it should fall to near zero), of harmless
requests with it added (it should rise to near one), and the ablation's side effect as the KL of harmless
next-token distributions. The same rates on a weight-orthogonalised copy show that the edit bakes in
the ablation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from mechscope.steering.interventions import Intervention, hook_pairs
from mechscope.steering.refusal import RefusalDirection, kl_divergence, next_token_logits
from mechscope.tasks.refusal_judge import JudgedReplies, judge_replies


@dataclass
class RefusalRates:
    """Refusal rates of held-out harmful and harmless requests under one set of interventions (none: plain)."""

    harmful: JudgedReplies
    harmless: JudgedReplies

    @property
    def harmful_rate(self) -> float:
        return self.harmful.refusal_rate

    @property
    def harmless_rate(self) -> float:
        return self.harmless.refusal_rate

    def to_dict(self) -> dict:
        return {"harmful_refusal_rate": self.harmful_rate, "harmless_refusal_rate": self.harmless_rate,
                "n_harmful": len(self.harmful.refused), "n_harmless": len(self.harmless.refused)}


def refusal_rates(model, harmful: Sequence[str], harmless: Sequence[str], edits: Sequence[Intervention] = (),
                  max_new_tokens: int = 24, batch_size: int = 32) -> RefusalRates:
    """Greedy replies to both request sets with `edits` active, judged by the phrase judge."""
    hooks = hook_pairs(model, edits)
    return RefusalRates(*(judge_replies(model, requests, max_new_tokens, batch_size, hooks=hooks)
                          for requests in (harmful, harmless)))


@dataclass
class RefusalEffect:
    """Plain, ablated and added refusal rates on held-out requests and the ablation's harmless KL (nats)."""

    plain: RefusalRates
    ablated: RefusalRates
    added: RefusalRates
    harmless_kl: float  # mean KL(plain || ablated) of next-token distributions after harmless prompts
    coefficient: float = 1.0
    per_prompt_kl: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        return {"plain": self.plain.to_dict(), "ablated": self.ablated.to_dict(), "added": self.added.to_dict(),
                "harmless_kl": self.harmless_kl, "coefficient": self.coefficient}


def refusal_effect(model, refusal: RefusalDirection, harmful: Sequence[str], harmless: Sequence[str],
                   coefficient: float = 1.0, max_new_tokens: int = 24, batch_size: int = 32) -> RefusalEffect:
    """Refusal rates of `harmful` and `harmless` requests plain, with the direction ablated (as it was selected)
    and with `coefficient` x it added at its layer, and the ablation's KL on the harmless prompts."""
    ablation = refusal.ablate(model)
    rates = [refusal_rates(model, harmful, harmless, edits, max_new_tokens, batch_size)
             for edits in ((), ablation, refusal.add(coefficient))]
    kl = harmless_kl(model, harmless, ablation, batch_size)
    return RefusalEffect(*rates, harmless_kl=float(kl.mean()), coefficient=coefficient, per_prompt_kl=kl.tolist())


def harmless_kl(model, harmless: Sequence[str], edits: Sequence[Intervention], batch_size: int = 32) -> Tensor:
    """KL(plain || edited) [n_prompts] (float64) of the next-token distributions after each chat prompt."""
    return kl_divergence(next_token_logits(model, harmless, (), batch_size),
                         next_token_logits(model, harmless, edits, batch_size))
