"""How a saved vector is applied: one config for the CLI and the library, turned into interventions."""

from __future__ import annotations

from dataclasses import dataclass

from mechscope.models.positions import check_scope
from mechscope.steering.interventions import OPS, Intervention, vector_interventions
from mechscope.steering.refusal import load_refusal_direction
from mechscope.steering.vectors import SteeringVector
from mechscope.errors import SteeringError


@dataclass(frozen=True)
class ApplyConfig:
    """Which operation a vector's layers get, and where."""

    op: str = "add"  # add, ablate, clamp or cap
    value: float = 1.0  # in units of each layer's vector length (add 1 adds the vector itself)
    layers: tuple[int, ...] | None = None  # None: every layer the vector has
    where: str = "all"  # prompt, generated or all

    def __post_init__(self):
        if self.op not in OPS:
            raise SteeringError(f"op must be one of {', '.join(OPS)}, got {self.op!r}")
        check_scope(self.where)


def vector_edits(model, vector: SteeringVector, config: ApplyConfig = ApplyConfig()) -> list[Intervention]:
    """The interventions `config` asks for; ablating a refusal direction ablates it as it was selected
    (directionally everywhere, or affinely at its layer)."""
    vector.check(model)
    if config.op == "ablate" and vector.method == "refusal_direction":
        return load_refusal_direction(vector).ablate(model)
    return vector_interventions(vector, config.op, config.value, config.layers, config.where)
