"""A persistent, content-addressed cache of model answers, so re-runs and resumed runs cost nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from mechscope.autointerp.completion import Completion, Request

CACHE_FILE = "responses.sqlite"


def request_key(backend_identity: dict, request: Request) -> str:
    """sha256 of the canonical JSON of what decides the answer: backend identity (protocol, model, ...) + request."""
    canonical = {"backend": backend_identity, "request": dataclasses.asdict(request)}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """Completions by request key in one SQLite file under `directory`; each write is its own transaction."""

    def __init__(self, directory: Path | str):
        self.path = Path(directory) / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")  # readers in other processes never see a half-written row
        self._db.execute("CREATE TABLE IF NOT EXISTS responses "
                         "(key TEXT PRIMARY KEY, completion TEXT NOT NULL, created REAL NOT NULL)")

    def get(self, key: str) -> Completion | None:
        """The stored completion (marked `cached`), or None."""
        with self._lock:
            row = self._db.execute("SELECT completion FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else Completion(**json.loads(row[0]), cached=True)

    def put(self, key: str, completion: Completion) -> None:
        fields = dataclasses.asdict(completion)
        del fields["cached"]
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)",
                             (key, json.dumps(fields), time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
