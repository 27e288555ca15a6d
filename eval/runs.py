"""Per-expert rankings computed once and cached: the table every router is evaluated from.

For each collection (its own corpus, indexed once into a data directory of its own) and each expert,
the top-k ranking of every test and training query is computed through the Retriever (expert
forced) and stored on disk, keyed by the corpus, the expert's encoders and the query set. The
base-model query vectors the routers use are cached the same way. A second run re-encodes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from router_retriever.api import Retriever
from router_retriever.config import Settings
from router_retriever.core.types import Document, ExpertInfo, Mode
from router_retriever.experts import router_identity
from router_retriever.indexes.atomic import atomic_open, atomic_write_bytes
from router_retriever.metrics import HEADLINE, evaluate
from router_retriever.routing.pilots import PilotLibrary


def corpus_key(docs: Sequence[Document]) -> str:
    """Hash of document ids and contents (what the indexes encode)."""
    h = hashlib.sha256()
    for doc in docs:
        h.update(f"{doc.id}\0{doc.content}\0".encode())
    return h.hexdigest()[:12]


def corpus_dir(root: Path, collection_name: str, docs: Sequence[Document]) -> Path:
    """The data directory of one corpus: `<root>/corpora/<name>-<hash>` (shared by its splits)."""
    stem = collection_name.rstrip("/").rsplit("/", 1)[0].rsplit("/", 1)[-1]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-") or "corpus"
    return Path(root) / "corpora" / f"{stem}-{corpus_key(docs)}"


Run = dict[str, dict[str, float]]
QUERY_CHUNK = 256


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def queries_key(queries: dict[str, str]) -> str:
    return _digest(sorted(queries.items()))


def _read_json(path: Path) -> object | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or a torn write: recompute


def _write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, json.dumps(obj, ensure_ascii=False).encode())


@dataclass(frozen=True)
class EngineRun:
    """The engine's own results for a query set: the ranking and the experts each query's route chose."""

    run: Run
    routes: dict[str, list[str]]

    def choices(self, qids: Sequence[str]) -> list[str]:
        """The first chosen expert of each query, in ``qids`` order."""
        return [self.routes[q][0] for q in qids]


def _library_key(library: PilotLibrary | None) -> str | None:
    """A digest of everything in a pilot library that routing reads."""
    if library is None:
        return None
    quantiles = b"" if library.quantiles is None else library.quantiles.tobytes()
    return _digest(hashlib.sha256(library.vectors.tobytes() + quantiles).hexdigest(), library.experts, library.encoder,
                   library.calibrated_percentile)


@dataclass
class CorpusRuns:
    """Cached rankings of one corpus: per expert (and BM25) and per query set, plus base query vectors.

    Models load and the corpus is indexed only on a cache miss; `encoded` counts the queries that had to
    be encoded, `timings` the seconds spent computing what was missing."""

    settings: Settings
    docs: list[Document]
    data_dir: Path
    top_k: int = 100
    remove_query: bool = True
    encoded: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    _retriever: Retriever | None = None
    _built: bool = False

    @property
    def retriever(self) -> Retriever:
        """The retriever over this corpus (its own data directory, no pilots, limits deep enough for top_k)."""
        if self._retriever is None:
            limits = self.settings.limits.model_copy(update={"max_top_k": max(self.top_k + 1, self.settings.limits.max_top_k)})
            self._retriever = Retriever(self.settings.model_copy(update={"data_dir": self.data_dir, "domains": [],
                                                                          "limits": limits}))
        return self._retriever

    def built(self) -> Retriever:
        """The retriever with its indexes built (once) over the corpus."""
        retriever = self.retriever
        if not self._built:
            start = time.perf_counter()
            if retriever.build(self.docs, progress=True):
                self.timings["index_build_s"] = round(time.perf_counter() - start, 1)
            if retriever.count() != len(self.docs):
                raise RuntimeError(f"{self.data_dir} holds {retriever.count()} documents, expected {len(self.docs)}")
            self._built = True
        return retriever

    def close(self) -> None:
        if self._retriever is not None:
            self._retriever.close()

    def _cache(self, kind: str, *key: object) -> Path:
        return self.data_dir / "rankings" / f"{kind}-{_digest(corpus_key(self.docs), self.top_k, self.remove_query, *key)}.json"

    def _expert(self, name: str) -> ExpertInfo:
        return next(info for info in self.retriever.experts() if info.name == name)

    def expert_run(self, expert: str, queries: dict[str, str], label: str = "") -> Run:
        """Top-k ranking of every query by `expert` alone (cached by encoders, corpus and queries)."""
        from tqdm.auto import tqdm

        info = self._expert(expert)
        path = self._cache("dense", info.query_fingerprint, info.document_encoder, queries_key(queries))
        cached = _read_json(path)
        if isinstance(cached, dict):
            return cached["run"]
        start = time.perf_counter()
        qids, texts = list(queries), list(queries.values())
        run: Run = {}
        depth = self.top_k + 1 if self.remove_query else self.top_k
        with tqdm(total=len(qids), desc=f"{label}{expert}: queries", unit="q") as bar:
            for i in range(0, len(qids), QUERY_CHUNK):
                results = self.built().search_many(texts[i:i + QUERY_CHUNK], top_k=depth, expert=expert, mode="dense")
                for qid, result in zip(qids[i:i + QUERY_CHUNK], results):
                    hits = [(h.id, h.score) for h in result.hits if not (self.remove_query and h.id == qid)]
                    run[qid] = dict(hits[: self.top_k])
                bar.update(len(results))
        self.encoded += len(qids)
        seconds = time.perf_counter() - start
        self.timings[f"{expert}:{label.strip() or 'queries'}_s"] = round(seconds, 1)
        _write_json(path, {"expert": expert, "query_encoder": info.query_fingerprint,
                           "document_encoder": info.document_encoder,
                           "queries": len(qids), "seconds": round(seconds, 2), "run": run})
        return run

    def engine_run(self, queries: dict[str, str], library: PilotLibrary | None, mode: Mode,
                   expert: str | None = None) -> EngineRun:
        """What ``retriever search`` returns for every query (``Retriever.search_many`` with the config's search,
        fusion and router settings, routed with ``library``, the config's pilots; ``expert`` forces one), cut to
        top-k after dropping query-id hits; cached by everything that decides it."""
        retriever = self.built()
        if library is not None:
            retriever.use_pilots(library)
        encoders = [(i.name, i.query_fingerprint, i.document_encoder) for i in retriever.experts()]
        forced = expert is not None  # a forced expert's search reads no pilot and no router setting
        path = self._cache("engine", mode, expert, encoders, None if forced else _library_key(library),
                           self.settings.search.model_dump(), None if forced else self.settings.router.model_dump(),
                           self.settings.sparse.model_dump(), queries_key(queries))
        cached = _read_json(path)
        if isinstance(cached, dict):
            return EngineRun(cached["run"], cached["routes"])
        from tqdm.auto import tqdm

        start = time.perf_counter()
        qids, texts = list(queries), list(queries.values())
        engine = EngineRun({}, {})
        with tqdm(total=len(qids), desc=f"engine ({mode}{', ' + expert if expert else ''}): queries", unit="q") as bar:
            for i in range(0, len(qids), QUERY_CHUNK):
                results = retriever.search_many(texts[i:i + QUERY_CHUNK], top_k=self.top_k, expert=expert, mode=mode,
                                                rerank=False)
                for qid, result in zip(qids[i:i + QUERY_CHUNK], results):
                    engine.run[qid] = {h.id: h.score for h in result.hits if not (self.remove_query and h.id == qid)}
                    engine.routes[qid] = list(result.route.experts)
                bar.update(len(results))
        seconds = time.perf_counter() - start
        self.timings[f"engine:{mode}:{expert or 'routed'}_s"] = round(seconds, 1)
        _write_json(path, {"mode": mode, "expert": expert, "queries": len(qids), "seconds": round(seconds, 2),
                           "run": engine.run, "routes": engine.routes})
        return engine

    def sparse_run(self, queries: dict[str, str]) -> Run:
        """The engine's BM25 (bm25s) top-k per query (cached by its settings, corpus and queries)."""
        path = self._cache("sparse", self.settings.sparse.model_dump(), queries_key(queries))
        cached = _read_json(path)
        if isinstance(cached, dict):
            return cached["run"]
        depth = self.top_k + 1 if self.remove_query else self.top_k
        qids, texts = list(queries), list(queries.values())
        run: Run = {}
        for i in range(0, len(qids), QUERY_CHUNK):
            results = self.built().search_many(texts[i:i + QUERY_CHUNK], top_k=depth, mode="sparse")
            for qid, result in zip(qids[i:i + QUERY_CHUNK], results):
                run[qid] = dict([(h.id, h.score) for h in result.hits if not (self.remove_query and h.id == qid)][: self.top_k])
        _write_json(path, {"queries": len(qids), "run": run})
        return run

    def reranked(self, queries: dict[str, str], first_stage: Run, depth: int) -> Run:
        """``first_stage`` with each query's top ``depth`` rescored by the engine's cross-encoder (cached)."""
        config = self.settings.rerank
        ordered = {q: [d for d, _ in sorted(first_stage.get(q, {}).items(), key=lambda kv: (-kv[1], kv[0]))] for q in queries}
        head = {q: docs[:depth] for q, docs in ordered.items()}
        path = self._cache("rerank", config.model, config.max_length, depth, _digest(head), queries_key(queries))
        cached = _read_json(path)
        if isinstance(cached, dict):
            return cached["run"]
        from tqdm.auto import tqdm

        start = time.perf_counter()
        run: Run = {}
        for qid in tqdm(list(queries), desc=f"rerank top-{depth}", unit="q"):
            order = [doc for doc, _ in self.built().rerank(queries[qid], head[qid])] + ordered[qid][depth:]
            run[qid] = {doc: float(len(order) - rank) for rank, doc in enumerate(order)}  # the rescored head first
        seconds = time.perf_counter() - start
        self.timings[f"rerank_top{depth}_s"] = round(seconds, 1)
        _write_json(path, {"queries": len(queries), "depth": depth, "seconds": round(seconds, 2), "run": run})
        return run

    def base_vectors(self, queries: dict[str, str]) -> np.ndarray:
        """Router base-model vectors of the queries, in their order (cached)."""
        path = self.data_dir / "vectors" / f"{_digest(router_identity(self.settings), queries_key(queries))}.npy"
        if path.is_file():
            vectors = np.load(path)
            if len(vectors) == len(queries):
                return vectors
        vectors = self.retriever.embed_queries(list(queries.values()))
        self.encoded += len(queries)
        with atomic_open(path) as handle:
            np.save(handle, vectors)
        return vectors

    def bm25_run(self, queries: dict[str, str]) -> Run:
        """Pyserini BM25 (flat, k1=0.9 b=0.4) top-k per query (index and run cached)."""
        from router_retriever.eval.bm25 import BM25Index

        path = self._cache("bm25", queries_key(queries))
        cached = _read_json(path)
        if isinstance(cached, dict):
            return cached["run"]
        start = time.perf_counter()
        index = BM25Index.build(self.docs, self.data_dir / "bm25")
        run = index.search_many(queries, k=self.top_k, remove_query=self.remove_query)
        index.close()
        self.timings["bm25_s"] = round(time.perf_counter() - start, 1)
        _write_json(path, {"queries": len(queries), "run": run})
        return run


@dataclass
class ExpertTable:
    """Every expert's ranking and per-query scores on one query set (rows: queries, columns: experts)."""

    collection: str
    split: str
    qids: list[str]
    experts: list[str]
    runs: dict[str, Run]
    per_query: dict[str, dict[str, dict[str, float]]]  # expert -> qid -> measure -> value
    vectors: np.ndarray  # base-model query vectors, rows in qids order
    _scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def scores(self, measure: str = HEADLINE) -> np.ndarray:
        """(queries, experts) array of one measure (built once per measure)."""
        if measure not in self._scores:
            table = np.array([[self.per_query[e][q][measure] for e in self.experts] for q in self.qids])
            table.flags.writeable = False  # shared by every caller
            self._scores[measure] = table
        return self._scores[measure]


def expert_table(runs: CorpusRuns, collection: str, split: str, queries: dict[str, str],
                 qrels: dict[str, dict[str, int]]) -> ExpertTable:
    """Rank `queries` with every configured expert (cached) and score each ranking per query."""
    experts = [e.name for e in runs.settings.experts]
    expert_runs = {e: runs.expert_run(e, queries, f"{collection}/{split} ") for e in experts}
    per_query = {e: evaluate(run, qrels).per_query for e, run in expert_runs.items()}
    return ExpertTable(collection, split, list(queries), experts, expert_runs, per_query, runs.base_vectors(queries))
