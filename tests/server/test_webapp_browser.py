"""The web app end to end in headless Chromium: search, open a latent, steer a streamed generation with a monitor
strip, open a graph and a circuit heatmap; no failed request, no console error; screenshots kept."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import pytest
import torch

from mechscope.circuits import CircuitResult
from mechscope.circuits.graphs import GraphConfig, trace
from mechscope.features import Catalog
from mechscope.server import ServerConfig, load_circuits, load_graphs, make_server
from tests.circuits.graphs.conftest import exact_transcoders, relu_gpt2  # noqa: F401 (fixtures)
from tests.browser import CHROMIUM, NO_CHROMIUM, watched_page
from tests.server.conftest import CAT, CAT_LABEL, call

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
PROMPT = "the cat sat on a mat"
TOKENS = 10


@pytest.fixture(scope="module")
def app_url(served, relu_gpt2, exact_transcoders, tmp_path_factory):  # noqa: F811
    """The served model and catalogue plus one traced graph and one saved patching result."""
    root = tmp_path_factory.mktemp("webapp")
    trace(relu_gpt2, exact_transcoders, torch.tensor([3, 7, 11, 3, 7]), root / "graphs" / "repeat",
          GraphConfig(zero_bos=False), slug="repeat")
    CircuitResult(torch.arange(6.0).reshape(2, 3), ("layer", "head"), {"layer": ["0", "1"], "head": ["0", "1", "2"]},
                  "activation_patching", clean=5.0, corrupted=0.0).save(root / "circuits" / "ioi")
    resources = dataclasses.replace(served[1], graphs=load_graphs(root / "graphs"),
                                    circuits=load_circuits(root / "circuits"))
    server = make_server(resources, ServerConfig(port=0))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def artifacts(tmp_path) -> Path:
    directory = Path(os.environ.get("MECHSCOPE_TEST_ARTIFACTS", tmp_path)) / "webapp"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _reference(url: str, steering: list) -> dict:
    """The page's chat request without streaming, straight to the API: its one choice."""
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": TOKENS,
            "temperature": 0, "steering": steering, "monitors": [{"vector": "push", "watch": "generated"}]}
    return call(url, "/v1/chat/completions", body)[1]["choices"][0]


def test_browse_steer_and_view_graphs_in_headless_chromium(served, app_url, artifacts):
    from playwright.sync_api import expect

    with Catalog(served[1].catalog) as catalog:
        hits = [hit.latent for hit in catalog.search("cat", limit=100)]
    assert hits[0] == CAT and len(hits) < 24

    with watched_page(viewport={"width": 1280, "height": 900}) as (page, problems, _):
        page.goto(app_url + "/")
        rows = page.locator("table.index tbody tr")
        expect(rows.first).to_be_visible()
        expect(rows).to_have_count(24)
        page.fill("input[type=search]", "cat")  # full-text search: the labelled latent comes first
        expect(rows).to_have_count(len(hits))
        assert rows.locator("td:first-child").all_inner_texts() == [str(latent) for latent in hits]
        expect(rows.first.locator("td").nth(1)).to_have_text(CAT_LABEL)
        page.screenshot(path=str(artifacts / "1-search.png"), full_page=True)
        page.fill("label:has-text('label score') input", "0.5")  # only the scored latent passes
        expect(rows).to_have_count(1)
        page.fill("label:has-text('density ≥') input", "50")  # and it fires on 5% of tokens, not 50%
        expect(rows).to_have_count(0)
        page.fill("label:has-text('density ≥') input", "")
        expect(rows).to_have_count(1)

        rows.first.locator("a").click()
        expect(page.locator(".label .text")).to_have_text(CAT_LABEL)
        assert "detection 0.9 [0.8, 0.95] vs 0.5" in page.inner_text(".label")
        contexts = page.locator(".card:has-text('Top activations') .ctx")
        expect(contexts.first).to_be_visible()
        assert contexts.first.locator(".t.f").inner_text().strip() == "cat"  # the highlighted token
        assert page.locator("svg.hist rect").count() > 0
        page.screenshot(path=str(artifacts / "2-latent.png"), full_page=True)

        page.click("text=steer with this latent")
        expect(page.locator("table.edits tr")).to_have_count(1)
        page.fill("table.edits input.value", "40")
        page.fill("label:has-text('max tokens') input", str(TOKENS))
        page.fill("textarea.prompt", PROMPT)
        page.select_option("div.controls:has-text('monitor') select >> nth=0", "vector")  # the vector "push"
        page.evaluate("""() => { window.updates = 0; new MutationObserver(() => window.updates++)
            .observe(document.querySelector('.sides'), {childList: true, subtree: true, characterData: true}); }""")
        page.click("button.generate")
        strips = page.locator(".strip")
        expect(strips).to_have_count(2, timeout=15_000)
        texts = page.locator(".completion").all_inner_texts()
        references = [_reference(app_url, steering) for steering in ([], [{"latent": CAT, "value": 40.0}])]
        assert texts == [choice["message"]["content"] for choice in references] and texts[0] != texts[1]
        assert page.evaluate("window.updates") > 2 * 2  # text arrived in pieces, not at once
        for strip, choice in zip(strips.all(), references):  # one cell per generated token, titled with its score
            scores = choice["monitors"][0]["completion_scores"]
            cells = strip.locator("span")
            assert cells.count() == len(scores) > 0 and cells.first.get_attribute("title").startswith("token 1: ")
            assert cells.all_inner_texts() == [t or " " for t in choice["monitors"][0]["completion_tokens"]]
            unscored = [k for k, v in enumerate(scores) if v is None]  # the last token is never read by the model
            assert strip.locator("span.unscored").count() == len(unscored)
            assert all("not scored" in cells.nth(k).get_attribute("title") for k in unscored)
        peak = max(abs(v) for choice in references for v in choice["monitors"][0]["completion_scores"] if v is not None)
        assert peak > 0 and page.locator(".strip span[style*='rgba']").count() > 0
        page.screenshot(path=str(artifacts / "3-steering.png"), full_page=True)

        page.click("nav.top >> text=Graphs")
        page.click("table.index a:has-text('repeat')")
        graph = page.frame_locator("iframe.viewer")
        expect(graph.locator("svg#g circle").first).to_be_visible()
        page.screenshot(path=str(artifacts / "4-graph.png"), full_page=True)

        page.click("nav.top >> text=Circuits")
        expect(page.locator("table.index")).to_contain_text("layer=1 head=2: 5")
        page.click("table.index a:has-text('ioi')")
        expect(page.frame_locator("iframe.viewer").locator("#grid td")).to_have_count(6)
        assert "largest |value|: layer=1 head=2: 5 · layer=1 head=1: 4" in page.inner_text(".panel")
        page.screenshot(path=str(artifacts / "5-circuit.png"), full_page=True)
    assert problems == []
    assert len(list(artifacts.glob("*.png"))) == 5
