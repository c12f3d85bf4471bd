"""Label and score a mined catalogue's latents: explain from the train split, score on the held-out one.

Two phases so every score gets a random-label baseline: first every chosen latent is explained, then
each label is scored next to another latent's label. Resuming is free: latents already labelled by
this explainer keep their label, scores already stored are not redone, and LLM answers come from the
response cache.
"""

from __future__ import annotations

import random
from itertools import islice
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from mechscope.autointerp.client import make_client
from mechscope.autointerp.explainers import LLMExplainer, OfflineExplainer
from mechscope.autointerp.records import Example, LatentRecord
from mechscope.autointerp.scorers import make_scorers
from mechscope.errors import MechscopeError


@dataclass
class LabelConfig:
    """Who explains, who scores, how many latents; the defaults need no LLM at all."""

    explainer: str = "offline"  # offline | openai:MODEL | anthropic:MODEL | hf:PATH
    scorers: tuple[str, ...] = ("embedding",)  # embedding, detection, fuzzing, simulation
    scorer_model: str | None = None  # LLM for detection/fuzzing/simulation; default: the explainer's
    base_url: str | None = None  # an OpenAI-compatible server (vLLM, Ollama, llama.cpp) or an Anthropic proxy
    max_latents: int | None = None  # the first N latents (in order) with train, test and negative examples
    chain_of_thought: bool = False
    logprobs: bool = False  # ask scorers' LLM for log-probabilities (AUROC, expected simulated values)
    max_test: int = 20  # held-out activating examples per latent
    workers: int = 8  # latents explained / scored at once
    seed: int = 0
    cache_dir: str | None = None  # LLM response cache; default DIR/llm_cache

    def __post_init__(self):
        self.scorers = tuple(s.strip() for s in (self.scorers.split(",") if isinstance(self.scorers, str)
                                                 else self.scorers) if s.strip())


@dataclass
class LabelRun:
    """What a labelling run did: counts, each scorer's mean next to its random-label baseline, LLM usage."""

    explainer: str
    latents: int
    explained: int
    resumed: int
    skipped: list[int]  # latents passed over: no held-out activating or non-activating example to score on
    scores: dict = field(default_factory=dict)  # scorer -> {"metric", "mean", "baseline_mean", "n"}
    usage: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _example(row) -> Example:
    return Example(tuple(row.tokens), tuple(row.activations), row.window)


def catalog_record(catalog, latent: int, max_test: int = 20, examples=None) -> LatentRecord:
    """A latent's examples from the catalogue: train split for explaining, test split for scoring."""
    examples = catalog.examples(latent) if examples is None else examples
    train = [e for e in examples if e.split == "train"]
    test = [e for e in examples if e.split == "test"]
    held_out = sorted((e for e in test if e.kind != "random_negative"), key=lambda e: (e.kind != "quantile", e.rank))
    return LatentRecord(
        latent,
        train=[_example(e) for e in train if e.kind != "random_negative"],
        test=[_example(e) for e in held_out[:max_test]],
        negatives=[_example(e) for e in test if e.kind == "random_negative"],
        train_negatives=[_example(e) for e in train if e.kind == "random_negative"])


def _records(catalog, cfg: "LabelConfig") -> tuple[dict[int, LatentRecord], list[int]]:
    """The first `max_latents` latents (in order) with examples in every role; the incomplete ones passed over."""
    too_few = catalog.too_few()
    ok = sorted(set(range(len(catalog))).difference(*too_few.values()))
    if not ok:
        raise MechscopeError(f"no latent in {catalog.directory} fired often enough to label (dead/rare: "
                             f"{ {k: len(v) for k, v in too_few.items()} })")
    limit = cfg.max_latents or len(ok)
    records, skipped, pending = {}, [], iter(ok)
    # read examples in chunks a little larger than what is still needed, not the whole Parquet file
    while len(records) < limit and (chunk := list(islice(pending, max(64, 2 * (limit - len(records)))))):
        for latent, examples in catalog.iter_examples(chunk):
            record = catalog_record(catalog, latent, cfg.max_test, examples)
            if len(records) == limit:
                break
            if record.train and record.test and record.negatives:
                records[latent] = record
            else:
                skipped.append(latent)
    return records, skipped


def _explainer(cfg: LabelConfig, client):
    if client is None:
        return OfflineExplainer()
    return LLMExplainer(client, name=cfg.explainer, chain_of_thought=cfg.chain_of_thought)


