"""Directions from contrastive prompt sets: difference in means, PCA of paired differences, logistic probes.

Prompts go through the model's chat template when it has one (models/chat.py), left-padded so that
position -1 is every row's last prompt token; activations are read at chosen positions (negative:
counted from the end) of one hook per layer, and means are accumulated in float64. Each method
returns one vector per layer and position whose length is the contrast it found, so a coefficient of
1 means the same at every layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mechscope.errors import SteeringError
from mechscope.models.chat import chat_inputs
from mechscope.models.generation import left_pad
from mechscope.steering.vectors import DEFAULT_HOOK, SteeringVector

METHODS = ("diff_in_means", "pca", "probe")


@dataclass(frozen=True)
class DirectionConfig:
    """How `directions` reads and contrasts activations."""

    method: str = "diff_in_means"  # diff_in_means, pca (of paired differences) or probe (logistic regression)
    hook: str = DEFAULT_HOOK  # hook pattern with {layer}
    layers: tuple[int, ...] | None = None  # None: every layer
    position: int = -1  # token position the vectors are read at (negative: from the end of the prompt)
    batch_size: int = 32  # prompts per forward pass
    chat: bool = True  # wrap prompts in the chat template where the model has one

    def __post_init__(self):
        if self.method not in METHODS:
            raise SteeringError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")


def prompt_inputs(model, prompts: Sequence[str] | Sequence[Sequence[int]], chat: bool = True) -> dict[str, Tensor]:
    """input_ids, attention_mask and position_ids [batch, pos], left-padded; text is chat-formatted where the
    model's tokenizer has a chat template and `chat` is set; token id lists are used as they are."""
    if not isinstance(prompts[0], str):
        return token_inputs(prompts, getattr(model.tokenizer, "pad_token_id", None) or 0)
    if chat and getattr(model.tokenizer, "chat_template", None):
        return chat_inputs(model, list(prompts))
    batch = model.encode(list(prompts))
    ids = batch["input_ids"]
    ids, mask = left_pad(ids, batch.get("attention_mask", torch.ones_like(ids)), model.tokenizer.pad_token_id or 0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}


def token_inputs(rows: Sequence[Sequence[int]], pad_id: int = 0) -> dict[str, Tensor]:
    """Token id lists of any lengths as one left-padded batch (the prompt_inputs dict)."""
    width = max(map(len, rows))
    ids = torch.tensor([[pad_id] * (width - len(row)) + list(row) for row in rows])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    return {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}


def read_positions(model, prompts: Sequence[str], hooks: Sequence[str], positions: Sequence[int] = (-1,),
                   batch_size: int = 32, chat: bool = True, progress: bool = False) -> Tensor:
    """Activations [n_prompts, n_positions, n_hooks, d] (float32, CPU) at `positions` from each prompt's end."""
    if not prompts:
        raise SteeringError("expected at least one prompt, got none")
    shortest = min(positions)
    rows = []
    starts = range(0, len(prompts), batch_size)
    for start in tqdm(starts, desc="reading activations", disable=not progress):
        inputs = prompt_inputs(model, prompts[start:start + batch_size], chat)
        if -shortest > int(inputs["attention_mask"].sum(1).min()):
            raise SteeringError(f"position {shortest} lies before the start of a prompt in this batch")
        _, cache = model.run_with_cache(inputs, names=list(hooks), stop_at_layer="auto")
        picked = torch.stack([cache[hook][:, list(positions)] for hook in hooks], dim=2)
        rows.append(picked.float().cpu())
    return torch.cat(rows)


@dataclass
class Contrast:
    """Activations of two prompt sets at the same hooks and positions, and their float64 means."""

    positive: Tensor  # [n_positive, n_positions, n_layers, d]
    negative: Tensor  # [n_negative, n_positions, n_layers, d]
    layers: list[int]
    positions: list[int]
    hook: str = DEFAULT_HOOK
    metrics: dict = field(default_factory=dict)

    @property
    def positive_mean(self) -> Tensor:  # [n_positions, n_layers, d] float64
        return self.positive.double().sum(0) / len(self.positive)

    @property
    def negative_mean(self) -> Tensor:
        return self.negative.double().sum(0) / len(self.negative)

    def diff_in_means(self) -> Tensor:
        """Mean positive minus mean negative activation, [n_positions, n_layers, d] float64."""
        return self.positive_mean - self.negative_mean


