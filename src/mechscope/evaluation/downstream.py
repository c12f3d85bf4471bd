"""Downstream metrics: splice a dictionary's reconstruction into the model and compare with baselines.

CE loss score = (CE_ablated - CE_spliced) / (CE_ablated - CE_clean) and KL score = (KL_ablated -
KL_spliced) / KL_ablated, each from means over all evaluated tokens (ratios of means, not means of
per-batch ratios), for zero- and mean-ablation baselines. Encoders without an LM head get embedding
fidelity: the cosine between mean-pooled sentence embeddings with and without the splice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

VARIANTS = ("spliced", "zero", "mean")


@dataclass
class LanguageModelStats:
    """Sums of next-token CE (clean and each variant) and KL(clean || variant) over masked positions."""

    tokens: int = 0
    ce: dict = field(default_factory=lambda: {k: 0.0 for k in ("clean", *VARIANTS)})
    kl: dict = field(default_factory=lambda: {k: 0.0 for k in VARIANTS})

    @torch.no_grad()
    def update(self, ids: Tensor, keep: Tensor, logits: dict[str, Tensor]) -> None:
        """ids [b, p]; keep [b, p] positions whose *target* is scored; logits per variant [b, p, vocab]."""
        target, mask = ids[:, 1:], keep[:, 1:]
        self.tokens += int(mask.sum())
        clean_logp = F.log_softmax(logits["clean"][:, :-1].double(), -1)
        for name, value in logits.items():
            logp = clean_logp if name == "clean" else F.log_softmax(value[:, :-1].double(), -1)
            nll = -logp.gather(-1, target[..., None]).squeeze(-1)
            self.ce[name] += nll[mask].sum().item()
            if name != "clean":
                kl = (clean_logp.exp() * (clean_logp - logp)).sum(-1)
                self.kl[name] += kl[mask].sum().item()

    def result(self) -> dict:
        n = max(self.tokens, 1)
        ce = {k: v / n for k, v in self.ce.items()}
        kl = {k: v / n for k, v in self.kl.items()}
        out = {"lm_tokens": self.tokens, **{f"ce_{k}": v for k, v in ce.items()},
               **{f"kl_{k}": v for k, v in kl.items()}}
        for base in ("zero", "mean"):
            gap = ce[base] - ce["clean"]
            out[f"ce_score_{base}"] = (ce[base] - ce["spliced"]) / gap if gap else float("nan")
            out[f"kl_score_{base}"] = (kl[base] - kl["spliced"]) / kl[base] if kl[base] else float("nan")
        return out


@dataclass
class EmbeddingStats:
    """Mean-pooled sentence embeddings (what sentence-transformers does for MiniLM), compared by cosine."""

    sequences: int = 0
    cosine: dict = field(default_factory=lambda: {k: 0.0 for k in VARIANTS})

    @torch.no_grad()
    def update(self, attention: Tensor, hidden: dict[str, Tensor]) -> None:
        weights = attention[..., None].double()
        pooled = {k: (v.double() * weights).sum(1) / weights.sum(1).clamp_min(1) for k, v in hidden.items()}
        self.sequences += attention.shape[0]
        for name in VARIANTS:
            self.cosine[name] += F.cosine_similarity(pooled["clean"], pooled[name], dim=-1).sum().item()

    def result(self) -> dict:
        n = max(self.sequences, 1)
        return {"embedding_sequences": self.sequences, "embedding_fidelity": self.cosine["spliced"] / n,
                "embedding_fidelity_zero": self.cosine["zero"] / n,
                "embedding_fidelity_mean": self.cosine["mean"] / n}
