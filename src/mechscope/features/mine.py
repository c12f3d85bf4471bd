"""mine(): one streaming pass of a dictionary over text (or a cache) into a feature catalogue directory.

The directory holds manifest.json, catalog.sqlite (see catalog_schema) and examples.parquet (see
examples); `mechscope.features.write_dashboard` and `export_neuronpedia` read them back.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mechscope.data.cache import ActivationCache
from mechscope.data.sources import text_source
from mechscope.dictionaries.binding import bind_dictionary
from mechscope.errors import CacheMismatchError, DataError, MechscopeError
from mechscope.features.batches import WindowStore, cache_batches, text_batches
from mechscope.features.catalog import Catalog
from mechscope.features.catalog_schema import FILE as CATALOG, build_catalog
from mechscope.features.config import MiningConfig
from mechscope.features.examples import FILE as EXAMPLES, runs, vocabulary, write_examples
from mechscope.features.miner import ExampleSet, Miner
from mechscope.features.statistics import quantile_edges
from mechscope.features.weights import decoder_neighbours, logit_weights
from mechscope.manifest import build_manifest, input_record, write_manifest

FORMAT = "mechscope.features"


@dataclass
class MiningResult:
    """Where a mining run wrote its catalogue and what it measured."""

    directory: str
    tokens: int
    windows: int
    latents: int
    dead: int
    rare: int
    examples: int
    pass_seconds: float  # the streaming pass (forward + encode + mining)
    seconds: float  # everything, including logit weights, neighbours and writing
    tokens_per_second: float  # over the streaming pass
    logit_method: str

    def to_dict(self) -> dict:
        return asdict(self)


def mine(model, dictionary, source="pydocs", out: str | Path = "features", config: MiningConfig | None = None,
         hook: str | None = None, **options) -> MiningResult:
    """Mine every latent of `dictionary` over `source` (a text source, or an ActivationCache / its directory).

    Options are MiningConfig fields (tokens, top_k, samples, test_fraction, ...). Writes a fresh catalogue
    into `out` (catalog.sqlite, examples.parquet, manifest.json) and returns a MiningResult. Each file is
    replaced atomically; a catalogue in `out` that already holds labels is never replaced (MechscopeError):
    mine into another directory, or delete its catalog.sqlite first.
    """
    cfg = config or MiningConfig(**options)
    bound = bind_dictionary(model, dictionary, hook)
    sae, hook = bound.dictionary, bound.hook
    dtype = sae.W_enc.dtype

    def encode(x: torch.Tensor) -> torch.Tensor:
        return sae.encode(x.to(model.device, dtype))

    inputs = {"dictionary": input_record(bound.path) if bound.path else {"name": "in-memory"}}
    cache = _as_cache(source)
    if cache is not None:
        _check_cache(cache, model, hook)
        context, described = cache.manifest["context"], {"cache": [str(d) for d in cache.directories]}
        inputs["activations"] = [input_record(d) for d in cache.directories]
        batches = cache_batches(cache, encode, hook, cfg.tokens, cfg.batch_size)
    else:
        src = text_source(source)
        if cfg.tokens == 0:
            raise MechscopeError(f"tokens=0 (all) applies to an activation cache; mining text source {src.name} "
                                 "needs a token count")
        context, described = cfg.context, {"source": src.name}
        inputs["corpus"] = {"name": src.name}
        batches = text_batches(model, encode, hook, src, cfg.tokens, cfg.context, cfg.batch_size, cfg.seed,
                               cfg.exclude_special)
    out = Path(out)
    _refuse_labelled(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    miner = Miner(sae.d_sae, cfg, context, model.device)
    store = WindowStore(out / "windows.tmp")
    try:
        with torch.no_grad(), tqdm(total=cfg.tokens or None, unit="tok", unit_scale=True, desc="mine",
                                   disable=None) as bar:
            for batch in batches:
                store.add(batch)
                miner.update(batch)
                bar.update(batch.codes.shape[0])
        pass_seconds = time.perf_counter() - started
        if miner.tokens == 0:
            raise DataError("the source gave no tokens to mine")
        strings = _strings(model)
        sets = miner.examples()
        (out / CATALOG).unlink(missing_ok=True)  # an interrupted write leaves no catalogue, never a mismatched pair
        n_examples = write_examples(out / EXAMPLES, sets, store, strings)
        top = next(s for s in sets if s.kind == "top")
        summary = _write_catalog(out, model, sae, hook, miner, top, store, strings, cfg, described, inputs)
    finally:
        store.close()
    seconds = time.perf_counter() - started
    result = MiningResult(directory=str(out), tokens=miner.tokens, windows=miner.windows, latents=sae.d_sae,
                          dead=len(summary["too_few"]["dead"]), rare=len(summary["too_few"]["rare"]),
                          examples=n_examples, pass_seconds=round(pass_seconds, 3), seconds=round(seconds, 3),
                          tokens_per_second=round(miner.tokens / pass_seconds, 1),
                          logit_method=summary["logit_method"])
    write_manifest(out, {**summary["manifest"], "result": result.to_dict(), "too_few": summary["too_few"]})
    return result


def _as_cache(source) -> ActivationCache | None:
    if isinstance(source, ActivationCache):
        return source
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        path = Path(source)
        if (path / "manifest.json").exists() or any(path.glob("part-*-of-*/manifest.json")):
            return ActivationCache(path)
    return None


def _refuse_labelled(out: Path) -> None:
    """Mining replaces a catalogue wholesale, so one holding labels (and their scores) is not mined over."""
    if not (out / CATALOG).exists():
        return
    with Catalog(out) as old:
        labels = old.db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
    if labels:
        raise MechscopeError(f"{out} holds a feature catalogue with {labels} labels that mining again would "
                             f"replace; give another out directory, or delete {out / CATALOG} to discard them")


def _check_cache(cache: ActivationCache, model, hook: str) -> None:
    if hook not in cache.hooks:
        raise CacheMismatchError(f"the cache holds hooks {cache.hooks}, the dictionary reads {hook}")
    made_by = cache.manifest["model"]["fingerprint"]
    if made_by != model.fingerprint():
        raise CacheMismatchError(f"the cache was harvested from model {cache.manifest['model']['name']} "
                                 f"(fingerprint {made_by}), not from {model.info.name} ({model.fingerprint()})")


def _strings(model) -> list[str]:
    """Display strings for every token id the windows or the logit tables can hold."""
    head = model.hf.get_output_embeddings()
    head = model.hf.get_input_embeddings() if head is None else head
    return vocabulary(model.tokenizer, max(len(model.tokenizer), head.weight.shape[0]))


def _write_catalog(out: Path, model, sae, hook: str, miner: Miner, top: ExampleSet, store: WindowStore,
                   strings: list[str], cfg: MiningConfig, described: dict, inputs: dict) -> dict:
    stats = miner.stats.as_numpy()
    count = stats["count"]
    status = np.where(count == 0, "dead", np.where(count < cfg.min_activations, "rare", "ok"))
    logits = logit_weights(model, sae.W_dec, hook, cfg.logit_tokens)
    edges = miner.edges.numpy().astype(np.float64)
    q_edges = quantile_edges(stats["histogram"], edges, stats["minimum"], stats["maximum"], cfg.quantile_bins)
    top_ids = store.read(top.window, top.position, 1)[:, 0] if len(top.latent) else np.zeros(0, int)
    top_tokens = _top_tokens(top.latent, top_ids, strings, sae.d_sae)
    neighbours = []
    for kind, (ids, values) in (("decoder", decoder_neighbours(sae.W_dec, cfg.neighbours)),
                                ("cooccurrence", miner.cofiring.neighbours(cfg.neighbours))):
        ids, values = np.asarray(ids), np.asarray(values)
        latent, rank = np.nonzero(ids >= 0)
        neighbours += zip(latent.tolist(), [kind] * len(latent), rank.tolist(), ids[latent, rank].tolist(),
                          values[latent, rank].astype(float).tolist())
    rows, search = [], []
    for i in range(sae.d_sae):
        promoted = _logit_pairs(logits, "top", i, strings)
        suppressed = _logit_pairs(logits, "bottom", i, strings)
        nonzero = np.flatnonzero(stats["histogram"][i])
        first = int(nonzero[0]) if len(nonzero) else 0
        histogram = stats["histogram"][i][first:int(nonzero[-1]) + 1 if len(nonzero) else 0].tolist()
        rows.append((i, int(count[i]), count[i] / miner.tokens, float(stats["maximum"][i]),
                     float(stats["total"][i] / max(count[i], 1)), float(stats["minimum"][i]), str(status[i]),
                     json.dumps(top_tokens[i]), json.dumps(promoted), json.dumps(suppressed),
                     json.dumps({"first": first, "counts": histogram}),
                     json.dumps([float(f"{e:.6g}") for e in q_edges[i]])))
        search.append((i, " ".join(top_tokens[i] + [t for t, _ in promoted])))
    too_few = {s: np.flatnonzero(status == s).tolist() for s in ("dead", "rare")}
    manifest = build_manifest(
        FORMAT, model=model, config=cfg, inputs=inputs, hook=hook,
        dictionary={"architecture": sae.cfg.architecture, "d_in": sae.d_in, "d_sae": sae.d_sae,
                    "hook_name": sae.cfg.hook_name, "model_name": sae.cfg.model_name},
        context=miner.context, tokens=miner.tokens, windows=miner.windows, logit_method=logits["method"],
        files={"catalog": CATALOG, "examples": EXAMPLES}, **described)
    build_catalog(out / CATALOG, {"manifest": manifest, "histogram_edges": edges.tolist(),
                                  "quantile_bins": cfg.quantile_bins}, rows, neighbours, search)
    return {"manifest": manifest, "too_few": too_few, "logit_method": logits["method"]}


def _top_tokens(latents: np.ndarray, token_ids: np.ndarray, strings: list[str], d_sae: int) -> list[list[str]]:
    """Per latent, the distinct tokens at its top activations, most frequent first."""
    out: list[list[str]] = [[] for _ in range(d_sae)]
    for a, b in runs(latents):
        counts = Counter(strings[t] for t in token_ids[a:b].tolist())
        out[int(latents[a])] = [t for t, _ in counts.most_common()]
    return out


def _logit_pairs(logits: dict, which: str, latent: int, strings: list[str]) -> list[tuple[str, float]]:
    if f"{which}_ids" not in logits:
        return []
    ids, values = logits[f"{which}_ids"][latent], logits[f"{which}_values"][latent]
    return [(strings[t], round(float(v), 4)) for t, v in zip(ids.tolist(), values.tolist())]
