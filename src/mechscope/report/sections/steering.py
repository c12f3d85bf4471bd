"""Steering and monitors: each steering vector's recorded selection metrics (for the refusal direction the
refusal score with and without it and the KL its ablation causes on harmless prompts, its side effect), and
every calibrated monitor's AUROC and TPR at the target FPR."""

from __future__ import annotations

from collections.abc import Iterator

from mechscope.report.content import Section
from mechscope.report.evidence import Document, RunEvidence
from mechscope.report.sections import artefact_link

SKIP_METRICS = ("candidates", "config")  # per-candidate tables and settings, not results
CALIBRATION_KEYS = ("auroc", "tpr_at_target_fpr", "target_fpr", "threshold", "n_positive", "n_negative")


def numeric_leaves(document: Document, keys: tuple = (), depth: int = 3) -> Iterator[tuple[str, tuple]]:
    """(readable name, keys) of every number under `keys` (not in lists), `depth` levels down."""
    value = document.get(*keys)
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield " / ".join(str(k) for k in keys[1:]) or str(keys[0]), keys
    elif isinstance(value, dict) and depth > 0:
        for key in value:
            if key not in SKIP_METRICS:
                yield from numeric_leaves(document, (*keys, key), depth - 1)


def calibrations(document: Document, keys: tuple = ()) -> Iterator[tuple]:
    """Keys of every dict under `keys` that records a monitor calibration (an AUROC and a TPR at target FPR)."""
    value = document.get(*keys)
    if isinstance(value, dict):
        if {"auroc", "tpr_at_target_fpr"} <= value.keys():
            yield keys
        for key in value:
            yield from calibrations(document, (*keys, key))


def steering_section(evidence: RunEvidence) -> Section:
    section = Section("Steering and monitors")
    vectors = evidence.of("mechscope.steering_vector")
    if not vectors:
        section.not_assessed("Steering vectors", "the run holds no steering vector")
    for item in vectors:
        manifest = item.manifest
        section.say("Steering vector ", artefact_link(item, evidence.root), ": method ", manifest.fact("method"),
                    " at ", manifest.fact("hook"), ".")
        if manifest.get("method") == "refusal_direction":
            section.say("Refusal score on harmful validation prompts: ", manifest.fact("metrics", "baseline",
                        "harmful_refusal_score"), " without intervention, ", manifest.fact("metrics", "selected",
                        "refusal_score"), " with the direction ablated at layer ",
                        manifest.fact("metrics", "selected", "layer"), "; adding it to harmless prompts gives ",
                        manifest.fact("metrics", "selected", "steering_score"), " (harmless baseline ",
                        manifest.fact("metrics", "baseline", "harmless_refusal_score"), "). Side effect: KL ",
                        manifest.fact("metrics", "selected", "kl"), " nats on harmless next-token distributions.")
        else:
            section.table(["metric", "value"], [[name, manifest.fact(*keys)]
                                                for name, keys in numeric_leaves(manifest, ("metrics",))])
    rows = [[artefact_link(item, evidence.root), item.record.fact(*keys[:-1], "hook") if len(keys) > 1 else None,
             *[item.record.fact(*keys, key) for key in CALIBRATION_KEYS]]
            for item in evidence.artefacts if item.kind != "mechscope.family_scan"
            for keys in calibrations(item.record)]
    if not rows:
        return section.not_assessed("Monitors", "the run holds no calibrated monitor (AUROC, TPR at a target FPR)")
    section.say("Monitors: AUROC on held-out positives and negatives; TPR at the target false-positive rate "
                "(e.g. 1%) and the threshold the calibration chose.")
    return section.table(["monitor", "hook", "AUROC", "TPR at target FPR", "target FPR", "threshold", "positives",
                          "negatives"], rows)
