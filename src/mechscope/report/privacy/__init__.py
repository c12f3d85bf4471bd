"""Personal-data detection (e-mail, phone, TCKN, IBAN, IP) in a run's stored texts, and redaction."""

from mechscope.report.privacy.detectors import (KINDS, Match, find_personal_data, iban_valid, redact_text,
                                                redact_tokens, tckn_valid)
from mechscope.report.privacy.scan import Finding, PrivacyScan, redact_personal_data, save_scan, scan_personal_data

__all__ = ["KINDS", "Finding", "Match", "PrivacyScan", "find_personal_data", "iban_valid", "redact_personal_data",
           "redact_text", "redact_tokens", "save_scan", "scan_personal_data", "tckn_valid"]
