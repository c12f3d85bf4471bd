"""Model-diffing findings (report.json of `mechscope diff`): the activation-difference norm and the tokens it
promotes, the mean next-token KL between the models, and the crosscoder's latent classes."""

from __future__ import annotations

from mechscope.report.content import Section
from mechscope.report.evidence import RunEvidence
from mechscope.report.sections import artefact_link
from mechscope.report.sections.steering import numeric_leaves

TOKENS_SHOWN = 5


def diffing_section(evidence: RunEvidence) -> Section:
    section = Section("Model diffing")
    diffs = evidence.of("mechscope.model_diff")
    if not diffs:
        return section.not_assessed("Model diffing", "the run compared no pair of models")
    for item in diffs:
        record = item.record
        section.say("Diff ", artefact_link(item, evidence.root), " from ", record.fact("models", 0), " to ",
                    record.fact("models", 1), " at ", record.fact("hook"), ": mean activation difference norm ",
                    record.fact("activation_difference", "norm"), ", mean next-token KL ", record.fact("kl", "mean"),
                    " nats.")
        for direction in ("promoted", "suppressed"):
            tokens = record.get("activation_difference", direction) or []
            if tokens:
                section.say(f"Tokens the difference {direction}: ",
                            *[part for i in range(min(TOKENS_SHOWN, len(tokens))) for part in (
                                record.fact("activation_difference", direction, i, 0), " (",
                                record.fact("activation_difference", direction, i, 1), ") ")])
        if record.get("crosscoder") is None:
            section.not_assessed("Crosscoder latent classes", "no crosscoder was given to this diff")
            continue
        section.table(["crosscoder", "value"], [[name, record.fact(*keys)] for name, keys in
                                                 numeric_leaves(record, ("crosscoder",), depth=3)])
    return section
