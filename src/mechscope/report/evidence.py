"""Evidence: every artefact of a run as a typed record, and every value read from it as a Fact that knows the
JSON file and RFC 6901 pointer it came from.

A run directory is read through DIR/run.json when the pipeline wrote one (each stage's artefacts, walked),
else by walking DIR for manifest.json files and the few result files that carry no manifest of their own
(eval.json, circuit result.json, model-diff report.json).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from mechscope.data.atomic import sha256_file
from mechscope.errors import MechscopeError
from mechscope.report.json_pointer import pointer

RUN_FILE = "run.json"
EVIDENCE_FILE = "evidence.json"  # values the report read from non-JSON artefacts (SQLite, GGUF, its own scan)
MAX_GGUF_BYTES = 64 << 20  # control-vector files are small; larger GGUFs are models and are not opened


@dataclass(frozen=True)
class Fact:
    """A value the report states, with the JSON file and pointer that hold it."""

    value: object
    file: Path
    path: str

    def text(self) -> str:
        return format_value(self.value)


def format_value(value) -> str:
    """How the report prints a value: floats to 4 significant digits, everything else as is."""
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    return str(value)


@dataclass
class Document:
    """A JSON document (or the part of it under `prefix`) whose values become Facts."""

    file: Path
    data: dict
    prefix: tuple = ()

    def get(self, *keys, default=None):
        value = self.data
        for key in (*self.prefix, *keys):
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                return default
        return value

    def fact(self, *keys) -> Fact | None:
        """The scalar at `keys` as a Fact; None when it is missing or null."""
        value = self.get(*keys)
        if value is None or isinstance(value, (dict, list)):
            return None
        return Fact(value, self.file, pointer(*self.prefix, *keys))

    def part(self, *keys) -> "Document":
        return Document(self.file, self.data, (*self.prefix, *keys))


@dataclass
class Evidence:
    """One artefact: its kind (the manifest `format`), its directory, the document that records it and the
    part of that document that is its manifest; `stage` is the run.json stage that made it."""

    kind: str
    directory: Path
    record: Document
    manifest: Document
    stage: str | None = None
    source: Path | None = None  # the artefact file, when its record is not a JSON file of the run (a GGUF)

    def sibling(self, name: str) -> Document | None:
        """Another JSON file beside the record (e.g. a family scan's scan.json)."""
        path = self.directory / name
        return Document(path, load_json(path)) if path.is_file() else None

    @property
    def name(self) -> str:
        return self.directory.name


@dataclass
class Derived:
    """Values the report computed from files that are not JSON; written as the report's evidence.json, each
    entry naming its source file, that file's sha256 and how the values were read."""

    file: Path
    data: dict = field(default_factory=dict)

    def add(self, key: str, values: dict, source: Path | None, how: str) -> Document:
        self.data[key] = {"source": str(source) if source else None, "how": how, "values": values,
                          "sha256": sha256_file(source) if source and source.is_file() else None}
        return Document(self.file, self.data, (key, "values"))


@dataclass
class RunEvidence:
    """Everything the report knows about a run directory."""

    root: Path
    artefacts: list[Evidence]
    run: Document | None
    derived: Derived

    def of(self, *kinds: str) -> list[Evidence]:
        return [e for e in self.artefacts if e.kind in kinds]


def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise MechscopeError(f"{path} is not readable JSON: {err}") from err


def classify(path: Path) -> Evidence | None:
    """The evidence a manifest.json or a known result file holds; None for anything else."""
    data = load_json(path)
    if not isinstance(data, dict):
        return None
    record = Document(path, data)
    if path.name == "manifest.json" and "format" in data:
        return Evidence(str(data["format"]), path.parent, record, record)
    if path.name == "eval.json" and isinstance(data.get("manifest"), dict):
        return Evidence(str(data["manifest"].get("format", "mechscope.eval")), path.parent, record,
                        record.part("manifest"))
    if path.name == "eval.json" and "layers" in data:
        return Evidence("mechscope.transcoder_eval", path.parent, record, Document(path, {}))
    if path.name == "result.json" and {"kind", "axes"} <= data.keys():
        return Evidence("mechscope.circuit_result", path.parent, record, Document(path, {}))
    if path.name == "report.json" and "activation_difference" in data:
        return Evidence("mechscope.model_diff", path.parent, record, record.part("config"))
    return None


RECORD_NAMES = ("manifest.json", "eval.json", "result.json", "report.json")


def _walk(root: Path, skip: Path | None) -> list[Path]:
    found = [p for name in RECORD_NAMES for p in root.rglob(name)]
    return sorted(p for p in found if skip is None or not p.is_relative_to(skip))


def monitor_files(root: Path, skip: Path | None) -> list[Path]:
    """Control-vector GGUF files small enough to be monitors (models are never opened)."""
    return [p for p in sorted(root.rglob("*.gguf")) if p.stat().st_size < MAX_GGUF_BYTES
            and (skip is None or not p.is_relative_to(skip))]


def discover(run_dir: str | Path, out: Path | None = None) -> RunEvidence:
    """The run's artefacts: through run.json's stages when present, else every record below `run_dir`;
    `out` (the report's own folder) and artefacts outside `run_dir` (e.g. a shared model cache) are not read."""
    root = Path(run_dir)
    if not root.is_dir():
        raise MechscopeError(f"expected a run directory (with run.json or manifest.json files), got {root}")
    derived = Derived((out or root / "report") / EVIDENCE_FILE)
    run_file = root / RUN_FILE
    run = Document(run_file, load_json(run_file)) if run_file.is_file() else None
    if run is not None and run.get("format") != "mechscope.run":
        raise MechscopeError(f"{run_file} has format {run.get('format')!r}, expected 'mechscope.run'")
    places = [(None, root)] if run is None else list(dict.fromkeys(  # a file artefact's records sit beside it
        (stage, path if path.is_dir() else path.parent) for stage, info in (run.get("stages") or {}).items()
        for relative in (info.get("artefacts") or {}).values()
        if (path := root / relative).exists() and path.resolve().is_relative_to(root.resolve())))
    artefacts, seen = [], set()
    for stage, place in places:
        for path in _walk(place, out):
            evidence = None if path in seen else classify(path)
            seen.add(path)
            if evidence is not None:
                evidence.stage = stage
                artefacts.append(evidence)
        for path in monitor_files(place, out):
            if path not in seen:
                seen.add(path)
                artefacts += _monitor(path, root, derived, stage)
    return RunEvidence(root, artefacts, run, derived)


def _monitor(path: Path, root: Path, derived: Derived, stage: str | None) -> list[Evidence]:
    """A calibrated monitor saved as a control-vector GGUF (`mechscope monitor calibrate`)."""
    from mechscope.steering.exchange import read_control_vector

    try:
        metadata = read_control_vector(path).metadata
    except MechscopeError:
        return []
    if "monitor" not in metadata:
        return []
    values = {"monitor": metadata["monitor"], "model": metadata.get("model")}
    document = derived.add(str(path.relative_to(root)), json.loads(json.dumps(values, default=str)), path,
                           "GGUF metadata read with mechscope.steering.exchange.read_control_vector")
    return [Evidence("mechscope.monitor", path.parent, document, document, stage, path)]
