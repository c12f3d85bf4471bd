"""What one server process holds: the model, named vectors and dictionaries, a catalogue and named variants.

Requests refer to these by name only, so no request ever carries a file-system path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mechscope.dictionaries.binding import BoundDictionary, bind_dictionary
from mechscope.errors import MechscopeError
from mechscope.features.catalog import Catalog
from mechscope.server.schema import RequestError
from mechscope.steering.exchange import HOOK as CONTROL_VECTOR_HOOK
from mechscope.steering.exchange import read_control_vector
from mechscope.steering.vectors import SteeringVector


@dataclass
class Resources:
    """The loaded model (`model_id` is what /v1/models lists) and everything requests may name."""

    model: object
    model_id: str
    vectors: dict[str, SteeringVector] = field(default_factory=dict)
    dictionaries: dict[str, BoundDictionary] = field(default_factory=dict)
    catalog: Path | None = None
    variants: dict[str, list] = field(default_factory=dict)  # name -> steering edits (raw request objects)
    graphs: dict[str, SavedGraph] = field(default_factory=dict)  # name -> files written by `mechscope graph`
    circuits: dict[str, SavedCircuit] = field(default_factory=dict)  # name -> a saved CircuitResult's files

    def __post_init__(self):
        for vector in self.vectors.values():
            vector.check(self.model)
        clash = set(self.variants) & {self.model_id}
        if clash:
            raise MechscopeError(f"variant names must differ from the model id {self.model_id!r}")
        if self.catalog is not None:
            Catalog(self.catalog).close()  # an unreadable catalogue fails at start, not on the first request

    def model_ids(self) -> list[str]:
        return [self.model_id, *self.variants]

    def open_catalog(self) -> Catalog:
        """A fresh connection (SQLite connections belong to the thread that opened them)."""
        if self.catalog is None:
            raise RequestError("this server was started without a feature catalogue (--catalog)", status=404,
                               code="no_catalog")
        return Catalog(self.catalog)


def load_vectors(directory: str | Path) -> dict[str, SteeringVector]:
    """Every vector in `directory`: subfolders written by SteeringVector.save and control-vector GGUF files,
    each named by its folder or file stem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MechscopeError(f"--vectors must be a directory of saved vectors, got {directory}")
    vectors = {}
    for path in sorted(directory.iterdir()):
        if path.is_dir() and (path / "manifest.json").exists():
            vectors[path.name] = SteeringVector.load(path)
        elif path.suffix == ".gguf":
            found = read_control_vector(path)
            vectors[path.stem] = SteeringVector.from_dict(found.directions, hook=CONTROL_VECTOR_HOOK,
                                                          method="control_vector", metadata=found.metadata)
    if not vectors:
        raise MechscopeError(f"{directory} holds no steering vectors (folders from `mechscope steer ...` or "
                             ".gguf control vectors)")
    return vectors


def load_dictionaries(model, specs: list[str]) -> dict[str, BoundDictionary]:
    """NAME=PATH or PATH (named by its folder) -> the dictionary bound at the hook it records."""
    bound = {}
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).name, "", spec)
        if name in bound:
            raise MechscopeError(f"two dictionaries are named {name!r}; name them NAME=PATH")
        bound[name] = bind_dictionary(model, path)
    return bound


GRAPH_FORMAT = "mechscope.attribution_graph"


@dataclass(frozen=True)
class SavedGraph:
    """A traced graph's files (Neuronpedia JSON, QK terms, viewer) and the summary its manifest records."""

    neuronpedia: Path
    qk: Path
    viewer: Path
    summary: dict


def _saved_graph(path: Path) -> SavedGraph | None:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        slug = json.loads((path / "graph-metadata.json").read_text())["graphs"][-1]["slug"]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    if manifest.get("format") != GRAPH_FORMAT:
        return None
    return SavedGraph(path / f"{slug}.json", path / "qk.json", path / "graph.html", manifest.get("summary", {}))


