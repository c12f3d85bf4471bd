"""Family scans on a tiny model with a planted concept: label matching by text and by meaning, probe and latent
AUROCs on held-out prompts, a shuffled-label control at chance, and the scan.json the report reads."""

from __future__ import annotations

import json
import random

import pytest

from mechscope.models.embedding import SentenceEmbedder
from mechscope.cli import main
from mechscope.features import Catalog
from mechscope.scans import FamilyScanConfig, FamilyScanError, load_families, match_family, scan_families
from tests.scans.conftest import CONCEPT, HOOK, NEUTRAL, PLANTED, UNRELATED, family_toml, sentences


@pytest.fixture(scope="module")
def embedder(minilm):
    return SentenceEmbedder(minilm)


@pytest.fixture
def planted_families(tmp_path):
    """weapons with prompts in the tiny vocabulary; control: the same kind of prompts with shuffled labels."""
    mixed = sentences(CONCEPT, 60, 5) + sentences(NEUTRAL, 60, 6)
    random.Random(0).shuffle(mixed)
    path = tmp_path / "families.toml"
    path.write_text(family_toml({
        "weapons": {"positive": sentences(CONCEPT, 30, 3), "negative": sentences(NEUTRAL, 30, 4)},
        "control": {"description": "Control: random sentences.", "keywords": ["zzz"], "positive": mixed[:60],
                    "negative": mixed[60:]}}))
    return path


def test_weapons_family_matches_the_planted_label_by_text_and_by_meaning(planted_catalog, embedder):
    weapons, self_harm = load_families(select=["weapons", "self_harm"])
    with Catalog(planted_catalog / "features") as catalog:
        labels = [label for info in catalog.list() for label in info.labels]
        both = match_family(catalog, weapons, labels, embedder)
        text_only = match_family(catalog, weapons, labels)
        unrelated = match_family(catalog, self_harm, labels, embedder)
    assert [(m.latent, m.label, m.match, m.score) for m in both] == [
        (PLANTED, "mentions of firearms and explosives", "both", 0.9)]
    assert both[0].similarity > 0.5 and all("[[" in example for example in both[0].examples) and both[0].examples
    assert [(m.latent, m.match, m.similarity) for m in text_only] == [(PLANTED, "fts", None)]
    assert unrelated == [] and UNRELATED not in {m.latent for m in both}


@pytest.mark.parametrize("method", ["logistic", "diff_in_means"])
def test_probe_finds_the_planted_concept_and_shuffled_labels_stay_at_chance(planted_lm, planted_catalog,
                                                                            planted_families, embedder, tmp_path,
                                                                            method):
    config = FamilyScanConfig(families=str(planted_families), select=("weapons", "control"), method=method)
    result = scan_families(planted_lm[0], planted_catalog / "features", tmp_path / "scan", config, embedder)
    weapons, control = result.families
    assert weapons.probe.auroc == 1.0 and (weapons.probe.n_positive, weapons.probe.n_negative) == (12, 12)
    assert abs(weapons.probe.control_auroc - 0.5) < 0.3  # the same probe fitted on shuffled train labels
    assert [(m.latent, m.auroc) for m in weapons.matches] == [(PLANTED, 1.0)]
    assert abs(control.probe.auroc - 0.5) < 0.25 and control.matches == []
    assert result.dictionary == str(planted_catalog / "sae") and weapons.probe.layer == 1


def test_scan_json_and_manifest_follow_the_contract(planted_lm, planted_catalog, planted_families, embedder,
                                                    tmp_path):
    config = FamilyScanConfig(families=str(planted_families), select=("weapons",))
    result = scan_families(planted_lm[0], planted_catalog / "features", tmp_path / "scan", config, embedder)
    scan = json.loads((tmp_path / "scan/scan.json").read_text())
    family = scan["families"][0]
    assert set(family) >= {"name", "description", "matches", "probe"}
    assert set(family["matches"][0]) >= {"latent", "label", "match", "similarity", "score", "examples"}
    assert set(family["probe"]) >= {"hook", "layer", "auroc", "n_positive", "n_negative", "method"}
    assert family["probe"]["hook"] == HOOK and family["probe"]["auroc"] == result.families[0].probe.auroc
    manifest = json.loads((tmp_path / "scan/manifest.json").read_text())
    assert manifest["format"] == "mechscope.family_scan" and manifest["files"] == {"scan": "scan.json"}
    assert set(manifest["inputs"]) == {"catalog", "dictionary", "families"}
    assert manifest["families"]["weapons"] == {"probe_auroc": 1.0, "control_auroc": family["probe"]["control_auroc"],
                                               "matches": 1, "sha256": family["sha256"]}


def test_cli_scan_without_embeddings(planted_lm, planted_catalog, planted_families, tmp_path, capsys):
    lm = planted_lm[0]
    lm.hf.save_pretrained(tmp_path / "model")
    lm.tokenizer.save_pretrained(tmp_path / "model")
    assert main(["scan", str(tmp_path / "model"), "--catalog", str(planted_catalog / "features"), "--out",
                 str(tmp_path / "scan"), "--families", str(planted_families), "--select", "weapons",
                 "--no-embedding", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["families"]["weapons"]["probe_auroc"] == 1.0
    assert result["families"]["weapons"]["matches"] == [{"latent": PLANTED, "match": "fts", "auroc": 1.0,
                                                         "label": "mentions of firearms and explosives"}]


def test_a_scan_without_catalogue_needs_a_hook(planted_lm, tmp_path):
    with pytest.raises(FamilyScanError, match="needs a hook"):
        scan_families(planted_lm[0], None, tmp_path)
    with pytest.raises(FamilyScanError, match="method must be one of"):
        FamilyScanConfig(method="svm")
