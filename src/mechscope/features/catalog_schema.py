"""The feature catalogue's SQLite schema, and how the mining pass fills it.

Tables: meta (JSON values: the manifest, histogram edges), latents (one row per latent), neighbours
(decoder-cosine and co-occurrence, ranked), labels (any number per latent, one per explainer run),
scores (any number per label, one per scorer run), and `search`, an FTS5 index over each latent's top
tokens and logit tokens and over every label.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

FILE = "catalog.sqlite"

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE latents (
    latent INTEGER PRIMARY KEY,
    count INTEGER NOT NULL,            -- activations (token positions where it fired)
    density REAL NOT NULL,             -- count / tokens mined
    max_activation REAL NOT NULL,
    mean_activation REAL NOT NULL,     -- over the positions where it fired
    min_activation REAL NOT NULL,
    status TEXT NOT NULL,              -- ok | rare (fewer than min_activations) | dead (never fired)
    top_tokens TEXT NOT NULL,          -- JSON list: tokens at its top activations, most frequent first
    top_logits TEXT NOT NULL,          -- JSON [[token, weight], ...] promoted
    bottom_logits TEXT NOT NULL,       -- JSON [[token, weight], ...] suppressed
    histogram TEXT NOT NULL,           -- JSON {"first": bin, "counts": [...]}: its non-empty range of bins
    quantile_edges TEXT NOT NULL,      -- JSON list: activation at the quantile-bin boundaries
    best_score REAL                    -- highest score of any of its labels (NULL until one is scored)
);
CREATE TABLE neighbours (
    latent INTEGER NOT NULL, kind TEXT NOT NULL,  -- kind: decoder (cosine) | cooccurrence (Jaccard)
    rank INTEGER NOT NULL, other INTEGER NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (latent, kind, rank)
) WITHOUT ROWID;
CREATE TABLE labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    latent INTEGER NOT NULL REFERENCES latents(latent),
    text TEXT NOT NULL, explainer TEXT NOT NULL, model TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX labels_by_latent ON labels(latent);
CREATE TABLE scores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    scorer TEXT NOT NULL, value REAL NOT NULL, ci_low REAL, ci_high REAL, baseline REAL, n INTEGER,
    created TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX scores_by_label ON scores(label_id);
CREATE VIRTUAL TABLE search USING fts5(latent UNINDEXED, label_id UNINDEXED, tokens, label);
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection with foreign keys on and WAL journaling (readers never block the writer)."""
    db = sqlite3.connect(path, timeout=30)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA journal_mode = WAL")
    return db


def build_catalog(path: Path, meta: dict, latents: list[tuple], neighbours: list[tuple],
                  search_text: list[tuple[int, str]]) -> None:
    """Create `path` afresh: meta {key: JSON-able}, latents rows in column order (best_score excluded),
    neighbours (latent, kind, rank, other, value), search text (latent, tokens)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    with db:
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
        db.executemany("INSERT INTO latents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)", latents)
        db.executemany("INSERT INTO neighbours VALUES (?, ?, ?, ?, ?)", neighbours)
        db.executemany("INSERT INTO search (latent, label_id, tokens, label) VALUES (?, NULL, ?, '')", search_text)
    db.close()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    tmp.replace(path)
