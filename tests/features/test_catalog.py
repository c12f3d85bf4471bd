"""The catalogue: reading back what mining wrote, labels with scores, FTS5 search, examples by split."""

from __future__ import annotations

import json
import shutil

import pytest

from mechscope.errors import MechscopeError
from mechscope.features import Catalog
from tests.features.conftest import MINE, RARE


@pytest.fixture
def catalog(mined, tmp_path):
    shutil.copytree(mined[0], tmp_path / "copy")
    with Catalog(tmp_path / "copy") as catalog:
        yield catalog


def test_round_trip_of_latents_and_manifest(catalog, mined):
    manifest = json.loads((mined[0] / "manifest.json").read_text())
    assert catalog.manifest["tokens"] == manifest["tokens"] == mined[1].tokens
    assert catalog.manifest["hook"] == "blocks.1.hook_resid_post" and catalog.manifest["config"]["top_k"] == 6
    assert manifest["too_few"] == catalog.too_few() and manifest["result"]["examples"] == mined[1].examples
    by_density = catalog.list(order_by="density")
    assert [i.density for i in by_density] == sorted((i.density for i in by_density), reverse=True)
    assert [i.latent for i in catalog.list(limit=5, offset=3)] == [3, 4, 5, 6, 7]
    assert [i.latent for i in catalog.list(status="dead")] == catalog.too_few()["dead"]
    info = catalog.get(7)
    assert info.top_tokens and info.top_logits and len(info.decoder_neighbours) == MINE["neighbours"]
    with pytest.raises(MechscopeError, match="not in this catalogue"):
        catalog.get(48)
    with pytest.raises(MechscopeError, match="order_by"):
        catalog.list(order_by="fun")


def test_labels_and_scores_from_several_explainers(catalog):
    first = catalog.add_label(3, "cats sitting on mats", explainer="oneshot", model="llm-a", metadata={"t": 0.7})
    second = catalog.add_label(3, "the word 'sat'", explainer="top-tokens")
    catalog.add_score(first, "detection", 0.8, ci_low=0.7, ci_high=0.9, baseline=0.5, n=40)
    catalog.add_score(first, "fuzzing", 0.6)
    catalog.add_score(second, "detection", 0.9)
    labels = catalog.labels(3)
    assert [(l.text, l.explainer, l.model) for l in labels] == [
        ("cats sitting on mats", "oneshot", "llm-a"), ("the word 'sat'", "top-tokens", "")]
    assert [(s.scorer, s.value, s.ci_low, s.ci_high, s.baseline, s.n) for s in labels[0].scores] == [
        ("detection", 0.8, 0.7, 0.9, 0.5, 40), ("fuzzing", 0.6, None, None, None, None)]
    assert labels[0].metadata == {"t": 0.7} and catalog.get(3).best_score == 0.9
    assert catalog.list(order_by="score")[0].latent == 3
    with pytest.raises(MechscopeError, match="no label with id"):
        catalog.add_score(999, "detection", 0.5)
    reopened = Catalog(catalog.path)
    assert [l.id for l in reopened.get(3).labels] == [first, second]


def test_full_text_search_over_labels_and_tokens(catalog):
    catalog.add_label(11, "Birds singing in the trees", explainer="oneshot")
    hits = catalog.search("singing birds")
    assert hits[0].latent == 11 and hits[0].matched == "label"
    token = catalog.get(5).top_tokens[0]
    assert 5 in [h.latent for h in catalog.search(token, limit=100)]
    assert catalog.search("label:singing", raw=True)[0].latent == 11
    assert catalog.search("zebra") == [] and catalog.search("!!") == []
    with pytest.raises(MechscopeError, match="bad search query"):
        catalog.search('"unbalanced', raw=True)


def test_examples_by_split_and_kind(catalog):
    train, test = catalog.examples(0, split="train"), catalog.examples(0, split="test")
    assert {e.split for e in train} == {"train"} and {e.split for e in test} == {"test"}
    assert not {e.window for e in train} & {e.window for e in test}
    assert {"random_negative", "quantile"} <= {e.kind for e in catalog.examples(RARE, split="test")}
    top = catalog.examples(0, kind="top")
    assert [e.rank for e in top] == list(range(len(top))) and top[0].activation == catalog.get(0).max_activation
    assert top[0].tokens[top[0].token_index] in catalog.get(0).top_tokens
    every = dict(catalog.iter_examples(split="test"))
    assert [e.window for e in every[0]] == [e.window for e in test]
    with pytest.raises(MechscopeError, match="split must be"):
        catalog.examples(0, split="validation")


def test_a_missing_catalogue_is_named(tmp_path):
    with pytest.raises(MechscopeError, match="no feature catalogue"):
        Catalog(tmp_path)
