"""Transcoders for the organisms, trained once per machine and cached in the zoo next to the organism they read.

Per-layer TopK transcoders (hook_mlp_in -> hook_mlp_out of every layer) or one JumpReLU cross-layer transcoder (a TopK
CLT's learned inference thresholds fire far more latents than its k and predict worse than the mean here), trained
by the shared trainers on the organism's own training documents; deterministic for a given seed, so the cache entry
`<organism entry>-transcoders-<kind>-<hash of every setting>` is what any machine would train.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mechscope.dictionaries import (CLTConfig, CrossLayerTranscoder, DictionaryConfig, TrainConfig, TranscoderSet,
                                    load_transcoders, train, train_clt)
from mechscope.dictionaries.formats import load_dictionary
from mechscope.errors import OrganismError
from mechscope.manifest import build_manifest, write_manifest
from mechscope.toy.organisms import Organism
from mechscope.toy.zoo import ZOO_FORMAT, load_organism, organism_path

INPUT_HOOK, OUTPUT_HOOK = "blocks.{layer}.hook_mlp_in", "blocks.{layer}.hook_mlp_out"
MANIFEST = "manifest.json"


@dataclass
class OrganismTranscoderConfig:
    """Width, sparsity and training budget of an organism's transcoders (defaults: a few seconds on a CPU)."""

    cross_layer: bool = False  # one CLT over every layer instead of one transcoder per layer
    d_latent: int = 256  # latents per layer
    k: int = 8  # per-layer TopK: active latents per token
    sparsity_coefficient: float = 0.01  # the CLT's JumpReLU tanh penalty (lambda)
    documents: int = 256  # training documents harvested from the organism's task
    tokens: int = 300_000  # training tokens (passes over the harvest)
    batch_size: int = 1024
    seed: int = 0

    @property
    def kind(self) -> str:
        return "clt" if self.cross_layer else "per-layer"


