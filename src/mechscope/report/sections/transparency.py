"""Transparency, organised by what EU AI Act Article 13(3) asks providers to give deployers; each item points
at the run's evidence or says "not assessed" and why. Articles 12 (logging) and 14 (human oversight) are
referred to where 13(3) does."""

from __future__ import annotations

from mechscope.report.content import NOT_ASSESSED, Cell, Link, Section
from mechscope.report.evidence import Document, RunEvidence
from mechscope.report.sections.steering import calibrations

PURPOSE_KEYS = (("pipeline", "purpose"), ("purpose",), ("report", "purpose"), ("run", "purpose"))
PROVIDER_KEYS = (("pipeline", "provider"), ("provider",), ("report", "provider"), ("run", "provider"))


def _config(evidence: RunEvidence, candidates: tuple) -> Cell:
    if evidence.run is not None:
        for keys in candidates:
            fact = evidence.run.fact("config", *keys)
            if fact is not None:
                return fact
    return None


def _joined(groups: list[list]) -> list:
    """Groups of inline parts separated by "; "."""
    return [part for i, group in enumerate(groups) for part in ([] if i == 0 else ["; "]) + group]


def _gap(reason: str) -> str:
    return f"{NOT_ASSESSED} — {reason}"


def _first(evidence: RunEvidence, kind: str, *keys, record: bool = False) -> Cell:
    """The first artefact of `kind` that records `keys` (in its manifest, or its record with `record`)."""
    for item in evidence.of(kind):
        fact = (item.record if record else item.manifest).fact(*keys)
        if fact is not None:
            return fact
    return None


def transparency_section(evidence: RunEvidence, inventory: Document) -> Section:
    section = Section("Transparency (EU AI Act Article 13)")
    section.say("Article 13(3) lists what instructions for use give deployers of a high-risk AI system. Each row "
                "names the evidence this run holds for it, or says it was not assessed. The run examined a model's "
                "internals; it is evidence for these items, not the instructions themselves.")
    rows = [
        ["(a) provider identity and contact", _config(evidence, PROVIDER_KEYS) or _gap(
            "the run config names no provider; the tool that measured is mechscope"),
         ["mechscope ", _first(evidence, "mechscope.dictionary", "mechscope_version") or
          _first(evidence, "mechscope.features", "mechscope_version") or inventory.fact("mechscope_version")]],
        ["(b)(i) intended purpose", _config(evidence, PURPOSE_KEYS) or _gap("the run config states no purpose"),
         None],
        ["(b)(ii) accuracy metrics and their conditions", *_accuracy(evidence)],
        ["(b)(ii) robustness", _gap("no perturbation or adversarial evaluation is recorded"), None],
        ["(b)(ii) cybersecurity", _gap("no security test is recorded"), None],
        ["(b)(iii) known or foreseeable circumstances of risk", *_risks(evidence)],
        ["(b)(iv) capabilities to explain output", *_explanations(evidence)],
        ["(b)(v) performance for specific persons or groups", *_groups(evidence)],
        ["(b)(vi) input data specifications", *_data(evidence)],
        ["(d) human-oversight measures (Art. 14)", *_oversight(evidence)],
        ["(e) computational resources", *_resources(evidence)],
        ["(e) expected lifetime and maintenance", _gap("not measurable from a run"), None],
        ["(f) logging mechanisms (Art. 12)", ["every artefact carries a manifest.json (what made it, versions, "
                                              "inputs with sha256): ", inventory.fact("artefacts"),
                                              " artefacts in this run"],
         Link("run.json", evidence.run.file) if evidence.run else "no run.json (not made by `mechscope run`)"],
    ]
    for row in rows:
        if isinstance(row[1], str) and row[1].startswith(NOT_ASSESSED):
            section.gaps.append(f"Art. 13(3){row[0]}: {row[1].split('— ', 1)[1]}")
    return section.table(["Article 13(3) item", "evidence", "where"], rows)


