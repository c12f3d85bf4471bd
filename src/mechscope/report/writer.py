"""write_report(): read a run directory's evidence, scan (and optionally redact) its personal data, and write
report.html, report.md, evidence.json, privacy.json and, where Chromium is installed, report.pdf."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from mechscope.data.atomic import atomic_file, atomic_write_json
from mechscope.errors import MechscopeError, MissingPackageError
from mechscope.report.content import Report
from mechscope.report.evidence import Document, discover, load_json
from mechscope.report.limitations import limitations_section
from mechscope.report.privacy import redact_text, save_scan, scan_personal_data
from mechscope.report.render import render_html, render_markdown
from mechscope.report.sections.catalogue import catalogue_section
from mechscope.report.sections.circuits import circuits_section
from mechscope.report.sections.data_protection import data_protection_section
from mechscope.report.sections.dictionaries import dictionaries_section
from mechscope.report.sections.diffing import diffing_section
from mechscope.report.sections.family_scans import family_scans_section
from mechscope.report.sections.identity import identity_section
from mechscope.report.sections.run import run_section
from mechscope.report.sections.steering import steering_section
from mechscope.report.sections.transparency import transparency_section
from mechscope.version import __version__

PDF_SECONDS = 120


@dataclass
class ReportFiles:
    """What write_report wrote; `pdf` is None when no renderer was found (`notes` says so)."""

    html: Path
    markdown: Path
    evidence: Path
    privacy: Path
    pdf: Path | None
    notes: list[str]

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def print_pdf(page: Path, target: Path) -> Path:
    """`page` printed to `target` by headless Chromium (`--print-to-pdf`)."""
    binary = chromium()
    if binary is None:
        raise MissingPackageError("PDF output needs a Chromium binary on PATH (Debian: apt-get install chromium)")
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
               f"--print-to-pdf={target}", page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=PDF_SECONDS)
    if done.returncode != 0 or not target.is_file():
        raise MechscopeError(f"chromium could not print {page} to PDF: {done.stderr.strip()[-500:]}")
    return target


def write_report(run_dir: str | Path, out: str | Path | None = None, *, redact: bool = False,
                 pdf: bool | str = "auto") -> ReportFiles:
    """The audit report of `run_dir` in `out` (default run_dir/report). `redact` first replaces personal data in
    the run's dashboards, exports and JSON files (not the catalogue: `mechscope privacy redact --catalogue`);
    `pdf`: "auto" prints a PDF when Chromium is installed, True requires it, False skips it."""
    if pdf not in ("auto", True, False):
        raise MechscopeError(f"pdf must be 'auto', True or False, got {pdf!r}")
    root = Path(run_dir)
    out = Path(out) if out is not None else root / "report"
    if not root.is_dir():
        raise MechscopeError(f"expected a run directory (with run.json or manifest.json files), got {root}")
    out.mkdir(parents=True, exist_ok=True)
    scan = save_scan(scan_personal_data(root, redact=redact, skip=out), out / "privacy.json")
    evidence = discover(root, out)
    inventory = evidence.derived.add("inventory", {
        "artefacts": len(evidence.artefacts), "mechscope_version": __version__,
        "kinds": {kind: len(evidence.of(kind)) for kind in sorted({e.kind for e in evidence.artefacts})}},
        None, "artefacts found by mechscope.report.evidence.discover")
    clean = (lambda text: redact_text(text)[0]) if redact else str
    sections = [run_section(evidence), identity_section(evidence), dictionaries_section(evidence, out / "figures"),
                catalogue_section(evidence), family_scans_section(evidence, clean), circuits_section(evidence),
                steering_section(evidence), diffing_section(evidence)]
    sections += [transparency_section(evidence, inventory),
                 data_protection_section(evidence, Document(scan, load_json(scan)))]
    sections.append(limitations_section(sections))
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report = Report(f"Interpretability audit report: {root.resolve().name}",
                    f"mechscope {__version__} · {created} · every linked value opens the file and JSON pointer it "
                    f"came from{' · personal data redacted' if redact else ''}", sections)
    atomic_write_json(evidence.derived.file, evidence.derived.data)
    files = {"html": out / "report.html", "markdown": out / "report.md"}
    for (name, path), render in zip(files.items(), (render_html, render_markdown)):
        with atomic_file(path) as handle:
            handle.write(render(report, out).encode())
    notes, printed = [], None
    if pdf is True or (pdf == "auto" and chromium() is not None):
        printed = print_pdf(files["html"], out / "report.pdf")
    elif pdf == "auto":
        notes.append("no PDF: no Chromium binary on PATH (Debian: apt-get install chromium)")
    return ReportFiles(files["html"], files["markdown"], evidence.derived.file, scan, printed, notes)
