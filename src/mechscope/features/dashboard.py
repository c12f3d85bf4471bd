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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mechscope.features.catalog import Catalog, LatentInfo
from mechscope.features.examples import FILE as EXAMPLES

ASSETS = ("dashboard.js", "dashboard.css")
GZIP_SAMPLE = 1000  # pages whose compressed size is measured
PAGE = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<link rel="stylesheet" href="{root}assets/dashboard.css"></head><body><div id="app"></div>'
        '{data}<script src="{root}assets/dashboard.js"></script><script>{call}</script></body></html>\n')


@dataclass
class DashboardResult:
    """Where the bundle is and what it weighs."""

    path: str
    latents: int
    bytes_per_latent: float  # mean raw size of a latent page
    gzip_bytes_per_latent: float  # mean gzip size of a page (over up to 1000 evenly spaced pages)
    shared_bytes: int  # index, its data and the assets, once for the whole bundle
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Shown:
    """The contexts the pages show, as flat arrays sorted by latent: top-k first, then quantile bins."""

    latent: np.ndarray
    sampled: np.ndarray  # bool: a quantile-bin sample (else a top activation)
    quantile_bin: np.ndarray
    focus: np.ndarray  # index of the example's token in its context
    activation: np.ndarray
    test: np.ndarray  # bool: from a held-out window
    ids: np.ndarray  # [n, span] token ids
    acts: np.ndarray  # [n, span]
    strings: dict[int, str]  # token id -> display string

    @classmethod
    def read(cls, path: Path, top: int, per_bin: int, latents: list[int] | None = None) -> "Shown":
        """The first `top` top-k contexts and `per_bin` samples per quantile bin (train first) of every latent
        (or of `latents` only)."""
        table = pq.read_table(path, filters=None if latents is None else [("latent", "in", latents)])
        kind = table["kind"].cast(pa.string())
        top_row = pc.equal(kind, "top").to_numpy(zero_copy_only=False)
        sampled = pc.equal(kind, "quantile").to_numpy(zero_copy_only=False)
        latent, rank = table["latent"].to_numpy(), table["rank"].to_numpy()
        quantile_bin = table["quantile_bin"].to_numpy().astype(np.int64)
        group = np.where(sampled, latent * (quantile_bin.max(initial=0) + 1) + quantile_bin, -1)
        order = np.argsort(group, kind="stable")  # stored order (train first, by rank) within each group
        occurrence = np.empty(len(group), np.int64)
        occurrence[order] = np.arange(len(group)) - np.searchsorted(group[order], group[order])
        keep = np.flatnonzero((top_row & (rank < top)) | (sampled & (occurrence < per_bin)))
        keep = keep[np.lexsort((quantile_bin[keep], sampled[keep], latent[keep]))]
        rows = table.take(pa.array(keep))
        ids = rows["token_ids"].combine_chunks().flatten().to_numpy()
        where = np.zeros(ids.max(initial=0) + 1, np.int64)
        where[ids] = np.arange(len(ids))  # an occurrence of every id that is shown
        present = np.unique(ids)
        strings = rows["tokens"].combine_chunks().flatten().take(pa.array(where[present])).to_pylist()
        shape = (rows.num_rows, len(ids) // max(rows.num_rows, 1))  # [contexts, span]
        return cls(latent[keep], sampled[keep], quantile_bin[keep],
                   (rows["position"].to_numpy() - rows["start"].to_numpy()), rows["activation"].to_numpy(),
                   pc.equal(rows["split"].cast(pa.string()), "test").to_numpy(zero_copy_only=False),
                   ids.reshape(shape), rows["activations"].combine_chunks().flatten().to_numpy().reshape(shape),
                   dict(zip(present.tolist(), strings)))

    def rows_of(self, latent: int) -> slice:
        first, end = np.searchsorted(self.latent, [latent, latent + 1])
        return slice(int(first), int(end))


def write_dashboard(directory: str | Path, out: str | Path | None = None, top: int = 10,
                    per_bin: int = 1) -> DashboardResult:
    """Write the bundle for the catalogue in `directory` into `out` (default: directory/dashboard); each page
    shows up to `top` top-activation contexts and `per_bin` sampled contexts per quantile bin."""
    started = time.perf_counter()
    with Catalog(directory) as catalog:
        out = Path(out) if out is not None else catalog.directory / "dashboard"
        shown = Shown.read(catalog.directory / EXAMPLES, top, per_bin)
        latents, edges, manifest = catalog.list(), catalog.histogram_edges, catalog.manifest
    (out / "latents").mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    for name in ASSETS:
        with resources.as_file(resources.files("mechscope.features") / "dashboard_assets" / name) as source:
            shutil.copyfile(source, out / "assets" / name)
    raw, packed = 0, []
    stride = max(1, len(latents) // GZIP_SAMPLE)
    for info in latents:
        data = {**latent_data(info, shown, edges), "L": len(latents)}
        page = PAGE.format(title=f"latent {info.latent}", root="../", data="",
                           call=f"renderLatent({script_json(data)})").encode()
        (out / "latents" / f"{info.latent}.html").write_bytes(page)  # pages are regenerable: no fsync per file
        raw += len(page)
        if info.latent % stride == 0:
            packed.append(len(zlib.compress(page, 6)))
    index = {"title": f"{manifest['model']['name']} · {manifest['hook']} · {len(latents)} latents",
             "tokens": manifest["tokens"], "rows": [index_row(info) for info in latents]}
    (out / "index-data.js").write_text(f"var MECHSCOPE_INDEX = {script_json(index)};\n", encoding="utf-8")
    (out / "index.html").write_text(PAGE.format(title="mechscope features", root="",
                                                data='<script src="index-data.js"></script>',
                                                call="renderIndex(MECHSCOPE_INDEX)"), encoding="utf-8")
    shared = sum(p.stat().st_size for p in [out / "index.html", out / "index-data.js",
                                            *(out / "assets" / n for n in ASSETS)])
    n = max(len(latents), 1)
    return DashboardResult(str(out), len(latents), round(raw / n, 1), round(float(np.mean(packed)), 1), shared,
                           round(time.perf_counter() - started, 3))


def latent_data(info: LatentInfo, shown: Shown, edges: list[float]) -> dict:
    """The compact per-latent record the renderer reads: contexts as indices into a per-page token table,
    activations as percent of the latent's maximum."""
    rows = shown.rows_of(info.latent)
    unique, local = np.unique(shown.ids[rows], return_inverse=True)
    local = local.reshape(shown.ids[rows].shape)
    percent = np.rint(100 * shown.acts[rows] / (info.max_activation or 1.0)).astype(np.int64)
    contexts = [[ids, acts, focus, _round(act), "te" if test else "tr"] for ids, acts, focus, act, test in zip(
        local.tolist(), percent.tolist(), shown.focus[rows].tolist(), shown.activation[rows].tolist(),
        shown.test[rows].tolist())]
    sampled, bins = shown.sampled[rows].tolist(), shown.quantile_bin[rows].tolist()
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
        "top": [c for c, q in zip(contexts, sampled) if not q],
        "q": [[b, *c] for c, q, b in zip(contexts, sampled, bins) if q],
        "tk": [shown.strings[i] for i in unique.tolist()],
    }


def index_row(info: LatentInfo) -> list:
    """[latent, density, max activation, count, best score, best label (or top tokens), labelled, status]."""
    best = max(info.labels, key=lambda label: max((s.value for s in label.scores), default=float("-inf")),
               default=None)
    text = best.text if best is not None else " ".join(info.top_tokens[:6])
    return [info.latent, _round(info.density), _round(info.max_activation), info.count,
            _round(info.best_score), text, int(best is not None), info.status]


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.4g}")


def script_json(data) -> str:
    """Compact JSON that is safe inside a <script> element."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
