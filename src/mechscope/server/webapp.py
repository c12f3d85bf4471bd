"""The web app served at `/`: one page and its scripts, packaged with mechscope (no CDN, no build step), and the
description of what this server holds that the page builds its controls from."""

from __future__ import annotations

from functools import cache
from importlib import resources as package_files

from mechscope.features.catalog import Catalog
from mechscope.models.positions import SCOPES
from mechscope.server.resources import Resources
from mechscope.steering.interventions import OPS
from mechscope.steering.monitors import WATCHES

# name -> the package folder that holds it; the dashboard renderer is shared with the static feature dashboards
ASSETS = {"index.html": "mechscope.server/webapp_assets", "app.js": "mechscope.server/webapp_assets",
          "app.css": "mechscope.server/webapp_assets", "dashboard.js": "mechscope.features/dashboard_assets",
          "dashboard.css": "mechscope.features/dashboard_assets"}
# the page runs only its own packaged scripts and talks only to this server
POLICY = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8"}


@cache
def asset(name: str) -> bytes:
    """The bytes of a packaged asset (a key of ASSETS; requests never name a path)."""
    package, folder = ASSETS[name].split("/")
    return (package_files.files(package) / folder / name).read_bytes()


def content_type(name: str) -> str:
    return CONTENT_TYPES[name[name.rindex("."):]]


def describe(resources: Resources) -> dict:
    """What the page may offer: model ids, vectors, dictionaries, the catalogue, saved graphs and circuits, and
    the steering ops, token scopes and monitor watches requests accept."""
    catalog = None
    if resources.catalog is not None:
        with Catalog(resources.catalog) as opened:
            manifest = opened.manifest
            catalog = {"latents": len(opened), "hook": manifest.get("hook"), "tokens": manifest.get("tokens"),
                       "model": manifest.get("model", {}).get("name")}
    return {
        "object": "resources", "model": resources.model_id, "models": resources.model_ids(),
        "vectors": [{"name": name, "layers": vector.layers, "hook": vector.hook}
                    for name, vector in sorted(resources.vectors.items())],
        "dictionaries": [{"name": name, "hook": bound.hook, "latents": bound.dictionary.d_sae}
                         for name, bound in sorted(resources.dictionaries.items())],
        "catalog": catalog, "graphs": sorted(resources.graphs), "circuits": sorted(resources.circuits),
        "ops": list(OPS), "scopes": list(SCOPES), "watches": list(WATCHES)}
