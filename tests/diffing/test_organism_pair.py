"""Known answers on a tiny organism pair: B = A fine-tuned to learn colour words (tests/diffing/tiny_pair.py).

The crosscoder's B-only latents fire on colour tokens and never on number tokens; shared latents' two decoders
agree; Latent Scaling calls the B-only latents truly specific; A paired with itself has no model-specific
latents; dictionaries of two seeds of A match far above a token-shuffled baseline.
"""

from __future__ import annotations

import json

import pytest
import torch

from mechscope.cli import main
from mechscope.data import harvest
from mechscope.data.paired import PairedActivations, TokenizerMismatchError, harvest_pair
from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.crosscoder import crosscoder_source, encode_sources
from mechscope.dictionaries.formats import load_dictionary
from mechscope.diffing import classify_latents, latent_scaling
from mechscope.diffing.universal import UniversalConfig, match_features
from mechscope.models import wrap
from mechscope.toy.lm_training import LMConfig, build_lm, save_lm
from mechscope.toy.word_tokenizer import word_tokenizer
from tests.diffing.tiny_pair import COLOURS, HOOK, NUMBERS, build_tiny_pair, corpus

HARVEST = {"context": 12, "batch_size": 64}  # 10 words + <eos> + <bos>: one document per window
TRAIN = TrainConfig(tokens=600 * 256, batch_size=256, log_every=200, device="cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    pair = build_tiny_pair()
    harvest_pair(pair.a, pair.b, corpus(), HOOK, tokens=6000, out=root / "ab", **HARVEST)
    (crosscoder,) = train(crosscoder_source(root / "ab"), DictionaryConfig(64, 64, "crosscoder", k=4), root / "cc",
                          TRAIN)
    return pair, root, PairedActivations(root / "ab"), load_dictionary(crosscoder)


def _codes_and_colour_mask(pair, activations, d):
    rows = torch.arange(len(activations))
    colours = torch.tensor(pair.tokenizer.convert_tokens_to_ids(COLOURS))
    return encode_sources(d, activations.get(HOOK, rows)), torch.isin(activations.a.token_ids(rows), colours)


def test_b_only_latents_fire_on_the_new_task_and_shared_decoders_agree(tiny):
    pair, _, activations, d = tiny
    classes = classify_latents(d)
    codes, colour = _codes_and_colour_mask(pair, activations, d)
    b_only = classes.indices("b_only")
    assert b_only.numel() >= 2 and classes.indices("a_only").numel() == 0
    fires = codes[:, b_only] > 0
    assert int(fires[~colour].sum()) == 0 and bool(fires[colour].any(0).all())
    shared = classes.indices("shared")
    shared = shared[(codes[:, shared] > 0).sum(0) > 20]
    assert shared.numel() >= 20 and classes.cosine[shared].median() > 0.9
    scaling = latent_scaling(d, [activations.get(HOOK, torch.arange(len(activations)))])
    assert bool(scaling.truly_specific()[b_only].all())
    assert (scaling.nu_reconstruction[shared].median() - 1).abs() < 0.1
    assert not scaling.truly_specific()[shared].any()


def test_a_model_paired_with_itself_has_no_model_specific_latents(tiny, tmp_path):
    pair, *_ = tiny
    harvest_pair(pair.a, pair.a, corpus(), HOOK, tokens=6000, out=tmp_path / "aa", **HARVEST)
    (path,) = train(crosscoder_source(tmp_path / "aa"), DictionaryConfig(64, 64, "crosscoder", k=4), tmp_path / "cc",
                    TRAIN)
    classes = classify_latents(load_dictionary(path))
    counts = classes.counts()
    assert counts["a_only"] == counts["b_only"] == 0
    assert float((classes.relative_norm - 0.5).abs().max()) < 0.05


def test_dictionaries_of_two_seeds_share_far_more_features_than_a_shuffled_baseline(tiny, tmp_path):
    pair, *_ = tiny
    harvest_pair(pair.a, pair.a_other_seed, corpus(), HOOK, tokens=6000, out=tmp_path / "seeds", **HARVEST)
    seeds = PairedActivations(tmp_path / "seeds")
    dicts = [load_dictionary(train(cache, DictionaryConfig(32, 64, "topk", k=4), tmp_path / side, TRAIN)[0])
             for side, cache in (("a", seeds.a), ("a2", seeds.b))]
    rows = torch.arange(len(seeds))
    summary = match_features(dicts[0], dicts[1], seeds.a.get(HOOK, rows), seeds.b.get(HOOK, rows),
                             UniversalConfig()).summary()
    assert summary["shared_fraction"] > 0.5
    assert summary["shared_fraction"] > 4 * summary["baseline_shared_fraction"]
    assert summary["assignment_mean_correlation"] > 2 * summary["baseline_assignment_mean_correlation"]


def test_pairing_models_with_different_tokenizers_is_refused(tiny, tmp_path):
    pair, *_ = tiny
    other_tokenizer = word_tokenizer(NUMBERS + COLOURS + ["grey"])
    other = wrap(build_lm(LMConfig(n_layers=1, d_model=32, n_heads=2, d_mlp=64, n_ctx=32), other_tokenizer),
                 other_tokenizer, name="other", check=False)
    with pytest.raises(TokenizerMismatchError, match="only in other: \\['grey'\\]"):
        harvest_pair(pair.a, other, corpus(), HOOK, tokens=100, out=tmp_path / "x", **HARVEST)


def test_cli_trains_classifies_and_reports_the_pair(tiny, tmp_path, capsys):
    pair, root, *_ = tiny
    for model, name in ((pair.a, "A"), (pair.b, "B")):
        save_lm(model.hf, model.tokenizer, tmp_path / name)
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in corpus(40, seed=7)))
    assert main(["train", str(root / "ab"), "--out", str(tmp_path / "cc"), "--tokens", "153600", "--batch-size",
                 "256", "--device", "cpu", "--arch", "crosscoder", "--width", "64", "--k", "4", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["dictionaries"]["crosscoder_64_k4"]["dir"]
    assert main(["crosscoder-latents", trained, "--pair", str(root / "ab"), "--plot", str(tmp_path / "l.png"),
                 "--json"]) == 0
    latents = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert latents["truly_specific"]["b_only"] >= 2 and latents["summary"]["counts"]["a_only"] == 0
    assert main(["diff", str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(tmp_path / "report"), "--source",
                 str(tmp_path / "corpus.jsonl"), "--hook", HOOK, "--crosscoder", trained, "--pair", str(root / "ab"),
                 "--device", "cpu", "--json"]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    examples = [e for row in report["crosscoder"]["latents"]["b_only"] for e in row["examples"]]
    assert examples and all(e["token"].strip() in COLOURS for e in examples)
    lens = report["activation_difference"]
    words = [token.strip() for token, _ in lens["promoted"] if not token.startswith("<")]
    assert words[0] in COLOURS  # fine-tuning moved the colour embeddings: the lens reads colours
    assert report["kl"]["mean"] > 0.1
    assert "-only latents" in (tmp_path / "report" / "report.md").read_text()


def test_cli_trains_an_acausal_cross_layer_crosscoder_over_several_hooks(tiny, tmp_path, capsys):
    pair, *_ = tiny
    hooks = ["blocks.0.hook_resid_pre", HOOK]
    harvest(pair.b, corpus(), hooks, tokens=4000, out=tmp_path / "acts", **HARVEST)
    assert main(["train", str(tmp_path / "acts"), "--hooks", ",".join(hooks), "--out", str(tmp_path / "xl"),
                 "--tokens", "76800", "--batch-size", "256", "--device", "cpu", "--arch", "crosscoder", "--width", "64",
                 "--k", "4", "--json"]) == 0
    run = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["dictionaries"]["crosscoder_64_k4"]
    d = load_dictionary(run["dir"])
    assert (d.cfg.n_sources, d.cfg.hook_name) == (2, ",".join(hooks)) and run["fvu"] < 0.1
