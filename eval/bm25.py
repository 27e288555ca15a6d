"""BM25 baseline with Pyserini (Lucene), set up like Pyserini's BEIR "flat" regression.

Title and text are indexed as one `contents` field (JsonCollection, Anserini's default English
analyzer); search uses BM25 with k1=0.9, b=0.4. Pyserini 1.6 needs Java 21+: `find_java_home` picks a
JDK (JAVA_HOME if recent enough, else the newest under /usr/lib/jvm) before the JVM starts. Calls go
to Anserini's SimpleSearcher, as Pyserini's LuceneSearcher.batch_search does.
Install with the `bm25` extra: `pip install -e .[bm25]`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from router_retriever.core.types import Document

MIN_JAVA = 21
JVM_DIRS = (Path("/usr/lib/jvm"), Path("/usr/local/lib/jvm"), Path("/opt/java"))
_COMPLETE = "COMPLETE"


class BM25UnavailableError(RuntimeError):
    """Pyserini or a recent enough Java is not installed."""


def java_major_version(java_home: Path) -> int | None:
    """Major Java version of a JDK folder, read from its `release` file (None if unreadable)."""
    try:
        text = (java_home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', text, re.MULTILINE)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def find_java_home(min_version: int = MIN_JAVA) -> Path:
    """JAVA_HOME if it is Java >= min_version, else the newest such JDK under the usual folders."""
    env = os.environ.get("JAVA_HOME")
    if env and (java_major_version(Path(env)) or 0) >= min_version:
        return Path(env)
    found = [(java_major_version(p) or 0, p) for d in JVM_DIRS if d.is_dir() for p in d.iterdir()]
    usable = sorted(((v, p) for v, p in found if v >= min_version), reverse=True)
    if not usable:
        seen = ", ".join(f"{p} (Java {v or '?'})" for v, p in found) or "none"
        raise BM25UnavailableError(
            f"Pyserini needs a Java {min_version}+ JDK; set JAVA_HOME to one "
            f"(JAVA_HOME={env or 'unset'}; JDKs under {', '.join(map(str, JVM_DIRS))}: {seen})"
        )
    return usable[0][1]


def why_unavailable() -> str | None:
    """Why Pyserini BM25 cannot run here (not installed, no Java 21+), or None when it can."""
    import importlib.util

    if importlib.util.find_spec("pyserini") is None:
        return "pyserini is not installed (pip install -e .[bm25])"
    try:
        find_java_home()
    except BM25UnavailableError as exc:
        return str(exc)
    return None


def _java_class(name: str) -> Any:
    """An Anserini Java class; starts the JVM on first use (JAVA_HOME set to a Java 21+ JDK first).

    Only `pyserini.pyclass` is imported: it puts Anserini's jar on the classpath without importing
    `pyserini.search`, which pulls in torch/transformers (~8 s) for the same Java calls."""
    if "jnius" not in sys.modules:
        os.environ["JAVA_HOME"] = str(find_java_home())
    try:
        from pyserini.pyclass import autoclass
    except ImportError as e:
        raise BM25UnavailableError(f"Pyserini is not installed ({e}); install the extra: pip install -e .[bm25]") from e
    return autoclass(name)


def corpus_key(docs: Iterable[Document]) -> str:
    """Hash of what BM25 indexes (ids and contents) plus the Pyserini version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        h = hashlib.sha256(f"pyserini {version('pyserini')}\n".encode())
    except PackageNotFoundError:
        raise BM25UnavailableError("Pyserini is not installed; install the extra: pip install -e .[bm25]") from None
    for doc in docs:
        h.update(f"{doc.id}\0{doc.content}\0".encode())
    return h.hexdigest()[:20]


def _write_json_collection(docs: list[Document], folder: Path) -> None:
    """Write Pyserini's JsonCollection: one {"id", "contents"} object per line."""
    folder.mkdir(parents=True)
    with (folder / "docs.jsonl").open("w", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps({"id": doc.id, "contents": doc.content}, ensure_ascii=False) + "\n")


def _index_json_collection(input_dir: Path, index_dir: Path, threads: int) -> None:
    """Run Anserini's IndexCollection in this JVM (what `python -m pyserini.index.lucene` runs)."""
    args = ["-collection", "JsonCollection", "-input", str(input_dir), "-index", str(index_dir),
            "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads)]
    _java_class("io.anserini.index.IndexCollection").main(args)


class BM25Index:
    """A Lucene BM25 index over a list of Documents; `build` caches it on disk by corpus hash."""

    def __init__(self, path: Path, k1: float = 0.9, b: float = 0.4) -> None:
        path = Path(path)
        if not (path / _COMPLETE).is_file():
            raise FileNotFoundError(f"no complete BM25 index at {path}; build one with BM25Index.build")
        self.path = path
        self._searcher: Any = _java_class("io.anserini.search.SimpleSearcher")(str(path))
        self._searcher.set_bm25(float(k1), float(b))

    @classmethod
    def build(cls, docs: list[Document], cache_dir: Path, threads: int = 2, k1: float = 0.9, b: float = 0.4) -> BM25Index:
        """Index `docs` under `cache_dir/bm25-<corpus hash>`, reusing that index if it exists."""
        if not docs:
            raise ValueError("cannot build a BM25 index over an empty corpus")
        ids = [d.id for d in docs]
        if len(set(ids)) != len(ids):
            raise ValueError("document ids must be unique")
        target = Path(cache_dir) / f"bm25-{corpus_key(docs)}"
        if not (target / _COMPLETE).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".bm25-build-", dir=target.parent) as tmp:
                _write_json_collection(docs, Path(tmp) / "input")
                _index_json_collection(Path(tmp) / "input", Path(tmp) / "index", threads)
                (Path(tmp) / "index" / _COMPLETE).write_text(f"{len(docs)} documents\n")
                shutil.rmtree(target, ignore_errors=True)  # an incomplete leftover
                os.replace(Path(tmp) / "index", target)
        return cls(target, k1=k1, b=b)

    @property
    def num_docs(self) -> int:
        return int(self._searcher.get_total_num_docs())

    def search_many(
        self, queries: dict[str, str], k: int = 100, threads: int = 2, remove_query: bool = False
    ) -> dict[str, dict[str, float]]:
        """Top-k doc ids and BM25 scores per query id. `remove_query` drops a hit whose id equals the
        query id (Anserini's -removeQuery, used by its BEIR regressions)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        array_list = _java_class("java.util.ArrayList")
        qids, texts = array_list(), array_list()
        for qid, text in queries.items():
            qids.add(qid)
            texts.add(text)
        results = self._searcher.batch_search(texts, qids, k + 1 if remove_query else k, threads)
        run: dict[str, dict[str, float]] = {qid: {} for qid in queries}
        for entry in results.entrySet().toArray():
            qid = entry.getKey()
            hits = [(h.docid, float(h.score)) for h in entry.getValue() if not (remove_query and h.docid == qid)]
            run[qid] = dict(hits[:k])
        return run

    def close(self) -> None:
        self._searcher.close()
