"""Feature endpoints: catalogue search and pages match the catalogue; contrast finds the designed latent."""

from __future__ import annotations

from mechscope.features import Catalog
from tests.server.conftest import CAT, call


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
