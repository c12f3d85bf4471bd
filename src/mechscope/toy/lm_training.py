"""A small causal-LM trainer (nanoGPT-style): Llama architecture, AdamW, warmup + cosine, one loop.

Documents come from a callable that returns `batch_size` texts per step; the model is an ordinary
`LlamaForCausalLM` (rotary positions make previous-token heads easy to learn), so `save_lm` writes a
directory that `load_model` and `from_pretrained` open as is.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm


@dataclass
class LMConfig:
    """Llama shape: `d_mlp` is the gated MLP's width (HF's intermediate_size), `n_ctx` the longest sequence."""

    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 128
    n_ctx: int = 128


@dataclass
class LMTrainConfig:
    """AdamW (betas 0.9, 0.95), linear warmup, then cosine decay to a tenth of `lr`; gradients clipped."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    log_points: int = 20  # losses recorded for the manifest, evenly spaced over the run


@dataclass
class LMTrainLog:
    """What a run leaves behind: loss curve (step, loss), wall time, tokens seen."""

    losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0

    @property
    def final_loss(self) -> float:
        return self.losses[-1][1]


def build_lm(cfg: LMConfig, tokenizer, seed: int = 0):
    """A freshly initialised LlamaForCausalLM over `tokenizer`'s vocabulary, with tied embeddings."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.d_model, intermediate_size=cfg.d_mlp,
                         num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                         num_key_value_heads=cfg.n_heads, max_position_embeddings=cfg.n_ctx,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def encode_documents(tokenizer, texts: list[str]) -> tuple[Tensor, Tensor, Tensor]:
    """(input_ids, attention_mask, labels) [batch, pos]: <bos> text <eos>, right-padded, padding unlabelled."""
    rows = [ids + [tokenizer.eos_token_id] for ids in tokenizer(texts)["input_ids"]]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return ids, mask, ids.masked_fill(mask == 0, -100)


def learning_rate(step: int, cfg) -> float:
    """Linear warmup over `cfg.warmup` steps, then cosine decay from `cfg.lr` to a tenth of it at `cfg.steps`."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def run_adamw(model, params: list[torch.nn.Parameter], batch_loss: Callable[[int], tuple[Tensor, int]],
              cfg: LMTrainConfig, progress: bool = True, desc: str = "training") -> LMTrainLog:
    """`cfg.steps` AdamW steps on `params` (the one loop every trainer here runs); `batch_loss(step)` returns the
    step's loss and how many tokens its batch held."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    log_every = max(1, cfg.steps // cfg.log_points)
    log, started = LMTrainLog(), time.perf_counter()
    model.train()
    bar = tqdm(range(cfg.steps), desc=desc, disable=not progress, mininterval=1.0)
    for step in bar:
        loss, tokens = batch_loss(step)
        log.tokens += tokens
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)
        optimizer.step()
        if step % log_every == 0 or step == cfg.steps - 1:
            log.losses.append((step, loss.item()))
            bar.set_postfix(loss=f"{log.losses[-1][1]:.3f}")
    model.eval()
    log.seconds = time.perf_counter() - started
    return log


def train_lm(model, tokenizer, documents: Callable[[random.Random, int], list[str]], cfg: LMTrainConfig,
             progress: bool = True) -> LMTrainLog:
    """Train `model` in place on `documents(rng, batch_size)` for `cfg.steps` steps; returns the log."""
    rng = random.Random(cfg.seed)

    def batch_loss(step: int) -> tuple[Tensor, int]:
        ids, mask, labels = encode_documents(tokenizer, documents(rng, cfg.batch_size))
        tokens = int(mask.sum())  # counted on the CPU: on a GPU this would wait for the device every step
        ids, mask, labels = (t.to(model.device) for t in (ids, mask, labels))
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss, tokens

    return run_adamw(model, list(model.parameters()), batch_loss, cfg, progress)


def save_lm(model, tokenizer, out: Path) -> None:
    """config.json, model.safetensors and the tokenizer files: an ordinary HF model directory."""
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
