"""Attribution-graph node labels read from per-layer feature catalogues."""

from __future__ import annotations

import shutil

from mechscope.data.harvester import HarvestConfig, windows
from mechscope.data.sources import text_source
from mechscope.features import Catalog, catalog_labels
from tests.features.conftest import DEAD, MINE, TEXT


def test_catalog_labels_give_each_layers_newest_label(mined, tmp_path):
    out, _ = mined
    copy = shutil.copytree(out, tmp_path / "catalogue")
    with Catalog(copy) as catalog:
        catalog.add_label(3, "cats", explainer="oneshot")
        catalog.add_label(3, "cats on mats", explainer="oneshot")
    label = catalog_labels({2: copy})
    assert label(2, 3) == "cats on mats"
    assert label(0, 3) == "" and label(2, DEAD) == ""  # no catalogue for layer 0; a dead latent has no context


def test_an_unlabelled_latent_is_labelled_by_the_token_of_its_largest_activation(mined, lm, reference):
    out, _ = mined
    label = catalog_labels({2: out})(2, 4)
    best = int(reference.codes[:, 4].argmax())
    cfg = HarvestConfig(hooks=["x"], context=MINE["context"], tokens=MINE["tokens"])
    ids = list(windows(lm, text_source(TEXT), cfg))[int(reference.window[best])]
    token = lm.to_str_tokens(ids)[int(reference.position[best])]
    assert f"«{token}»" in label and label.index("«") > 0  # the top token, after some context
