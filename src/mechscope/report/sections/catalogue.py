"""Feature catalogue summary: latents mined, dead and rare ones (from the mining manifest), labels and the
distribution of their best scores (read from catalog.sqlite into the report's evidence.json)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mechscope.report.content import Section
from mechscope.report.evidence import Document, Evidence, RunEvidence
from mechscope.report.sections import artefact_link

QUERY = ("SELECT (SELECT COUNT(*) FROM labels), (SELECT COUNT(DISTINCT latent) FROM labels), "
         "(SELECT COUNT(*) FROM scores); SELECT best_score FROM latents WHERE best_score IS NOT NULL")


def catalogue_facts(item: Evidence, evidence: RunEvidence) -> Document | None:
    """Label and score counts and best-score quantiles of the catalogue beside a mining manifest."""
    path = item.directory / (item.manifest.get("files", "catalog") or "catalog.sqlite")
    if not Path(path).is_file():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        labels, labelled, scores = db.execute(QUERY.split("; ")[0]).fetchone()
        best = sorted(row[0] for row in db.execute(QUERY.split("; ")[1]))
    finally:
        db.close()
    values = {"labels": labels, "labelled_latents": labelled, "scores": scores, "scored_latents": len(best)}
    if best:
        values["best_score"] = {name: best[round(q * (len(best) - 1))] for name, q in
                                (("min", 0), ("q25", 0.25), ("median", 0.5), ("q75", 0.75), ("max", 1))}
    return evidence.derived.add(str(path.relative_to(evidence.root)), values, path, f"sqlite: {QUERY}")


def catalogue_section(evidence: RunEvidence) -> Section:
    section = Section("Feature catalogue")
    mined = evidence.of("mechscope.features")
    if not mined:
        return section.not_assessed("Feature catalogue", "the run mined no dictionary's features")
    for item in mined:
        manifest = item.manifest
        section.say("Catalogue ", artefact_link(item, evidence.root), " of ", manifest.fact("dictionary", "hook_name")
                    or manifest.fact("hook"), ": ", manifest.fact("result", "latents"), " latents mined over ",
                    manifest.fact("tokens"), " tokens; ", manifest.fact("result", "dead"), " never fired (dead), ",
                    manifest.fact("result", "rare"), " fired fewer than ", manifest.fact("config", "min_activations"),
                    " times (rare); ", manifest.fact("result", "examples"), " example contexts stored.")
        facts = catalogue_facts(item, evidence)
        if facts is None:
            section.not_assessed("Labels", f"{item.name} holds no catalog.sqlite")
            continue
        section.say("Labels: ", facts.fact("labels"), " labels on ", facts.fact("labelled_latents"),
                    " latents; ", facts.fact("scores"), " scores; ", facts.fact("scored_latents"),
                    " latents have a scored label.")
        if facts.get("best_score"):
            section.table(["best label score", "min", "25%", "median", "75%", "max"], [
                ["value", *[facts.fact("best_score", key) for key in ("min", "q25", "median", "q75", "max")]]])
        else:
            section.not_assessed("Label scores", "no label in the catalogue has been scored")
    return section
