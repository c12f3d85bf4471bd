"""CLI verbs for audit reports: `mechscope report DIR` and `mechscope privacy scan|redact DIR`."""

from __future__ import annotations

import argparse

from mechscope.cli.arguments import leaf


def report(args: argparse.Namespace) -> dict:
    from mechscope.report import write_report

    pdf = "auto" if args.pdf is None else args.pdf
    return write_report(args.dir, args.out, redact=args.redact, pdf=pdf).to_dict()


def _scan_summary(scan) -> dict:
    return {"files_scanned": scan.files_scanned, "totals": scan.totals,
            "locations": {f.location: {k: n for k, n in f.counts.items() if n} for f in scan.findings}}


def privacy_scan(args: argparse.Namespace) -> dict:
    from mechscope.report import scan_personal_data

    return _scan_summary(scan_personal_data(args.dir))


def privacy_redact(args: argparse.Namespace) -> dict:
    from mechscope.report import redact_personal_data

    return {**_scan_summary(redact_personal_data(args.dir, catalogue=args.catalogue)), "redacted": True,
            "catalogue_redacted": args.catalogue}


def register(verbs) -> None:
    p = leaf(verbs, "report", report, "audit report (HTML, Markdown, PDF) of a run directory: every number linked "
             "to its artefact; transparency (EU AI Act Art. 13) and data-protection (KVKK/GDPR) sections")
    p.add_argument("dir", help="a run directory (`mechscope run`, `mechscope demo`, or any folder of artefacts)")
    p.add_argument("--out", help="where to write the report (default: DIR/report)")
    p.add_argument("--redact", action="store_true", help="first replace personal data in the run's dashboards, "
                   "exports and JSON files with placeholders such as [EMAIL] (in place)")
    p.add_argument("--pdf", action=argparse.BooleanOptionalAction, default=None,
                   help="print a PDF with headless Chromium (default: when a chromium binary is installed)")

    group = verbs.add_parser("privacy", help="personal data (e-mail, phone, TCKN, IBAN, IP) in a run's stored texts")
    actions = group.add_subparsers(dest="action", required=True)
    p = leaf(actions, "scan", privacy_scan, "count personal data per kind and file (values are never printed)")
    p.add_argument("dir")
    p = leaf(actions, "redact", privacy_redact, "replace personal data in dashboards, exports, JSON and text files "
             "with typed placeholders, in place")
    p.add_argument("dir")
    p.add_argument("--catalogue", action="store_true",
                   help="also redact the feature catalogue's example contexts and labels")
