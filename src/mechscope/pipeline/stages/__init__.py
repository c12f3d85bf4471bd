"""The stage registry: kind -> its config dataclass and its function (config section, context) -> StageOutcome.
A new kind is one function plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mechscope.pipeline.stages import data, dictionaries, toy


@dataclass(frozen=True)
class StageKind:
    """A stage kind: its config section's dataclass, its function, and whether an interrupted run resumes it."""

    config: type
    run: Callable
    resumable: bool = False  # True: an interrupted stage keeps its directory and the function picks up from it


STAGES: dict[str, StageKind] = {
    "inspect": StageKind(data.InspectConfig, data.inspect),
    "harvest": StageKind(data.HarvestStageConfig, data.harvest, resumable=True),
    "train": StageKind(dictionaries.TrainStageConfig, dictionaries.train, resumable=True),
    "evaluate": StageKind(dictionaries.EvaluateStageConfig, dictionaries.evaluate),
    "superposition": StageKind(toy.SuperpositionConfig, toy.superposition),
    "organism": StageKind(toy.OrganismConfig, toy.organism),
}
