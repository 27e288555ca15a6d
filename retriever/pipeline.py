"""The one search pipeline: query -> router -> chosen expert's query encoder -> that expert's index -> hits.

CLI, REST service, evaluation and RAG adapters all call ``SearchPipeline``. ``search_many`` embeds a
batch once with the router's base model and once per chosen expert (and reuses the base pass for
experts whose query encoder is the base model).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError, IndexNotBuiltError, InvalidRequestError, UnknownExpertError
from core.types import Document, Hit, Route, SearchResult
from indexes.data_dir import DataDirectory
from retriever.config import MAX_TOP_K, Settings
from retriever.corpus import check_unique_ids, read_query_file
from retriever.encoders import EncoderSpec, get_encoder
from retriever.experts import Expert
from retriever.fusion import reciprocal_rank_fusion
from retriever.pilots import PilotGroup, PilotLibrary
from retriever.router import PilotRouter

MAX_QUERY_CHARS = 10_000
PILOTS_FILE = "pilots.npz"


class SearchPipeline:
    """Experts, their indexes and the pilot router behind one search API."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = DataDirectory(settings.data_dir, settings.index)
        self.experts = {c.name: Expert.from_config(c, self.store) for c in settings.experts}
        self.router_encoder = get_encoder(EncoderSpec(settings.router_model))
        self.router = self._load_router()

    # ---- routing -------------------------------------------------------------------------------
    def route(self, query: str, top_m: int | None = None) -> Route:
        """Which expert(s) the router picks for ``query``, with every expert's score."""
        return self.route_many([query], top_m=top_m)[0][0]

    def route_many(
        self, queries: Sequence[str], expert: str | None = None, top_m: int | None = None
    ) -> tuple[list[Route], np.ndarray | None]:
        """Routes for a batch, plus the base-model query vectors (None when the expert was forced)."""
        queries = [_valid_query(q) for q in queries]
        top_m = self._valid_top_m(top_m)
        if expert is not None:
            self.expert(expert)
            return [Route(experts=(expert,), scores={}, forced=True) for _ in queries], None
        if self.router is None:
            if len(self.experts) > 1:
                raise ConfigError("no pilot library: configure [[domains]] and run `retriever pilots build`, "
                                  "or name an expert")
            only = next(iter(self.experts))
            return [Route(experts=(only,), scores={only: 1.0}) for _ in queries], None
        vectors = self.router_encoder.encode(queries, batch_size=self.settings.batch_size)
        return self.router.route(vectors, top_m), vectors

    # ---- search --------------------------------------------------------------------------------
    def search(self, query: str, top_k: int = 10, expert: str | None = None, top_m: int | None = None,
               filters: Mapping[str, Any] | None = None) -> SearchResult:
        """Search one query; see ``search_many``."""
        return self.search_many([query], top_k, expert, top_m, filters)[0]

    def search_many(self, queries: Sequence[str], top_k: int = 10, expert: str | None = None,
                    top_m: int | None = None, filters: Mapping[str, Any] | None = None) -> list[SearchResult]:
        """Route each query, search its expert(s), fuse top-m lists with RRF; one encoder pass per expert."""
        if isinstance(queries, str):
            raise InvalidRequestError("search_many takes a list of queries, not one string")
        top_k = _valid_top_k(top_k)
        routes, base_vectors = self.route_many(queries, expert, top_m)
        rankings = self._expert_rankings(queries, routes, base_vectors, top_k, filters or {})
        results = []
        for position, (query, route) in enumerate(zip(queries, routes)):
            lists = {name: rankings[name][position] for name in route.experts}
            results.append(SearchResult(query=query, hits=self._hits(lists, top_k), route=route))
        return results

    def _expert_rankings(self, queries: Sequence[str], routes: list[Route], base_vectors: np.ndarray | None,
                         top_k: int, filters: Mapping[str, Any]) -> dict[str, dict[int, list[tuple[Document, float]]]]:
        """For each chosen expert, one encoder pass and one index search over the queries routed to it."""
        positions: dict[str, list[int]] = defaultdict(list)
        for i, route in enumerate(routes):
            for name in route.experts:
                positions[name].append(i)
        rankings: dict[str, dict[int, list[tuple[Document, float]]]] = {}
        for name, rows in positions.items():
            expert = self.experts[name]
            if base_vectors is not None and expert.query_encoder is self.router_encoder:
                vectors = base_vectors[rows]
            else:
                vectors = expert.query_encoder.encode([queries[i] for i in rows], batch_size=self.settings.batch_size)
            rankings[name] = dict(zip(rows, self._search_index(expert, vectors, top_k, filters)))
        return rankings

    def _search_index(self, expert: Expert, vectors: np.ndarray, k: int,
                      filters: Mapping[str, Any]) -> list[list[tuple[Document, float]]]:
        """Top-k live documents per vector; fetches deeper while deleted or filtered-out ids crowd the top."""
        index = expert.index
        if index.is_empty and len(self.store.docs):
            raise IndexNotBuiltError(f"the index of expert {expert.name!r} is not built: run `retriever build`")
        depth = k + self.store.stale_count(index)
        if filters:
            depth *= 8
        while True:
            scores, ids = index.search(vectors, depth)
            found = self.store.docs.fetch(sorted({int(i) for i in ids.ravel() if i >= 0}))
            lists = [
                [(found[int(i)], float(s)) for s, i in zip(row_s, row_i)
                 if int(i) in found and _matches(found[int(i)], filters)][:k]
                for row_s, row_i in zip(scores, ids)
            ]
            if depth >= index.count or all(len(hits) >= k for hits in lists):
                return lists
            depth *= 4

    def _hits(self, lists: Mapping[str, list[tuple[Document, float]]], top_k: int) -> list[Hit]:
        """One expert's list as hits, or several fused by reciprocal rank (provenance: best-ranked expert)."""
        if len(lists) == 1:
            name, ranked = next(iter(lists.items()))
            return [_hit(doc, score, name) for doc, score in ranked]
        fused = reciprocal_rank_fusion({name: [doc.id for doc, _ in ranked] for name, ranked in lists.items()})
        docs = {doc.id: doc for ranked in lists.values() for doc, _ in ranked}
        return [_hit(docs[doc_id], score, source) for doc_id, score, source in fused[:top_k]]

    # ---- documents -----------------------------------------------------------------------------
    def add_documents(self, docs: Sequence[Document], progress: bool = False) -> int:
        """Add or replace documents in the store and every index, persisted before returning."""
        docs = _valid_documents(docs)
        if not docs:
            return 0
        with self.store.write_lock:
            iids = self.store.docs.reserve_ids(len(docs))
            indexes = self._document_indexes()
            for encoder, index in indexes:
                vectors = encoder.encode([d.content for d in docs], self.settings.batch_size, progress)
                index.add(vectors, np.asarray(iids))
                index.save()  # vectors first: a crash now leaves stale vectors, never an unindexed document
            replaced = self.store.docs.put(docs, iids)
            for _, index in indexes:
                index.remove(replaced)
        return len(docs)

    def delete_documents(self, ids: Sequence[str]) -> list[str]:
        """Delete documents by id; returns the ids that were found and deleted."""
        for doc_id in ids:
            _check_encodable(doc_id, f"document id {doc_id!r}")
        with self.store.write_lock:
            found = self.store.docs.internal_ids(ids)
            self.store.docs.delete(list(found))
            for _, index in self._document_indexes():
                if index.remove(list(found.values())):
                    index.save()
        return list(found)

    def build(self, corpus: Sequence[Document] | None = None, progress: bool = True) -> dict[str, int]:
        """Load ``corpus`` into an empty store, then encode the store into every index that is missing."""
        if corpus is not None and not len(self.store.docs):
            corpus = list(corpus)
            check_unique_ids(corpus, "corpus")
            self.store.docs.put(corpus, self.store.docs.reserve_ids(len(corpus)))
        built = {}
        missing = [(e, i) for e, i in self._document_indexes() if not i.exists] if len(self.store.docs) else []
        if missing:
            chunks = list(self.store.docs.iter_documents())  # read the store once for every missing index
            texts = [d.content for _, docs in chunks for d in docs]
            iids = np.asarray([i for ids, _ in chunks for i in ids])
            for encoder, index in missing:
                index.build(encoder.encode(texts, self.settings.batch_size, progress), iids)
                index.save()
                built[encoder.identity] = len(iids)
        if self.settings.domains and not (self.settings.data_dir / PILOTS_FILE).is_file():
            self.rebuild_pilots()
        return built

    # ---- pilots and experts --------------------------------------------------------------------
    def rebuild_pilots(self) -> PilotLibrary:
        """Re-embed the pilot library from the configured domains (per ``router.pilots``) and save it."""
        if self.settings.router.pilots == "winner":
            from eval.pilots import winner_library  # scoring experts on training qrels is evaluation work

            library = winner_library(self)
        else:
            library = PilotLibrary.build(self.router_encoder, self.domain_groups(), self.settings.batch_size)
        library.save(self.settings.data_dir / PILOTS_FILE)
        self.router = self._router(library)
        return library

    def domain_groups(self) -> list[PilotGroup]:
        """Per-domain pilot groups from the configured [[domains]] training queries."""
        return [PilotGroup(d.name, d.expert, read_query_file(d.queries)) for d in self.settings.domains]

    def expert(self, name: str) -> Expert:
        if name not in self.experts:
            raise UnknownExpertError(f"unknown expert {name!r}; configured: {', '.join(self.experts)}")
        return self.experts[name]

    def close(self) -> None:
        self.store.close()

    def _load_router(self) -> PilotRouter | None:
        """The saved pilot library of this router model, else one built from the configured domains."""
        path: Path = self.settings.data_dir / PILOTS_FILE
        if path.is_file():
            library = PilotLibrary.load(path)
            if library.encoder == self.router_encoder.identity:
                return self._router(library)
        if not self.settings.domains or (self.settings.router.pilots == "winner" and not self._indexes_built()):
            return None  # winner pilots need the indexes: `build` makes them
        self.rebuild_pilots()
        return self.router

    def _indexes_built(self) -> bool:
        return all(not index.is_empty for _, index in self._document_indexes())

    def _router(self, library: PilotLibrary) -> PilotRouter:
        return PilotRouter(library, list(self.experts), self.settings.router.aggregate)

    def _document_indexes(self) -> list[tuple[Any, Any]]:
        """Each distinct (document encoder, index) pair once."""
        unique = {e.document_encoder.identity: (e.document_encoder, e.index) for e in self.experts.values()}
        return list(unique.values())

    def _valid_top_m(self, top_m: int | None) -> int:
        top_m = self.settings.router.top_m if top_m is None else top_m
        if not 1 <= top_m <= len(self.experts):
            raise InvalidRequestError(f"route_top_m must be between 1 and {len(self.experts)} (got {top_m})")
        return top_m


