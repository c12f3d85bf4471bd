"""AttributionGraph: the nodes of one prompt's local replacement model and the direct-effect edges between them.

Node order is circuit-tracer's: active features (layer, pos, latent), then error nodes (layer-major, one per layer
and position), then token embeddings (one per position), then logit targets. Edges are stored sparse (COO: target,
source, weight) with weight = the source's direct effect on the target's pre-activation (features) or value
(logits), so a long prompt never needs the dense [nodes, nodes] matrix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from mechscope.data.atomic import atomic_write_json
from mechscope.errors import MechscopeError

TENSORS = "graph.safetensors"
LABELS = {"feature": "L{layer} #{latent} @{pos}", "error": "error L{layer} @{pos}", "token": "{text!r} @{pos}",
          "logit": "logit {text!r}"}
META = "graph.json"


@dataclass(frozen=True)
class Node:
    """One node: kind is "feature" | "error" | "token" | "logit"; latent is the feature (or the logit's token id)."""

    index: int
    kind: str
    layer: int  # -1 for tokens, n_layers for logits
    pos: int
    latent: int = -1


@dataclass
class AttributionGraph:
    tokens: Tensor  # [pos] prompt token ids
    token_labels: list[str]
    features: Tensor  # [n_features, 3] (layer, pos, latent)
    activations: Tensor  # [n_features]
    n_layers: int
    logit_tokens: Tensor  # [n_logits] (-1 for a direction target)
    logit_labels: list[str]
    logit_probabilities: Tensor  # [n_logits]
    logit_values: Tensor  # [n_logits] each target's value (demeaned logit) in the run
    targets: Tensor  # [n_edges] node index of each edge's target
    sources: Tensor  # [n_edges] node index of each edge's source
    weights: Tensor  # [n_edges] direct effect of the source on the target
    info: dict = field(default_factory=dict)

    # ----- node layout ---------------------------------------------------------------------------
    @property
    def n_pos(self) -> int:
        return len(self.tokens)

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def error_start(self) -> int:
        return self.n_features

    @property
    def token_start(self) -> int:
        return self.n_features + self.n_layers * self.n_pos

    @property
    def logit_start(self) -> int:
        return self.token_start + self.n_pos

    @property
    def n_nodes(self) -> int:
        return self.logit_start + len(self.logit_tokens)

    def error_index(self, layer: int, pos: int) -> int:
        return self.error_start + layer * self.n_pos + pos

    def token_index(self, pos: int) -> int:
        return self.token_start + pos

    def logit_index(self, i: int) -> int:
        return self.logit_start + i

    def feature_index(self, layer: int, pos: int, latent: int) -> int:
        hit = ((self.features == torch.tensor([layer, pos, latent])).all(1)).nonzero()
        if not len(hit):
            raise MechscopeError(f"feature {latent} of layer {layer} is not active at position {pos}")
        return int(hit[0])

    def node(self, index: int) -> Node:
        if index < self.error_start:
            layer, pos, latent = self.features[index].tolist()
            return Node(index, "feature", layer, pos, latent)
        if index < self.token_start:
            layer, pos = divmod(index - self.error_start, self.n_pos)
            return Node(index, "error", layer, pos)
        if index < self.logit_start:
            return Node(index, "token", -1, index - self.token_start, int(self.tokens[index - self.token_start]))
        i = index - self.logit_start
        return Node(index, "logit", self.n_layers, self.n_pos - 1, int(self.logit_tokens[i]))

    def label(self, index: int) -> str:
        node = self.node(index)
        text = {"token": lambda: self.token_labels[node.pos],
                "logit": lambda: self.logit_labels[index - self.logit_start]}.get(node.kind, str)()
        return LABELS[node.kind].format(layer=node.layer, pos=node.pos, latent=node.latent, text=text)

    # ----- edges ---------------------------------------------------------------------------------
    def dense(self) -> Tensor:
        """The adjacency matrix [target, source] (small graphs only)."""
        matrix = torch.zeros(self.n_nodes, self.n_nodes)
        matrix.index_put_((self.targets, self.sources), self.weights, accumulate=True)
        return matrix

    def inputs(self, index: int) -> tuple[Tensor, Tensor]:
        """(source node indices, weights) of every edge into node `index`."""
        into = self.targets == index
        return self.sources[into], self.weights[into]

    # ----- files ---------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """graph.safetensors (tensors) and graph.json (labels, sizes, info) in `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {name: getattr(self, name).contiguous() for name in
                   ("tokens", "features", "activations", "logit_tokens", "logit_probabilities", "logit_values",
                    "targets", "sources", "weights")}
        save_file(tensors, str(directory / TENSORS))
        atomic_write_json(directory / META, {"n_layers": self.n_layers, "token_labels": self.token_labels,
                                             "logit_labels": self.logit_labels, "info": self.info})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "AttributionGraph":
        directory = Path(directory)
        if not (directory / TENSORS).exists() or not (directory / META).exists():
            raise MechscopeError(f"{directory} holds no attribution graph: expected {TENSORS} and {META}")
        meta = json.loads((directory / META).read_text())
        return cls(**load_file(str(directory / TENSORS)), n_layers=meta["n_layers"],
                   token_labels=meta["token_labels"], logit_labels=meta["logit_labels"], info=meta["info"])
