"""The BEIR layout, read in one place: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

A BEIR spec is a folder (a path or a ``pkg:`` location) with an optional ``:split`` suffix; each caller
names its own default split (training readers: ``train``; the evaluation: ``test``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from router_retriever.core.errors import CorpusError
from router_retriever.core.types import Document
from router_retriever.locations import resolve_location, split_spec
from router_retriever.validation import check_unique_ids

QRELS_HEADER = "query-id\tcorpus-id\tscore"
Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class BeirFolder:
    """Paths of a BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

    root: Path

    @classmethod
    def parse(cls, spec: str, default_split: str) -> tuple[BeirFolder, str]:
        """The folder and split named by ``DIR[:split]`` (``pkg:`` locations resolved)."""
        location, split = split_spec(spec)
        return cls(Path(resolve_location(location)).expanduser()), split or default_split

    @property
    def corpus(self) -> Path:
        return self.root / "corpus.jsonl"

    @property
    def queries(self) -> Path:
        return self.root / "queries.jsonl"

    @property
    def splits(self) -> dict[str, Path]:
        """Split name -> qrels file."""
        return {p.stem: p for p in sorted((self.root / "qrels").glob("*.tsv"))}

    def check_layout(self) -> None:
        """Raise CorpusError if a required file is missing."""
        if not self.root.is_dir():
            raise CorpusError(f"BEIR folder not found: {self.root}")
        for path in (self.corpus, self.queries):
            if not path.is_file():
                raise CorpusError(f"{self.root} is not a BEIR folder: missing {path.name}")
        if not self.splits:
            raise CorpusError(f"{self.root} is not a BEIR folder: no qrels/<split>.tsv file")

    def qrels_path(self, split: str) -> Path:
        """The qrels file of ``split``, with an error naming the available splits if absent."""
        splits = self.splits
        if split not in splits:
            raise CorpusError(f"{self.root} has no split {split!r}; available: {', '.join(splits) or 'none'}")
        return splits[split]


def read_corpus(path: Path) -> list[Document]:
    """Documents of a BEIR folder or a ``corpus.jsonl`` file; ids must be unique and non-empty."""
    file = BeirFolder(path).corpus if path.is_dir() else path
    docs = [_document(row, file, n) for n, row in iter_jsonl(file)]
    check_unique_ids(docs, str(file))
    return docs


@dataclass(frozen=True)
class CorpusSource:
    """One corpus of a configuration: its path (or ``pkg:`` location) and a prefix for its document ids, so
    collections that number their documents alike (1, 2, ...) can be loaded together."""

    path: str
    id_prefix: str = ""


def read_corpora(specs: Sequence[str | CorpusSource]) -> list[Document]:
    """The documents of several corpora (paths, ``pkg:`` locations or sources with an id prefix), in order;
    ids unique across all."""
    sources = [CorpusSource(s) if isinstance(s, str) else s for s in specs]
    docs = [replace(doc, id=source.id_prefix + doc.id) if source.id_prefix else doc
            for source in sources for doc in read_corpus(Path(resolve_location(source.path)))]
    try:
        check_unique_ids(docs, " + ".join(s.path for s in sources))
    except CorpusError as exc:
        if len(sources) < 2:
            raise
        raise CorpusError(f'{exc}; give each corpus its own id prefix: corpus = [{{path = "...", id_prefix = "name/"}}, '
                          "...]") from exc
    return docs


def read_queries(folder: Path, split: str | None = None) -> dict[str, str]:
    """Queries of a BEIR folder; with ``split``, only those judged in ``qrels/<split>.tsv``."""
    file = BeirFolder(folder).queries
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


def read_qrels(folder: Path, split: str) -> Qrels:
    """Relevance judgements ``qid -> {doc_id: grade}`` from ``qrels/<split>.tsv`` (exactly BEIR's header)."""
    file = BeirFolder(folder).qrels_path(split)
    qrels: Qrels = {}
    with file.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = "\t".join(next(reader, []))
        if header != QRELS_HEADER:
            raise CorpusError(f"{file}:1: qrels header must be {QRELS_HEADER!r}, got {header!r}")
        for row in reader:
            if len(row) != 3:
                raise CorpusError(f"{file}:{reader.line_num}: expected 3 tab-separated columns, got {row}")
            try:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
            except ValueError as exc:
                raise CorpusError(f"{file}:{reader.line_num}: score {row[2]!r} is not an integer") from exc
    return qrels


def read_training_queries(spec: str) -> tuple[dict[str, str], Qrels | None]:
    """Queries (by id) and their qrels from ``BEIR_DIR[:split]`` (default split: train), from a generated pairs
    file (``*.jsonl`` of ``retriever generate-queries``: ids are line numbers, each query judging its document
    relevant), or the lines of a text file (ids are line numbers; ``#`` comments; no qrels)."""
    location, _ = split_spec(spec)
    if Path(resolve_location(location)).is_dir():
        folder, split = BeirFolder.parse(spec, "train")
        return read_queries(folder.root, split), read_qrels(folder.root, split)
    path = Path(resolve_location(spec))
    if not path.is_file():
        raise CorpusError(f"query file not found: {path}")
    if path.suffix == ".jsonl":
        pairs = read_pairs(path)
        return {str(n): p.query for n, p in enumerate(pairs)}, {str(n): {p.doc_id: 1} for n, p in enumerate(pairs)}
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {str(n): line for n, line in enumerate(line for line in lines if line and not line.startswith("#"))}, None


@dataclass(frozen=True)
class GeneratedPair:
    """A generated query and the id of the document it was written for."""

    query: str
    doc_id: str


def read_pairs(path: Path) -> list[GeneratedPair]:
    """The pairs of a file written by ``retriever generate-queries``."""
    pairs = []
    for n, row in iter_jsonl(path):
        if not isinstance(row, dict) or not isinstance(row.get("query"), str) or "doc_id" not in row:
            raise CorpusError(f"{path}:{n}: a generated pair needs 'query' and 'doc_id'")
        pairs.append(GeneratedPair(row["query"], str(row["doc_id"])))
    return pairs


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