def load_graphs(directory: str | Path) -> dict[str, SavedGraph]:
    """Every traced graph under `directory` (itself or its subfolders, as `mechscope graph --out` writes them),
    named by its folder."""
    directory = Path(directory)
    candidates = [directory, *sorted(p for p in directory.iterdir() if p.is_dir())] if directory.is_dir() else []
    graphs = {path.name: graph for path in candidates if (graph := _saved_graph(path)) is not None}
    if not graphs:
        raise MechscopeError(f"{directory} holds no attribution graphs (folders written by `mechscope graph --out`)")
    return graphs


@dataclass(frozen=True)
class SavedCircuit:
    """A saved CircuitResult (patching, attribution, DLA, head scores): its result.json, heatmap page, summary."""

    result: Path
    heatmap: Path
    summary: dict


CIRCUIT_DEPTH = 3  # folders below --circuits searched for results


def load_circuits(directory: str | Path) -> dict[str, SavedCircuit]:
    """Every circuit result saved under `directory`: CircuitResults (result.json + heatmap.html, as `mechscope patch
    --out` and the other circuits verbs write them) and edge circuits (`mechscope circuit --out`: circuit.json +
    graph.html), named by its path below `directory` with "-" between folders."""
    directory = Path(directory)
    found = {}
    folders = sorted({p.parent for name in ("result.json", "circuit.json") for p in directory.rglob(name)}) \
        if directory.is_dir() else []
    for folder in folders:
        parts = folder.relative_to(directory).parts
        saved = _saved_circuit(folder) if len(parts) <= CIRCUIT_DEPTH else None
        if saved is not None:
            found["-".join(parts) or directory.name] = saved
    if not found:
        raise MechscopeError(f"{directory} holds no saved circuit results (folders with result.json and "
                             "heatmap.html, or circuit.json and graph.html, written by `mechscope patch --out`, "
                             "`mechscope circuit --out` and the other circuits verbs)")
    return found


def _saved_circuit(folder: Path) -> SavedCircuit | None:
    """A CircuitResult or an edge circuit in `folder`, with one summary shape for both; None for anything else."""
    try:
        if (folder / "heatmap.html").is_file() and (folder / "result.json").is_file():
            summary = json.loads((folder / "result.json").read_text())
            summary = {key: summary[key] for key in ("kind", "axes", "shape", "clean", "corrupted", "top")}
            return SavedCircuit(folder / "result.json", folder / "heatmap.html", summary)
        if (folder / "graph.html").is_file() and (folder / "circuit.json").is_file():
            manifest = json.loads((folder / "manifest.json").read_text())
            if manifest.get("format") != "mechscope.edge_circuit":
                return None
            scores = json.loads((folder / "scores.json").read_text())["scores"]
            edges = json.loads((folder / "circuit.json").read_text())["edges"]
            curve = json.loads((folder / "curve.json").read_text()) if (folder / "curve.json").is_file() else {}
            top = sorted(scores.items(), key=lambda item: -abs(item[1]))[:10]
            method = (manifest.get("config") or {}).get("method") or (manifest.get("info") or {}).get("method")
            summary = {"kind": f"{method or 'edge'} circuit (edges)", "axes": ["edge"],
                       "shape": [len(edges)], "clean": curve.get("model_metric"),
                       "corrupted": curve.get("empty_metric"), "cpr": curve.get("cpr"), "cmd": curve.get("cmd"),
                       "top": [{"entry": edge, "value": value} for edge, value in top]}
            return SavedCircuit(folder / "circuit.json", folder / "graph.html", summary)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


def load_variants(path: str | Path) -> dict[str, list]:
    """A JSON object {variant name: steering edits} (each edit as a request's `steering` entry)."""
    try:
        variants = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise MechscopeError(f"--variants must be a readable JSON file, {path}: {err}") from err
    if not isinstance(variants, dict) or not all(isinstance(v, list) for v in variants.values()):
        raise MechscopeError(f"{path} must hold a JSON object mapping variant names to arrays of steering edits")
    return variants
