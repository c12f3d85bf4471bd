"""The report's sections, each built from a run's evidence; every number is a Fact, every gap says why."""

from __future__ import annotations

from mechscope.report.content import Link
from mechscope.report.evidence import Evidence


def artefact_link(evidence: Evidence, root) -> Link:
    """The artefact's record file, named by its path inside the run."""
    path = evidence.record.file
    return Link(str(path.parent.relative_to(root)) if path.parent != root else path.name, path)