def label_features(directory: str | Path, config: LabelConfig | None = None, client=None,
                   scorer_client=None) -> LabelRun:
    """Explain and score the latents of the catalogue in `directory`; labels and scores go into it.

    `client` / `scorer_client` override the LLM clients built from the config (tests pass their own).
    """
    from mechscope.features import Catalog

    cfg = config or LabelConfig()
    directory = Path(directory)
    cache_dir = cfg.cache_dir or directory / "llm_cache"
    if client is None and cfg.explainer != "offline":
        client = make_client(cfg.explainer, base_url=cfg.base_url, cache_dir=cache_dir)
    if scorer_client is None:
        scorer_client = make_client(cfg.scorer_model, base_url=cfg.base_url, cache_dir=cache_dir) \
            if cfg.scorer_model else client
    scorers = make_scorers(list(cfg.scorers), scorer_client, logprobs=cfg.logprobs)
    explainer = _explainer(cfg, client)

    with Catalog(directory) as catalog:
        records, skipped = _records(catalog, cfg)
        labels = {latent: _latest(catalog, latent, explainer.name) for latent in records}
        todo = [latent for latent in records if labels[latent] is None]
        run = LabelRun(explainer.name, len(records), len(todo), len(records) - len(todo), skipped)
        model = cfg.explainer if client is not None else ""

        # results are written as they arrive, so a failure part-way keeps every label and score made before it
        with ThreadPoolExecutor(cfg.workers) as pool:
            for explanation in tqdm(pool.map(lambda i: explainer.explain(records[i]), todo), total=len(todo),
                                    desc="explaining", unit="latent", disable=not todo):
                metadata = {"reasoning": explanation.reasoning} if explanation.reasoning else {}
                catalog.add_label(explanation.latent, explanation.text, explanation.explainer, model=model,
                                  metadata=metadata)
                labels[explanation.latent] = _latest(catalog, explanation.latent, explainer.name)

            latents = list(records)
            rng = random.Random(cfg.seed)
            for scorer in scorers:
                pending = [i for i, latent in enumerate(latents)
                           if not any(s.scorer == scorer.name for s in labels[latent].scores)]
                # the baseline label is another latent's: a random non-zero offset in the run's list
                other = {i: labels[latents[(i + rng.randrange(1, len(latents))) % len(latents)]].text
                         if len(latents) > 1 else None for i in pending}

                def score(i: int):
                    return scorer.score(records[latents[i]], labels[latents[i]].text, other[i])

                for i, result in zip(pending, tqdm(pool.map(score, pending), total=len(pending),
                                                   desc=f"scoring ({scorer.name})", unit="latent", disable=not pending)):
                    catalog.add_score(labels[latents[i]].id, scorer.name, result.value, result.ci_low, result.ci_high,
                                      result.baseline, result.n, metadata={"metric": result.metric, **result.extra})
        run.scores = _summary(catalog, latents, explainer.name)
        for name, c in (("explainer", client), ("scorer", scorer_client)):
            if c is not None and hasattr(c, "usage"):
                run.usage[name] = asdict(c.usage.total)
                run.usage[f"{name}_per_latent"] = {int(k): asdict(v) for k, v in c.usage.per_latent.items()}
    return run


def _latest(catalog, latent: int, explainer: str):
    """The latent's newest label by `explainer` (with its scores), or None."""
    mine = [label for label in catalog.labels(latent) if label.explainer == explainer]
    return mine[-1] if mine else None


def _summary(catalog, latents: list[int], explainer: str) -> dict:
    """Mean of each scorer's value and baseline over the run's latents (latest label of this explainer)."""
    sums: dict[str, dict] = {}
    for latent in latents:
        for score in _latest(catalog, latent, explainer).scores:
            entry = sums.setdefault(score.scorer, {"metric": score.metadata.get("metric"), "values": [],
                                                   "baselines": []})
            entry["values"].append(score.value)
            if score.baseline is not None:
                entry["baselines"].append(score.baseline)
    return {name: {"metric": e["metric"], "n": len(e["values"]), "mean": sum(e["values"]) / len(e["values"]),
                   "baseline_mean": sum(e["baselines"]) / len(e["baselines"]) if e["baselines"] else None}
            for name, e in sums.items()}
