"""Feature endpoints: catalogue search, filtered listings and pages match the catalogue; contrast finds the designed
latent."""

from __future__ import annotations

import json

import pytest

from mechscope.features import Catalog
from mechscope.features.dashboard import Shown, latent_data
from mechscope.features.examples import FILE as EXAMPLES
from tests.server.conftest import CAT, CAT_LABEL, call


def test_search_and_feature_pages_read_the_catalogue(served):
    url, resources = served
    with Catalog(resources.catalog) as catalog:
        expected = [hit.latent for hit in catalog.search("cat", limit=5)]
        info = catalog.get(CAT)
    code, body = call(url, "/v1/features/search?q=cat&limit=5")
    assert code == 200 and [hit["latent"] for hit in body["data"]] == expected and CAT in expected
    code, page = call(url, f"/v1/features/{CAT}?examples=3")
    assert code == 200 and page["latent"] == CAT and page["density"] == info.density
    assert 0 < len(page["examples"]) <= 3 and "cat" in page["top_tokens"]
    assert call(url, "/v1/features/100000")[0] == 404
    assert call(url, "/v1/features/abc")[0] == 404
    assert call(url, "/v1/features/search?q=")[0] == 400
    assert call(url, "/v1/features/search?q=cat&limit=0")[0] == 400


def test_contrast_finds_the_latent_that_separates_the_prompt_sets(served):
    url, _ = served
    positive = ["the cat sat on a mat", "a cat ran far away", "birds sang while the cat sat"]
    negative = ["the dog sat on a mat", "a dog ran far away", "birds sang in trees"]
    code, body = call(url, "/v1/features/contrast", {"positive": positive, "negative": negative, "top": 3})
    assert code == 200
    best = body["positive"][0]
    assert best["latent"] == CAT and best["auroc"] == 1.0 and best["mean_negative"] == 0.0
    code, body = call(url, "/v1/features/contrast", {"positive": positive, "negative": [], "top": 3})
    assert code == 400 and body["error"]["param"] == "negative"


def _all_pages(url: str, query: str) -> list[dict]:
    rows, offset = [], 0
    while True:
        code, page = call(url, f"/v1/features?{query}&limit=7&offset={offset}")
        assert code == 200, page
        rows += page["data"]
        offset += 7
        if not page["has_more"]:
            return rows


def test_feature_list_filters_equal_the_catalogue_filtered_by_hand(served):
    url, resources = served
    with Catalog(resources.catalog) as catalog:
        everything = catalog.list(order_by="density")
    densities = sorted(info.density for info in everything if info.count)
    low, high = densities[len(densities) // 4], densities[3 * len(densities) // 4]
    rows = _all_pages(url, f"order_by=density&min_density={low}&max_density={high}")
    assert [r["latent"] for r in rows] == [i.latent for i in everything if low <= i.density <= high]
    assert 0 < len(rows) < len(everything)
    dead = _all_pages(url, "status=dead&order_by=latent")
    assert [r["latent"] for r in dead] == [i.latent for i in sorted(everything, key=lambda i: i.latent)
                                           if i.status == "dead"]
    scored = call(url, "/v1/features?min_score=0.5")[1]["data"]
    assert [(r["latent"], r["text"], r["best_score"], r["labelled"]) for r in scored] == [(CAT, CAT_LABEL, 0.9, 1)]


def test_feature_list_with_a_query_keeps_search_order_and_filters(served):
    url, resources = served
    with Catalog(resources.catalog) as catalog:
        ranked = [hit.latent for hit in catalog.search("cat", limit=100)]
        dense = {info.latent for info in catalog.list(min_density=0.1)}
    rows = _all_pages(url, "q=cat")
    assert [r["latent"] for r in rows] == ranked and rows[0]["latent"] == CAT
    assert [r["latent"] for r in _all_pages(url, "q=cat&min_density=0.1")] == [i for i in ranked if i in dense]


@pytest.mark.parametrize("query, param", [
    ("min_density=abc", "min_density"), ("min_score=nan", "min_score"), ("order_by=best", "order_by"),
    ("status=alive", "status"), ("limit=0", "limit"), ("offset=-1", "offset"), ("descending=yes", "descending"),
    ("q=%20", "q"), ("frobnicate=1", "frobnicate")])
def test_feature_list_rejects_bad_parameters_by_name(served, query, param):
    url, _ = served
    code, body = call(url, f"/v1/features?{query}")
    assert code == 400 and body["error"]["param"] == param, body


def test_feature_page_carries_the_dashboard_record_of_the_static_bundle(served):
    url, resources = served
    code, page = call(url, f"/v1/features/{CAT}?examples=4")
    assert code == 200
    with Catalog(resources.catalog) as catalog:
        shown = Shown.read(catalog.directory / EXAMPLES, 4, 1)  # every latent, as write_dashboard reads them
        expected = latent_data(catalog.get(CAT), shown, catalog.histogram_edges)
    record = page["dashboard"]
    assert {**record, "L": None} == {**json.loads(json.dumps(expected)), "L": None} and record["L"] == 24
    assert record["lb"][0]["t"] == CAT_LABEL and record["lb"][0]["s"][0][:2] == ["detection", 0.9]
    assert len(record["top"]) == 4
    for ids, percent, focus, *_ in record["top"]:  # each context's own token is "cat", highlighted at 100%
        assert record["tk"][ids[focus]].strip() == "cat" and percent[focus] > 0
