"""Catalog: the feature catalogue a mining run writes (SQLite + Parquet), read and annotated through one object."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mechscope.errors import MechscopeError
from mechscope.features.catalog_schema import FILE, connect
from mechscope.features.examples import FILE as EXAMPLES, ContextExample, grouped, read_examples, to_examples

ORDERS = {"latent": "latent", "density": "density", "max_activation": "max_activation", "count": "count",
          "score": "best_score"}
STATUSES = ("ok", "rare", "dead")  # ok, fewer than min_activations activations, never fired


@dataclass
class Score:
    """One scorer's result for one label, with its interval and baseline."""

    id: int
    label_id: int
    scorer: str
    value: float
    ci_low: float | None
    ci_high: float | None
    baseline: float | None
    n: int | None
    created: str
    metadata: dict


@dataclass
class Label:
    """One explainer's label for a latent, with every score it has received."""

    id: int
    latent: int
    text: str
    explainer: str
    model: str
    created: str
    metadata: dict
    scores: list[Score] = field(default_factory=list)


@dataclass
class LatentInfo:
    """Everything the catalogue holds about one latent except its example contexts."""

    latent: int
    count: int
    density: float
    max_activation: float
    mean_activation: float
    min_activation: float
    status: str  # ok | rare | dead
    top_tokens: list[str]
    top_logits: list[tuple[str, float]]
    bottom_logits: list[tuple[str, float]]
    histogram: dict  # {"first": bin, "counts": [...]}; bin edges are Catalog.histogram_edges
    quantile_edges: list[float]
    best_score: float | None
    decoder_neighbours: list[tuple[int, float]] = field(default_factory=list)
    cooccurrence_neighbours: list[tuple[int, float]] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)


@dataclass
class SearchHit:
    latent: int
    rank: float  # FTS5 bm25: lower is better
    matched: str  # "label" or "tokens"
    text: str


