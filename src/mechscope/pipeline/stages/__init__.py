"""The stage registry: kind -> its config dataclass and its function (config section, context) -> StageOutcome.
A new kind is one function plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mechscope.pipeline.stages import (circuits, data, dictionaries, diffing, features, reporting, serving, steering,
                                       toy)


@dataclass(frozen=True)
class StageKind:
    """A stage kind: its config section's dataclass, its function, and whether an interrupted run resumes it."""

    config: type
    run: Callable
    resumable: bool = False  # True: an interrupted stage keeps its directory and the function picks up from it
    reads_run: bool = False  # True: it reads every earlier stage, so any of them rerunning reruns it (the report)


STAGES: dict[str, StageKind] = {
    "inspect": StageKind(data.InspectConfig, data.inspect),
    "harvest": StageKind(data.HarvestStageConfig, data.harvest, resumable=True),
    "train": StageKind(dictionaries.TrainStageConfig, dictionaries.train, resumable=True),
    "evaluate": StageKind(dictionaries.EvaluateStageConfig, dictionaries.evaluate),
    "superposition": StageKind(toy.SuperpositionConfig, toy.superposition),
    "organism": StageKind(toy.OrganismConfig, toy.organism),
    "mine": StageKind(features.MineStageConfig, features.mine),
    "label": StageKind(features.LabelStageConfig, features.label),
    "dashboard": StageKind(features.DashboardStageConfig, features.dashboard),
    "circuits": StageKind(circuits.CircuitsConfig, circuits.circuits),
    "transcoders": StageKind(circuits.TranscodersConfig, circuits.transcoders, resumable=True),
    "graph": StageKind(circuits.GraphStageConfig, circuits.graph),
    "refusal": StageKind(steering.RefusalStageConfig, steering.refusal),
    "monitor": StageKind(steering.MonitorStageConfig, steering.monitor),
    "defence": StageKind(steering.DefenceStageConfig, steering.defence),
    "serve": StageKind(serving.ServeStageConfig, serving.serve),
    "diff": StageKind(diffing.DiffStageConfig, diffing.diff, resumable=True),
    "scan": StageKind(reporting.ScanStageConfig, reporting.scan),
    "report": StageKind(reporting.ReportStageConfig, reporting.report, reads_run=True),
}
