"""evaluate_transcoders(): a per-layer transcoder set or a CLT judged the way circuit tracing uses it.

Per layer, from the clean model's own MLP inputs: FVU of the MLP output and L0. With every MLP replaced at
once: next-token CE and KL against the clean model (scores against replacing every MLP output by zero or by
its mean), and the replacement model's next-token agreement (argmax) with the original.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mechscope.data.atomic import atomic_write_json
from mechscope.data.sources import text_source
from mechscope.dictionaries.replacement import clean_activations
from mechscope.evaluation.downstream import LanguageModelStats
from mechscope.evaluation.evaluate import EvalConfig, held_out_batches
from mechscope.evaluation.reconstruction import ReconstructionStats
from mechscope.models.splice import splice_fn

RESULT_FILE = "eval.json"


@dataclass
class TranscoderEvalResult:
    """Per-layer reconstruction (lists in layer order) and whole-model replacement scores."""

    model: str
    layers: list[int]
    source: str
    tokens: int
    fvu: list[float]
    l0: list[float]
    dead_fraction: list[float]
    downstream: dict = field(default_factory=dict)  # ce_*, kl_*, ce/kl scores, next_token_agreement

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, directory: str | Path) -> Path:
        target = Path(directory) / RESULT_FILE
        atomic_write_json(target, json.loads(json.dumps(self.to_dict(), default=float)))
        return target


def evaluate_transcoders(model, transcoders, source="pydocs", config: EvalConfig | None = None,
                         save: bool = True, **options) -> TranscoderEvalResult:
    """Metrics of a TranscoderSet or CrossLayerTranscoder (or a directory holding one) on `model` over held-out
    text. Options are EvalConfig fields; a directory also gets the result as eval.json."""
    from mechscope.dictionaries.transcoders import load_transcoders

    cfg = config or EvalConfig(**options)
    directory = Path(transcoders) if isinstance(transcoders, (str, Path)) else None
    replacement = load_transcoders(directory) if directory is not None else transcoders
    replacement.check_against(model, every_layer=False)
    replacement.to(model.device)
    src = text_source(source)
    batches, special = held_out_batches(model, src, cfg, replacement.input_hooks[0])

    n = len(replacement.layers)
    recon = [None] * n
    sums = [0.0] * n
    count = 0
    with torch.no_grad():
        for ids in tqdm(batches, desc="eval: transcoders", disable=None):
            keep = (~torch.isin(ids, special)).reshape(-1).to(model.device)
            xs, ys = clean_activations(model, replacement, ids)
            codes = []
            for i in range(n):
                x, y = xs[i][keep], ys[i][keep]
                codes.append(replacement.encode_layer(i, x))
                recon[i] = recon[i] or ReconstructionStats(codes[i].shape[-1])
                recon[i].update(y, replacement.decode_layer(i, codes, x), codes[i])
                sums[i] = sums[i] + y.double().sum(0)
            count += int(keep.sum())
        means = [(s / max(count, 1)).float() for s in sums]
        downstream = _replaced_language_model(model, replacement, batches, special, means)
    stats = [r.result() for r in recon]
    result = TranscoderEvalResult(model=model.info.name, layers=list(replacement.layers), source=src.name,
                                  tokens=count, fvu=[s["fvu"] for s in stats], l0=[s["l0"] for s in stats],
                                  dead_fraction=[s["dead_fraction"] for s in stats], downstream=downstream)
    if save and directory is not None:
        result.save(directory)
    return result


def _replaced_language_model(model, replacement, batches, special, means) -> dict:
    """CE/KL of the all-MLPs-replaced model (and of zero / mean replacement) and its argmax agreement."""
    outputs = replacement.output_hooks
    splices = {"spliced": replacement.replacement_hooks(),
               "zero": [(h, splice_fn(torch.zeros_like)) for h in outputs],
               "mean": [(h, splice_fn(lambda x, m=m: m.expand_as(x))) for h, m in zip(outputs, means)]}
    stats = LanguageModelStats()
    agree = scored = 0
    for ids in tqdm(batches, desc="eval: replaced model", disable=None):
        ids = ids.to(model.device)
        logits = {"clean": model(ids)}
        for name, hooks in splices.items():
            with model.hooks(hooks):
                logits[name] = model(ids)
        keep = ~torch.isin(ids, special.to(model.device))
        stats.update(ids, keep, logits)
        mask = keep[:, 1:]
        same = logits["spliced"][:, :-1].argmax(-1) == logits["clean"][:, :-1].argmax(-1)
        agree += int((same & mask).sum())
        scored += int(mask.sum())
    return {**stats.result(), "next_token_agreement": agree / max(scored, 1)}
