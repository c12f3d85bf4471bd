"""The refusal direction (Arditi et al. 2024, "Refusal in language models is mediated by a single direction").

Candidates are differences in means between harmful and harmless instructions at every layer's block
input (hook_resid_pre) and every post-instruction position (the chat template's tokens after the
instruction). Each is scored on validation prompts with the paper's refusal score, the log-odds of the
refusal tokens at the first answer position computed in float64: ablating it should lower the score on
harmful prompts; adding it should raise the score on harmless ones (kept only above
`induce_refusal_threshold`); ablating it should move harmless next-token distributions by a KL below
`kl_threshold`; and it must not come from the last `prune_layer_fraction` of layers. The kept candidate
with the lowest ablated score wins; the whole scored table is returned with it.

Ablation is the paper's directional ablation (the direction projected out of every block input and
every attention and MLP output), or the affine ablation of Marshall et al. 2024 ("Refusal in LLMs: an
affine function"): the projection at the source layer set to the harmless mean's, for models whose
harmless activations do not sit at zero along the direction.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mechscope.errors import SteeringError
from mechscope.models.chat import chat_text
from mechscope.steering.directions import contrast, prompt_inputs
from mechscope.steering.interventions import Intervention, directional_ablation, steer
from mechscope.steering.targets import Direction
from mechscope.steering.vectors import DEFAULT_HOOK, SteeringVector
from mechscope.tasks.refusal import REFUSAL_OPENERS

ABLATIONS = ("directional", "affine")
PLACEHOLDER = "mechscope-instruction"


@dataclass(frozen=True)
class RefusalConfig:
    """Selection criteria of Arditi et al. 2024 (their defaults) and how candidates are read and ablated."""

    kl_threshold: float = 0.1  # drop candidates whose ablation moves harmless next-token distributions more (nats)
    induce_refusal_threshold: float = 0.0  # drop candidates whose addition leaves the harmless refusal score below
    prune_layer_fraction: float = 0.2  # drop candidates from the last fraction of layers
    ablation: str = "directional"  # directional (Arditi et al.) or affine (Marshall et al. 2024)
    positions: int | None = None  # post-instruction positions; None: the chat template's tokens after the instruction
    layers: tuple[int, ...] | None = None  # candidate layers; None: every layer (pruned ones are listed, not scored)
    batch_size: int = 32  # prompts per forward pass

    def __post_init__(self):
        if self.ablation not in ABLATIONS:
            raise SteeringError(f"ablation must be one of {', '.join(ABLATIONS)}, got {self.ablation!r}")


def refusal_score(logits: Tensor, refusal_ids: Sequence[int], epsilon: float = 1e-8) -> Tensor:
    """log P(refusal) - log P(not refusal) [batch] (float64) from next-token logits [batch, vocab], where
    P(refusal) is the total probability of `refusal_ids` (Arditi et al. 2024)."""
    probs = logits.double().softmax(-1)
    refusing = probs[:, list(refusal_ids)].sum(-1)
    return torch.log(refusing + epsilon) - torch.log(1 - refusing + epsilon)


def refusal_token_ids(tokenizer, openers: Sequence[str] = REFUSAL_OPENERS) -> list[int]:
    """The first token of each refusal opener ("I", "Sorry") as the start of an answer."""
    return sorted({tokenizer(opener, add_special_tokens=False)["input_ids"][0] for opener in openers})


def post_instruction_positions(tokenizer) -> int:
    """How many tokens the chat template puts after the user's instruction (where the model decides to refuse)."""
    if not getattr(tokenizer, "chat_template", None):
        raise SteeringError("the model has no chat template; give RefusalConfig(positions=...) explicitly")
    text = chat_text(tokenizer, PLACEHOLDER)
    suffix = text[text.index(PLACEHOLDER) + len(PLACEHOLDER):]
    return max(1, len(tokenizer(suffix, add_special_tokens=False)["input_ids"]))


def next_token_logits(model, prompts: Sequence[str], interventions: Sequence[Intervention] = (),
                      batch_size: int = 32) -> Tensor:
    """Logits [n_prompts, vocab] (float32, CPU) after each chat-formatted prompt, with `interventions` active."""
    rows = []
    with steer(model, interventions), torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            rows.append(model(prompt_inputs(model, prompts[start:start + batch_size]))[:, -1].float().cpu())
    return torch.cat(rows)


