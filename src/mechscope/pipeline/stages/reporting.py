"""The closing stages: feature-family scans of a labelled catalogue, and the audit report of the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field

from mechscope.pipeline.config import stage_input
from mechscope.pipeline.context import StageContext, StageOutcome
from mechscope.scans import FamilyScanConfig


@dataclass
class ScanStageConfig:
    """Safety-relevant concept families searched in a catalogue's labels and probed on the model."""

    features: str = stage_input("mine", "label")
    model: str = "smollm2"
    scan: FamilyScanConfig = field(default_factory=FamilyScanConfig)


def scan(cfg: ScanStageConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.scans import scan_families

    result = scan_families(ctx.models.model(cfg.model), ctx.artefact(cfg.features, "feature catalogue"),
                           ctx.dir / "scan", cfg.scan)
    metrics = {}
    for family in result.families:
        metrics[f"{family.name}_auroc"] = round(family.probe.auroc, 3)
        ctx.say(f"{family.name:20s} probe AUROC {family.probe.auroc:.2f} (control {family.probe.control_auroc:.2f}); "
                f"{len(family.matches)} matching latent(s)")
    return StageOutcome({"family scan": ctx.dir / "scan"}, metrics)


@dataclass
class ReportStageConfig:
    """The audit report of every stage before it (HTML, Markdown, PDF where Chromium is installed)."""

    redact: bool = False  # replace personal data in dashboards and exports (and the report) first
    pdf: bool = True  # print a PDF when a chromium binary is installed


def report(cfg: ReportStageConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.report import write_report

    files = write_report(ctx.run_dir, ctx.dir, redact=cfg.redact, pdf="auto" if cfg.pdf else False)
    artefacts = {"report (HTML)": files.html, "report (Markdown)": files.markdown, "report evidence": files.evidence,
                 "personal-data scan": files.privacy}
    if files.pdf is not None:
        artefacts["report (PDF)"] = files.pdf
    for note in files.notes:
        ctx.say(note)
    ctx.say(f"report: {files.html}")
    return StageOutcome(artefacts, {"pdf": "yes" if files.pdf is not None else "no"})
