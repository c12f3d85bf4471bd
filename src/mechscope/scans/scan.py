"""scan_families(): for each concept family, the catalogue's latents whose labels name it and a linear probe's
held-out AUROC on its contrastive prompts, written as out/scan.json with its manifest."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mechscope.data.atomic import atomic_write_json
from mechscope.dictionaries.binding import bind_dictionary
from mechscope.features.catalog import Catalog
from mechscope.dictionaries.contrast import auroc_columns, max_codes
from mechscope.manifest import build_manifest, input_record, write_manifest
from mechscope.scans.config import FamilyScanConfig
from mechscope.scans.families import ConceptFamily, FamilyScanError, load_families
from mechscope.scans.matching import FamilyMatch, match_family
from mechscope.scans.probing import held_out_auroc, pooled_activations, probe_scores
from mechscope.statistics import auroc, bootstrap_ci

FORMAT = "mechscope.family_scan"
FILE = "scan.json"


@dataclass
class FamilyProbe:
    """A probe's held-out AUROC, and the control: the same procedure with shuffled labels (about 0.5)."""

    hook: str
    layer: int | None
    auroc: float
    auroc_ci: list[float]  # 95% percentile bootstrap over the held-out prompts
    control_auroc: float
    n_positive: int  # held out
    n_negative: int
    n_train: int
    method: str
    pooling: str


@dataclass
class FamilyScan:
    """One family's result: the latents whose labels matched, and its probe."""

    name: str
    description: str
    keywords: list[str]
    sha256: str  # of the family's definition (description, keywords, prompts)
    matches: list[FamilyMatch]
    probe: FamilyProbe


@dataclass
class FamilyScanResult:
    """What a scan found per family, and where it wrote scan.json."""

    directory: str
    hook: str
    dictionary: str | None  # None: no dictionary was found, so matched latents have no AUROC
    families: list[FamilyScan] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def scan_families(model, catalog_dir: str | Path | None, out: str | Path,
                  config: FamilyScanConfig = FamilyScanConfig(), embedder=None) -> FamilyScanResult:
    """Scan every family: match catalogue labels (none without a catalogue), probe at the hook, write
    out/scan.json and out/manifest.json. `embedder` defaults to MiniLM (`autointerp.SentenceEmbedder`)."""
    started = time.perf_counter()
    families = load_families(config.families, config.select)
    catalog = Catalog(catalog_dir) if catalog_dir is not None else None
    try:
        hook = config.hook or (catalog.manifest.get("hook") if catalog is not None else None)
        if hook is None:
            raise FamilyScanError("a scan without a catalogue needs a hook (config.hook / --hook)")
        model.point(hook)
        dictionary_path = config.dictionary or _recorded_dictionary(catalog, hook)
        bound = bind_dictionary(model, dictionary_path, hook) if dictionary_path else None
        labels = [label for info in catalog.list() for label in info.labels] if catalog is not None else []
        if embedder is None and config.embedding and labels:
            from mechscope.models.embedding import SentenceEmbedder

            embedder = SentenceEmbedder()
        result = FamilyScanResult(str(out), hook, str(dictionary_path) if dictionary_path else None)
        for family in tqdm(families, desc="family scan", disable=None):
            matches = match_family(catalog, family, labels, embedder if config.embedding else None,
                                   config.min_similarity, config.max_matches, config.examples) if labels else []
            probe = _probe(model, family, hook, bound, matches, config)
            result.families.append(FamilyScan(family.name, family.description, list(family.keywords),
                                              family.sha256(), matches, probe))
    finally:
        if catalog is not None:
            catalog.close()
    result.seconds = round(time.perf_counter() - started, 3)
    _write(result, model, config, catalog_dir, dictionary_path)
    return result


def _recorded_dictionary(catalog: Catalog | None, hook: str) -> str | None:
    """The dictionary the catalogue was mined from, when it reads `hook` and is still on disk: its recorded path
    as given or below one of the catalogue's ancestors (mining records the path it was given), checksum equal."""
    if catalog is None or catalog.manifest.get("hook") != hook:
        return None
    recorded = catalog.manifest.get("inputs", {}).get("dictionary", {})
    if "path" not in recorded:
        return None
    path = Path(recorded["path"])
    roots = [] if path.is_absolute() else catalog.directory.resolve().parents
    candidates = [path, *(root / path for root in roots)]
    return next((str(c) for c in candidates if c.exists() and input_record(c)["sha256"] == recorded["sha256"]), None)


def _probe(model, family: ConceptFamily, hook: str, bound, matches: list[FamilyMatch],
           config: FamilyScanConfig) -> FamilyProbe:
    """Fit on the train split, score the held-out split; set each match's held-out AUROC (the latent's maximum
    over each prompt, `dictionaries.contrast.max_codes`)."""
    split = family.split(config.test_fraction, config.seed)
    (train_pos, train_neg), (test_pos, test_neg) = (
        [pooled_activations(model, prompts, hook, config.pooling, config.batch_size) for prompts in split[part]]
        for part in ("train", "test"))
    test = torch.cat([test_pos, test_neg])
    scores = probe_scores(train_pos, train_neg, test, config.method)
    n_pos = len(test_pos)
    control = _shuffled_control(torch.cat([train_pos, train_neg]), len(train_pos), test, n_pos, config)
    if bound is not None and matches:
        latents = [match.latent for match in matches]
        positive, negative = (max_codes(model, bound, prompts, config.batch_size)[:, latents]
                              for prompts in split["test"])
        for match, value in zip(matches, auroc_columns(positive, negative)):
            match.auroc = float(value)
    truth = np.r_[np.ones(n_pos), np.zeros(len(test) - n_pos)]
    interval = bootstrap_ci(auroc, truth, scores.numpy(), strata=truth, seed=config.seed)
    ci = [round(interval.low, 4), round(interval.high, 4)]
    return FamilyProbe(hook, model.layer_of(hook), interval.estimate, ci, control, n_pos, len(test) - n_pos,
                       len(train_pos) + len(train_neg), config.method, config.pooling)


def _shuffled_control(train: Tensor, n_train_pos: int, test: Tensor, n_test_pos: int,
                      config: FamilyScanConfig) -> float:
    """Held-out AUROC of the same procedure when labels carry nothing: train and test labels each permuted
    (class counts kept), so it measures what the probe scores by chance on sets this small (about 0.5)."""
    generator = torch.Generator().manual_seed(config.seed)
    train = train[torch.randperm(len(train), generator=generator)]
    scores = probe_scores(train[:n_train_pos], train[n_train_pos:], test, config.method)
    scores = scores[torch.randperm(len(test), generator=generator)]
    return held_out_auroc(scores[:n_test_pos], scores[n_test_pos:])


def _write(result: FamilyScanResult, model, config: FamilyScanConfig, catalog_dir, dictionary_path) -> None:
    out = Path(result.directory)
    out.mkdir(parents=True, exist_ok=True)
    body = result.to_dict()
    atomic_write_json(out / FILE, {"hook": body["hook"], "dictionary": body["dictionary"],
                                   "families": body["families"]})
    inputs = {role: input_record(path) for role, path in
              (("catalog", catalog_dir), ("dictionary", dictionary_path), ("families", config.families)) if path}
    summary = {f.name: {"probe_auroc": f.probe.auroc, "control_auroc": f.probe.control_auroc,
                        "matches": len(f.matches), "sha256": f.sha256} for f in result.families}
    write_manifest(out, build_manifest(FORMAT, model=model, config=config, inputs=inputs, hook=result.hook,
                                       layer=model.layer_of(result.hook), files={"scan": FILE}, families=summary,
                                       seconds=result.seconds))