def kl_divergence(reference: Tensor, logits: Tensor) -> Tensor:
    """KL(reference || logits) per row, float64."""
    log_p, log_q = reference.double().log_softmax(-1), logits.double().log_softmax(-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


@dataclass
class RefusalDirection:
    """The selected candidate as a one-layer SteeringVector, and the scored table of every candidate."""

    vector: SteeringVector
    layer: int
    position: int
    harmless_projection: float  # mean harmless projection on the unit direction there (the affine reference)
    ablation: str
    table: list[dict] = field(repr=False)
    baseline: dict = field(default_factory=dict)

    def ablate(self, model) -> list[Intervention]:
        """The interventions that remove the direction (directional or affine, as it was selected with)."""
        return ablation_interventions(model, self.vector.direction(self.layer), self.vector.hook_name(self.layer),
                                      self.ablation, self.harmless_projection)

    def add(self, coefficient: float = 1.0) -> list[Intervention]:
        """Add `coefficient` x the difference in means at its source layer, at every position (the paper's actadd)."""
        return [Intervention(self.vector.hook_name(self.layer), Direction(self.vector.direction(self.layer)), "add",
                             coefficient)]


def ablation_interventions(model, vector: Tensor, hook: str, how: str,
                           harmless_projection: float) -> list[Intervention]:
    """Directional ablation everywhere, or the affine one at `hook`: projection set to `harmless_projection`."""
    if how == "directional":
        return directional_ablation(model, vector)
    return [Intervention(hook, Direction(vector), "clamp", harmless_projection / float(vector.norm()))]


@dataclass
class RefusalCandidates:
    """Every (post-instruction position, layer) candidate's difference in means and its scores, before selection."""

    vectors: Tensor = field(repr=False)  # [n_positions, n_layers, d_model] float64
    harmless_means: Tensor = field(repr=False)  # [n_positions, n_layers, d_model] float64
    positions: list[int]
    layers: list[int]
    table: list[dict] = field(repr=False)  # one row per candidate: position, layer, norm, scores, harmless projection
    baseline: dict
    hook: str = DEFAULT_HOOK
    ablation: str = "directional"

    def affine_ablation(self, layers: Sequence[int], position: int = -1) -> list[Intervention]:
        """Affine ablation (Marshall et al. 2024) at several layers at once, each along its own candidate at
        `position`: the projection set to the harmless mean's there. For a refusal written over several late
        layers, where one direction's ablation leaves some of it."""
        edits = []
        for layer in layers:
            if layer not in self.layers or position not in self.positions:
                raise SteeringError(f"no candidate at layer {layer}, position {position}; scanned layers "
                                    f"{self.layers}, positions {self.positions}")
            i, j = self.positions.index(position), self.layers.index(layer)
            vector = self.vectors[i, j].float()
            edits += ablation_interventions(None, vector, self.hook.format(layer=layer), "affine",
                                            float(self.harmless_means[i, j].float() @ (vector / vector.norm())))
        return edits

    def select(self, model, config: RefusalConfig = RefusalConfig()) -> RefusalDirection:
        """The kept candidate with the lowest ablated refusal score under `config`'s criteria (no rescoring); every
        row carries its drop reason."""
        table = [{**row, "dropped": drop_reason(row, model.n_layers, config)} for row in self.table]
        kept = [row for row in table if row["dropped"] is None]
        if not kept:
            reasons = sorted({row["dropped"] for row in table})
            raise NoRefusalCandidate(f"every refusal candidate was dropped ({'; '.join(reasons)}); loosen "
                                     "RefusalConfig (kl_threshold, induce_refusal_threshold, prune_layer_fraction) or "
                                     "try ablation='affine'; the scored table is the error's .table", table,
                                     self.baseline)
        best = min(kept, key=lambda row: row["refusal_score"])
        vector = self.vectors[self.positions.index(best["position"]), self.layers.index(best["layer"])]
        steering = SteeringVector({best["layer"]: vector}, hook=self.hook, method="refusal_direction",
                                  model=model.describe(), positions=[best["position"]],
                                  metrics={"selected": best, "baseline": self.baseline, "candidates": table,
                                           "config": asdict(config)},
                                  metadata={"harmless_projection": best["harmless_projection"],
                                            "ablation": self.ablation})
        return RefusalDirection(steering, best["layer"], best["position"], best["harmless_projection"],
                                self.ablation, table, self.baseline)


def score_refusal_candidates(model, harmful_train: Sequence[str], harmless_train: Sequence[str],
                             harmful_val: Sequence[str], harmless_val: Sequence[str],
                             refusal_ids: Sequence[int] | None = None, config: RefusalConfig = RefusalConfig(),
                             hook: str = DEFAULT_HOOK, progress: bool = False) -> RefusalCandidates:
    """Score every (post-instruction position, layer) candidate on the validation prompts (candidates in the pruned
    last layers are listed, unscored)."""
    refusal_ids = refusal_token_ids(model.tokenizer) if refusal_ids is None else list(refusal_ids)
    n_positions = config.positions or post_instruction_positions(model.tokenizer)
    positions = list(range(-n_positions, 0))
    read = contrast(model, harmful_train, harmless_train, config.layers, hook=hook, positions=positions,
                    batch_size=config.batch_size, progress=progress)
    candidates, harmless_mean = read.diff_in_means(), read.negative_mean  # [n_pos, n_layers, d] float64

    def run(prompts: Sequence[str], edits: Sequence[Intervention] = ()) -> Tensor:
        return next_token_logits(model, prompts, edits, config.batch_size)
    harmless_logits = run(harmless_val)
    baseline = {"harmful_refusal_score": float(refusal_score(run(harmful_val), refusal_ids).mean()),
                "harmless_refusal_score": float(refusal_score(harmless_logits, refusal_ids).mean())}
    cutoff = int(model.n_layers * (1 - config.prune_layer_fraction))
    table = []
    cells = [(i, j) for i in range(len(positions)) for j in range(len(read.layers))]
    for i, j in tqdm(cells, desc="scoring refusal candidates", disable=not progress):
        layer, vector = read.layers[j], candidates[i, j].float()
        row = {"position": positions[i], "layer": layer, "norm": float(vector.norm()), "refusal_score": float("nan"),
               "steering_score": float("nan"), "kl": float("nan")}
        if row["norm"] > 0 and layer < cutoff:  # a pruned candidate is dropped whatever it scores
            unit = vector / vector.norm()
            reference = float(harmless_mean[i, j].float() @ unit)
            ablation = ablation_interventions(model, vector, hook.format(layer=layer), config.ablation, reference)
            row["kl"] = float(kl_divergence(harmless_logits, run(harmless_val, ablation)).mean())
            row["refusal_score"] = float(refusal_score(run(harmful_val, ablation), refusal_ids).mean())
            addition = [Intervention(hook.format(layer=layer), Direction(vector), "add", 1.0)]
            row["steering_score"] = float(refusal_score(run(harmless_val, addition), refusal_ids).mean())
            row["harmless_projection"] = reference
        table.append(row)
    return RefusalCandidates(candidates, harmless_mean, positions, read.layers, table, baseline, hook,
                             config.ablation)


def select_refusal_direction(model, harmful_train: Sequence[str], harmless_train: Sequence[str],
                             harmful_val: Sequence[str], harmless_val: Sequence[str],
                             refusal_ids: Sequence[int] | None = None, config: RefusalConfig = RefusalConfig(),
                             hook: str = DEFAULT_HOOK, progress: bool = False) -> RefusalDirection:
    """Score every (post-instruction position, layer) candidate and return the selected one with the table
    (candidates in the pruned last layers are listed with the reason, unscored)."""
    return score_refusal_candidates(model, harmful_train, harmless_train, harmful_val, harmless_val, refusal_ids,
                                    config, hook, progress).select(model, config)


class NoRefusalCandidate(SteeringError):
    """Every candidate failed the selection criteria; `table` holds them all, scored, with the reasons."""

    def __init__(self, message: str, table: list[dict], baseline: dict):
        super().__init__(message)
        self.table, self.baseline = table, baseline


def drop_reason(row: dict, n_layers: int, config: RefusalConfig) -> str | None:
    """Why a scored candidate (a table row) fails `config`'s selection criteria, or None when it passes."""
    if row["layer"] >= int(n_layers * (1 - config.prune_layer_fraction)):
        return f"in the last {config.prune_layer_fraction:.0%} of layers"
    if row["norm"] == 0 or any(row[key] != row[key] for key in ("refusal_score", "steering_score", "kl")):
        return "no contrast at this position and layer"
    if row["kl"] > config.kl_threshold:
        return f"harmless KL above {config.kl_threshold}"
    if row["steering_score"] < config.induce_refusal_threshold:
        return f"addition does not induce refusal (score below {config.induce_refusal_threshold})"
    return None


def load_refusal_direction(vector: SteeringVector) -> RefusalDirection:
    """The RefusalDirection a saved refusal vector holds (its table and selection are in its metrics)."""
    if vector.method != "refusal_direction":
        raise SteeringError(f"expected a vector made by select_refusal_direction, got method {vector.method!r}")
    selected = vector.metrics["selected"]
    return RefusalDirection(vector, selected["layer"], selected["position"], vector.metadata["harmless_projection"],
                            vector.metadata["ablation"], vector.metrics["candidates"], vector.metrics["baseline"])


def refusal_prompt_sets(n_train: int = 128, n_val: int = 32, seed: int = 0, task=None) -> dict[str, list[str]]:
    """Harmful and harmless instructions of a task's train split (default: the refusal task; any object with
    `instructions(harmful, split)`, e.g. SafetyRequests), shuffled (seeded) into train and validation sets
    (Arditi et al. use 128 and 32 per side); the test split stays held out."""
    from mechscope.tasks import Refusal

    task, sets = task or Refusal(), {}
    for side, harmful in (("harmful", True), ("harmless", False)):
        instructions = task.instructions(harmful, "train")
        random.Random(f"{seed}-{side}").shuffle(instructions)
        if len(instructions) < n_train + n_val:
            raise SteeringError(f"the task has {len(instructions)} {side} train instructions, fewer than "
                                f"n_train + n_val = {n_train + n_val}")
        sets[side], sets[f"{side}_val"] = instructions[:n_train], instructions[n_train:n_train + n_val]
    return sets
