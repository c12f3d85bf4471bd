"""SteeringVector: one direction per layer at a hook pattern, with where it came from; safetensors + manifest.

The vectors keep their raw scale (a difference in means keeps its length), so a coefficient of 1 adds
each layer's own contrast and means the same at every layer; `norms` records those lengths. A vector
is a plain `dict[int, Tensor]` (layer -> direction) plus metadata, which is what other vector formats
(GGUF control vectors, repeng) exchange.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from mechscope.data.shard_format import write_safetensors
from mechscope.errors import SteeringError
from mechscope.manifest import MANIFEST_FILE, build_manifest, write_manifest

VECTORS_FILE = "vectors.safetensors"
FORMAT = "mechscope.steering_vector"
DEFAULT_HOOK = "blocks.{layer}.hook_resid_pre"


def read_artefact(directory: str | Path, tensors_file: str, kind: str, what: str,
                  writer: str) -> tuple[dict, dict[str, Tensor]]:
    """(manifest, tensors) of a steering artefact directory of format `kind`, or an error saying what it lacks."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        tensors = load_file(str(directory / tensors_file))
    except (OSError, ValueError) as err:
        raise SteeringError(f"{directory} holds no {what}: expected {MANIFEST_FILE} and {tensors_file} written by "
                            f"{writer} ({err})") from err
    if manifest.get("format") != kind:
        raise SteeringError(f"{directory / MANIFEST_FILE} has format {manifest.get('format')!r}, expected {kind!r}")
    return manifest, tensors


@dataclass
class SteeringVector:
    """Per-layer directions [d_model] at `hook` (a pattern with {layer}), the method and model that made them."""

    vectors: dict[int, Tensor]  # layer -> direction [d_model], raw scale
    hook: str = DEFAULT_HOOK
    method: str = "diff_in_means"
    model: dict = field(default_factory=dict)  # HookedModel.describe() of the model the vectors were read from
    positions: list[int] | str = "all"  # token positions they were read at (negative: counted from the end)
    metrics: dict = field(default_factory=dict)  # selection metrics (scores per layer, the chosen candidate, ...)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.vectors:
            raise SteeringError("a steering vector needs at least one layer's direction, got none")
        if "{layer}" not in self.hook:
            raise SteeringError(f"hook must be a pattern with {{layer}}, e.g. {DEFAULT_HOOK!r}; got {self.hook!r}")
        widths = {tuple(v.shape) for v in self.vectors.values()}
        if len(widths) != 1 or len(next(iter(widths))) != 1:
            raise SteeringError(f"every layer's direction must be one vector [d_model] of the same width; got shapes "
                                f"{sorted(widths)}")
        bad = [layer for layer in self.vectors if not isinstance(layer, int) or layer < 0]
        if bad:
            raise SteeringError(f"layers must be ints >= 0, got {bad}")
        self.vectors = {layer: self.vectors[layer].detach().float().cpu() for layer in sorted(self.vectors)}

    @property
    def layers(self) -> list[int]:
        return list(self.vectors)

    @property
    def d_model(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    @property
    def norms(self) -> dict[int, float]:
        """Each layer's direction length: what a coefficient of 1 adds there."""
        return {layer: float(v.norm()) for layer, v in self.vectors.items()}

    def hook_name(self, layer: int) -> str:
        return self.hook.format(layer=layer)

    def direction(self, layer: int) -> Tensor:
        """The direction at `layer`, or an error naming the layers there are."""
        if layer not in self.vectors:
            raise SteeringError(f"no direction for layer {layer}; this vector has layers {self.layers}")
        return self.vectors[layer]

    def check(self, model) -> SteeringVector:
        """Itself, once its width and layers fit `model` (else an error saying what the model has)."""
        if self.d_model != model.info.d_model:
            raise SteeringError(f"the vector has d_model={self.d_model}, {model.info.name} has "
                                f"d_model={model.info.d_model}")
        outside = [layer for layer in self.layers if layer >= model.n_layers]
        if outside:
            raise SteeringError(f"layers {outside} do not exist in {model.info.name}, which has layers "
                                f"0..{model.n_layers - 1}")
        for layer in self.layers:
            model.point(self.hook_name(layer))
        return self

    def to_dict(self) -> dict[int, Tensor]:
        """layer -> direction, copies (the exchange form)."""
        return {layer: v.clone() for layer, v in self.vectors.items()}

    @classmethod
    def from_dict(cls, vectors: dict[int, Tensor], **fields) -> SteeringVector:
        """A vector from layer -> direction plus any of the other fields."""
        return cls({int(layer): torch.as_tensor(v) for layer, v in vectors.items()}, **fields)

    def save(self, directory: str | Path) -> Path:
        """Write vectors.safetensors (`direction.{layer}`) and manifest.json into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        digest = write_safetensors(directory / VECTORS_FILE,
                                   {f"direction.{layer}": v.contiguous() for layer, v in self.vectors.items()})
        manifest = build_manifest(FORMAT, model=self.model, hook=self.hook, method=self.method, layers=self.layers,
                                  d_model=self.d_model, positions=self.positions, norms=self.norms,
                                  metrics=self.metrics, metadata=self.metadata, files={VECTORS_FILE: digest})
        write_manifest(directory, manifest)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SteeringVector:
        """A vector written by `save`, or an error saying what the directory lacks."""
        manifest, tensors = read_artefact(directory, VECTORS_FILE, FORMAT, "steering vector", "SteeringVector.save")
        vectors = {int(name.split(".", 1)[1]): t for name, t in tensors.items() if name.startswith("direction.")}
        return cls(vectors, hook=manifest["hook"], method=manifest["method"], model=manifest["model"] or {},
                   positions=manifest["positions"], metrics=manifest["metrics"], metadata=manifest["metadata"])


def latent_vector(bound, index: int) -> SteeringVector:
    """A dictionary latent as a direction: its decoder row W_dec[index] at the layer of the hook it is bound to
    (SAE or transcoder; for a transcoder the row lives in its output hook's space)."""
    dictionary, hook = bound.dictionary, bound.hook
    if not 0 <= index < dictionary.d_sae:
        raise SteeringError(f"latent {index} does not exist; the dictionary has {dictionary.d_sae} latents")
    layer = bound.model.layer_of(hook)
    if layer is None:
        raise SteeringError(f"{hook} lies outside the blocks; a latent vector needs a blocks.{{layer}} hook")
    return SteeringVector({layer: dictionary.W_dec[index].detach()}, hook=hook.replace(f"blocks.{layer}.",
                                                                                      "blocks.{layer}.", 1),
                          method="dictionary_latent", model=bound.model.describe(),
                          metadata={"latent": index, "dictionary": str(bound.path) if bound.path else None})
