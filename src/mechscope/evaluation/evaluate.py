"""evaluate(): every dictionary metric in one pass over held-out text, as a typed, JSON-serialisable result."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mechscope.data.atomic import atomic_write_json
from mechscope.data.harvester import HarvestConfig, windows
from mechscope.data.sources import text_source
from mechscope.dictionaries.binding import BoundDictionary, bind_dictionary
from mechscope.evaluation.downstream import EmbeddingStats, LanguageModelStats
from mechscope.evaluation.reconstruction import ReconstructionStats
from mechscope.errors import MechscopeError
from mechscope.models.splice import splice_fn
from mechscope.manifest import build_manifest, input_record

RESULT_FILE = "eval.json"


@dataclass
class EvalResult:
    """What `mechscope eval` reports; `downstream` holds CE/KL scores (LMs) or embedding fidelity (encoders)."""

    model: str
    hook: str
    dictionary: str
    architecture: str
    d_sae: int
    source: str
    context: int
    tokens: int
    l0: float
    mse: float
    fvu: float
    cosine: float
    relative_reconstruction_bias: float
    dead_fraction: float
    dense_fraction: float
    density_histogram: dict
    downstream: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path, manifest: dict | None = None) -> Path:
        """Write eval.json (into `path` when it is a directory), with the run's manifest under "manifest"."""
        path = Path(path)
        target = path / RESULT_FILE if path.is_dir() else path
        record = {**self.to_dict(), **({"manifest": manifest} if manifest else {})}
        atomic_write_json(target, json.loads(json.dumps(record, default=float)))
        return target


@dataclass
class EvalConfig:
    """How much held-out text an evaluation reads, and how."""

    tokens: int = 20_000  # token positions evaluated (special tokens excluded)
    context: int = 128  # window length
    batch_size: int = 16  # windows per forward pass
    seed: int = 1  # document shuffle of the held-out source


def evaluate(model, dictionary, source="pydocs", config: EvalConfig | None = None, hook: str | None = None,
             save: bool = True, **options) -> EvalResult:
    """Reconstruction and downstream metrics of `dictionary` at its hook over `tokens` positions of `source`.

    Options are EvalConfig fields (tokens, context, batch_size, seed). Special tokens are masked everywhere;
    means are pooled over all evaluated tokens. When the dictionary came from a directory, the result is
    also written there as eval.json.
    """
    cfg = config or EvalConfig(**options)
    context = cfg.context
    bound = bind_dictionary(model, dictionary, hook)
    sae, directory, hook = bound.dictionary, bound.path, bound.hook
    src = text_source(source)
    batches, special = held_out_batches(model, src, cfg, hook)

    recon = ReconstructionStats(sae.d_sae)
    mean = torch.zeros(sae.d_in, dtype=torch.float64, device=model.device)
    count = 0
    with torch.no_grad():
        for ids in tqdm(batches, desc="eval: reconstruction", disable=None):
            keep = ~torch.isin(ids, special)
            _, cache = model.run_with_cache(ids, names=[hook], stop_at_layer="auto")
            x = cache[hook].reshape(ids.numel(), -1)[keep.reshape(-1).to(model.device)].float()
            codes = sae.encode(x)
            recon.update(x, sae.decode(codes, sae.input_norm(x)), codes)
            mean += x.double().sum(0)
            count += x.shape[0]
        mean = (mean / max(count, 1)).float()
        downstream = _downstream(model, bound, batches, special, mean)
    stats = recon.result()
    stats.pop("tokens")
    result = EvalResult(model=model.info.name, hook=hook, dictionary=str(directory or "in-memory"),
                        architecture=sae.cfg.architecture, d_sae=sae.d_sae, source=src.name, context=context,
                        tokens=recon.tokens, downstream=downstream, **stats)
    if save and directory is not None:
        result.save(directory, build_manifest("mechscope.eval", model=model, config=cfg, hook=hook, inputs={
            "dictionary": input_record(directory), "corpus": {"name": src.name}}))
    return result


def _downstream(model, bound: BoundDictionary, batches, special, mean) -> dict:
    splices = {"spliced": bound.splice(), "zero": splice_fn(torch.zeros_like),
               "mean": splice_fn(lambda x: mean.expand_as(x))}
    language_model = model.hf.get_output_embeddings() is not None  # an LM head: CE/KL; else embeddings
    stats = LanguageModelStats() if language_model else EmbeddingStats()
    for ids in tqdm(batches, desc="eval: downstream", disable=None):
        outputs = {"clean": model(ids)}
        for name, splice in splices.items():
            with model.hooks({bound.hook: splice}):
                outputs[name] = model(ids)
        if language_model:
            stats.update(ids.to(model.device), (~torch.isin(ids, special)).to(model.device), outputs)
        else:
            stats.update(torch.ones(ids.shape, device=model.device), outputs)
    return stats.result()


def held_out_batches(model, src, cfg: EvalConfig, hook: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Batches of windows [batch_size, context] holding at least cfg.tokens non-special tokens, and the special ids."""
    harvest_cfg = HarvestConfig(hooks=[hook], tokens=int(cfg.tokens), context=cfg.context, batch_size=cfg.batch_size,
                                seed=cfg.seed)
    special = torch.tensor(sorted(set(model.tokenizer.all_special_ids)))
    batches, kept = [], 0
    for ids in _batched(windows(model, src, harvest_cfg), cfg.batch_size):
        batches.append(ids)
        kept += int((~torch.isin(ids, special)).sum())
        if kept >= cfg.tokens:
            break
    if not batches:
        raise MechscopeError(f"source {src.name!r} gave no windows of {cfg.context} tokens")
    return batches, special


def _batched(rows, size: int):
    while batch := list(islice(rows, size)):
        yield torch.stack(batch)
