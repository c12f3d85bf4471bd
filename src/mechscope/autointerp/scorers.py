"""Scorers: how well a label predicts a latent's held-out behaviour, with a CI and a random-label baseline.

One mechanism for all: a scorer turns (record, label) into scored units — (true values, predicted
values) per held-out example — and a metric over pooled units. `score` bootstraps over units for a
95% interval and runs the same scorer with another latent's label as the baseline.
- detection (delphi): is the feature present in this excerpt? activating vs non-activating excerpts;
- fuzzing (delphi): are the marked tokens the ones it fires on? true vs random highlights;
- simulation (Bills et al. 2023): per-token activations 0-10, Pearson with the real ones;
- embedding (Paulo et al. 2024): MiniLM cosine between label and excerpt, AUROC; needs no LLM.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from mechscope.autointerp import prompts
from mechscope.autointerp.completion import LLMClient
from mechscope.autointerp.explainers import parse_json
from mechscope.autointerp.records import LatentRecord
from mechscope.statistics import auroc, balanced_accuracy, bootstrap_ci, pearson

Unit = tuple[np.ndarray, np.ndarray]  # (true values, predicted values) of one held-out example


@dataclass
class Score:
    """A scorer's headline metric with its 95% bootstrap interval and the random-label baseline."""

    scorer: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    baseline: float | None
    n: int
    extra: dict = field(default_factory=dict)  # further metrics (e.g. AUROC next to balanced accuracy)


class Scorer:
    """Subclasses supply `units` and `metrics`; the first metric is the headline."""

    name = "scorer"
    bootstrap = 1000
    seed = 0

    def units(self, record: LatentRecord, label: str) -> list[Unit]:
        raise NotImplementedError

    def metrics(self, units: list[Unit]) -> dict[str, float]:
        raise NotImplementedError

    def score(self, record: LatentRecord, label: str, baseline_label: str | None = None) -> Score:
        units = self.units(record, label)
        values = self.metrics(units)
        headline = next(iter(values))
        single = all(len(u[0]) == 1 for u in units)  # one truth per unit: resample within each class
        interval = bootstrap_ci(lambda rows: self.metrics([units[i] for i in rows])[headline], np.arange(len(units)),
                                strata=[u[0][0] for u in units] if single else None, n_resamples=self.bootstrap,
                                seed=self.seed)
        baseline = None
        if baseline_label is not None:
            baseline = self.metrics(self.units(record, baseline_label))[headline]
        extra = {k: v for k, v in values.items() if k != headline}
        return Score(self.name, headline, values[headline], interval.low, interval.high, baseline, len(units), extra)


