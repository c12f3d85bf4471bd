"""Node labels for attribution graphs from feature catalogues (one per transcoder layer)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from mechscope.features.catalog import Catalog
from mechscope.features.examples import ContextExample


def top_context(example: ContextExample, before: int = 4, after: int = 1) -> str:
    """The example's own token in «» with a few tokens either side: '... the cat «sat» on'."""
    i = example.token_index
    tokens = example.tokens
    return ("".join(tokens[max(0, i - before):i]) + f"«{tokens[i]}»" + "".join(tokens[i + 1:i + 1 + after])).strip()


def catalog_labels(catalogs: Mapping[int, str | Path]) -> Callable[[int, int], str]:
    """(layer, latent) -> the latent's newest label in that layer's catalogue, else its top activating context,
    "" when the catalogue has neither."""
    opened = {layer: Catalog(path) for layer, path in catalogs.items()}

    def label(layer: int, latent: int) -> str:
        if layer not in opened:
            return ""
        found = opened[layer].labels(latent)
        if found:
            return found[-1].text
        top = opened[layer].examples(latent, kind="top")
        return top_context(top[0]) if top else ""
    return label
