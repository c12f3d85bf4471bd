"""The pipeline's own record (run.json): each stage's status, timing and headline metrics."""

from __future__ import annotations

from mechscope.report.content import Section
from mechscope.report.evidence import RunEvidence


def run_section(evidence: RunEvidence) -> Section:
    section = Section("Pipeline run")
    run = evidence.run
    if run is None:
        return section.say("No run.json: this directory was not made by `mechscope run`; its artefacts were found "
                           "by walking its manifest.json files.")
    section.say("Config ", run.fact("config_file"), " (sha256 ", run.fact("config_sha256"), ").")
    stages = run.part("stages")
    section.table(["stage", "kind", "status", "started", "finished", "seconds", "error"], [
        [name, stages.fact(name, "kind"), stages.fact(name, "status"), stages.fact(name, "started"),
         stages.fact(name, "finished"), stages.fact(name, "seconds"), stages.fact(name, "error")]
        for name in run.get("stages") or {}])
    metrics = [[name, key, stages.fact(name, "metrics", key)] for name, info in (run.get("stages") or {}).items()
               for key in (info.get("metrics") or {})]
    return section.table(["stage", "metric", "value"], metrics)