def _accuracy(evidence: RunEvidence) -> list[Cell]:
    score = _first(evidence, "mechscope.eval", "downstream", "ce_score_zero", record=True)
    monitors = [(item, keys) for item in evidence.artefacts for keys in calibrations(item.record)]
    groups = [["dictionary CE score ", score, " (held-out text)"]] if score is not None else []
    if monitors:
        item, keys = monitors[0]
        groups.append(["monitor AUROC ", item.record.fact(*keys, "auroc"), ", TPR ",
                       item.record.fact(*keys, "tpr_at_target_fpr"), " at FPR ", item.record.fact(*keys, "target_fpr")])
    return [_joined(groups) or _gap("no dictionary evaluation or monitor calibration"), "Dictionaries; Steering and monitors"]


def _risks(evidence: RunEvidence) -> list[Cell]:
    groups = [["ablating one direction lowers the refusal score from ",
               item.manifest.fact("metrics", "baseline", "harmful_refusal_score"), " to ",
               item.manifest.fact("metrics", "selected", "refusal_score")]
              for item in evidence.of("mechscope.steering_vector") if item.manifest.get("method") == "refusal_direction"]
    if evidence.of("mechscope.family_scan"):
        groups.append(["safety-relevant feature families scanned (see Feature-family scans)"])
    return [_joined(groups) or _gap("no refusal direction or feature-family scan in the run"),
            "Steering and monitors; Feature-family scans"]


def _explanations(evidence: RunEvidence) -> list[Cell]:
    kinds = {"mechscope.features": "feature catalogue", "mechscope.edge_circuit": "edge circuits",
             "mechscope.circuit_result": "component scores", "mechscope.attribution_graph": "attribution graphs"}
    found = [name for kind, name in kinds.items() if evidence.of(kind)]
    return [", ".join(found) if found else _gap("no catalogue, circuit or graph"), "Feature catalogue; Circuits"]


def _groups(evidence: RunEvidence) -> list[Cell]:
    for item in evidence.of("mechscope.family_scan"):
        scan = item.sibling("scan.json")
        for i, family in enumerate(scan.get("families") or [] if scan else []):
            if family.get("name") == "bias":
                return [["bias-family probe AUROC ", scan.fact("families", i, "probe", "auroc"),
                         " (a concept probe, not a per-group performance measure)"], "Feature-family scans"]
    return [_gap("no per-group evaluation is recorded"), None]


def _data(evidence: RunEvidence) -> list[Cell]:
    from mechscope.report.sections.identity import corpus_records

    corpora = corpus_records(evidence)
    if not corpora:
        return [_gap("no artefact records its corpus"), None]
    item, document = corpora[0]
    return [["corpora with token counts and provenance, e.g. ", document.fact("name") or document.fact("corpus")
             or document.fact("path")], "Model and data identity; Data protection"]


def _oversight(evidence: RunEvidence) -> list[Cell]:
    monitors = [(item, keys) for item in evidence.artefacts for keys in calibrations(item.record)
                if item.kind != "mechscope.family_scan"]
    groups = []
    if monitors:
        item, keys = monitors[0]
        groups.append(["a calibrated monitor raises an alert above threshold ", item.record.fact(*keys, "threshold")])
    if evidence.of("mechscope.features"):
        groups.append(["feature dashboards for human review of what latents respond to"])
    return [_joined(groups) or _gap("no monitor or dashboard in the run"), "Steering and monitors; Feature catalogue"]


def _resources(evidence: RunEvidence) -> list[Cell]:
    groups = [["harvest at ", item.manifest.fact("tokens_per_second"), " tokens/s"]
              for item in evidence.of("mechscope.activation_cache")[:1]]
    groups += [["training ", item.manifest.fact("final", "elapsed_s"), " s on ", item.manifest.fact("final", "tokens"),
                " tokens with torch ", item.manifest.fact("versions", "torch")]
               for item in evidence.of("mechscope.dictionary")[:1]]
    return [_joined(groups) or _gap("no timing is recorded"), "Pipeline run" if evidence.run else None]