def _valid_query(query: object) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequestError("query must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequestError(f"query is longer than {MAX_QUERY_CHARS} characters")
    _check_encodable(query, "query")
    return query


def _check_encodable(text: str, what: str) -> None:
    """Reject text the tokenizer and SQLite cannot take (lone UTF-16 surrogates, valid in JSON)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(f"{what} is not valid Unicode text: {exc.reason} at position {exc.start}") from exc


def _valid_documents(docs: Sequence[Document]) -> list[Document]:
    """Unique non-empty ids, some text, encodable strings, JSON-safe (finite) metadata."""
    docs = list(docs)
    check_unique_ids(docs, "request")
    for doc in docs:
        if not doc.content.strip():
            raise InvalidRequestError(f"document {doc.id!r} needs a non-empty title or text")
        _check_encodable(f"{doc.id}{doc.content}", f"document {doc.id!r}")
        try:
            json.dumps(doc.metadata, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"metadata of document {doc.id!r} is not plain finite JSON: {exc}") from exc
    return docs


def _valid_top_k(top_k: object) -> int:
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidRequestError(f"top_k must be an integer between 1 and {MAX_TOP_K} (got {top_k!r})")
    return top_k


def _matches(doc: Document, filters: Mapping[str, Any]) -> bool:
    """Metadata equality filters; a list value means 'any of'."""
    for key, wanted in filters.items():
        value = doc.metadata.get(key)
        if value not in wanted if isinstance(wanted, list) else value != wanted:
            return False
    return True


def _hit(doc: Document, score: float, expert: str) -> Hit:
    return Hit(id=doc.id, score=score, expert=expert, title=doc.title, text=doc.text, metadata=doc.metadata)
