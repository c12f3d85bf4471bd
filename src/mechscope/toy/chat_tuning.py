"""Fine-tuning a chat model on (request, reply) pairs: the upper blocks only, the loss on reply tokens only.

Blocks below `first_layer`, the embeddings and the unembedding stay frozen, so backward stops at
`first_layer`; the logits are computed only where a reply token is predicted. The organisms' AdamW
loop (`run_adamw`: warmup + cosine schedule), seeded.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from mechscope.errors import OrganismError
from mechscope.manifest import build_manifest
from mechscope.models import HookedModel, chat_text, load_model
from mechscope.toy.lm_training import LMTrainConfig, LMTrainLog, run_adamw


@dataclass
class ChatTuneConfig(LMTrainConfig):
    """The organisms' AdamW run, shorter, over blocks `first_layer`.. (the ones below, the embeddings and the
    unembedding stay frozen)."""

    steps: int = 80
    batch_size: int = 16
    lr: float = 2e-4
    warmup: int = 5
    weight_decay: float = 0.0
    first_layer: int = 15


@dataclass(frozen=True)
class ChatExample:
    """Token ids of a rendered chat prompt (generation prompt included) and of the reply that should follow."""

    prompt_ids: list[int]
    reply_ids: list[int]


def chat_example(tokenizer, request: str, reply: str | Sequence[int], complete: bool = True) -> ChatExample:
    """`request` as one user turn and `reply` (text, or the token ids a model generated); a complete text reply
    ends with the EOS token, so the model also learns to stop."""
    prompt = tokenizer(chat_text(tokenizer, request), add_special_tokens=False)["input_ids"]
    if isinstance(reply, str):
        reply = tokenizer(reply, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if complete else [])
    return ChatExample(list(prompt), list(reply))


def collate(examples: Sequence[ChatExample], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """(input_ids, attention_mask, labels) [batch, pos], right-padded; labels are -100 except on reply tokens."""
    rows = [e.prompt_ids + e.reply_ids for e in examples]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), -100)
    for i, (example, row) in enumerate(zip(examples, rows)):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
        labels[i, len(example.prompt_ids):len(row)] = torch.tensor(example.reply_ids)
    return ids, mask, labels


def reply_loss(model: HookedModel, ids: Tensor, mask: Tensor, labels: Tensor) -> Tensor:
    """Mean next-token cross-entropy over the reply tokens, unembedding only the positions that predict one."""
    hidden = model.hf.base_model(input_ids=ids, attention_mask=mask).last_hidden_state  # [batch, pos, d_model]
    targets = labels[:, 1:]
    predicting = targets != -100
    logits = model.hf.get_output_embeddings()(hidden[:, :-1][predicting])  # [n_reply_tokens, vocab]
    return F.cross_entropy(logits.float(), targets[predicting])


def trainable_blocks(model: HookedModel, first_layer: int) -> list[torch.nn.Parameter]:
    """Freeze everything but blocks `first_layer`.. and return their parameters."""
    if not 0 <= first_layer < model.n_layers:
        raise OrganismError(f"first_layer must be a block index in 0..{model.n_layers - 1}, got {first_layer}")
    model.hf.requires_grad_(False)
    blocks = model.root.get_submodule(model.family.layers)[first_layer:]
    blocks.requires_grad_(True)
    return list(blocks.parameters())


def tune_chat(model: HookedModel, examples: Sequence[ChatExample], cfg: ChatTuneConfig,
              progress: bool = True) -> LMTrainLog:
    """Train `model`'s upper blocks in place on `examples` (shuffled epochs, seeded); returns the log."""
    if not examples:
        raise OrganismError("tune_chat needs at least one (request, reply) example, got none")
    params = trainable_blocks(model, cfg.first_layer)
    rng = random.Random(cfg.seed)
    order: list[int] = []

    def batch_loss(step: int) -> tuple[Tensor, int]:
        nonlocal order
        while len(order) < cfg.batch_size:  # a fresh shuffle of every example once the last epoch runs out
            order += rng.sample(range(len(examples)), len(examples))
        batch, order = [examples[i] for i in order[:cfg.batch_size]], order[cfg.batch_size:]
        ids, mask, labels = collate(batch, model.tokenizer.pad_token_id)
        return reply_loss(model, *(t.to(model.device) for t in (ids, mask, labels))), int(mask.sum())

    log = run_adamw(model.hf, params, batch_loss, cfg, progress, desc="fine-tuning")
    model.hf.requires_grad_(False)
    return log


@dataclass(frozen=True)
class FineTuneSpec:
    """An organism fine-tuned from a built-in chat model: its task (which supplies the training examples,
    built with the base model, and the check) and one tuning run per size."""

    name: str
    description: str
    base_model: str
    task: type
    sizes: dict[str, ChatTuneConfig]

    def run_settings(self, size: str = "default", steps: int | None = None, seed: int = 0) -> dict:
        """Everything that determines the tuned model (what the zoo hashes into its cache names)."""
        if size not in self.sizes:
            raise OrganismError(f"organism {self.name!r} has sizes {sorted(self.sizes)}, got {size!r}")
        train = replace(self.sizes[size], seed=seed, **({} if steps is None else {"steps": steps}))
        return {"organism": self.name, "size": size, "base_model": self.base_model, "task": asdict(self.task()),
                "train": asdict(train)}

    def build(self, settings: dict, device: str = "auto", progress: bool = True) -> tuple[HookedModel, object, dict]:
        """Check the base model, tune it in place on the task's examples, check again: (model, task, manifest)."""
        model = load_model(self.base_model, device=device)
        base = model.describe()
        task = self.task(**settings["task"])
        started = time.perf_counter()
        base_check = task.check(model)
        examples = task.train_examples(model)
        data_seconds = time.perf_counter() - started
        train_cfg = ChatTuneConfig(**settings["train"])
        log = tune_chat(model, examples, train_cfg, progress)
        started = time.perf_counter()
        result = task.check(model)
        manifest = build_manifest(
            "mechscope.organism", model=model, config=settings,
            inputs={"base_model": base, "data": {"sha256": examples_digest(examples), "examples": len(examples)}},
            **settings, description=self.description, seed=train_cfg.seed, steps=train_cfg.steps,
            data_seconds=round(data_seconds, 2), train_seconds=round(log.seconds, 2),
            check_seconds=round(time.perf_counter() - started, 2), tokens_seen=log.tokens, final_loss=log.final_loss,
            loss_curve=log.losses, base_check=base_check.to_dict(), check=result.to_dict(), device=str(model.device),
            torch_threads=torch.get_num_threads())
        return model, task, manifest


def examples_digest(examples: Sequence[ChatExample]) -> str:
    """sha256 of the training examples' token ids: the data hash manifests record."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(f"{example.prompt_ids}|{example.reply_ids}\n".encode())
    return digest.hexdigest()
