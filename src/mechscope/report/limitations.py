"""Limitations: what every report of this kind cannot claim, and what this run did not measure (gathered from
the sections' "not assessed" items)."""

from __future__ import annotations

from mechscope.report.content import Section

ALWAYS = (
    "Every number is a measurement on the run's own data, models and settings (see each artefact's manifest); "
    "none is a guarantee about other inputs.",
    "Dictionaries approximate activations: conclusions drawn from latents hold only as far as the reconstruction "
    "metrics above allow.",
    "Feature labels are hypotheses (by an explainer model or a person), scored where a score is shown.",
    "The personal-data scan finds the listed patterns only (e-mail, phone, TCKN, IBAN, IP); names, addresses and "
    "other identifiers are not detected, and IPv4-shaped version numbers are counted as IPv4. A file redacted in "
    "place no longer matches a sha256 its manifest recorded before the redaction.",
)


def limitations_section(sections: list[Section]) -> Section:
    section = Section("Limitations")
    for text in ALWAYS:
        section.say(text)
    gaps = [gap for s in sections for gap in s.gaps]
    if gaps:
        section.say("Not assessed in this run:")
        section.table(["item", "reason"], [gap.split(": ", 1) for gap in gaps])
    return section
