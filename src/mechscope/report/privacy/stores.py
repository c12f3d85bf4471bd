"""Where a run keeps text that may hold personal data, and how each store is scanned and, when asked,
redacted in place: the catalogue's example contexts (examples.parquet) and labels (catalog.sqlite), dashboard
pages, Neuronpedia exports (JSONL.gz), JSON files, and other text files (Markdown, HTML, JSONL).

Token sequences are scanned as the text they spell, so an address split over many tokens is found; redaction
keeps every sequence's length (activations stay aligned) and rewrites each file atomically, only when a match
was found, changing nothing but the matched characters.
"""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
from collections import Counter
from pathlib import Path

from mechscope.data.atomic import atomic_file
from mechscope.report.privacy.detectors import Match, redact_text, redact_tokens

TOKEN_KEYS = ("tokens",)  # JSON lists under these keys are token sequences (mechscope's and Neuronpedia's name)
TEXT_SUFFIXES = (".md", ".txt", ".html", ".jsonl", ".csv")
PAGE_CALL = re.compile(r"renderLatent\((.*)\)</script>", re.S)
INDEX_PREFIX = "var MECHSCOPE_INDEX = "


def _write(path: Path, data: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(data)


def _count(matches: list[Match]) -> Counter:
    return Counter(m.kind for m in matches)


def json_value(value, counts: Counter, key: str | None = None):
    """A JSON value with personal data redacted (strings one by one, token lists as the text they spell);
    adds what it found to `counts`."""
    if isinstance(value, str):
        text, matches = redact_text(value)
        counts.update(m.kind for m in matches)
        return text
    if isinstance(value, list):
        if key in TOKEN_KEYS and all(isinstance(v, str) for v in value):
            tokens, matches = redact_tokens(value)
            counts.update(m.kind for m in matches)
            return tokens
        return [json_value(v, counts) if isinstance(v, (str, list, dict)) else v for v in value]
    if isinstance(value, dict):
        return {k: json_value(v, counts, k) if isinstance(v, (str, list, dict)) else v for k, v in value.items()}
    return value


def json_file(path: Path, redact: bool) -> Counter:
    counts = Counter()
    value = json_value(json.loads(path.read_text()), counts)
    if redact and counts:
        _write(path, (json.dumps(value, indent=2) + "\n").encode())
    return counts


def jsonl_gz(path: Path, redact: bool) -> Counter:
    rows, counts = [], Counter()
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            rows.append(json_value(json.loads(line), counts))
    if redact and counts:
        _write(path, gzip.compress("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()))
    return counts


def text_file(path: Path, redact: bool) -> Counter:
    text, matches = redact_text(path.read_text(errors="replace"))
    if redact and matches:
        _write(path, text.encode())
    return _count(matches)


def dashboard_page(path: Path, redact: bool) -> Counter:
    """A latent page: its contexts (indices into the page's token table) and its labels."""
    from mechscope.features.dashboard import script_json

    html = path.read_text()
    call = PAGE_CALL.search(html)
    if call is None:
        return text_file(path, redact)
    data = json.loads(call.group(1))
    table, counts, changed = data["tk"], Counter(), False
    contexts = [c for c in data.get("top", [])] + [q[1:] for q in data.get("q", [])]
    for context in contexts:
        tokens, matches = redact_tokens([table[i] for i in context[0]])
        counts += _count(matches)
        context[0][:] = [_index(table, t) for t in tokens]
        changed |= bool(matches)
    for label in data.get("lb", []):
        label["t"], matches = redact_text(label["t"])
        counts += _count(matches)
        changed |= bool(matches)
    if redact and changed:
        used = sorted({i for context in contexts for i in context[0]})
        new = {old: i for i, old in enumerate(used)}
        for context in contexts:
            context[0][:] = [new[i] for i in context[0]]
        data["tk"] = [table[i] for i in used]  # redacted strings leave the table
        html = html[:call.start(1)] + script_json(data) + html[call.end(1):]
        _write(path, html.encode())
    return counts


def _index(table: list[str], token: str) -> int:
    if token not in table:
        table.append(token)
    return table.index(token)


def dashboard_index(path: Path, redact: bool) -> Counter:
    """index-data.js: each latent's row ends with its best label (or top tokens)."""
    from mechscope.features.dashboard import script_json

    text = path.read_text()
    if not text.startswith(INDEX_PREFIX):
        return text_file(path, redact)
    index = json.loads(text[len(INDEX_PREFIX):].rstrip().rstrip(";"))
    counts = Counter()
    rows = json_value(index["rows"], counts)
    if redact and counts:
        _write(path, f"{INDEX_PREFIX}{script_json({**index, 'rows': rows})};\n".encode())
    return counts


def catalogue_examples(path: Path, redact: bool, d_vocab: int) -> Counter:
    """examples.parquet: every context's tokens; redacted tokens get fresh ids above the vocabulary, one per
    distinct redacted string, so the ids still name one string each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    tokens, ids = table["tokens"].to_pylist(), table["token_ids"].to_pylist()
    counts, fresh = Counter(), {}
    for row, sequence in enumerate(tokens):
        redacted, matches = redact_tokens(sequence)
        if matches:
            counts += _count(matches)
            ids[row] = [i if new == old else fresh.setdefault(new, d_vocab + len(fresh))
                        for i, old, new in zip(ids[row], sequence, redacted)]
            tokens[row] = redacted
    if redact and counts:
        columns = {"tokens": pa.array(tokens, table.schema.field("tokens").type),
                   "token_ids": pa.array(ids, table.schema.field("token_ids").type)}
        table = pa.table({name: columns.get(name, table[name]) for name in table.column_names})
        with atomic_file(path) as handle:
            pq.write_table(table, handle, row_group_size=8192)
    return counts


def catalogue_labels(path: Path, redact: bool) -> Counter:
    """catalog.sqlite: label texts (and their full-text index rows)."""
    db = sqlite3.connect(path)
    counts = Counter()
    try:
        with db:
            for label_id, text in db.execute("SELECT id, text FROM labels").fetchall():
                new, matches = redact_text(text)
                counts += _count(matches)
                if redact and matches:
                    db.execute("UPDATE labels SET text = ? WHERE id = ?", (new, label_id))
                    db.execute("UPDATE search SET label = ? WHERE label_id = ?", (new, label_id))
    finally:
        db.close()
    return counts
