"""Node labels for attribution graphs from feature catalogues (one per transcoder layer)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from mechscope.features.catalog import Catalog


def catalog_labels(catalogs: Mapping[int, str | Path]) -> Callable[[int, int], str]:
    """(layer, latent) -> the latent's newest label in that layer's catalogue, "" when it has none."""
    opened = {layer: Catalog(path) for layer, path in catalogs.items()}

    def label(layer: int, latent: int) -> str:
        found = opened[layer].labels(latent) if layer in opened else []
        return found[-1].text if found else ""
    return label
