"""Dashboards: small pages that pick up new labels, and a real headless Chromium opening them from file://."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from mechscope.features import Catalog
from mechscope.features.dashboard import write_dashboard
from tests.browser import CHROMIUM, NO_CHROMIUM, watched_page
from tests.features.conftest import DEAD, MINE



@pytest.fixture(scope="module")
def bundle(mined, tmp_path_factory):
    """A labelled copy of the mined catalogue with its dashboard."""
    directory = tmp_path_factory.mktemp("dash") / "features"
    shutil.copytree(mined[0], directory)
    with Catalog(directory) as catalog:
        label = catalog.add_label(4, "birds <b>singing</b> in trees", explainer="oneshot", model="llm-a")
        catalog.add_score(label, "detection", 0.75, ci_low=0.6, ci_high=0.85, baseline=0.5)
    return directory, write_dashboard(directory)


def test_pages_are_small_and_regenerate_with_new_labels(bundle):
    directory, result = bundle
    pages = sorted((directory / "dashboard/latents").glob("*.html"))
    assert len(pages) == result.latents == 48
    assert result.gzip_bytes_per_latent < 5000
    sizes = [len(gzip.compress(p.read_bytes())) for p in pages]
    assert max(sizes) < 5000
    assert "birds \\u003cb>singing\\u003c/b> in trees" in (directory / "dashboard/latents/4.html").read_text()
    with Catalog(directory) as catalog:
        catalog.add_label(9, "a label added later", explainer="human")
    write_dashboard(directory)
    assert "a label added later" in (directory / "dashboard/latents/9.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_dashboard_opens_in_headless_chromium_without_errors(bundle):
    root = bundle[0] / "dashboard"
    with watched_page() as (page, problems, requests):
        page.goto((root / "index.html").as_uri())
        rows = page.locator("table.index tbody tr")
        assert rows.count() == 48
        assert "birds <b>singing</b> in trees" in page.inner_text("table.index")  # text, never markup
        page.click("th:has-text('max act')")  # sort by maximum activation, largest first
        with Catalog(bundle[0]) as catalog:
            best = catalog.list(order_by="max_activation")[0]
        assert rows.first.locator("td").first.inner_text() == str(best.latent)
        page.fill("input[type=search]", "singing")
        assert rows.count() == 1

        page.goto((root / "latents/4.html").as_uri())
        assert page.title() == "latent 4"
        assert page.inner_text(".label .text") == "birds <b>singing</b> in trees"
        assert "detection 0.75 [0.6, 0.85] vs 0.5" in page.inner_text(".label")
        assert page.locator(".card:has-text('Top activations') .ctx").count() == MINE["top_k"]
        tokens = page.locator(".card:has-text('Top activations') .ctx").first.locator(".t")
        assert tokens.count() == MINE["before"] + 1 + MINE["after"]
        assert page.locator("svg.hist rect").count() > 0
        page.click(".card:has-text('Decoder neighbours') a >> nth=0")
        assert page.title() == "latent 5"  # its nearest decoder direction, built to be close
        page.goto((root / f"latents/{DEAD}.html").as_uri())
        assert "never fired" in page.inner_text("body")
    assert problems == []
    assert requests and all(url.startswith("file://") for url in requests)
    assert {Path(url).name for url in requests} >= {"dashboard.js", "dashboard.css", "index-data.js"}
