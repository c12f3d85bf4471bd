"""Feature-family scans (format `mechscope.family_scan`, scan.json): per safety-relevant concept, the catalogue
latents whose labels match it, with their evidence, and the contrastive probe's AUROC."""

from __future__ import annotations

from collections.abc import Callable

from mechscope.report.content import Section
from mechscope.report.evidence import RunEvidence
from mechscope.report.sections import artefact_link

SCAN_FILE = "scan.json"
EXAMPLES_SHOWN = 2
EXAMPLE_CHARS = 160


def family_scans_section(evidence: RunEvidence, clean: Callable[[str], str]) -> Section:
    section = Section("Feature-family scans")
    scans = evidence.of("mechscope.family_scan")
    if not scans:
        return section.not_assessed("Feature-family scans", "the run holds no mechscope.family_scan artefact")
    for item in scans:
        scan = item.sibling(SCAN_FILE)
        if scan is None:
            section.not_assessed(f"Scan {item.name}", f"its {SCAN_FILE} is missing")
            continue
        section.say("Scan ", artefact_link(item, evidence.root), " searched the catalogue by label (full-text and "
                    "embedding similarity) and probed each family with contrastive prompts.")
        families = scan.get("families") or []
        parts = [scan.part("families", i) for i in range(len(families))]
        section.table(["family", "probe AUROC", "positives", "negatives", "hook", "method"], [
            [part.fact("name"), *[part.fact("probe", key) for key in ("auroc", "n_positive", "n_negative", "hook",
                                                                       "method")]] for part in parts])
        for family, part in zip(families, parts):
            if not family.get("matches"):
                section.say(part.fact("name"), ": no catalogue latent matched.")
            section.table([f"{family.get('name')}: latent", "label", "match", "similarity", "score", "examples"], [
                [part.fact("matches", j, "latent"), clean(str(match.get("label") or "")),
                 part.fact("matches", j, "match"), part.fact("matches", j, "similarity"),
                 part.fact("matches", j, "score"),
                 " · ".join(clean(str(x))[:EXAMPLE_CHARS] for x in (match.get("examples") or [])[:EXAMPLES_SHOWN])]
                for j, match in enumerate(family.get("matches") or [])])
    return section
