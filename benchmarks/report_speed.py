"""How long the audit report and the personal-data scan take on a real run directory (default: a copy of the
demo's output), store by store, and how many facts the report links.

    python benchmarks/report_speed.py [--run mechscope-demo]
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from mechscope.report import write_report
from mechscope.report.privacy import scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="mechscope-demo", help="a run directory (copied; never modified)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(args.run, run, ignore=shutil.ignore_patterns("report", "*.safetensors"))
        seconds, files = Counter(), Counter()
        for path in sorted(p for p in run.rglob("*") if p.is_file()):
            kind = scan.store_of(path)
            if kind is None or "assets" in path.parts:
                continue
            started = time.perf_counter()
            scan.scan_file(path, kind, False)
            seconds[kind] += time.perf_counter() - started
            files[kind] += 1
        for kind in seconds:
            print(f"scan {kind}: {files[kind]} files, {seconds[kind]:.2f} s")
        started = time.perf_counter()
        report = write_report(run, pdf="auto")
        total = time.perf_counter() - started
        facts = len(re.findall(r'class="fact"', report.html.read_text()))
        print(f"write_report (scan included{', PDF' if report.pdf else ''}): {total:.1f} s, {facts} linked facts, "
              f"HTML {report.html.stat().st_size / 1024:.0f} KiB"
              + (f", PDF {report.pdf.stat().st_size / 1024:.0f} KiB" if report.pdf else ""))


if __name__ == "__main__":
    main()
