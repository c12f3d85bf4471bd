"""EdgeCircuit: every edge's score, the chosen circuit and its faithfulness curve, saved as JSON + a manifest."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from mechscope.circuits.graph import EdgeGraph
from mechscope.data.atomic import atomic_write_json
from mechscope.errors import MechscopeError
from mechscope.manifest import build_manifest, file_checksums, write_manifest

FILES = ("scores.json", "circuit.json", "curve.json")


def strongest(scores: dict[str, float], k: int) -> list[tuple[str, float]]:
    """The k entries of {name: score} with the highest |score|."""
    return sorted(scores.items(), key=lambda item: -abs(item[1]))[:k]


def read_saved(directory: Path, files: tuple[str, ...], what: str, writer: str) -> list:
    """The JSON files a circuit's `save` wrote to `directory`, or an error naming them."""
    try:
        return [json.loads((directory / name).read_text()) for name in files]
    except (OSError, ValueError) as err:
        raise MechscopeError(f"{directory} holds no {what}: expected {', '.join(files)} written by {writer}") from err


@dataclass
class EdgeCircuit:
    """Scores keyed by edge name ("a0.h1->a1.h3<k>"), the circuit as a set of edge names, and its curve."""

    graph: EdgeGraph
    scores: dict[str, float]
    circuit: set[str]
    info: dict = field(default_factory=dict)
    curve: dict | None = None

    @classmethod
    def from_scores(cls, scores: dict[str, float], circuit: set[str] = frozenset(), info: dict | None = None,
                    parallel: bool = False) -> EdgeCircuit:
        """A result built from another tool's scores (graph inferred from the edge names)."""
        graph = EdgeGraph.from_edges(scores, parallel)
        graph.edge_mask(circuit)  # every circuit edge must be a graph edge
        return cls(graph, dict(scores), set(circuit), info or {})

    def nodes(self) -> list[str]:
        """The nodes the circuit's edges touch (a head's q/k/v inputs count as the head)."""
        found = set()
        for edge in self.circuit:
            src, dst = edge.split("->")
            found.add(src)
            found.update(self.graph.destination_nodes(self.graph.destinations.index(dst)))
        return sorted(found, key=lambda n: (n != "input", n == "logits", n))

    def top(self, k: int = 20) -> list[tuple[str, float]]:
        return strongest(self.scores, k)

    def summary(self) -> dict:
        return {"graph": self.graph.describe(), "info": self.info, "circuit_edges": len(self.circuit),
                "circuit_nodes": len(self.nodes()), "top": [{"edge": e, "score": s} for e, s in self.top(10)],
                **({"cpr": self.curve.get("cpr"), "cmd": self.curve.get("cmd")} if self.curve else {})}

    def save(self, out: str | Path, model=None, config=None) -> dict[str, str]:
        """scores.json, circuit.json, curve.json (when measured), graph.html (the interactive graph), mib.json (MIB's
        circuit file; graphs whose heads have their own k/v inputs, as MIB's have) and manifest.json in `out`."""
        from mechscope.circuits.graph_view import write_graph_view
        from mechscope.circuits.mib import write_mib_circuit

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        graph = self.graph.describe()
        atomic_write_json(out / "scores.json", {"graph": graph, "scores": self.scores})
        atomic_write_json(out / "circuit.json", {"graph": graph, "edges": sorted(self.circuit, key=self.graph.index_of),
                                                 "nodes": self.nodes()})
        names = ["scores.json", "circuit.json"]
        if self.curve is not None:
            atomic_write_json(out / "curve.json", self.curve)
            names.append("curve.json")
        drawn = self._drawable()
        grouped = self.graph.n_kv_heads != self.graph.n_heads
        write_graph_view({drawn(e): v for e, v in self.scores.items()}, out / "graph.html",
                         {drawn(e) for e in self.circuit},
                         title=f"{self.info.get('method', 'edge')} circuit, {len(self.circuit)} edges"
                               + (" (each KV head's k/v inputs drawn on its group's first query head)" if grouped
                                  else ""))
        names.append("graph.html")
        if self.graph.n_kv_heads == self.graph.n_heads:
            write_mib_circuit(out / "mib.json", self.scores, self.circuit,
                              {"n_layers": self.graph.n_layers, "n_heads": self.graph.n_heads})
            names.append("mib.json")
        write_manifest(out, build_manifest("mechscope.edge_circuit", model=model, config=config,
                                           info=self.info, files=file_checksums(out, names)))
        return {name.split(".")[0]: str(out / name) for name in names + ["manifest.json"]}

    def _drawable(self):
        """Edge name -> a name the graph page draws: a KV head's k/v input (GQA: `a3.kv1<k>`) on the first query
        head of its group (`a3.h3<k>` with 3 query heads per KV head); other names unchanged."""
        group = self.graph.n_heads // self.graph.n_kv_heads
        pattern = re.compile(r"a(\d+)\.kv(\d+)<([kv])>$")
        return lambda edge: pattern.sub(lambda m: f"a{m[1]}.h{int(m[2]) * group}<{m[3]}>", edge)

    @classmethod
    def load(cls, directory: str | Path) -> EdgeCircuit:
        directory = Path(directory)
        scores, circuit, manifest = read_saved(directory, ("scores.json", "circuit.json", "manifest.json"),
                                               "edge circuit", "EdgeCircuit.save")
        shape = scores["graph"]
        graph = EdgeGraph(shape["n_layers"], shape["n_heads"], shape["n_kv_heads"], shape["parallel"])
        curve_path = directory / "curve.json"
        curve = json.loads(curve_path.read_text()) if curve_path.is_file() else None
        return cls(graph, scores["scores"], set(circuit["edges"]), manifest.get("info", {}), curve)