def _pooled(units: list[Unit]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([u[0] for u in units]), np.concatenate([u[1] for u in units])


def _binary_metrics(units: list[Unit], with_auroc: bool) -> dict[str, float]:
    y_true, y_score = _pooled(units)
    out = {"balanced_accuracy": balanced_accuracy(y_true, y_score >= 0.5)}
    if with_auroc:
        out["auroc"] = auroc(y_true, y_score)
    return out


def _answer_probability(text: str, logprobs) -> float:
    """P(answer = 1): from the top log-probabilities at the answer digit where given, else the parsed 0/1."""
    for top in logprobs or []:
        if top and max(top, key=top.get).strip() in ("0", "1"):  # the position where the model answered
            p1, p0 = (sum(np.exp(lp) for t, lp in top.items() if t.strip() == d) for d in ("1", "0"))
            return float(p1 / (p1 + p0))
    return float(parse_json(text).get("answer", 0) == 1)


@dataclass
class _LLMScorer(Scorer):
    """A scorer that asks an LLM, one request per held-out item (callers fan out over latents with threads)."""

    client: LLMClient = None
    logprobs: bool = False  # ask for log-probabilities (AUROC, expected simulated values)

    def ask(self, record: LatentRecord, system: str, user: str, schema: dict, max_tokens: int):
        return self.client.complete([{"role": "system", "content": system}, {"role": "user", "content": user}],
                                    max_tokens=max_tokens, json_schema=schema, logprobs=self.logprobs,
                                    latent=record.latent)


@dataclass
class _YesNoScorer(_LLMScorer):
    """Each item is (truth, excerpt); the LLM answers 0/1 whether the label fits it."""

    system: str = ""

    def answers(self, record: LatentRecord, label: str, items: list[tuple[int, str]]) -> list[Unit]:
        units = []
        for truth, excerpt in items:
            completion = self.ask(record, self.system, prompts.scorer_user(label, excerpt), prompts.ANSWER_SCHEMA, 20)
            units.append((np.array([truth], float),
                          np.array([_answer_probability(completion.text, completion.logprobs)])))
        return units

    def metrics(self, units: list[Unit]) -> dict[str, float]:
        return _binary_metrics(units, self.logprobs)


@dataclass
class DetectionScorer(_YesNoScorer):
    """Balanced accuracy of telling held-out activating excerpts from non-activating ones by the label."""

    name: str = "detection"
    system: str = prompts.DETECTION_SYSTEM

    def units(self, record: LatentRecord, label: str) -> list[Unit]:
        items = [(1, e.text) for e in record.test] + [(0, e.text) for e in record.negatives]
        return self.answers(record, label, items)


@dataclass
class FuzzingScorer(_YesNoScorer):
    """Balanced accuracy of telling truly marked activating tokens from as many randomly marked ones."""

    name: str = "fuzzing"
    system: str = prompts.FUZZING_SYSTEM

    def units(self, record: LatentRecord, label: str) -> list[Unit]:
        rng = random.Random(f"{self.seed}:{record.latent}")
        items = []
        for example in record.test:
            firing = {i for i, a in enumerate(example.activations) if a > 0}
            quiet = [i for i in range(len(example.tokens)) if i not in firing]
            items.append((1, example.highlighted(firing)))
            decoys = set(rng.sample(quiet, min(len(firing), len(quiet)))) if quiet else set(firing)
            items.append((0, example.highlighted(decoys)))
        return self.answers(record, label, items)


@dataclass
class SimulationScorer(_LLMScorer):
    """Pearson correlation between simulated (0-10 per token) and real activations over held-out excerpts."""

    name: str = "simulation"

    def units(self, record: LatentRecord, label: str) -> list[Unit]:
        units = []
        for example in record.test + record.negatives:
            tokens = list(example.tokens)
            completion = self.ask(record, prompts.SIMULATION_SYSTEM, prompts.simulation_user(label, tokens),
                                  prompts.simulation_schema(len(tokens)), 8 + 4 * len(tokens))
            units.append((np.asarray(example.activations, float),
                          _simulated(completion.text, completion.logprobs, len(tokens))))
        return units

    def metrics(self, units: list[Unit]) -> dict[str, float]:
        return {"pearson": pearson(*_pooled(units))}


def _simulated(text: str, logprobs, n: int) -> np.ndarray:
    """Per-token predictions: expected digit under the log-probabilities when every value has them, else parsed."""
    digits = [str(d) for d in range(11)]
    expected = []
    for top in logprobs or []:
        if top and max(top, key=top.get).strip() in digits:  # a position where the model wrote a value
            weights = {int(t.strip()): float(np.exp(lp)) for t, lp in top.items() if t.strip() in digits}
            expected.append(sum(d * w for d, w in weights.items()) / sum(weights.values()))
    if len(expected) == n:
        return np.array(expected)
    values = parse_json(text).get("activations", [])
    values = [float(v) if isinstance(v, (int, float)) else 0.0 for v in values][:n]
    return np.array(values + [0.0] * (n - len(values)))


@dataclass
class EmbeddingScorer(Scorer):
    """AUROC of the cosine between the label's and each excerpt's sentence embedding (activating vs not)."""

    embedder: object = None  # anything with .embed(list[str]) -> [n, d] unit vectors; default: MiniLM
    name: str = "embedding"

    def __post_init__(self):
        if self.embedder is None:
            from mechscope.models.embedding import SentenceEmbedder
            self.embedder = SentenceEmbedder()

    def units(self, record: LatentRecord, label: str) -> list[Unit]:
        examples = record.test + record.negatives
        vectors = self.embedder.embed([label] + [e.text for e in examples])
        cosines = vectors[1:] @ vectors[0]
        truths = [1.0] * len(record.test) + [0.0] * len(record.negatives)
        return [(np.array([t]), np.array([float(c)])) for t, c in zip(truths, cosines)]

    def metrics(self, units: list[Unit]) -> dict[str, float]:
        return {"auroc": auroc(*_pooled(units))}


def make_scorers(names: list[str], client: LLMClient | None = None, logprobs: bool = False) -> list[Scorer]:
    """Scorers by name; the LLM ones need a client."""
    from mechscope.autointerp.completion import LLMError

    known = {"detection": DetectionScorer, "fuzzing": FuzzingScorer, "simulation": SimulationScorer}
    scorers = []
    for name in names:
        if name == "embedding":
            scorers.append(EmbeddingScorer())
        elif name in known:
            if client is None:
                raise LLMError(f"the {name} scorer needs an LLM (--explainer openai:MODEL, anthropic:MODEL or "
                               f"hf:PATH, or --scorer-model); only 'embedding' runs without one")
            scorers.append(known[name](client=client, logprobs=logprobs))
        else:
            raise LLMError(f"unknown scorer {name!r}; expected some of embedding, detection, fuzzing, simulation")
    return scorers
