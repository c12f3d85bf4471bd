"""Universal-feature matching: a permuted copy of a dictionary matches one to one; shuffled tokens do not."""

from __future__ import annotations

import torch

from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.diffing.universal import UniversalConfig, match_features
from mechscope.synthetic import SyntheticFeatures


def test_a_permuted_dictionary_matches_latent_for_latent_and_beats_the_baseline():
    acts = SyntheticFeatures(n_features=48, d=16, active=3, seed=0).sample(6000, 0)[0]
    torch.manual_seed(0)
    dict_a = Dictionary(DictionaryConfig(16, 40, "topk", k=4))
    permutation = torch.randperm(40)
    dict_b = Dictionary(DictionaryConfig(16, 40, "topk", k=4))
    with torch.no_grad():
        dict_b.W_enc.copy_(dict_a.W_enc[:, permutation])
        dict_b.b_enc.copy_(dict_a.b_enc[permutation])
        dict_b.W_dec.copy_(dict_a.W_dec[permutation])
    match = match_features(dict_a, dict_b, acts, acts.clone(), UniversalConfig(batch_size=1000))
    a, b, r = match.assignment()
    assert torch.equal(permutation[b], a)  # B's latent j is A's latent permutation[j]
    torch.testing.assert_close(r, torch.ones_like(r), rtol=0, atol=1e-4)
    summary = match.summary()
    assert summary["shared_fraction"] == 1.0 and summary["baseline_shared_fraction"] < 0.1
