"""Scan a run directory for personal data, store by store; optionally redact it in place."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mechscope.errors import MechscopeError
from mechscope.report.privacy import stores
from mechscope.report.privacy.detectors import KINDS

SKIP_DIRS = ("assets",)  # the dashboard's renderer code


@dataclass
class Finding:
    """How many matches of each kind one file holds (never the values)."""

    location: str  # path relative to the run directory
    store: str  # catalogue contexts | catalogue labels | dashboard | Neuronpedia export | JSON | text
    counts: dict[str, int]
    redacted: bool


@dataclass
class PrivacyScan:
    """Every file with personal data, totals per kind, and what was scanned."""

    root: str
    findings: list[Finding] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    files_scanned: int = 0
    stores_scanned: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def store_of(path: Path) -> str | None:
    """Which kind of text store a file is (None: not scanned)."""
    name = path.name
    if name == "examples.parquet":
        return "catalogue contexts"
    if name == "catalog.sqlite":
        return "catalogue labels"
    if path.parent.name == "latents" and name.endswith(".html") or name == "index-data.js":
        return "dashboard"
    if name.endswith(".jsonl.gz"):
        return "Neuronpedia export"
    if path.suffix == ".json":
        return "JSON"
    if path.suffix in stores.TEXT_SUFFIXES:
        return "text"
    return None


def _vocabulary_size(catalogue: Path) -> int:
    from mechscope.features import Catalog

    with Catalog(catalogue) as opened:
        return int(opened.manifest["model"]["d_vocab"])


def scan_personal_data(run_dir: str | Path, redact: bool = False, catalogue: bool = False,
                       skip: Path | None = None) -> PrivacyScan:
    """Count e-mails, phone numbers, TCKNs, IBANs and IPs in every text store below `run_dir`; with `redact`,
    replace them by typed placeholders in dashboards, exports, JSON and text files, and with `catalogue` also in
    the catalogue's contexts and labels. `skip` (a report folder) is not read."""
    root = Path(run_dir)
    if not root.is_dir():
        raise MechscopeError(f"expected a run directory to scan for personal data, got {root}")
    result = PrivacyScan(str(root))
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        kind = store_of(path)
        if kind is None or (skip is not None and path.is_relative_to(skip)) or \
                any(part in SKIP_DIRS for part in path.relative_to(root).parts):
            continue
        write = redact and (catalogue or not kind.startswith("catalogue"))
        counts = scan_file(path, kind, write)
        result.files_scanned += 1
        result.stores_scanned[kind] = result.stores_scanned.get(kind, 0) + 1
        if counts:
            result.findings.append(Finding(str(path.relative_to(root)), kind, {k: counts[k] for k in KINDS}, write))
            for name, n in counts.items():
                result.totals[name] += n
    return result


def scan_file(path: Path, kind: str, write: bool) -> Counter:
    """Counts per kind in one file of store `kind`, redacting it in place when `write`."""
    try:
        if kind == "catalogue contexts":
            return stores.catalogue_examples(path, write, _vocabulary_size(path.parent))
        if kind == "catalogue labels":
            return stores.catalogue_labels(path, write)
        if kind == "dashboard":
            return (stores.dashboard_index if path.name == "index-data.js" else stores.dashboard_page)(path, write)
        if kind == "Neuronpedia export":
            return stores.jsonl_gz(path, write)
        if kind == "JSON":
            return stores.json_file(path, write)
        return stores.text_file(path, write)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise MechscopeError(f"cannot scan {path} for personal data: {err}") from err


def redact_personal_data(run_dir: str | Path, catalogue: bool = False, skip: Path | None = None) -> PrivacyScan:
    """Redact every match in place (the catalogue only when `catalogue`); returns what was found and redacted."""
    return scan_personal_data(run_dir, redact=True, catalogue=catalogue, skip=skip)


def save_scan(scan: PrivacyScan, path: Path) -> Path:
    from mechscope.data.atomic import atomic_write_json

    atomic_write_json(path, json.loads(json.dumps(scan.to_dict())))
    return path