def harvest_mlp_pairs(organism: Organism, documents: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Every layer's MLP input and output on `documents` of the organism's training texts, each document run alone
    (no padding): (inputs, outputs) [n_tokens, n_layers, d_model]."""
    model = organism.model
    names = [hook.format(layer=layer) for layer in range(model.n_layers) for hook in (INPUT_HOOK, OUTPUT_HOOK)]
    xs, ys = [], []
    with torch.no_grad():
        for text in organism.task.train_texts(random.Random(seed), documents):
            _, cache = model.run_with_cache(model.to_tokens(text), names)
            xs.append(torch.stack([cache[n][0].float() for n in names[0::2]], 1))
            ys.append(torch.stack([cache[n][0].float() for n in names[1::2]], 1))
    return torch.cat(xs).cpu(), torch.cat(ys).cpu()


def _epochs(xs: torch.Tensor, ys: torch.Tensor, batch_size: int, seed: int, layer: int | None = None):
    """Shuffled (x, y) batches over and over, the same for a given seed; one layer's, or every layer's."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        for rows in torch.randperm(len(xs), generator=generator).split(batch_size):
            if len(rows) == batch_size:
                yield (xs[rows], ys[rows]) if layer is None else (xs[rows, layer], ys[rows, layer])


def train_organism_transcoders(organism: Organism, config: OrganismTranscoderConfig, out: str | Path) -> Path:
    """Train the organism's transcoders into `out` (a TranscoderSet, or a CLT in circuit-tracer's layout) with a
    manifest recording each layer's fraction of variance unexplained and L0 on the harvest."""
    out = Path(out)
    model = organism.model
    xs, ys = harvest_mlp_pairs(organism, config.documents, config.seed)
    tcfg = TrainConfig(tokens=config.tokens, batch_size=config.batch_size, seed=config.seed, device="cpu",
                       init_tokens=config.batch_size, checkpoint_every=10 ** 9, log_every=10 ** 9)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    result = work / "result"
    try:
        if config.cross_layer:
            cfg = CLTConfig(n_layers=model.n_layers, d_in=model.info.d_model, d_latent=config.d_latent,
                            activation="jumprelu", sparsity_coefficient=config.sparsity_coefficient, hook_in=INPUT_HOOK,
                            hook_out=OUTPUT_HOOK, model_name=organism.name)
            torch.manual_seed(config.seed)
            train_clt(_epochs(xs, ys, config.batch_size, config.seed), cfg, work, tcfg).rename(result)
        else:
            dictionaries = []
            for layer in range(model.n_layers):
                cfg = DictionaryConfig(d_in=model.info.d_model, d_sae=config.d_latent, architecture="topk",
                                       k=config.k, apply_b_dec_to_input=False, hook_name=INPUT_HOOK.format(layer=layer),
                                       hook_name_out=OUTPUT_HOOK.format(layer=layer), model_name=organism.name)
                torch.manual_seed(config.seed)
                trained = train(_epochs(xs, ys, config.batch_size, config.seed, layer), cfg, work / f"layer_{layer}",
                                tcfg)
                dictionaries.append(load_dictionary(trained[0]))
            TranscoderSet(dictionaries, list(range(model.n_layers)), organism.name).save(result)
        quality = _quality(load_transcoders(result), xs, ys)
        write_manifest(result, build_manifest("mechscope.organism_transcoders", model={"name": organism.name},
                                              config=asdict(config), organism=str(organism.path),
                                              transcoders=config.kind, tokens_harvested=len(xs), **quality))
        result.rename(out)  # whole or not at all
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


@torch.no_grad()
def _quality(transcoders, xs: torch.Tensor, ys: torch.Tensor) -> dict[str, list[float]]:
    """Each layer's fraction of the MLP output's variance the transcoders leave unexplained, and its mean L0."""
    if isinstance(transcoders, CrossLayerTranscoder):
        codes = transcoders.encode(xs)
        predicted = transcoders.decode(codes, xs)
    else:
        codes = torch.stack([d.encode(xs[:, i]) for i, d in enumerate(transcoders.dictionaries)], 1)
        predicted = torch.stack([d.output(codes[:, i], xs[:, i]) for i, d in enumerate(transcoders.dictionaries)], 1)
    fvu = (predicted - ys).pow(2).sum((0, 2)) / (ys - ys.mean(0)).pow(2).sum((0, 2))
    return {"fvu_per_layer": [round(float(v), 4) for v in fvu],
            "l0_per_layer": [round(float(v), 1) for v in (codes > 0).sum(2).float().mean(0)]}


def organism_transcoders_path(name: str, size: str = "default", config: OrganismTranscoderConfig | None = None,
                              progress: bool = True) -> Path:
    """The cached transcoders of organism `name` (trained, with the organism itself, on first use)."""
    config = config or OrganismTranscoderConfig()
    base = organism_path(name, size, progress=progress)
    digest = hashlib.sha256(json.dumps({"format": ZOO_FORMAT, **asdict(config)}, sort_keys=True).encode())
    path = base.with_name(f"{base.name}-transcoders-{config.kind}-{digest.hexdigest()[:12]}")
    if (path / MANIFEST).exists():
        return path
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be training these very transcoders
        if not (path / MANIFEST).exists():
            train_organism_transcoders(load_organism(name, size, device="cpu"), config, path)
    return path


def organism_transcoders(name: str, size: str = "default", config: OrganismTranscoderConfig | None = None,
                         device: str = "cpu") -> TranscoderSet | CrossLayerTranscoder:
    """Organism `name`'s transcoders from the zoo cache: a TranscoderSet, or a CrossLayerTranscoder with
    config.cross_layer (wrap either for attribution graphs with `load_transcoder_directory`'s classes)."""
    path = organism_transcoders_path(name, size, config)
    try:
        return load_transcoders(path, device)
    except (OSError, ValueError) as err:
        raise OrganismError(f"the zoo's transcoders at {path} are damaged ({err}); remove the directory and they "
                            "will be retrained") from err
