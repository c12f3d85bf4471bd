"""Data protection (KVKK, Law No. 6698, and GDPR): which corpora the run read and their provenance, and the
personal-data scan of everything it stored (counts per kind and location from the report's privacy.json)."""

from __future__ import annotations

from mechscope.report.content import Link, Section
from mechscope.report.evidence import Document, RunEvidence
from mechscope.report.privacy import KINDS
from mechscope.report.sections import artefact_link
from mechscope.report.sections.identity import corpus_name, corpus_records, provenance

ROWS_SHOWN = 50


def data_protection_section(evidence: RunEvidence, scan: Document) -> Section:
    section = Section("Data protection (KVKK / GDPR)")
    section.say("What the run processed and what it stored, as measured; this is evidence for a KVKK/GDPR "
                "review, not a legal assessment.")
    corpora = corpus_records(evidence)
    if corpora:
        section.table(["corpus", "read by", "provenance"], [
            [document.fact("name") or document.fact("corpus") or document.fact("path"),
             artefact_link(item, evidence.root), provenance(corpus_name(document))] for item, document in corpora])
    else:
        section.not_assessed("Corpora", "no artefact in the run records the text it read")
    section.say("Personal-data scan of ", scan.fact("files_scanned"), " stored files (example contexts, labels, "
                "dashboards, Neuronpedia exports, JSON and text files) for e-mail addresses, phone numbers, Turkish "
                "national IDs (TCKN, checksum verified), IBANs (mod-97 verified) and IPv4/IPv6 addresses. Counts "
                "only; the values are never copied into this report. Full result: ",
                Link("privacy.json", scan.file), ".")
    section.table(["kind", *KINDS], [["total", *[scan.fact("totals", kind) for kind in KINDS]]])
    findings = scan.get("findings") or []
    section.table(["location", "store", *KINDS, "redacted"], [
        [scan.fact("findings", i, "location"), scan.fact("findings", i, "store"),
         *[scan.fact("findings", i, "counts", kind) for kind in KINDS], scan.fact("findings", i, "redacted")]
        for i in range(min(len(findings), ROWS_SHOWN))])
    if len(findings) > ROWS_SHOWN:
        section.say(f"The table shows the first {ROWS_SHOWN} locations; privacy.json lists them all.")
    if not findings:
        section.say("No personal data of these kinds was found.")
    elif not all(f["redacted"] for f in findings):
        section.say("Run `mechscope privacy redact DIR` (add `--catalogue` for the catalogue) or "
                    "`mechscope report DIR --redact` to replace them with typed placeholders such as [EMAIL].")
    return section