def contrast(model, positive: Sequence[str], negative: Sequence[str], layers: Sequence[int] | None = None,
             hook: str = DEFAULT_HOOK, positions: Sequence[int] = (-1,), batch_size: int = 32, chat: bool = True,
             progress: bool = False) -> Contrast:
    """Read both prompt sets at `hook` of each layer and each position."""
    layers = list(range(model.n_layers)) if layers is None else list(layers)
    hooks = [hook.format(layer=layer) for layer in layers]
    for name in hooks:
        model.point(name)
    read = [read_positions(model, prompts, hooks, positions, batch_size, chat, progress)
            for prompts in (positive, negative)]
    return Contrast(*read, layers=layers, positions=list(positions), hook=hook)


def pca_of_differences(positive: Tensor, negative: Tensor) -> Tensor:
    """First principal component [d] of paired differences [n, d] (centred, float64), pointing along their mean
    and as long as the mean difference's projection on it."""
    if positive.shape != negative.shape:
        raise SteeringError(f"PCA of differences needs paired prompts: got {len(positive)} positive and "
                            f"{len(negative)} negative")
    diffs = (positive - negative).double()
    mean = diffs.mean(0)
    component = torch.linalg.svd(diffs - mean, full_matrices=False).Vh[0]
    component = component if mean @ component >= 0 else -component
    return component * (mean @ component)


@dataclass
class LinearProbe:
    """An L2-regularised logistic regression on raw activations: P(positive) = sigmoid(x @ weight + bias)."""

    weight: Tensor  # [d] float64
    bias: float
    train_accuracy: float

    def accuracy(self, positive: Tensor, negative: Tensor) -> float:
        """Share of [n, d] positive and negative activations it classifies correctly."""
        scores = torch.cat([positive, negative]).double() @ self.weight + self.bias
        truth = torch.cat([torch.ones(len(positive)), torch.zeros(len(negative))]).bool()
        return float(((scores > 0) == truth).double().mean())


def fit_probe(positive: Tensor, negative: Tensor, l2: float = 1e-3, steps: int = 100) -> LinearProbe:
    """Logistic regression separating [n, d] positive from negative activations (standardised features, LBFGS,
    float64), returned as the same classifier on raw activations."""
    x = torch.cat([positive, negative]).double()
    y = torch.cat([torch.ones(len(positive)), torch.zeros(len(negative))]).double()
    mu, sigma = x.mean(0), x.std(0).clamp(min=1e-8)
    z = (x - mu) / sigma
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def loss():
        optimizer.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * w.pow(2).sum()
        value.backward()
        return value
    with torch.enable_grad():
        optimizer.step(loss)
    weight = (w / sigma).detach()
    accuracy = float((((z @ w + b) > 0).double() == y).double().mean())
    return LinearProbe(weight, float(b.detach() - mu @ weight), accuracy)


def probe_direction(positive: Tensor, negative: Tensor, l2: float = 1e-3, steps: int = 100) -> tuple[Tensor, float]:
    """Weight direction of `fit_probe`'s classifier, scaled like `pca_of_differences`; with train accuracy."""
    probe = fit_probe(positive, negative, l2, steps)
    unit = probe.weight / probe.weight.norm()
    gap = positive.double().mean(0) - negative.double().mean(0)
    return unit * (gap @ unit), probe.train_accuracy


def directions(model, positive: Sequence[str], negative: Sequence[str],
               config: DirectionConfig = DirectionConfig(), progress: bool = False) -> SteeringVector:
    """A SteeringVector with one direction per layer from `positive` against `negative` prompts."""
    read = contrast(model, positive, negative, config.layers, config.hook, (config.position,), config.batch_size,
                    config.chat, progress)
    vectors, metrics = {}, {}
    for index, layer in enumerate(read.layers):
        pos, neg = read.positive[:, 0, index], read.negative[:, 0, index]
        if config.method == "diff_in_means":
            vectors[layer] = read.diff_in_means()[0, index]
        elif config.method == "pca":
            vectors[layer] = pca_of_differences(pos, neg)
        else:
            vectors[layer], accuracy = probe_direction(pos, neg)
            metrics.setdefault("probe_train_accuracy", {})[layer] = accuracy
    separation = {layer: _separation(read.positive[:, 0, i], read.negative[:, 0, i], vectors[layer])
                  for i, layer in enumerate(read.layers)}
    return SteeringVector(vectors, hook=config.hook, method=config.method, model=model.describe(),
                          positions=[config.position],
                          metrics={**metrics, "separation": separation, "n_positive": len(positive),
                                   "n_negative": len(negative)})


def _separation(positive: Tensor, negative: Tensor, vector: Tensor) -> float:
    """Accuracy of the midpoint threshold on the projection on `vector`: how well the direction splits the sets."""
    unit = (vector / vector.norm()).float()
    up, down = positive.float() @ unit, negative.float() @ unit
    midpoint = (up.mean() + down.mean()) / 2
    return float(torch.cat([up > midpoint, down <= midpoint]).float().mean())
