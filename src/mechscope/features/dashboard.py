"""Static offline dashboards from a catalogue: an index of latents and one small page per latent.

Everything opens from file:// with no network: one shared renderer (assets/dashboard.js + .css, copied
from the package) and, per latent, an HTML page carrying its data inline as compact JSON (tokens as
indices into a per-page table, activations as percent of the latent's maximum). Regenerating picks up
labels and scores added to the catalogue since.
"""

from __future__ import annotations

import json
import shutil
import time
import zlib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from mechscope.data.atomic import atomic_file
from mechscope.features.catalog import Catalog, LatentInfo
from mechscope.features.examples import ContextExample

ASSETS = ("dashboard.js", "dashboard.css")
PAGE = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<link rel="stylesheet" href="{root}assets/dashboard.css"></head><body><div id="app"></div>'
        '<script src="{root}assets/dashboard.js"></script><script>{call}</script></body></html>\n')


@dataclass
class DashboardResult:
    """Where the bundle is and what it weighs."""

    path: str
    latents: int
    bytes_per_latent: float  # mean raw size of a latent page
    gzip_bytes_per_latent: float  # mean gzip size of a latent page (what a server or archive would ship)
    shared_bytes: int  # index, its data and the assets, once for the whole bundle
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def write_dashboard(directory: str | Path, out: str | Path | None = None, top: int = 10,
                    per_bin: int = 1) -> DashboardResult:
    """Write the bundle for the catalogue in `directory` into `out` (default: directory/dashboard); each page
    shows up to `top` top-activation contexts and `per_bin` sampled contexts per quantile bin."""
    started = time.perf_counter()
    catalog = Catalog(directory)
    out = Path(out) if out is not None else catalog.directory / "dashboard"
    (out / "latents").mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    for name in ASSETS:
        with resources.as_file(resources.files("mechscope.features") / "dashboard_assets" / name) as source:
            shutil.copyfile(source, out / "assets" / name)
    edges, total = catalog.histogram_edges, len(catalog)
    raw = packed = 0
    rows = []
    for info, examples in catalog.with_examples():
        data = {**latent_data(info, examples, edges, top, per_bin), "L": total}
        page = PAGE.format(title=f"latent {info.latent}", root="../", call=f"renderLatent({_json(data)})").encode()
        _write(out / "latents" / f"{info.latent}.html", page)
        raw += len(page)
        packed += len(zlib.compress(page, 6))
        rows.append(_index_row(info))
    manifest = catalog.manifest
    index = {"title": f"{manifest['model']['name']} · {manifest['hook']} · {total} latents",
             "tokens": manifest["tokens"], "rows": rows}
    _write(out / "index-data.js", f"var MECHSCOPE_INDEX = {_json(index)};\n".encode())
    _write(out / "index.html", PAGE.format(title="mechscope features", root="",
                                           call="renderIndex(MECHSCOPE_INDEX)").replace(
        '<script src="assets/dashboard.js">', '<script src="index-data.js"></script><script src="assets/dashboard.js">')
        .encode())
    shared = sum(p.stat().st_size for p in [out / "index.html", out / "index-data.js",
                                            *(out / "assets" / n for n in ASSETS)])
    catalog.close()
    n = max(total, 1)
    return DashboardResult(str(out), total, round(raw / n, 1), round(packed / n, 1), shared,
                           round(time.perf_counter() - started, 3))


def latent_data(info: LatentInfo, examples: list[ContextExample], edges: list[float], top: int,
                per_bin: int) -> dict:
    """The compact per-latent record the renderer reads."""
    tokens: dict[str, int] = {}
    scale = info.max_activation or 1.0

    def context(e: ContextExample) -> list:
        ids = [tokens.setdefault(t, len(tokens)) for t in e.tokens]
        return [ids, [round(100 * a / scale) for a in e.activations], e.token_index, _round(e.activation),
                e.split[:2]]

    tops = [context(e) for e in examples if e.kind == "top"][:top]
    bins: dict[int, list] = {}
    for e in examples:
        if e.kind == "quantile" and len(bins.setdefault(e.quantile_bin, [])) < per_bin:
            bins[e.quantile_bin].append(context(e))
    first = info.histogram["first"]
    return {
        "i": info.latent, "n": info.count, "d": _round(info.density), "m": _round(info.max_activation),
        "mean": _round(info.mean_activation), "st": info.status,
        "h": [_round(edges[first - 1]) if first > 0 else 0, _round(edges[1] / edges[0]), info.histogram["counts"]],
        "qe": [_round(e) for e in info.quantile_edges], "tt": info.top_tokens[:10],
        "pl": [[t, _round(v)] for t, v in info.top_logits], "nl": [[t, _round(v)] for t, v in info.bottom_logits],
        "dn": [[j, _round(v)] for j, v in info.decoder_neighbours],
        "cn": [[j, _round(v)] for j, v in info.cooccurrence_neighbours],
        "lb": [{"t": label.text, "x": label.explainer, "m": label.model,
                "s": [[s.scorer, _round(s.value), _round(s.ci_low), _round(s.ci_high), _round(s.baseline)]
                      for s in label.scores]} for label in info.labels],
        "top": tops, "q": [[b, *c] for b in sorted(bins) for c in bins[b]], "tk": list(tokens),
    }


def _index_row(info: LatentInfo) -> list:
    best = max(info.labels, key=lambda label: max((s.value for s in label.scores), default=float("-inf")),
               default=None)
    text = best.text if best is not None else " ".join(info.top_tokens[:6])
    return [info.latent, _round(info.density), _round(info.max_activation), info.count,
            _round(info.best_score), text, int(best is not None), info.status]


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.4g}")


def _json(data) -> str:
    """Compact JSON that is safe inside a <script> element."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _write(path: Path, content: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(content)
