"""Audit reports from a run's recorded artefacts (HTML, Markdown, PDF): every stated number links to the file
and JSON pointer it came from; transparency (EU AI Act Art. 13) and data-protection (KVKK/GDPR) sections;
personal-data scanning and redaction of stored texts."""

from mechscope.report.evidence import Evidence, Fact, RunEvidence, discover
from mechscope.report.json_pointer import pointer, resolve
from mechscope.report.privacy import (PrivacyScan, find_personal_data, iban_valid, redact_personal_data,
                                      scan_personal_data, tckn_valid)
from mechscope.report.writer import ReportFiles, write_report

__all__ = ["Evidence", "Fact", "PrivacyScan", "ReportFiles", "RunEvidence", "discover", "find_personal_data",
           "iban_valid", "pointer", "redact_personal_data", "resolve", "scan_personal_data", "tckn_valid",
           "write_report"]
