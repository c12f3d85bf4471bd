"""What a stage function gets besides its config section (its directory, earlier stages' artefacts, models loaded
once per run) and what it returns (artefacts and headline metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mechscope.errors import PipelineError

ORGANISM_PREFIX = "organism:"  # model specs "organism:NAME" or "organism:NAME:SIZE" load from the zoo


@dataclass
class StageOutcome:
    """What a stage made: artefact label -> path, and a few headline numbers (or short strings) for run.json."""

    artefacts: dict[str, Path | str] = field(default_factory=dict)
    metrics: dict[str, float | int | str] = field(default_factory=dict)


class ModelPool:
    """Models and organisms loaded once per run and shared by every stage that names them."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._loaded: dict[str, object] = {}

    def organism(self, spec: str):
        """The Organism a spec "organism:NAME[:SIZE]" names (trained once per machine into the zoo cache)."""
        if not spec.startswith(ORGANISM_PREFIX):
            raise PipelineError(f"expected an organism spec like 'organism:induction:small', got {spec!r}")
        if spec not in self._loaded:
            from mechscope.toy import load_organism

            name, _, size = spec.removeprefix(ORGANISM_PREFIX).partition(":")
            self._loaded[spec] = load_organism(name, size=size or "default", device=self.device)
        return self._loaded[spec]

    def texts(self, source: str, model: str, n: int, seed: int = 0):
        """A harvestable source: `source` itself, or for source "task" n training texts of `model`'s organism task."""
        if source != "task":
            return source
        import random

        return self.organism(model).task.train_texts(random.Random(seed), n)

    def model(self, spec: str):
        """A HookedModel: a built-in name, a path or hub id (`load_model`), or an organism's model."""
        if spec.startswith(ORGANISM_PREFIX):
            return self.organism(spec).model
        if spec not in self._loaded:
            from mechscope.models import load_model

            self._loaded[spec] = load_model(spec, device=self.device)
        return self._loaded[spec]


@dataclass
class StageContext:
    """A running stage's view of the run: its own directory and the finished stages' records."""

    name: str
    dir: Path  # DIR/<stage name>, created empty (or as an interrupted run left it, for resumable kinds)
    run_dir: Path
    records: dict[str, dict]  # run.json's stage records so far
    models: ModelPool

    def artefacts(self, stage: str) -> dict[str, Path]:
        """label -> absolute path of an earlier stage's artefacts."""
        return {label: self.run_dir / path for label, path in self.records[stage]["artefacts"].items()}

    def artefact(self, stage: str, label: str) -> Path:
        found = self.artefacts(stage)
        if label not in found:
            raise PipelineError(f"stages.{self.name}: stage {stage!r} has no artefact {label!r}; "
                                f"it has {', '.join(found) or 'none'}")
        return found[label]

    def dictionaries(self, stage: str) -> dict[str, Path]:
        """label -> directory of every dictionary in the SAELens layout (format copies left out) a stage made."""
        return {label: path for label, path in self.artefacts(stage).items()
                if (path / "sae_weights.safetensors").is_file()}

    def say(self, line: str) -> None:
        print(f"  {line}", flush=True)
