"""Model diffing without a dictionary: the activation-difference lens and per-token KL between two models.

Activation-difference lens (Minder et al. 2025, "narrow fine-tuning leaves readable traces"): the mean of
h_B - h_A over the first tokens of ordinary text at one hook, read through B's unembedding (final-norm scale
folded in), names the tokens fine-tuning promotes and suppresses. Per-token KL(P_B || P_A) of the next-token
distributions on a corpus finds the contexts where the two models disagree most.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mechscope.data.paired import check_same_tokenizer
from mechscope.models.unembedding import unembedding


def _batches(model, texts: list[str], batch_size: int, context: int) -> Iterator[tuple[dict, Tensor]]:
    """(model inputs, mask of real non-special tokens [b, pos]) for texts cut to `context` tokens."""
    special = torch.tensor(sorted(set(model.tokenizer.all_special_ids)))
    for start in range(0, len(texts), batch_size):
        batch = model.encode(texts[start:start + batch_size])
        batch = {k: v[:, :context] for k, v in batch.items()}
        mask = batch.get("attention_mask", torch.ones_like(batch["input_ids"])).bool()
        yield batch, (mask & ~torch.isin(batch["input_ids"], special.to(mask.device))).cpu()


@torch.no_grad()
def activation_difference(model_a, model_b, texts: list[str], hook: str, first_tokens: int = 5,
                          batch_size: int = 16) -> Tensor:
    """[d] mean of (B's minus A's activation at `hook`) over the first `first_tokens` real tokens of each text."""
    check_same_tokenizer(model_a.tokenizer, model_b.tokenizer, (model_a.info.name, model_b.info.name))
    total, count = None, 0
    for batch, real in _batches(model_a, texts, batch_size, context=4 * first_tokens + 8):
        keep = real & (real.cumsum(1) <= first_tokens)
        _, cache_a = model_a.run_with_cache(batch, hook, stop_at_layer="auto")
        _, cache_b = model_b.run_with_cache(batch, hook, stop_at_layer="auto")
        diff = (cache_b[hook].float() - cache_a[hook].float()).cpu()[keep]
        total = diff.sum(0) if total is None else total + diff.sum(0)
        count += diff.shape[0]
    return total / max(count, 1)


@torch.no_grad()
def vocabulary_projection(model, vector: Tensor, top: int = 20) -> dict[str, list[tuple[str, float]]]:
    """The tokens whose logits `vector` raises most ("promoted") and lowers most ("suppressed") through the
    model's unembedding, with the final norm's scale folded in."""
    w_u, scale, _ = unembedding(model)
    v = vector.to(w_u.device, torch.float32)
    logits = w_u.float() @ (v * scale.to(v.device) if scale is not None else v)
    up, down = logits.topk(top), (-logits).topk(top)
    return {"promoted": list(zip(model.to_str_tokens(up.indices), up.values.tolist())),
            "suppressed": list(zip(model.to_str_tokens(down.indices), (-down.values).tolist()))}


@dataclass
class TokenKL:
    """KL(P_B || P_A) of the next-token distribution at every real token of a corpus."""

    kl: list[Tensor] = field(default_factory=list)  # per text: [positions]
    tokens: list[Tensor] = field(default_factory=list)  # per text: its token ids
    top_a: list[Tensor] = field(default_factory=list)  # per text: A's most likely next token
    top_b: list[Tensor] = field(default_factory=list)

    @property
    def mean(self) -> float:
        every = torch.cat(self.kl)
        return float(every.mean()) if every.numel() else 0.0

    def top_contexts(self, model, n: int = 10, window: int = 12) -> list[dict]:
        """The n highest-KL positions: the text up to there, its token, and A's and B's top next tokens."""
        flat = [(float(k), t, p) for t, row in enumerate(self.kl) for p, k in enumerate(row.tolist())]
        rows = []
        for kl, t, p in sorted(flat, reverse=True)[:n]:
            ids = self.tokens[t]
            rows.append({"kl": round(kl, 4), "text": t, "position": p, "token": model.to_str_tokens(ids[p:p + 1])[0],
                         "context": model.to_string(ids[max(0, p - window):p + 1]),
                         "next_a": model.to_str_tokens(self.top_a[t][p:p + 1])[0],
                         "next_b": model.to_str_tokens(self.top_b[t][p:p + 1])[0]})
        return rows

    def top_tokens(self, model, n: int = 10, min_count: int = 3) -> list[dict]:
        """Tokens with the highest mean KL at their position (seen at least `min_count` times)."""
        ids, kls = torch.cat(self.tokens), torch.cat(self.kl)
        sums = torch.zeros(int(ids.max()) + 1 if ids.numel() else 1).index_add_(0, ids, kls)
        counts = torch.bincount(ids, minlength=sums.numel()).float()
        means = torch.where(counts >= min_count, sums / counts.clamp_min(1), torch.full_like(sums, -1.0))
        best = means.topk(min(n, int((means >= 0).sum())))
        return [{"token": model.to_str_tokens([i])[0], "mean_kl": round(float(m), 4), "count": int(counts[i])}
                for i, m in zip(best.indices.tolist(), best.values.tolist())]


@torch.no_grad()
def token_kl(model_a, model_b, texts: list[str], context: int = 64, batch_size: int = 8) -> TokenKL:
    """KL(P_B || P_A) in nats at each real token of each text (cut to `context` tokens)."""
    check_same_tokenizer(model_a.tokenizer, model_b.tokenizer, (model_a.info.name, model_b.info.name))
    out = TokenKL()
    for batch, real in _batches(model_a, texts, batch_size, context):
        log_a = model_a(batch).float().log_softmax(-1).cpu()
        log_b = model_b(batch).float().log_softmax(-1).cpu()
        kl = (log_b.exp() * (log_b - log_a)).sum(-1)
        ids = batch["input_ids"].cpu()
        for row in range(ids.shape[0]):
            keep = real[row]
            out.kl.append(kl[row][keep])
            out.tokens.append(ids[row][keep])
            out.top_a.append(log_a[row][keep].argmax(-1))
            out.top_b.append(log_b[row][keep].argmax(-1))
    return out
