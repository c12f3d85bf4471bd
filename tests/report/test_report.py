"""The report of a tiny run states its artefacts' numbers, each linked to the file and JSON pointer that hold
it (every link walked); gaps say "not assessed"; --redact keeps personal data out; the HTML opens in headless
Chromium with no failed request; the demo run's report is traced the same way."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from mechscope.cli import main
from mechscope.errors import MechscopeError
from mechscope.report import discover, write_report
from mechscope.report.json_pointer import fragment, from_fragment, pointer, resolve
from tests.browser import CHROMIUM, NO_CHROMIUM, watched_page
from tests.report.conftest import CALIBRATION, CURVE, HELD_OUT, SCAN, TRAINED, fresh_run
from tests.report.links import check_links, html_links, markdown_links

DEMO = Path("/work/main/mechscope-demo")


@pytest.fixture(scope="module")
def report(run_dir):
    return write_report(run_dir, pdf=False)


def test_json_pointers_escape_and_resolve_rfc6901():
    document = {"a/b": {"m~n": [10, {"": 7}]}, "features/catalog.sqlite": 1}
    assert pointer("a/b", "m~n", 1, "") == "/a~1b/m~0n/1/"
    assert resolve(document, pointer("a/b", "m~n", 1, "")) == 7
    assert resolve(document, from_fragment(fragment(pointer("a/b", "m~n", 0)))) == 10
    with pytest.raises(MechscopeError, match="does not resolve"):
        resolve(document, "/a~1b/missing")


def test_every_linked_value_equals_the_value_at_its_pointer(report):
    html, markdown = html_links(report.html), markdown_links(report.markdown)
    assert check_links(report.html, html) >= 80
    assert check_links(report.markdown, markdown) >= 80
    facts = {link for link in html if "#/" in link[0]}
    assert facts == {link for link in markdown if "#/" in link[0]}  # the same facts in both formats


def test_report_states_the_artefacts_numbers_linked_to_their_source(report, run_dir):
    links = set(html_links(report.html))
    expected = {  # file below the run, pointer, value
        ("saes/relu_48/manifest.json", "/final/fvu", TRAINED["fvu"]),
        ("saes/relu_48/eval.json", "/fvu", HELD_OUT["fvu"]),
        ("saes/relu_48/eval.json", "/downstream/ce_score_zero", HELD_OUT["downstream"]["ce_score_zero"]),
        ("scan/scan.json", "/families/0/probe/auroc", SCAN["families"][0]["probe"]["auroc"]),
        ("scan/scan.json", "/families/0/matches/0/latent", 4),
        ("circuits/ioi/curve.json", "/cpr", CURVE["cpr"]),
        ("circuits/ioi/curve.json", "/points/1/faithfulness", CURVE["points"][1]["faithfulness"]),
        ("steering/manifest.json", "/metrics/selected/kl", 0.0123),
        ("steering/manifest.json", "/metadata/monitor/calibration/auroc", CALIBRATION["auroc"]),
        ("steering/manifest.json", "/metadata/monitor/calibration/tpr_at_target_fpr", CALIBRATION["tpr_at_target_fpr"]),
        ("report/evidence.json", "/monitor~1monitor.gguf/values/monitor/calibration/auroc", 0.96875),
        ("run.json", "/config/purpose", "screen a support chatbot for jailbreaks"),
        ("run.json", "/stages/train/metrics/fvu", 0.0625),
    }
    for file, path, value in expected:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        href = f"../{file}" if not file.startswith("report/") else file.removeprefix("report/")
        assert (href + fragment(path), text) in links, (file, path)
    assert any(href.endswith("/model/quantization") and text == "Q4_1 GGUF, dequantised to float32"
               for href, text in links)
    evidence = json.loads(report.evidence.read_text())
    assert evidence["circuits/ioi/circuit.json"]["values"] == {"edges": 3, "nodes": 3}
    assert ("evidence.json#/circuits~1ioi~1circuit.json/values/edges", "3") in links


def test_report_sections_and_gaps(report):
    text = report.markdown.read_text()
    for title in ("Model and data identity", "Dictionaries", "Feature catalogue", "Feature-family scans", "Circuits",
                  "Steering and monitors", "Model diffing", "Transparency (EU AI Act Article 13)",
                  "Data protection (KVKK / GDPR)", "Limitations"):
        assert f"## {title}" in text
    assert "Model diffing: not assessed — the run compared no pair of models." in text
    assert "(b)(ii) robustness | not assessed" in text
    assert "data:image/png;base64," in report.html.read_text()  # the Pareto plot, embedded
    privacy = json.loads(report.privacy.read_text())
    assert privacy["totals"]["email"] == 3 and privacy["totals"]["tckn"] == 2  # catalogue, dashboard, scan example
    assert "jane" not in report.html.read_text() and "00146" not in report.html.read_text()


def test_discovery_without_run_json_finds_the_same_artefacts(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report"))
    (copy / "run.json").unlink()
    with_run = sorted((e.kind, e.directory.relative_to(run_dir)) for e in discover(run_dir).artefacts)
    walked = sorted((e.kind, e.directory.relative_to(copy)) for e in discover(copy).artefacts)
    assert walked == with_run
    assert {kind for kind, _ in walked} == {"mechscope.dictionary", "mechscope.eval", "mechscope.features",
                                            "mechscope.family_scan", "mechscope.edge_circuit",
                                            "mechscope.steering_vector", "mechscope.monitor"}


def test_redacted_report_and_run_hold_no_planted_personal_data(mined, tmp_path):
    run = fresh_run(mined, tmp_path)
    assert main(["report", str(run), "--redact", "--no-pdf", "--json"]) == 0
    html = (run / "report/report.html").read_text()
    assert "bob.smith" not in html and "[EMAIL]" in html  # the family-scan example, redacted
    assert "bob.smith" not in (run / "scan/scan.json").read_text()
    assert "jane" not in (run / "features/dashboard/latents/4.html").read_text()
    check_links(run / "report/report.html", html_links(run / "report/report.html"))


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_report_opens_in_headless_chromium_without_errors_or_requests(report):
    with watched_page() as (page, problems, requests):
        page.goto(report.html.as_uri())
        assert page.locator("h2").count() >= 10
        assert page.locator("img").evaluate_all("imgs => imgs.every(i => i.complete && i.naturalWidth > 0)")
    assert problems == []
    assert [url for url in requests if not url.startswith("data:")] == [report.html.as_uri()]


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_pdf_is_printed_by_chromium(run_dir, tmp_path):
    files = write_report(run_dir, tmp_path / "out", pdf=True)
    assert files.pdf.read_bytes().startswith(b"%PDF")


@pytest.mark.slow
@pytest.mark.skipif(not DEMO.is_dir(), reason="no demo run at /work/main/mechscope-demo (`mechscope demo`)")
def test_demo_run_report_traces_every_number(tmp_path):
    run = tmp_path / "demo"
    shutil.copytree(DEMO, run, ignore=shutil.ignore_patterns("report", "*.safetensors"))
    files = write_report(run, pdf=False)
    assert check_links(files.html, html_links(files.html)) >= 100
    text = files.markdown.read_text()
    assert "[Q4\\_1" in text or "Q4_1 GGUF" in text
    assert re.search(r"CPR|faithfulness", text)
