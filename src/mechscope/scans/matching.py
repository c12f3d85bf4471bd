"""Latents whose labels name a concept family: the catalogue's full-text index over the family's keywords, and
MiniLM cosine similarity between the family's description and every label."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from mechscope.features.catalog import Catalog, Label
from mechscope.scans.families import ConceptFamily


@dataclass
class FamilyMatch:
    """A latent whose label matched: how ("fts", "embedding" or "both"), the cosine similarity of its label to
    the family description, the label's best score, a few contexts, and its held-out AUROC on the family's
    prompts (None until probed)."""

    latent: int
    label: str
    match: str
    similarity: float | None
    score: float | None
    examples: list[str] = field(default_factory=list)
    auroc: float | None = None


def fts_query(keywords: tuple[str, ...]) -> str:
    """An FTS5 query over the label column: any keyword, each a phrase whose last word is a prefix."""
    phrases = ['"' + " ".join(re.findall(r"\w+", keyword)) + '"*' for keyword in keywords]
    return "label : (" + " OR ".join(p for p in phrases if p != '""*') + ")"


def label_similarities(family: ConceptFamily, labels: list[Label], embedder) -> np.ndarray:
    """Cosine similarity [len(labels)] between the family's description and each label's text."""
    if not labels:
        return np.zeros(0)
    vectors = embedder.embed([family.description] + [label.text for label in labels])
    return vectors[1:] @ vectors[0]


def match_family(catalog: Catalog, family: ConceptFamily, labels: list[Label], embedder=None,
                 min_similarity: float = 0.5, limit: int = 20, examples: int = 3) -> list[FamilyMatch]:
    """Latents whose label text the keyword search finds or whose label embeds within `min_similarity` of
    the description (`embedder` None: search only); best first, one per latent, at most `limit`."""
    found = {hit.latent: hit.text for hit in catalog.search(fts_query(family.keywords), limit=len(labels) + 1,
                                                            raw=True)} if family.keywords else {}
    similarity = label_similarities(family, labels, embedder) if embedder is not None else None
    best: dict[int, FamilyMatch] = {}
    for index, label in enumerate(labels):
        cosine = None if similarity is None else float(similarity[index])
        by_text = found.get(label.latent) == label.text
        by_meaning = cosine is not None and cosine >= min_similarity
        if not (by_text or by_meaning):
            continue
        kind = "both" if by_text and by_meaning else "fts" if by_text else "embedding"
        score = max((s.value for s in label.scores), default=None)
        candidate = FamilyMatch(label.latent, label.text, kind, cosine, score)
        held = best.get(label.latent)
        if held is None or _rank(candidate) > _rank(held):
            best[label.latent] = candidate
    matches = sorted(best.values(), key=_rank, reverse=True)[:limit]
    contexts = dict(catalog.iter_examples([m.latent for m in matches], kind="top")) if matches else {}
    for match in matches:
        match.examples = [_context(example) for example in contexts.get(match.latent, [])[:examples]]
    return matches


def _rank(match: FamilyMatch) -> tuple:
    return match.match == "both", match.similarity if match.similarity is not None else 1.0


def _context(example) -> str:
    """The example's tokens with its activating token in [[ ]]."""
    return "".join(f"[[{token}]]" if i == example.token_index else token for i, token in enumerate(example.tokens))
