"""The CLI verbs end to end on a saved tiny model, and bad input named at the boundary."""

from __future__ import annotations

import json

import pytest

import mechscope

from mechscope.cli import main
from mechscope.data import harvest
from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.formats import save_dictionary
from mechscope.errors import DataError, HookNameError, MechscopeError
from mechscope.features import Catalog, MiningConfig, mine
from tests.conftest import tiny_hf, word_tokenizer
from tests.features.conftest import HOOK, MINE, TEXT, WORDS


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_mine_dashboard_search_export(lm, sae, tmp_path, capsys):
    lm.hf.save_pretrained(tmp_path / "model")
    lm.tokenizer.save_pretrained(tmp_path / "model")
    save_dictionary(sae, tmp_path / "sae")
    (tmp_path / "corpus.txt").write_text("\n".join(TEXT))
    out = tmp_path / "features"
    assert main(["mine", str(tmp_path / "model"), str(tmp_path / "sae"), "--source", str(tmp_path / "corpus.txt"),
                 "--tokens", "3e2", "--context", "16", "--top-k", "4", "--no-exclude-special", "--out", str(out),
                 "--device", "cpu", "--dashboard", "--json"]) == 0
    result = last_json(capsys)
    assert result["tokens"] == 300 and result["latents"] == 48 and result["dashboard"]["latents"] == 48
    catalog = Catalog(out)
    assert catalog.manifest["config"]["top_k"] == 4 and not catalog.manifest["config"]["exclude_special"]
    assert len(catalog.examples(0, kind="top")) == 4

    catalog.add_label(6, "cats and dogs", explainer="human")
    assert main(["search", str(out), "dogs", "--json"]) == 0
    assert last_json(capsys)["hits"][0] == {"latent": 6, "matched": "label", "text": "cats and dogs",
                                            "density": catalog.get(6).density}
    assert '"q":[]' not in (out / "dashboard/latents/6.html").read_text()
    assert main(["dashboard", str(out), "--per-bin", "0", "--json"]) == 0
    page = (out / "dashboard/latents/6.html").read_text()
    assert "cats and dogs" in page and '"q":[]' in page and last_json(capsys)["latents"] == 48
    assert main(["export", "neuronpedia", str(out), str(tmp_path / "np"), "--source-set", "cli", "--json"]) == 0
    assert last_json(capsys)["files"] == ["activations/batch-0.jsonl.gz", "explanations/batch-0.jsonl.gz",
                                          "features/batch-0.jsonl.gz"]


def test_a_dictionary_of_the_wrong_width_is_refused(lm, tmp_path):
    narrow = Dictionary(DictionaryConfig(16, 8, "topk", k=2, hook_name=HOOK))
    with pytest.raises(MechscopeError, match="width 32.*d_in=16"):
        mine(lm, narrow, TEXT, tmp_path, tokens=50, context=16)


def test_a_hook_the_model_lacks_is_named(lm, tmp_path):
    sae = Dictionary(DictionaryConfig(32, 8, "topk", k=2, hook_name="blocks.9.hook_resid_post"))
    with pytest.raises(HookNameError, match="blocks.9.hook_resid_post"):
        mine(lm, sae, TEXT, tmp_path, tokens=50, context=16)
    with pytest.raises(MechscopeError, match="no hook_name"):
        mine(lm, Dictionary(DictionaryConfig(32, 8, "topk", k=2)), TEXT, tmp_path, tokens=50, context=16)


def test_an_empty_or_too_short_corpus_is_named(lm, sae, tmp_path):
    with pytest.raises(DataError, match="yielded no documents"):
        mine(lm, sae, ["", ""], tmp_path, tokens=50, context=16)
    with pytest.raises(DataError, match="fewer than"):
        mine(lm, sae, ["the cat"], tmp_path, tokens=50, context=16)


def test_bad_settings_and_a_cache_of_another_model_are_refused(lm, sae, tmp_path):
    with pytest.raises(MechscopeError, match="test_fraction"):
        MiningConfig(test_fraction=1.0)
    with pytest.raises(MechscopeError, match=r"at least 1.*got \{'top_k': 0\}"):
        MiningConfig(top_k=0)
    with pytest.raises(MechscopeError, match=r"got \{'negatives': -1\}"):
        MiningConfig(negatives=-1)
    with pytest.raises(MechscopeError, match="needs a token count"):
        mine(lm, sae, TEXT, tmp_path / "text", tokens=0)
    cache = harvest(lm, TEXT, ["blocks.0.hook_resid_post"], tokens=64, out=tmp_path / "cache", context=16)
    with pytest.raises(MechscopeError, match="holds hooks"):
        mine(lm, sae, cache, tmp_path / "a", tokens=50)
    other = harvest(lm, TEXT, [HOOK], tokens=64, out=tmp_path / "other", context=16)
    another_model = mechscope.load_model(tiny_hf("gpt2", seed=1), tokenizer=word_tokenizer(WORDS), device="cpu")
    with pytest.raises(MechscopeError, match="harvested from model"):
        mine(another_model, sae, other, tmp_path / "b", **MINE)


def test_mining_over_a_labelled_catalogue_is_refused_and_keeps_the_labels(lm, sae, tmp_path):
    mine(lm, sae, TEXT, tmp_path, **{**MINE, "tokens": 100})
    mine(lm, sae, TEXT, tmp_path, **{**MINE, "tokens": 120})  # no labels yet: replaced
    with Catalog(tmp_path) as catalog:
        assert catalog.manifest["tokens"] == 120
        catalog.add_label(3, "cats", explainer="human")
    with pytest.raises(MechscopeError, match="1 labels"):
        mine(lm, sae, TEXT, tmp_path, **MINE)
    with Catalog(tmp_path) as catalog:
        assert [label.text for label in catalog.labels(3)] == ["cats"] and catalog.manifest["tokens"] == 120
