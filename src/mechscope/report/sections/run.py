"""The pipeline's own record (run.json): each stage's status, timing and headline metrics."""

from __future__ import annotations

from mechscope.report.content import Section
from mechscope.report.evidence import RunEvidence
from mechscope.report.sections import artefact_link


def inventory_table(section: Section, evidence: RunEvidence) -> Section:
    """Every artefact the report read: where, which kind (its manifest's format where it has one), which stage."""
    return section.table(["artefact", "kind", "stage"], [
        [artefact_link(item, evidence.root), item.manifest.fact("format") or item.kind, item.stage]
        for item in evidence.artefacts])


def run_section(evidence: RunEvidence) -> Section:
    section = Section("Pipeline run")
    run = evidence.run
    if run is None:
        section.say("No run.json: this directory was not made by `mechscope run`; its artefacts were found by "
                    "walking its manifest.json files.")
        return inventory_table(section, evidence)
    section.say("Config ", run.fact("config_file"), " (sha256 ", run.fact("config_sha256"), ").")
    stages = run.part("stages")
    # a stage still running is the one writing this report: its record changes once the report is written
    finished = {name: info for name, info in (run.get("stages") or {}).items() if info.get("status") != "running"}
    section.table(["stage", "kind", "status", "started", "finished", "seconds", "error"], [
        [name, stages.fact(name, "kind"), stages.fact(name, "status"), stages.fact(name, "started"),
         stages.fact(name, "finished"), stages.fact(name, "seconds"), stages.fact(name, "error")]
        for name in finished])
    metrics = [[name, key, stages.fact(name, "metrics", key)] for name, info in finished.items()
               for key in (info.get("metrics") or {})]
    section.table(["stage", "metric", "value"], metrics)
    return inventory_table(section, evidence)
