"""Inference-time intervention (Li et al. 2023, "Inference-Time Intervention: Eliciting Truthful Answers from a
Language Model").

A logistic probe per attention head reads the head's output before the output projection (hook_z, the
paper's "after Att, before Q") at the last prompt token of true and false statements; the K heads with
the best held-out probe accuracy are shifted by alpha x (std of the activations along the direction) x
the unit direction (the probe's weight, or the paper's mass-mean shift: true mean minus false mean) at
every position. Because the shift is a constant in z, it folds into the output projection's bias as
W_O @ shift — where the family has such a bias. The reference code (likenneth/honest_llama,
validation/edit_weight.py) writes the z-space shift itself into o_proj.bias, leaving out W_O (the
projection it needed is commented out) and replacing any bias there was; `bake_iti` maps the shift
through W_O and adds it. Llama-family models have no o_proj bias: `bake_iti` refuses them and the hooks
(`ITI.interventions`) apply the same shift.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.data.shard_format import write_safetensors
from mechscope.errors import SteeringError
from mechscope.manifest import build_manifest, write_manifest
from mechscope.models.loading import wrap
from mechscope.steering.directions import fit_probe, prompt_inputs, read_positions
from mechscope.steering.interventions import Intervention, steer
from mechscope.steering.targets import Direction
from mechscope.steering.vectors import read_artefact

Z_HOOK = "blocks.{layer}.attn.hook_z"
FORMAT, TENSORS = "mechscope.iti", "iti.safetensors"
DIRECTIONS = ("probe", "mass_mean")


@dataclass(frozen=True)
class ITIConfig:
    """Which heads ITI shifts, along what, and by how much (the paper's K=48 of 1024 heads is ~5%)."""

    top_k: int = 16  # heads shifted, by held-out probe accuracy
    alpha: float = 15.0  # shift in standard deviations of the activations along each head's direction
    direction: str = "mass_mean"  # mass_mean (the paper's best) or probe (the probe's weight)
    val_fraction: float = 0.2  # held-out share of each side when no validation prompts are given
    position: int = -1  # token read (negative: from the end of the prompt)
    batch_size: int = 32
    chat: bool = False  # wrap text prompts in the chat template (statements are read as plain text by default)
    seed: int = 0

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise SteeringError(f"direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if self.top_k < 1:
            raise SteeringError(f"top_k must be at least 1, got {self.top_k}")


@dataclass
class HeadShift:
    """One selected head: its held-out probe accuracy, unit direction [d_head] and activation std along it."""

    layer: int
    head: int
    accuracy: float
    std: float
    direction: Tensor  # [d_head], unit, pointing from false to true

    def shift(self, alpha: float) -> Tensor:
        """alpha x std x direction [d_head]: what is added to the head's z."""
        return alpha * self.std * self.direction


@dataclass
class ITI:
    """The selected heads, every head's held-out probe accuracy [n_layers, n_heads], and the default alpha."""

    heads: list[HeadShift]
    accuracy: Tensor = field(repr=False)
    alpha: float = 15.0
    model: dict = field(default_factory=dict)  # HookedModel.describe() of the model probed

    def save(self, directory: str | Path) -> Path:
        """iti.safetensors (`direction.{layer}.{head}`, the accuracy table) and manifest.json into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"direction.{h.layer}.{h.head}": h.direction.contiguous() for h in self.heads}
        digest = write_safetensors(directory / TENSORS, {**tensors, "accuracy": self.accuracy.contiguous()})
        heads = [{k: v for k, v in asdict(h).items() if k != "direction"} for h in self.heads]
        write_manifest(directory, build_manifest(FORMAT, model=self.model, alpha=self.alpha, heads=heads,
                                                 files={TENSORS: digest}))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ITI:
        """An ITI written by `save`, or an error saying what the directory lacks."""
        manifest, tensors = read_artefact(directory, TENSORS, FORMAT, "ITI heads", "ITI.save")
        heads = [HeadShift(**h, direction=tensors[f"direction.{h['layer']}.{h['head']}"]) for h in manifest["heads"]]
        return cls(heads, tensors["accuracy"], manifest["alpha"], manifest["model"] or {})

    def interventions(self, alpha: float | None = None) -> list[Intervention]:
        """The shifts as hook interventions on hook_z, at every position."""
        alpha = self.alpha if alpha is None else alpha
        return [Intervention(Z_HOOK.format(layer=h.layer), Direction(h.std * h.direction, h.head), "add", alpha)
                for h in self.heads]

    def z_shifts(self, alpha: float | None = None) -> dict[int, Tensor]:
        """layer -> the shift of every head's z concatenated [n_heads * d_head] (zero for unselected heads)."""
        alpha = self.alpha if alpha is None else alpha
        shifts: dict[int, Tensor] = {}
        for h in self.heads:
            row = shifts.setdefault(h.layer, torch.zeros(self.accuracy.shape[1], len(h.direction),
                                                         dtype=torch.float64))
            row[h.head] = h.shift(alpha).double()
        return {layer: row.flatten() for layer, row in shifts.items()}


def head_activations(model, prompts: Sequence, layers: Sequence[int], position: int = -1, batch_size: int = 32,
                     chat: bool = True) -> Tensor:
    """hook_z at `position` of each prompt, [n_prompts, n_layers, n_heads, d_head] (float32, CPU)."""
    hooks = [Z_HOOK.format(layer=layer) for layer in layers]
    return read_positions(model, prompts, hooks, (position,), batch_size, chat)[:, 0]


def _split(acts: Tensor, fraction: float, seed: str) -> tuple[Tensor, Tensor]:
    order = list(range(len(acts)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(fraction * len(acts)))
    if n_val >= len(acts):
        raise SteeringError(f"ITI needs more than {n_val} prompts per side to hold some out, got {len(acts)}")
    return acts[order[n_val:]], acts[order[:n_val]]


def fit_iti(model, true: Sequence, false: Sequence, config: ITIConfig = ITIConfig(), val_true: Sequence | None = None,
            val_false: Sequence | None = None, progress: bool = False) -> ITI:
    """Probe every head on `true` against `false` prompts (text or token ids), rank heads by accuracy on the
    validation prompts (or a seeded `val_fraction` of each side), and keep the top K with their shifts."""
    layers = list(range(model.n_layers))
    read = [head_activations(model, prompts, layers, config.position, config.batch_size, config.chat)
            for prompts in (true, false)]
    if val_true is None or val_false is None:
        (train_t, held_t), (train_f, held_f) = (_split(acts, config.val_fraction, f"iti-{config.seed}-{side}")
                                                for acts, side in zip(read, ("true", "false")))
    else:
        train_t, train_f = read
        held_t, held_f = (head_activations(model, prompts, layers, config.position, config.batch_size, config.chat)
                          for prompts in (val_true, val_false))
    n_heads = read[0].shape[2]
    accuracy = torch.zeros(len(layers), n_heads, dtype=torch.float64)
    directions: dict[tuple[int, int], Tensor] = {}
    cells = [(layer, head) for layer in layers for head in range(n_heads)]
    for layer, head in tqdm(cells, desc="probing heads", disable=not progress):
        pos, neg = train_t[:, layer, head], train_f[:, layer, head]
        probe = fit_probe(pos, neg)
        accuracy[layer, head] = probe.accuracy(held_t[:, layer, head], held_f[:, layer, head])
        vector = probe.weight if config.direction == "probe" else pos.double().mean(0) - neg.double().mean(0)
        directions[layer, head] = vector / vector.norm().clamp(min=1e-12)
    if config.top_k > len(cells):
        raise SteeringError(f"top_k={config.top_k} exceeds the model's {len(cells)} heads")
    ranked = sorted(cells, key=lambda cell: -float(accuracy[cell]))[:config.top_k]
    heads = []
    for layer, head in ranked:
        unit = directions[layer, head]
        every = torch.cat([train_t[:, layer, head], train_f[:, layer, head]]).double()
        heads.append(HeadShift(layer, head, float(accuracy[layer, head]), float((every @ unit).std()),
                               unit.float()))
    return ITI(heads, accuracy, config.alpha, model.describe())


def bake_iti(model, iti: ITI, alpha: float | None = None):
    """A HookedModel over a copy of `model` whose attention output biases hold the ITI shifts (W_O @ shift added
    to the bias), computing what `iti.interventions(alpha)` computes with no hooks."""
    root_name = next(name for name, module in model.hf.named_modules() if module is model.root)
    hf = copy.deepcopy(model.hf)
    root = hf.get_submodule(root_name) if root_name else hf
    for layer, shift in iti.z_shifts(alpha).items():
        out_proj = root.get_submodule(f"{model.family.layers}.{layer}.{model.family.out_proj}")
        if getattr(out_proj, "bias", None) is None:
            raise SteeringError(f"{model.info.name} ({model.family.name}) has no bias on its attention output "
                                f"projection ({model.family.out_proj}) to fold ITI into; apply it with hooks "
                                "(ITI.interventions) instead")
        weight, shift = out_proj.weight.data.double(), shift.to(out_proj.weight.device)
        moved = weight @ shift if isinstance(out_proj, nn.Linear) else shift @ weight  # Conv1D stores [in, out]
        out_proj.bias.data += moved.to(out_proj.bias.dtype)
    return wrap(hf, model.tokenizer, name=f"{model.info.name} (ITI)", check=False)


def truth_margin(model, true: Sequence[str], false: Sequence[str], edits: Sequence[Intervention] = (),
                 batch_size: int = 32) -> float:
    """Mean log P(true answer's first token) - log P(false answer's first token) after the prompt two paired
    statements share ("The capital of France is" + " Paris." / " Berlin."), with `edits` active: what ITI should
    widen."""
    prompts, right, wrong = [], [], []
    for statement, other in zip(true, false):
        shared = os.path.commonprefix([statement, other])
        stem = shared[:shared.rindex(" ")]  # the answers start after the last space the two share
        prompts.append(stem)
        right.append(model.tokenizer(statement[len(stem):], add_special_tokens=False)["input_ids"][0])
        wrong.append(model.tokenizer(other[len(stem):], add_special_tokens=False)["input_ids"][0])
    margins = []
    with steer(model, edits), torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            logp = model(prompt_inputs(model, prompts[start:start + batch_size], chat=False))[:, -1]
            logp = logp.double().log_softmax(-1)
            rows = torch.arange(len(logp))
            margins.append(logp[rows, right[start:start + batch_size]] - logp[rows, wrong[start:start + batch_size]])
    return float(torch.cat(margins).mean())
