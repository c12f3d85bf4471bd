"""Attribution-graph node labels read from per-layer feature catalogues."""

from __future__ import annotations

import shutil

from mechscope.features import Catalog, catalog_labels


def test_catalog_labels_give_each_layers_newest_label(mined, tmp_path):
    out, _ = mined
    copy = shutil.copytree(out, tmp_path / "catalogue")
    with Catalog(copy) as catalog:
        catalog.add_label(3, "cats", explainer="oneshot")
        catalog.add_label(3, "cats on mats", explainer="oneshot")
    label = catalog_labels({2: copy})
    assert label(2, 3) == "cats on mats"
    assert label(2, 4) == "" and label(0, 3) == ""