class Catalog:
    """A mining run's catalogue: `Catalog(dir)` (or the catalog.sqlite path).

    Reading: `get(latent)`, `list(order_by="density")`, `search("query")`, `examples(latent, split=...)`,
    `iter_examples(split=...)`, `with_examples()`, `manifest`, `too_few()`.
    Auto-interpretation: explain from `examples(i, split="train")` (kinds "top", "quantile" and
    "random_negative"); score on `examples(i, split="test")`: the splits never share a context window.
    Then `label_id = add_label(i, text, explainer="...", model="...")` and
    `add_score(label_id, scorer="detection", value=0.8, ci_low=0.7, ci_high=0.9, baseline=0.5)`;
    a latent may hold any number of labels, each any number of scores. `mechscope dashboard DIR` shows them.
    One Catalog per thread; several processes may write (SQLite WAL, 30 s busy timeout).
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        self.path = path / FILE if path.is_dir() else path
        self.directory = self.path.parent
        if not self.path.exists():
            raise MechscopeError(f"no feature catalogue at {self.path}; run `mechscope mine` first")
        self.db = connect(self.path)
        self.db.row_factory = sqlite3.Row
        self.meta = {row["key"]: json.loads(row["value"]) for row in self.db.execute("SELECT * FROM meta")}

    @property
    def manifest(self) -> dict:
        return self.meta["manifest"]

    @property
    def histogram_edges(self) -> list[float]:
        return self.meta["histogram_edges"]

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM latents").fetchone()[0]

    # ----- latents ----------------------------------------------------------------------------
    def get(self, latent: int) -> LatentInfo:
        """One latent with its neighbours and labels (with scores)."""
        found = self._latents("WHERE latent = ?", (int(latent),))
        if not found:
            raise MechscopeError(f"latent {latent} is not in this catalogue (it holds 0..{len(self) - 1})")
        return found[0]

    def list(self, order_by: str = "latent", descending: bool | None = None, limit: int | None = None,
             offset: int = 0, status: str | None = None, min_density: float | None = None,
             max_density: float | None = None, min_score: float | None = None,
             latents: list[int] | None = None) -> list[LatentInfo]:
        """Latents sorted by latent, density, max_activation, count or score (labels' best score), optionally
        only those with a status, a density in [min_density, max_density], a best score >= min_score, or
        among `latents`."""
        if order_by not in ORDERS:
            raise MechscopeError(f"order_by must be one of {sorted(ORDERS)}, got {order_by!r}")
        descending = order_by != "latent" if descending is None else descending
        tests = [("status = ?", status), ("density >= ?", min_density), ("density <= ?", max_density),
                 ("best_score >= ?", min_score)]
        kept = [(sql, value) for sql, value in tests if value is not None]
        if latents is not None:
            kept.append(("latent IN (SELECT value FROM json_each(?))", json.dumps([int(i) for i in latents])))
        where = "WHERE " + " AND ".join(sql for sql, _ in kept) if kept else ""
        nulls = " NULLS LAST" if order_by == "score" else ""
        sql = (f"{where} ORDER BY {ORDERS[order_by]} {'DESC' if descending else 'ASC'}{nulls}, latent "
               f"LIMIT ? OFFSET ?")
        return self._latents(sql, (*(value for _, value in kept), -1 if limit is None else limit, offset))

    def too_few(self) -> dict[str, list[int]]:
        """Latents that never fired ("dead") or fired fewer than min_activations times ("rare")."""
        out = {"dead": [], "rare": []}
        for row in self.db.execute("SELECT latent, status FROM latents WHERE status != 'ok' ORDER BY latent"):
            out[row["status"]].append(row["latent"])
        return out

    def search(self, query: str, limit: int = 20, raw: bool = False) -> list[SearchHit]:
        """Latents whose labels or top/logit tokens match every word of `query` (best first).
        raw=True passes FTS5 syntax through (e.g. 'label:python OR tokens:def')."""
        match = query if raw else " ".join(f'"{w}"' for w in re.findall(r"\w+", query))
        if not match:
            return []
        try:
            rows = self.db.execute(
                "SELECT latent, label_id, tokens, label, rank FROM search WHERE search MATCH ? ORDER BY rank",
                (match,)).fetchall()
        except sqlite3.OperationalError as err:
            raise MechscopeError(f"bad search query {query!r}: {err}") from err
        hits: dict[int, SearchHit] = {}
        for row in rows:
            if row["latent"] not in hits:
                matched = "label" if row["label_id"] is not None else "tokens"
                hits[row["latent"]] = SearchHit(row["latent"], row["rank"], matched, row[matched])
        return list(hits.values())[:limit]

    # ----- examples ---------------------------------------------------------------------------
    def examples(self, latent: int, split: str | None = None, kind: str | None = None) -> list[ContextExample]:
        """A latent's stored contexts in order (kind, split, rank); split "train" or "test", kind "top",
        "quantile" or "random_negative"."""
        return to_examples(read_examples(self.directory / EXAMPLES, [latent], split, kind))

    def iter_examples(self, latents: list[int] | None = None, split: str | None = None,
                      kind: str | None = None) -> Iterator[tuple[int, list[ContextExample]]]:
        """(latent, its contexts) for many latents with one read of the Parquet file."""
        for latent, rows in grouped(read_examples(self.directory / EXAMPLES, latents, split, kind)):
            yield latent, to_examples(rows)

    def with_examples(self) -> Iterator[tuple[LatentInfo, list[ContextExample]]]:
        """Every latent in order, with its stored contexts (one read of the Parquet file)."""
        groups = self.iter_examples()
        group = next(groups, None)
        for info in self.list():
            examples = []
            if group is not None and group[0] == info.latent:
                examples, group = group[1], next(groups, None)
            yield info, examples

    # ----- labels and scores ------------------------------------------------------------------
    def add_label(self, latent: int, text: str, explainer: str, model: str = "",
                  metadata: dict | None = None) -> int:
        """Store a label (explanation) of `latent` by `explainer` (and the LLM `model`); returns its id."""
        self.get(latent)
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO labels (latent, text, explainer, model, created, metadata) VALUES (?, ?, ?, ?, ?, ?)",
                (int(latent), text, explainer, model, _now(), json.dumps(metadata or {})))
            self.db.execute("INSERT INTO search (latent, label_id, tokens, label) VALUES (?, ?, '', ?)",
                            (int(latent), cursor.lastrowid, text))
        return cursor.lastrowid

    def add_score(self, label_id: int, scorer: str, value: float, ci_low: float | None = None,
                  ci_high: float | None = None, baseline: float | None = None, n: int | None = None,
                  metadata: dict | None = None) -> int:
        """Store one scorer's result for label `label_id`; the latent's best_score follows the highest value."""
        label = self.db.execute("SELECT latent FROM labels WHERE id = ?", (int(label_id),)).fetchone()
        if label is None:
            raise MechscopeError(f"no label with id {label_id}; add_label returns the id to score")
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO scores (label_id, scorer, value, ci_low, ci_high, baseline, n, created, metadata) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (int(label_id), scorer, float(value), ci_low, ci_high, baseline, n, _now(),
                 json.dumps(metadata or {})))
            self.db.execute("UPDATE latents SET best_score = MAX(COALESCE(best_score, ?), ?) WHERE latent = ?",
                            (float(value), float(value), label["latent"]))
        return cursor.lastrowid

    def labels(self, latent: int) -> list[Label]:
        """Every label of `latent`, oldest first, each with its scores."""
        return self._labels([int(latent)]).get(int(latent), [])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- internals --------------------------------------------------------------------------
    def _latents(self, clause: str, args: tuple) -> list[LatentInfo]:
        rows = self.db.execute(f"SELECT * FROM latents {clause}", args).fetchall()
        ids = [row["latent"] for row in rows]
        neighbours: dict[tuple[int, str], list] = {}
        labels = self._labels(ids)
        for n in self._in("SELECT * FROM neighbours WHERE latent IN ({}) ORDER BY latent, kind, rank", ids):
            neighbours.setdefault((n["latent"], n["kind"]), []).append((n["other"], n["value"]))
        return [LatentInfo(
            latent=r["latent"], count=r["count"], density=r["density"], max_activation=r["max_activation"],
            mean_activation=r["mean_activation"], min_activation=r["min_activation"], status=r["status"],
            top_tokens=json.loads(r["top_tokens"]), top_logits=[tuple(x) for x in json.loads(r["top_logits"])],
            bottom_logits=[tuple(x) for x in json.loads(r["bottom_logits"])], histogram=json.loads(r["histogram"]),
            quantile_edges=json.loads(r["quantile_edges"]), best_score=r["best_score"],
            decoder_neighbours=neighbours.get((r["latent"], "decoder"), []),
            cooccurrence_neighbours=neighbours.get((r["latent"], "cooccurrence"), []),
            labels=labels.get(r["latent"], [])) for r in rows]

    def _labels(self, latents: list[int]) -> dict[int, list[Label]]:
        out: dict[int, list[Label]] = {}
        by_id: dict[int, Label] = {}
        for r in self._in("SELECT * FROM labels WHERE latent IN ({}) ORDER BY id", latents):
            label = Label(r["id"], r["latent"], r["text"], r["explainer"], r["model"], r["created"],
                          json.loads(r["metadata"]))
            out.setdefault(r["latent"], []).append(label)
            by_id[r["id"]] = label
        for r in self._in("SELECT * FROM scores WHERE label_id IN ({}) ORDER BY id", list(by_id)):
            by_id[r["label_id"]].scores.append(Score(
                r["id"], r["label_id"], r["scorer"], r["value"], r["ci_low"], r["ci_high"], r["baseline"], r["n"],
                r["created"], json.loads(r["metadata"])))
        return out

    def _in(self, sql: str, ids: list[int]) -> Iterator[sqlite3.Row]:
        """Run `sql` with its IN ({}) over ids, in chunks below SQLite's variable limit."""
        for first in range(0, len(ids), 900):
            chunk = ids[first:first + 900]
            yield from self.db.execute(sql.format(",".join("?" * len(chunk))), chunk)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
