"""The absorption toy: a plain TopK SAE folds the parent into its children; Matryoshka keeps it."""

from __future__ import annotations

from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
from mechscope.dictionaries.formats import load_dictionary
from mechscope.synthetic import AbsorptionFeatures, absorption_scores


def test_parent_children_statistics():
    data = AbsorptionFeatures()
    _, codes = data.sample(20_000)
    parent, children = codes[:, 0] > 0, codes[:, 1:5] > 0
    assert bool((children.any(1) <= parent).all())  # a child never fires without its parent
    assert int(children.sum(1).max()) == 1  # children are mutually exclusive
    assert abs(float(parent.float().mean()) - 0.3) < 0.02


def test_topk_absorbs_the_parent_and_matryoshka_recovers_it(tmp_path):
    data = AbsorptionFeatures()
    configs = [DictionaryConfig(32, 24, "topk", k=2),
               DictionaryConfig(32, 24, "matryoshka", k=2, matryoshka_widths=[1, 24])]
    dirs = train(data, configs, tmp_path, TrainConfig(tokens=2000 * 512, batch_size=512, log_every=500))
    plain, nested = (absorption_scores(load_dictionary(d), data) for d in dirs)
    assert nested["parent_cosine"] > 0.9 and nested["parent_recall_with_child"] > 0.9
    assert plain["parent_cosine"] < 0.9 and plain["parent_recall_with_child"] < 0.5
