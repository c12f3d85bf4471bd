"""The closing stages: the report stage reads the whole run, so any stage rerun above it reruns it, and its
linked numbers are the values at their pointers; the scan stage takes FamilyScanConfig as its section."""

from __future__ import annotations

from collections import Counter

from mechscope.pipeline import parse_config, run_pipeline
from tests.pipeline.test_runner import counting
from tests.report.links import check_links, html_links

STAGES = [
    {"name": "organism", "kind": "organism"},
    {"name": "toy", "kind": "superposition",
     "toy": {"n_features": 5, "m": 2, "feature_probability": [1.0, 0.05], "steps": 200}},
    {"name": "report", "kind": "report", "pdf": False},
]


def _config(steps: int = 200):
    stages = [dict(s) for s in STAGES]
    stages[1]["toy"] = {**stages[1]["toy"], "steps": steps}
    return parse_config({"pipeline": {"name": "tiny", "purpose": "testing the report stage"}, "stage": stages})


def test_the_report_reruns_when_any_stage_above_it_does_and_its_links_hold(tmp_path):
    calls = Counter()
    first = run_pipeline(_config(), tmp_path, registry=counting(calls))
    assert first.ran == ["organism", "toy", "report"]
    page = tmp_path / "report" / "report.html"
    assert check_links(page, html_links(page)) > 10
    assert "testing the report stage" in page.read_text()  # Article 13(3)(b)(i) from [pipeline] purpose
    assert run_pipeline(_config(), tmp_path, registry=counting(calls)).ran == []
    assert run_pipeline(_config(steps=300), tmp_path, registry=counting(calls)).ran == ["toy", "report"]
    assert calls["report"] == 2


def test_the_scan_stage_section_is_a_family_scan_config():
    config = parse_config({"pipeline": {}, "stage": [
        {"name": "mine", "kind": "mine"},
        {"name": "scan", "kind": "scan", "features": "mine", "scan": {"select": ["weapons"], "embedding": False}}]})
    section = config.stage("scan").section
    assert section.scan.select == ("weapons",) and section.scan.embedding is False
