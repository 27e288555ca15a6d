"""``Retriever``: the engine's one front door (routing, searching, indexing behind one object).

Data path of a search: query -> ``QueryRouter`` (base encoder + pilot library -> ``Route``) -> the chosen
expert's query encoder -> that expert's vector index (``Searcher``, with the document store) -> hits;
top-m > 1 fuses the experts' lists by reciprocal rank. Constructing a ``Retriever`` reads the data
directory only: models load on first use, and pilots are built by ``build`` or ``rebuild_pilots``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UnknownExpertError
from core.types import Document, ExpertInfo, Route, SearchResult, Status
from indexes.consistency import IndexGap
from indexes.data_dir import DataDirectory
from indexes.lock import WriterLock
from retriever.config import Settings, load_settings
from retriever.encoders import EncoderSpec, encoder
from retriever.experts import Expert, query_spec
from retriever.indexer import Indexer
from retriever.pilot_building import domain_library, winner_library
from retriever.pilots import PilotLibrary
from retriever.router import QueryRouter
from retriever.searcher import Ranked, Searcher, hits
from retriever.validation import valid_documents, valid_ids, valid_queries, valid_query, valid_top_k, valid_top_m

PILOTS_FILE = "pilots.npz"


class Retriever:
    """Domain experts, their indexes and the pilot router of one data directory behind one search API."""

    def __init__(self, settings: Settings | None = None, *, read_only: bool = False,
                 writer_lock: WriterLock | None = None) -> None:
        """Open the data directory for writing (its writer lock is taken here, or ``writer_lock`` is one
        the caller already holds) or, with ``read_only``, for reading only: nothing is locked or written."""
        self.settings = settings or load_settings()
        self._data_dir = DataDirectory(self.settings.data_dir, self.settings.index, read_only, writer_lock)
        self._gaps: dict[str, IndexGap] | None = None
        try:  # loads the indexes: a corrupt one must not leave the writer lock held
            self._experts = {c.name: Expert.from_config(c, self._data_dir) for c in self.settings.experts}
        except BaseException:
            self._data_dir.close()
            raise
        self._router = QueryRouter(encoder(EncoderSpec(self.settings.router_model), "query"),
                                   self.settings.data_dir / PILOTS_FILE, list(self._experts),
                                   self.settings.router.aggregate, self.settings.batch_size)
        self._searcher = Searcher(self._data_dir)
        self._indexer = Indexer(self._data_dir, list(self._experts.values()), self.settings.batch_size)

    @classmethod
    def from_config(cls, path: Path | str | None = None, *, read_only: bool = False, **overrides: Any) -> Retriever:
        """A retriever over a TOML config (default: the packaged demo config); ``overrides`` replace keys."""
        return cls(load_settings(path, **overrides), read_only=read_only)

    # ---- search --------------------------------------------------------------------------------
    def search(self, query: str, top_k: int = 10, expert: str | None = None, top_m: int | None = None,
               filters: Mapping[str, Any] | None = None) -> SearchResult:
        """Route ``query`` (or use ``expert``), search the chosen expert(s) and return the hits."""
        return self.search_many([query], top_k, expert, top_m, filters)[0]

    def search_many(self, queries: Sequence[str], top_k: int = 10, expert: str | None = None,
                    top_m: int | None = None, filters: Mapping[str, Any] | None = None) -> list[SearchResult]:
        """Search a batch: one router pass, then one encoder pass and one index search per chosen expert."""
        texts = valid_queries(queries, self.settings.limits)
        top_k = valid_top_k(top_k, self.settings.limits)
        routes, base_vectors = self._route(texts, expert, top_m)
        rankings = self._rankings(texts, routes, base_vectors, top_k, filters or {})
        return [SearchResult(query=q, hits=hits({name: rankings[name][i] for name in route.experts}, top_k),
                             route=route) for i, (q, route) in enumerate(zip(texts, routes))]

    def route(self, query: str, top_m: int | None = None) -> Route:
        """Which expert(s) the router picks for ``query``, with every routable expert's score."""
        return self._route([valid_query(query, self.settings.limits)], None, top_m)[0][0]

    def embed_queries(self, queries: Sequence[str], expert: str | None = None) -> np.ndarray:
        """Query vectors of ``expert``'s query encoder, or by default of the router's base model (what
        pilots and learned routers compare)."""
        encoder = self._expert(expert).query_encoder if expert else self._router.encoder
        return encoder.encode(valid_queries(queries, self.settings.limits), self.settings.batch_size)

    def embed_documents(self, texts: Sequence[str], expert: str) -> np.ndarray:
        """Document vectors of ``expert``'s document encoder (what its index holds)."""
        return self._expert(expert).document_encoder.encode(list(texts), self.settings.batch_size)

    # ---- documents -----------------------------------------------------------------------------
    def add(self, docs: Sequence[Document], progress: bool = False) -> int:
        """Add or replace documents (by id) in the store and every index; persisted on return."""
        docs = valid_documents(docs, self.settings.limits)
        return self._indexer.add(docs, progress) if docs else 0

    def delete(self, ids: Sequence[str]) -> list[str]:
        """Delete documents by id; returns the ids that existed (persisted on return)."""
        return self._indexer.delete(valid_ids(ids))

    def count(self) -> int:
        """Number of documents in the store."""
        return len(self._data_dir.docs)

    def build(self, corpus: Sequence[Document] | None = None, progress: bool = True) -> dict[str, int]:
        """Load ``corpus`` into an empty store, encode every missing index, and build the pilot library
        if domains are configured and none is saved. Returns documents encoded per document encoder."""
        built = self._indexer.build(corpus, progress)
        if self.settings.domains and not (self.settings.data_dir / PILOTS_FILE).is_file():
            self.rebuild_pilots()
        self._gaps = None
        return built

    def repair(self, progress: bool = False) -> dict[str, int]:
        """Re-encode only the stored documents that a built index lacks (``status().missing``); returns
        documents encoded per document encoder. The service's writer does this at startup."""
        repaired = self._indexer.repair(progress)
        self._gaps = None
        return repaired

    def rebuild_pilots(self) -> PilotLibrary:
        """Re-embed the pilot library from the configured domains (per ``router.pilots``) and save it."""
        settings = self.settings
        self._data_dir.check_writable()
        if settings.router.pilots == "winner":
            library = winner_library(self._router.encoder, settings.domains, list(self._experts),
                                     lambda queries, name: self.search_many(queries, 10, expert=name),
                                     settings.batch_size)
        else:
            library = domain_library(self._router.encoder, settings.domains, settings.batch_size)
        library.save(settings.data_dir / PILOTS_FILE)
        self._router.use(library)
        return library

    # ---- description ---------------------------------------------------------------------------
    def experts(self) -> list[ExpertInfo]:
        """Every configured expert: encoders, index size and kind, pilot domains, whether it is routable."""
        library = self._router.library
        routable = set(self._router.routable())
        return [ExpertInfo(
            name=name, description=e.description, query_encoder=e.query_encoder.identity,
            document_encoder=e.document_encoder.identity,
            query_fingerprint=query_spec(self.settings.expert(name)).fingerprint, dimension=e.index.dimension,
            index_documents=e.index.count, index_kind=self.settings.index.kind,
            domains=tuple(d for d, x in zip(library.domains, library.experts) if x == name) if library else (),
            routable=name in routable) for name, e in self._experts.items()]

    def pilots(self) -> list[dict[str, object]]:
        """The pilot library in use: expert, domain and number of queries of each pilot (empty if none)."""
        library = self._router.library
        return library.describe() if library else []

    def status(self) -> Status:
        """Documents, vectors per index, the experts whose index is not built yet, and how each built index
        differs from the store (compared once when opened and after ``build``/``repair``: this process's
        own writes keep them in step)."""
        documents = self.count()
        if self._gaps is None:
            self._gaps = self._data_dir.gaps()
        gaps = self._gaps.values()
        return Status(documents, {name: index.count for name, index in self._data_dir.indexes.items()},
                      tuple(name for name, e in self._experts.items() if e.index.is_empty and documents),
                      missing={g.name: len(g.missing) for g in gaps if len(g.missing)},
                      stale={g.name: len(g.stale) for g in gaps if len(g.stale)})

    @property
    def read_only(self) -> bool:
        """Whether this retriever was opened for reading only (it holds no writer lock)."""
        return self._data_dir.read_only

    def close(self) -> None:
        """Close the store and give up the writer lock."""
        self._data_dir.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- internals -----------------------------------------------------------------------------
    def _expert(self, name: str) -> Expert:
        if name not in self._experts:
            raise UnknownExpertError(f"unknown expert {name!r}; configured: {', '.join(self._experts)}")
        return self._experts[name]

    def _route(self, queries: list[str], expert: str | None, top_m: int | None) -> tuple[list[Route], np.ndarray | None]:
        """Routes for valid queries, plus the base-model vectors (None when the expert was forced)."""
        top_m = valid_top_m(self.settings.router.top_m if top_m is None else top_m, len(self._experts))
        if expert is not None:
            self._expert(expert)
            return [Route(experts=(expert,), scores={}, forced=True) for _ in queries], None
        return self._router.route(queries, top_m)

    def _rankings(self, queries: list[str], routes: list[Route], base_vectors: np.ndarray | None, top_k: int,
                  filters: Mapping[str, Any]) -> dict[str, dict[int, Ranked]]:
        """For each chosen expert, one encoder pass and one index search over the queries routed to it."""
        positions: dict[str, list[int]] = defaultdict(list)
        for i, route in enumerate(routes):
            for name in route.experts:
                positions[name].append(i)
        rankings: dict[str, dict[int, Ranked]] = {}
        for name, rows in positions.items():
            expert = self._experts[name]
            if base_vectors is not None and expert.query_encoder.shares_model_with(self._router.encoder):
                vectors = base_vectors[rows]  # the router's pass is this expert's pass
            else:
                vectors = expert.query_encoder.encode([queries[i] for i in rows], self.settings.batch_size)
            rankings[name] = dict(zip(rows, self._searcher.search(expert, vectors, top_k, filters)))
        return rankings
