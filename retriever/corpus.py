"""Reading BEIR-layout data: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from retriever.config import resolve_location
from retriever.errors import CorpusError
from retriever.types import Document


def read_corpus(path: Path) -> list[Document]:
    """Documents of a BEIR folder or a ``corpus.jsonl`` file; ids must be unique and non-empty."""
    file = path / "corpus.jsonl" if path.is_dir() else path
    docs = [_document(row, file, n) for n, row in _jsonl(file)]
    check_unique_ids(docs, str(file))
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
    queries = {str(row["_id"]): str(row["text"]) for _, row in _jsonl(folder / "queries.jsonl")}
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
        for row in csv.DictReader(handle, delimiter="\t"):
            try:
                qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CorpusError(f"{file}: expected header 'query-id corpus-id score', bad row {row}") from exc
    return qrels


def read_query_file(spec: str) -> list[str]:
    """Training queries from ``file.txt`` (one per line, ``#`` comments) or ``BEIR_DIR:split``."""
    folder, _, split = spec.rpartition(":") if ":" in Path(spec).name else (spec, "", "")
    path = Path(resolve_location(folder or spec))
    if path.is_dir():
        return list(read_queries(path, split or "train").values())
    if not path.is_file():
        raise CorpusError(f"query file not found: {path}")
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _document(row: dict, file: Path, line: int) -> Document:
    if "_id" not in row or "text" not in row:
        raise CorpusError(f"{file}:{line}: a corpus row needs '_id' and 'text'")
    return Document(id=str(row["_id"]), title=str(row.get("title") or ""), text=str(row["text"]),
                    metadata=dict(row.get("metadata") or {}))


def _jsonl(file: Path) -> Iterable[tuple[int, dict]]:
    if not file.is_file():
        raise CorpusError(f"file not found: {file}")
    with file.open() as handle:
        for n, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CorpusError(f"{file}:{n}: invalid JSON: {exc}") from exc
