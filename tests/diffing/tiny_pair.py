"""A tiny organism pair built in seconds: A learns to count in number words and cannot tell colour words apart
(every colour embeds as <unk>); B is A fine-tuned on a mix that adds a second task, cycling through colour
words, by learning the colour embeddings alone; A2 is A's recipe from another seed."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass

import torch

from mechscope.models import wrap
from mechscope.toy.lm_training import LMConfig, LMTrainConfig, build_lm, encode_documents, run_adamw, train_lm
from mechscope.toy.word_tokenizer import word_tokenizer

NUMBERS = "one two three four five six seven eight nine ten".split()
COLOURS = "red orange yellow green blue indigo violet pink".split()
HOOK = "blocks.0.hook_resid_post"


def cycle_text(words: list[str], rng: random.Random, length: int = 10) -> str:
    start = rng.randrange(len(words))
    return " ".join(words[(start + i) % len(words)] for i in range(length))


def old_task(rng: random.Random, n: int) -> list[str]:
    return [cycle_text(NUMBERS, rng) for _ in range(n)]


def mixed_task(rng: random.Random, n: int) -> list[str]:
    return [cycle_text(COLOURS if rng.random() < 0.5 else NUMBERS, rng) for _ in range(n)]


def corpus(n: int = 1000, seed: int = 123) -> list[str]:
    """Documents of both tasks, alternating, for harvests."""
    rng = random.Random(seed)
    return [cycle_text(COLOURS if i % 2 else NUMBERS, rng) for i in range(n)]


def learn_colours(model, tokenizer, colours: torch.Tensor, cfg: LMTrainConfig) -> None:
    """Fine-tune on the mixed task, updating only the colour rows of the (tied) embedding."""
    embed = model.get_input_embeddings().weight
    keep = torch.zeros(embed.shape[0], 1)
    keep[colours] = 1.0
    embed.register_hook(lambda grad: grad * keep)
    rng = random.Random(cfg.seed)

    def batch_loss(step: int):
        ids, mask, labels = encode_documents(tokenizer, mixed_task(rng, cfg.batch_size))
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss, int(mask.sum())

    run_adamw(model, [embed], batch_loss, cfg, progress=False)


@dataclass
class TinyPair:
    a: object  # HookedModel
    b: object
    a_other_seed: object
    tokenizer: object


def build_tiny_pair(steps: int = 120) -> TinyPair:
    tokenizer = word_tokenizer(NUMBERS + COLOURS)
    shape = LMConfig(n_layers=1, d_model=32, n_heads=2, d_mlp=64, n_ctx=32)
    models = []
    for seed in (0, 1):
        hf = build_lm(shape, tokenizer, seed)
        train_lm(hf, tokenizer, old_task, LMTrainConfig(steps=steps, batch_size=32, lr=3e-3, warmup=20, seed=seed),
                 progress=False)
        models.append(hf)
    colours = torch.tensor(tokenizer.convert_tokens_to_ids(COLOURS))
    with torch.no_grad():  # A never learned colours: each embeds (and unembeds) as <unk> does
        embed = models[0].get_input_embeddings().weight
        embed[colours] = embed[tokenizer.unk_token_id].clone()
    tuned = copy.deepcopy(models[0])
    learn_colours(tuned, tokenizer, colours,
                  LMTrainConfig(steps=steps, batch_size=32, lr=1e-2, warmup=20, weight_decay=0.0, seed=2))
    a, a2, b = (wrap(m, tokenizer, name=n, check=False) for m, n in ((models[0], "tiny-A"), (models[1], "tiny-A2"),
                                                                    (tuned, "tiny-B")))
    return TinyPair(a, b, a2, tokenizer)
