"""Reading BEIR-layout data: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.errors import CorpusError
from core.types import Document
from retriever.config import resolve_location

QRELS_COLUMNS = ("query-id", "corpus-id", "score")


def read_corpus(path: Path) -> list[Document]:
    """Documents of a BEIR folder or a ``corpus.jsonl`` file; ids must be unique and non-empty."""
    file = path / "corpus.jsonl" if path.is_dir() else path
    docs = [_document(row, file, n) for n, row in iter_jsonl(file)]
    check_unique_ids(docs, str(file))
    return docs


def read_corpora(specs: Sequence[str]) -> list[Document]:
    """The documents of several corpora (paths or ``pkg:`` locations), in order; ids unique across all."""
    docs = [doc for spec in specs for doc in read_corpus(Path(resolve_location(spec)))]
    check_unique_ids(docs, " + ".join(specs))
    return docs


def check_unique_ids(docs: Iterable[Document], where: str) -> None:
    """Raise a CorpusError naming the first duplicate or empty document id."""
    seen: set[str] = set()
    for doc in docs:
        if not doc.id.strip():
            raise CorpusError(f"{where}: a document has an empty id")
        if doc.id in seen:
            raise CorpusError(f"{where}: duplicate document id {doc.id!r}")
        seen.add(doc.id)


def read_queries(folder: Path, split: str | None = None) -> dict[str, str]:
    """Queries of a BEIR folder; with ``split``, only those judged in ``qrels/<split>.tsv``."""
    file = folder / "queries.jsonl"
    queries: dict[str, str] = {}
    for n, row in iter_jsonl(file):
        if not isinstance(row, dict) or "_id" not in row or "text" not in row:
            raise CorpusError(f"{file}:{n}: a query row needs '_id' and 'text'")
        if str(row["_id"]) in queries:
            raise CorpusError(f"{file}:{n}: duplicate query id {str(row['_id'])!r}")
        queries[str(row["_id"])] = str(row["text"])
    if split is None:
        return queries
    judged = read_qrels(folder, split)
    return {qid: text for qid, text in queries.items() if qid in judged}


def read_qrels(folder: Path, split: str) -> dict[str, dict[str, int]]:
    """Relevance judgements ``qid -> {doc_id: grade}`` from ``qrels/<split>.tsv`` (BEIR header)."""
    file = folder / "qrels" / f"{split}.tsv"
    if not file.is_file():
        raise CorpusError(f"qrels file not found: {file}")
    qrels: dict[str, dict[str, int]] = {}
    with file.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if not set(QRELS_COLUMNS) <= set(reader.fieldnames or ()):
            raise CorpusError(f"{file}:1: expected the header 'query-id<TAB>corpus-id<TAB>score', got {reader.fieldnames}")
        for row in reader:
            if row["corpus-id"] is None or row["score"] is None:
                raise CorpusError(f"{file}:{reader.line_num}: expected 3 tab-separated columns, got {row}")
            try:
                qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
            except ValueError as exc:
                raise CorpusError(f"{file}:{reader.line_num}: score {row['score']!r} is not an integer") from exc
    return qrels


def read_query_file(spec: str) -> list[str]:
    """Training queries from ``file.txt`` (one per line, ``#`` comments) or ``BEIR_DIR:split``."""
    return list(read_training_queries(spec)[0].values())


def read_training_queries(spec: str) -> tuple[dict[str, str], dict[str, dict[str, int]] | None]:
    """Queries (by id) and their qrels from ``BEIR_DIR:split`` (default split: train), or the lines of
    a text file (ids are line numbers; no qrels)."""
    folder, _, split = spec.rpartition(":") if ":" in Path(spec).name else (spec, "", "")
    path = Path(resolve_location(folder or spec))
    if path.is_dir():
        return read_queries(path, split or "train"), read_qrels(path, split or "train")
    if not path.is_file():
        raise CorpusError(f"query file not found: {path}")
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {str(n): line for n, line in enumerate(line for line in lines if line and not line.startswith("#"))}, None


def _document(row: dict, file: Path, line: int) -> Document:
    if not isinstance(row, dict) or "_id" not in row or "text" not in row:
        raise CorpusError(f"{file}:{line}: a corpus row needs '_id' and 'text'")
    if not isinstance(row.get("metadata") or {}, dict):
        raise CorpusError(f"{file}:{line}: 'metadata' of {row['_id']!r} is not an object")
    return Document(id=str(row["_id"]), title=str(row.get("title") or ""), text=str(row["text"]),
                    metadata=dict(row.get("metadata") or {}))


def iter_jsonl(file: Path) -> Iterable[tuple[int, dict]]:
    """(line number, parsed object) of each non-blank line of a JSON-lines file."""
    if not file.is_file():
        raise CorpusError(f"file not found: {file}")
    with file.open(encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CorpusError(f"{file}:{n}: invalid JSON: {exc}") from exc
