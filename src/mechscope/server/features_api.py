"""The feature endpoints: catalogue search and latent pages, and latents that separate two prompt sets."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from mechscope.features.catalog import ORDERS as CATALOG_ORDERS
from mechscope.dictionaries.contrast import max_codes, rank_latents
from mechscope.features.dashboard import Shown, index_row, latent_data
from mechscope.features.examples import FILE as EXAMPLES
from mechscope.server.resources import Resources
from mechscope.server.schema import Fields, RequestError

MAX_CONTRAST_PROMPTS = 64  # per side
CONTRAST_BATCH = 8


def search(resources: Resources, query: str, limit: int) -> dict:
    with resources.open_catalog() as catalog:
        hits = catalog.search(query, limit=limit)
        infos = {hit.latent: catalog.get(hit.latent) for hit in hits}
    return {"object": "list", "query": query,
            "data": [{**asdict(hit), "label": _best_label(infos[hit.latent]), "density": infos[hit.latent].density}
                     for hit in hits]}


def _best_label(info) -> str | None:
    return info.labels[0].text if info.labels else None


def feature(resources: Resources, latent: int, examples: int) -> dict:
    """A latent's catalogue entry with its top examples, and `dashboard`: the compact record the dashboard
    renderer draws (the static bundle's latent page)."""
    with resources.open_catalog() as catalog:
        if not 0 <= latent < len(catalog):
            raise RequestError(f"latent {latent} does not exist; the catalogue has {len(catalog)} latents",
                               status=404, param="id")
        info = catalog.get(latent)
        top = [asdict(e) for e in catalog.examples(latent, kind="top")[:examples]]
        edges, size = catalog.histogram_edges, len(catalog)
        shown = Shown.read(catalog.directory / EXAMPLES, examples, 1, [latent])
    return {"object": "feature", **asdict(info), "examples": top, "histogram_edges": edges,
            "dashboard": {**latent_data(info, shown, edges), "L": size}}


ROW_FIELDS = ("latent", "density", "max_activation", "count", "best_score", "text", "labelled", "status")
ORDERS = ("rank", *CATALOG_ORDERS)  # rank: search relevance (with q), else latent
MAX_MATCHES = 2000  # search hits a filtered listing considers


def listing(resources: Resources, query: str | None, order_by: str, descending: bool | None, limit: int,
            offset: int, **filters) -> dict:
    """One page of latents passing `filters` (Catalog.list's status, min/max_density, min_score), matching
    `query` when given; `has_more` says whether another page follows."""
    with resources.open_catalog() as catalog:
        size, hook = len(catalog), catalog.manifest.get("hook")
        if query is None:
            infos = catalog.list("latent" if order_by == "rank" else order_by, descending, limit + 1, offset,
                                 **filters)
        else:
            ranked = [hit.latent for hit in catalog.search(query, limit=MAX_MATCHES)]
            infos = catalog.list("latent" if order_by == "rank" else order_by, descending, latents=ranked, **filters)
            if order_by == "rank":
                position = {latent: i for i, latent in enumerate(ranked)}
                infos.sort(key=lambda info: position[info.latent])
            infos = infos[offset:offset + limit + 1]
    return {"object": "list", "latents": size, "hook": hook, "has_more": len(infos) > limit,
            "data": [dict(zip(ROW_FIELDS, index_row(info))) for info in infos[:limit]]}


def contrast(resources: Resources, data: Any) -> dict:
    """Latents whose per-prompt maximum best separates `positive` from `negative` prompts: ranked by AUROC, then
    by the difference of means."""
    body = Fields(data, "body")
    rule = f"with 1..{MAX_CONTRAST_PROMPTS} non-empty strings"
    sides = [body.get(key, list, rule=rule, ok=lambda v: 1 <= len(v) <= MAX_CONTRAST_PROMPTS and all(
        isinstance(p, str) and p for p in v)) for key in ("positive", "negative")]
    names = sorted(resources.dictionaries)
    default = names[0] if len(names) == 1 else None
    name = body.get("dictionary", str, default, f"one of {names}", lambda v: v in resources.dictionaries)
    if name is None:
        raise RequestError(f"this server holds {len(names)} dictionaries {names}; name one in 'dictionary'",
                           param="dictionary")
    top = body.get("top", int, 10, "in 1..100", lambda v: 1 <= v <= 100)
    body.done()
    bound = resources.dictionaries[name]
    positive, negative = (max_codes(resources.model, bound, side, CONTRAST_BATCH) for side in sides)
    return {"object": "feature.contrast", "dictionary": name, "hook": bound.hook,
            **rank_latents(positive, negative, top)}
