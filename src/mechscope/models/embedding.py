"""Sentence embeddings from the MiniLM that ships offline: what the auto-interp embedding scorer, persona and concept
judges and family scans compare."""

from __future__ import annotations

import numpy as np
import torch


class SentenceEmbedder:
    """Mean-pooled, unit-normalised all-MiniLM-L6-v2 embeddings (what sentence-transformers computes)."""

    def __init__(self, model=None, batch_size: int = 64, max_length: int = 256):
        from mechscope.models.loading import load_model

        self.model = model if model is not None else load_model("minilm", device="cpu")
        self.batch_size = batch_size
        self.max_length = max_length

    @torch.no_grad()
    def embed(self, texts: list[str]) -> np.ndarray:
        """[len(texts), d] unit vectors."""
        tokenizer, hf = self.model.tokenizer, self.model.hf
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                              max_length=self.max_length, return_tensors="pt").to(self.model.device)
            hidden = self.model(batch)  # [batch, pos, d]: HookedModel's forward, under its lock
            weights = batch["attention_mask"][..., None].to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1)
            out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, hf.config.hidden_size), np.float32)
