"""Text sources: one re-iterable stream of documents from files, tables, datasets, iterables or built-ins.

Built-ins can be mixed with "+" ("pydocs+sotu"): documents interleave deterministically, each next one
taken from the source that has given the fewest characters so far.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mechscope.errors import DataError

BUILTIN_SOURCES = ("pydocs", "sotu")


@dataclass
class TextSource:
    """Documents plus a name that manifests record; iterating twice gives the same documents.

    `_documents` yields str documents, or (document, metadata dict) pairs where a source has metadata.
    """

    name: str
    _documents: Callable[[], Iterator[str | tuple[str, dict]]]

    def __iter__(self) -> Iterator[str]:
        return (doc for doc, _ in self.records())

    def records(self) -> Iterator[tuple[str, dict]]:
        """(document, metadata) pairs; metadata always names the source (sotu adds year and president)."""
        count = 0
        for item in self._documents():
            doc, meta = item if isinstance(item, tuple) else (item, {})
            if not isinstance(doc, str):
                raise DataError(f"source {self.name!r} yielded a {type(doc).__name__}; expected str documents")
            if doc:
                count += 1
                yield doc, {"source": self.name, **meta}
        if count == 0:
            raise DataError(f"source {self.name!r} yielded no documents")


def mix_sources(sources: list[TextSource]) -> TextSource:
    """One source interleaving `sources` by characters given so far (ties: the earlier source), deterministic."""
    def records() -> Iterator[tuple[str, dict]]:
        streams = [s.records() for s in sources]
        chars = [0] * len(streams)
        live = list(range(len(streams)))
        while live:
            index = min(live, key=lambda i: (chars[i], i))
            record = next(streams[index], None)
            if record is None:
                live.remove(index)
                continue
            chars[index] += len(record[0])
            yield record

    return TextSource("+".join(s.name for s in sources), records)


def _builtin(name: str, max_chars: int | None) -> TextSource:
    if name == "pydocs":
        from mechscope.data.pydocs_corpus import pydocs

        cap = max_chars or 50_000_000
        return TextSource(f"pydocs(max_chars={cap})", lambda: pydocs(max_chars=cap))
    from mechscope.data.sotu_corpus import speeches

    return TextSource(f"sotu(max_chars={max_chars})" if max_chars else "sotu", lambda: speeches(max_chars))


def _txt_files(path: Path) -> Iterator[str]:
    files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"folder {path} holds no .txt files")
    for file in files:
        try:
            yield file.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            raise DataError(f"cannot read {file}: {err}") from err


def _jsonl(path: Path, column: str) -> Iterator[str]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{number}: not valid JSON ({err.msg})") from err
            if column not in record:
                raise DataError(f"{path}:{number}: no {column!r} field; fields are {sorted(record)}")
            yield record[column]


def _parquet(path: Path, column: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise DataError(f"{path} is not a readable Parquet file: {err}") from err
    if column not in table.schema_arrow.names:
        raise DataError(f"{path} has no column {column!r}; columns are {table.schema_arrow.names}")
    for batch in table.iter_batches(columns=[column], batch_size=1024):
        yield from batch.column(0).to_pylist()


def _hf_dataset(spec: str, column: str, split: str) -> Iterator[str]:
    try:
        import datasets
    except ImportError as err:
        raise DataError("hf: sources need the `datasets` package (pip install mechscope[datasets])") from err
    from mechscope.hub import hub_reachable

    name = spec.removeprefix("hf:")
    if not Path(name).is_dir() and not hub_reachable():
        raise DataError(f"dataset {name!r} is not a local directory (datasets.save_to_disk) and the hub is not "
                        "reachable; use a local .txt/.jsonl/.parquet file, a saved dataset directory, or pydocs")
    try:
        data = (datasets.load_from_disk(name) if Path(name).is_dir()
                else datasets.load_dataset(name, split=split, streaming=True))
    except Exception as err:
        raise DataError(f"cannot open dataset {name!r} (local path or reachable hub): {err}") from err
    if isinstance(data, datasets.DatasetDict):
        data = data[split]
    for record in data:
        yield record[column]


def text_source(spec: str | Path | Iterable[str] | TextSource, column: str = "text",
                split: str = "train", max_chars: int | None = None) -> TextSource:
    """Resolve "pydocs", "sotu", a mix such as "pydocs+sotu", a .txt file or folder, a .jsonl/.parquet file,
    "hf:NAME" or an iterable of strings."""
    if isinstance(spec, TextSource):
        return spec
    if not isinstance(spec, (str, Path)):
        docs = list(spec)
        return TextSource("iterable", lambda: iter(docs))
    text = str(spec)
    parts = text.split("+")
    if all(part in BUILTIN_SOURCES for part in parts):
        sources = [_builtin(part, max_chars) for part in parts]
        return sources[0] if len(sources) == 1 else mix_sources(sources)
    if text.startswith("hf:"):
        return TextSource(text, lambda: _hf_dataset(text, column, split))
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"no source {text!r}: expected one of {BUILTIN_SOURCES} (or a mix like 'pydocs+sotu'), "
                        "'hf:NAME', or an existing "
                        ".txt/.jsonl/.parquet file or folder of .txt files")
    if path.is_dir() or path.suffix == ".txt":
        return TextSource(str(path), lambda: _txt_files(path))
    if path.suffix in (".jsonl", ".json"):
        return TextSource(f"{path}[{column}]", lambda: _jsonl(path, column))
    if path.suffix == ".parquet":
        return TextSource(f"{path}[{column}]", lambda: _parquet(path, column))
    raise DataError(f"unsupported source file {path.name}: expected .txt, .jsonl or .parquet")
