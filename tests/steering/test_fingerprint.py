"""Jailbreak fingerprints on the tiny chat GPT-2 and its designed dictionary: a "suffix" that appends "cat" to
each request is fingerprinted by the latent that fires on "cat" alone (AUROC 1), a wrapper that adds nothing it
reads is not, and the server's contrast endpoint ranks with the same functions."""

from __future__ import annotations

import numpy as np
import pytest

from mechscope.dictionaries.binding import bind_dictionary
from mechscope.errors import SteeringError
from mechscope.dictionaries.contrast import auroc_columns
from mechscope.steering import FingerprintConfig, jailbreak_fingerprint
from mechscope.tasks.jailbreak import WrappedRequest
from tests.server.conftest import CAT, chat_lm, cat_dictionary  # noqa: F401  (fixtures)

REQUESTS = ["the dog sat on the mat", "a bird sang in the tree", "the dog ran", "a bird on the mat"]


def _set(suffix: str, kind: str) -> list[WrappedRequest]:
    return ([WrappedRequest(r, "plain", -1, r) for r in REQUESTS] +
            [WrappedRequest(r, kind, 0, f"{r} {suffix}") for r in REQUESTS])


def test_the_latent_reading_the_suffix_is_its_fingerprint(chat_lm, cat_dictionary):  # noqa: F811
    bound = bind_dictionary(chat_lm, cat_dictionary)
    result = jailbreak_fingerprint(chat_lm, bound, FingerprintConfig(top=3), requests=_set("the cat", "suffix"))
    first = result["kinds"]["suffix"][0]
    assert first["latent"] == CAT and first["auroc"] == 1.0 and first["mean_negative"] == 0
    assert result["n"] == 4 and result["hook"] == bound.hook


def test_a_wrapper_without_the_token_does_not_light_it(chat_lm, cat_dictionary):  # noqa: F811
    bound = bind_dictionary(chat_lm, cat_dictionary)
    result = jailbreak_fingerprint(chat_lm, bound, FingerprintConfig(top=24), requests=_set("the dog", "roleplay"))
    cat = next(e for e in result["kinds"]["roleplay"] if e["latent"] == CAT)
    assert cat["mean_positive"] == cat["mean_negative"] == 0 and cat["auroc"] == 0.5
    with pytest.raises(SteeringError, match="plain requests and at least one wrapper kind"):
        jailbreak_fingerprint(chat_lm, bound, requests=_set("x", "suffix")[4:])


def test_auroc_columns_match_pairwise_counting():
    rng = np.random.default_rng(0)
    positive, negative = rng.integers(0, 4, (7, 3)).astype(float), rng.integers(0, 4, (5, 3)).astype(float)
    for column in range(3):
        pairs = [(p > n) + 0.5 * (p == n) for p in positive[:, column] for n in negative[:, column]]
        assert auroc_columns(positive, negative)[column] == pytest.approx(np.mean(pairs))


def test_cli_writes_the_fingerprint_of_the_built_in_wrappers(chat_lm, cat_dictionary, tmp_path, capsys):  # noqa: F811
    import json

    from mechscope.cli import main
    from mechscope.dictionaries.formats import save_dictionary

    chat_lm.hf.save_pretrained(tmp_path / "lm")
    chat_lm.tokenizer.save_pretrained(tmp_path / "lm")
    save_dictionary(cat_dictionary, tmp_path / "sae")
    assert main(["monitor", "fingerprint", str(tmp_path / "lm"), "--dictionary", str(tmp_path / "sae"), "--out",
                 str(tmp_path / "fp.json"), "--device", "cpu", "--n", "4", "--top", "2", "--json"]) == 0
    written = json.loads((tmp_path / "fp.json").read_text())
    assert sorted(written["kinds"]) == ["hypothetical", "roleplay", "suffix"] and written["n"] == 4
    assert all(len(entries) == 2 for entries in written["kinds"].values())
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == 4
