"""The report's sections, each built from a run's evidence; every number is a Fact, every gap says why."""

from __future__ import annotations

from mechscope.report.content import Link
from mechscope.report.evidence import Evidence


def artefact_link(evidence: Evidence, root) -> Link:
    """The artefact's record file (or its own file), named by its path inside the run."""
    path = evidence.source or evidence.record.file
    return Link(str(path.relative_to(root) if evidence.source else path.parent.relative_to(root)), path)
