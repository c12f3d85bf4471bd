"""Circuits: edge circuits with their faithfulness (MIB's CPR/CMD and f(C) of the chosen circuit), component
scores (patching, DLA, head detectors) and attribution graphs with their replacement/completeness scores."""

from __future__ import annotations

from mechscope.report.content import Section
from mechscope.report.evidence import Evidence, RunEvidence
from mechscope.report.sections import artefact_link

TOP_ENTRIES = 5


def circuits_section(evidence: RunEvidence) -> Section:
    section = Section("Circuits")
    edges, results = evidence.of("mechscope.edge_circuit"), evidence.of("mechscope.circuit_result")
    graphs = evidence.of("mechscope.attribution_graph")
    if not (edges or results or graphs):
        return section.not_assessed("Circuits", "the run holds no circuit, patching or attribution-graph result")
    for item in edges:
        _edge_circuit(section, item, evidence)
    if results:
        section.say("Component scores (the largest entries by magnitude):")
        section.table(["result", "kind", "clean metric", "corrupted metric", *[f"#{i + 1}" for i in range(TOP_ENTRIES)]],
                      [[artefact_link(item, evidence.root), item.record.fact("kind"), item.record.fact("clean"),
                        item.record.fact("corrupted"),
                        *[_entry(item, i) for i in range(TOP_ENTRIES)]]
                       for item in results])
    if graphs:
        section.table(["attribution graph", "prompt", "active features", "kept nodes", "kept edges",
                       "replacement score", "completeness score"], [
            [artefact_link(item, evidence.root), *[item.manifest.fact("summary", key) for key in (
                "prompt", "active_features", "kept_nodes", "kept_edges", "replacement_score", "completeness_score")]]
            for item in graphs])
    return section


def _entry(item: Evidence, i: int) -> list | None:
    if i >= len(item.record.get("top") or []):
        return None
    return [item.record.fact("top", i, "entry"), ": ", item.record.fact("top", i, "value")]


def _edge_circuit(section: Section, item: Evidence, evidence: RunEvidence) -> None:
    info = item.manifest.part("info")
    circuit = item.sibling("circuit.json")
    counts = None if circuit is None else evidence.derived.add(
        str(circuit.file.relative_to(evidence.root)),
        {"edges": len(circuit.get("edges") or []), "nodes": len(circuit.get("nodes") or [])}, circuit.file,
        "len() of circuit.json's edges and nodes lists")
    section.say("Edge circuit ", artefact_link(item, evidence.root), " by ", info.fact("method"), " on ",
                info.fact("prompts"), " prompts (metric ", info.fact("metric"), ": clean ", info.fact("clean_metric"),
                ", corrupted ", info.fact("corrupted_metric"), "): ", counts and counts.fact("edges"),
                " edges of ", info.fact("graph", "n_edges"), " kept, touching ", counts and counts.fact("nodes"),
                " nodes.")
    curve = item.sibling("curve.json")
    if curve is None:
        section.not_assessed("Its faithfulness", "no curve.json: the circuit was not evaluated by ablation")
        return
    last = len(curve.get("points") or []) - 1
    section.say("Faithfulness: CPR ", curve.fact("cpr"), " (area under the faithfulness curve, higher is better), "
                "CMD ", curve.fact("cmd"), " (area between it and 1, lower is better); the chosen circuit of ",
                curve.fact("points", last, "edges"), " edges recovers f(C) = ", curve.fact("points", last, "faithfulness"),
                " of the model's metric (", curve.fact("ablation"), " ablation).")
