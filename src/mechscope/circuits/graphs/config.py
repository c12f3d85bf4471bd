"""GraphConfig: what an attribution graph attributes, how it batches and what its pruning keeps."""

from __future__ import annotations

from dataclasses import dataclass, field

from mechscope.errors import MechscopeError


@dataclass
class GraphConfig:
    """Defaults are circuit-tracer's (max 10 logits up to 0.95 probability; pruning at 0.8 / 0.98)."""

    max_logits: int = 10  # most logit targets taken by probability
    logit_probability: float = 0.95  # take top logits until their cumulative probability reaches this
    targets: list[str] = field(default_factory=list)  # attribute these next tokens instead (each text one token)
    batch_size: int = 16  # targets per backward pass (the prompt runs as this many copies)
    max_feature_nodes: int = 0  # rows for at most this many features, the most influential first (0: all)
    edges_per_row: int = 0  # keep each target's strongest incoming edges only (0: every nonzero edge)
    zero_bos: bool = True  # no features or error at a leading special token (as circuit-tracer)
    node_threshold: float = 0.8  # pruning keeps the nodes holding this fraction of logit influence
    edge_threshold: float = 0.98  # and the edges holding this fraction of the kept graph's influence
    qk_heads: int = 3  # QK attribution for the heads behind this many strongest cross-position kept edges

    def __post_init__(self):
        for name in ("logit_probability", "node_threshold", "edge_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise MechscopeError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("max_logits", "batch_size"):
            if getattr(self, name) < 1:
                raise MechscopeError(f"{name} must be at least 1, got {getattr(self, name)}")
