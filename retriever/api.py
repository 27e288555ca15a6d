"""``Retriever``: the engine's one front door (routing, searching, indexing behind one object).

Data path of a search: query -> ``QueryRouter`` (base encoder + pilot library -> ``Route``) -> the chosen
expert's query encoder -> that expert's vector index (``Searcher``, with the document store) -> hits;
a routed expert with a partner (``[router.partners]``) has its list fused with the partner's, and top-m > 1 fuses
the experts' lists (reciprocal rank, or soft mixing). Constructing a ``Retriever`` reads the data
directory only: models load on first use, and pilots are built by ``build`` or ``rebuild_pilots``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router_retriever.config import PartnerConfig, Settings, load_settings
from router_retriever.core.errors import ConfigError, IndexCorruptError, UnknownExpertError
from router_retriever.core.types import SPARSE, Document, ExpertInfo, Mode, Route, SearchResult, Status
from router_retriever.corpus import read_corpora
from router_retriever.encoding.encoders import prepare_export
from router_retriever.encoding.reranker import cross_encoder
from router_retriever.experts import Expert, router_spec
from router_retriever.indexer import DocumentEncoding, Indexer
from router_retriever.indexes.consistency import IndexGap
from router_retriever.indexes.data_dir import DataDirectory
from router_retriever.indexes.lock import WriterLock
from router_retriever.parts import LocalParts, Parts
from router_retriever.routing.pilot_building import domain_library, winner_library
from router_retriever.routing.pilots import PilotLibrary
from router_retriever.routing.router import QueryRouter, list_peak, mix_weights
from router_retriever.searcher import Ranked, Searcher, fused, hits
from router_retriever.validation import (
    valid_documents,
    valid_ids,
    valid_mode,
    valid_queries,
    valid_query,
    valid_top_k,
    valid_top_m,
)

PILOTS_FILE = "pilots.npz"
DENSE = "dense"  # the routed dense list, as a source of hybrid fusion
RERANK = "rerank"  # the cross-encoder, as a source in provenance


class Retriever:
    """Domain experts, their indexes and the pilot router of one data directory behind one search API."""

    def __init__(self, settings: Settings | None = None, *, read_only: bool = False,
                 writer_lock: WriterLock | None = None, parts: Parts | None = None, rebuild: bool = False) -> None:
        """Open the data directory for writing (its writer lock is taken here, or ``writer_lock`` is one
        the caller already holds) or, with ``read_only``, for reading only: nothing is locked or written.
        ``parts`` provides the query encoders and vector indexes (default ``LocalParts``: in this process;
        ``router_retriever.service.ray_serve`` gives stand-ins for Ray Serve deployments). ``rebuild`` (a writer) reads no index
        (a corrupt or mismatched one included): ``build`` then re-encodes every index and the pilot library from
        the store, each replacing its files atomically, so a crash leaves the previous ones in force."""
        self.settings = settings or load_settings()
        parts = parts or LocalParts()
        self._data_dir = DataDirectory(self.settings.data_dir, self.settings.index, self.settings.sparse, read_only,
                                       writer_lock, parts.dense_index, fresh=rebuild)
        self._gaps: dict[str, IndexGap] | None = None
        try:  # loads the indexes: a corrupt one must not leave the writer lock held
            self._experts = {c.name: Expert.from_config(c, self._data_dir, parts) for c in self.settings.experts}
        except BaseException:
            self._data_dir.close()
            raise
        self._router = QueryRouter(parts.query_encoder(router_spec(self.settings, self._data_dir.exports)),
                                   self.settings.data_dir / PILOTS_FILE, list(self._experts),
                                   self.settings.router, self.settings.batch_size)
        self._searcher = Searcher(self._data_dir)
        self._indexer = Indexer(self._data_dir, list(self._experts.values()), self.settings.batch_size)

    @classmethod
    def from_config(cls, path: Path | str | None = None, *, read_only: bool = False, **overrides: Any) -> Retriever:
        """A retriever over a TOML config (default: the packaged demo config); ``overrides`` replace keys."""
        return cls(load_settings(path, **overrides), read_only=read_only)

    # ---- search --------------------------------------------------------------------------------
    def search(self, query: str, top_k: int = 10, *, expert: str | None = None, top_m: int | None = None,
               filters: Mapping[str, Any] | None = None, mode: Mode | None = None,
               rerank: bool | None = None) -> SearchResult:
        """Search one query; see ``search_many``."""
        return self.search_many([query], top_k, expert=expert, top_m=top_m, filters=filters, mode=mode,
                                rerank=rerank)[0]

    def search_many(self, queries: Sequence[str], top_k: int = 10, *, expert: str | None = None,
                    top_m: int | None = None, filters: Mapping[str, Any] | None = None, mode: Mode | None = None,
                    rerank: bool | None = None) -> list[SearchResult]:
        """Search a batch. ``mode`` (default: the config's ``[search] mode``): ``dense`` routes each query
        (or uses ``expert``) and searches the chosen expert(s), ``top_m`` > 1 fusing their lists; ``sparse``
        is BM25 alone (``expert`` and ``top_m`` do not apply); ``hybrid`` fuses BM25 with the routed dense
        list. ``rerank`` (default: ``[rerank] enabled``) rescores the top candidates with the cross-encoder.
        The options after ``top_k`` are keyword-only, so that a new one cannot shift the others.
        One router pass per batch, then one encoder pass and one index search per chosen expert."""
        texts = valid_queries(queries, self.settings.limits)
        top_k = valid_top_k(top_k, self.settings.limits)
        mode = valid_mode(self.settings.search.mode if mode is None else mode)
        if self._data_dir.refresh():  # a reader: what the writer saved since is searched from now on
            self._gaps = None
        rerank = self.settings.rerank.enabled if rerank is None else rerank
        fusing = mode == "hybrid" or (mode == "dense" and expert is None and self._fuses_experts(top_m))
        depth = max(top_k, self.settings.search.candidates) if fusing else top_k  # fused lists: one depth for any k
        depth = max(depth, self.settings.rerank.depth) if rerank else depth
        routes, lists = self._retrieve(texts, mode, expert, top_m, depth, filters or {})
        results = []
        for text, route, sources in zip(texts, routes, lists):
            ranked = self._combined(sources, mode, route)
            if rerank:
                ranked, sources[RERANK] = self._reranked(text, ranked)
            results.append(SearchResult(query=text, hits=hits(ranked, sources, top_k), route=route, mode=mode))
        return results

    def _fuses_experts(self, top_m: int | None) -> bool:
        """Whether a routed dense search may fuse several experts' lists (top-m > 1, the fallback's list mixed in, or
        a routed expert's partner)."""
        router = self.settings.router  # mix_fallback comes with a fallback (Settings checks it)
        return (router.top_m if top_m is None else top_m) > 1 or router.mix_fallback or bool(router.partners)

    def rerank(self, query: str, ids: Sequence[str]) -> list[tuple[str, float]]:
        """Documents of the store, by id, rescored by the cross-encoder: (id, score), best first (ids that
        are not in the store are left out)."""
        query = valid_query(query, self.settings.limits)
        iids = self._data_dir.docs.internal_ids(valid_ids(ids))
        found = self._data_dir.docs.fetch(list(iids.values()))
        docs = [found[iids[doc_id]] for doc_id in ids if doc_id in iids and iids[doc_id] in found]
        return [(doc.id, score) for doc, score in self._rescored(query, docs)]

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

    def build(self, corpus: Sequence[Document] | None = None, progress: bool = True,
              encode: DocumentEncoding | None = None) -> dict[str, int]:
        """Load ``corpus`` (by default the config's ``corpus``, as ``retriever build`` does) into an empty store,
        encode every missing index (with ``encode``, e.g. on a Ray
        cluster: ``router_retriever.ray.encoding``; by default here), and build the pilot library if domains are
        configured and none of the router's encoder is saved; on the onnx backend, every query encoder's
        export (the router's own included) is made here too, so that no first query pays for one. Returns
        documents encoded per document encoder."""
        if corpus is None and not self.count() and self.settings.corpus:
            self._data_dir.check_writable()  # before reading a corpus a reader could not store
            corpus = read_corpora(self.settings.corpus)
        rebuild = self._data_dir.fresh
        built = self._indexer.build(corpus, progress, encode)
        for spec in {expert.query_encoder.spec for expert in self._experts.values()} | {self._router.encoder.spec}:
            prepare_export(spec)
        if self.settings.domains and (rebuild or not self._has_pilots()):
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
                                     lambda queries, name: self.search_many(queries, 10, expert=name, mode="dense"),
                                     settings.batch_size)
        else:
            library = domain_library(self._router.encoder, settings.domains, settings.batch_size)
        library.save(settings.data_dir / PILOTS_FILE)
        self._router.use(library)
        return library

    def use_pilots(self, library: PilotLibrary) -> None:
        """Route with ``library`` (embedded by this router's encoder) from now on, without saving it: the
        evaluation routes each collection with the library the config's ``[[domains]]`` give."""
        if library.encoder != self._router.encoder.identity:
            raise ConfigError(f"the pilot library was embedded by {library.encoder!r}, not by the router's encoder "
                              f"{self._router.encoder.identity!r}")
        self._router.use(library)

    # ---- description ---------------------------------------------------------------------------
    def experts(self) -> list[ExpertInfo]:
        """Every configured expert: encoders, index size and kind, pilot domains, whether it is routable."""
        library = self._router.library
        routable = set(self._router.routable())
        return [ExpertInfo(
            name=name, description=e.description, query_encoder=e.query_encoder.identity,
            document_encoder=e.document_encoder.identity,
            query_fingerprint=e.query_encoder.spec.fingerprint, dimension=e.index.dimension,
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
        counts = {name: index.count for name, index in self._data_dir.indexes.items()}
        return Status(documents, counts | {SPARSE: self._data_dir.sparse.count},
                      tuple(name for name, e in self._experts.items() if e.index.is_empty and documents),
                      missing={g.name: len(g.missing) for g in gaps if len(g.missing)},
                      stale={g.name: len(g.stale) for g in gaps if len(g.stale)},
                      unreadable={name: str(error) for name, error in self._data_dir.unreadable().items()})

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
    def _has_pilots(self) -> bool:
        """Whether a pilot library this router can use is saved (not when none is, when one of another router
        encoder is, or when ``pilots.npz`` is damaged: ``build`` makes it again)."""
        try:
            return self._router.library is not None
        except IndexCorruptError:
            return False

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

    def _retrieve(self, queries: list[str], mode: Mode, expert: str | None, top_m: int | None, depth: int,
                  filters: Mapping[str, Any]) -> tuple[list[Route], list[dict[str, Ranked]]]:
        """Per query, its route and every first-stage list: the chosen experts' (dense, hybrid), BM25's
        (sparse, hybrid)."""
        if mode == "sparse":  # expert and top_m choose dense experts: BM25 alone has none to choose
            sparse = self._searcher.sparse(queries, depth, filters)
            return [Route(experts=(SPARSE,), scores={}, forced=True) for _ in queries], [{SPARSE: r} for r in sparse]
        routes, base_vectors = self._route(queries, expert, top_m)
        searched = [self._searched(route) for route in routes]
        rankings = self._rankings(queries, searched, base_vectors, depth, filters)
        lists = [{name: rankings[name][i] for name in names} for i, names in enumerate(searched)]
        if mode == "hybrid":
            for sources, ranked in zip(lists, self._searcher.sparse(queries, depth, filters)):
                sources[SPARSE] = ranked
        return routes, lists

    def _partner(self, route: Route, name: str) -> PartnerConfig | None:
        """The partner of ``name`` in ``route``: its configured one, none when the route was forced."""
        return None if route.forced else self.settings.router.partners.get(name)

    def _searched(self, route: Route) -> tuple[str, ...]:
        """The experts that search a query: its route's, each routed one followed by its partner."""
        partners = {e: self._partner(route, e) for e in route.experts}
        names = [n for e, p in partners.items() for n in ((e,) if p is None else (e, p.expert))]
        return tuple(dict.fromkeys(names))

    def _partnered(self, name: str, sources: dict[str, Ranked], route: Route) -> Ranked:
        """Routed expert ``name``'s list, fused with its partner's (weighted by the partner's share) if it has one."""
        partner = self._partner(route, name)
        if partner is None:
            return sources[name]
        return fused({name: sources[name], partner.expert: sources[partner.expert]}, "weighted",
                     self.settings.search.rrf_k, {name: 1.0 - partner.share, partner.expert: partner.share})

    def _combined(self, sources: dict[str, Ranked], mode: Mode, route: Route) -> Ranked:
        """The first-stage list of one query: each routed expert's list (fused with its partner's), then the routed
        experts fused (RRF, or soft mixing weighted by the route's scores with ``router.mix_temperature``, and by
        their own lists' peaks with ``router.mix_peak_weight``), then (hybrid) fused with BM25."""
        search, temperature = self.settings.search, self.settings.router.mix_temperature
        if mode == "sparse":
            return sources[SPARSE]
        experts = {n: self._partnered(n, sources, route) for n in route.experts}
        if temperature is not None and len(experts) > 1:
            peak_weight = self.settings.router.mix_peak_weight
            peaks = {n: list_peak([score for _, score in sources[n]]) for n in route.experts} if peak_weight else None
            weights = mix_weights(route, temperature, peaks, peak_weight)
            dense = fused(experts, "weighted", search.rrf_k, weights)
        else:
            dense = fused(experts, "rrf", search.rrf_k)
        if mode != "hybrid":
            return dense
        return fused({DENSE: dense, SPARSE: sources[SPARSE]}, search.fusion, search.rrf_k,
                     {DENSE: search.dense_weight, SPARSE: 1.0 - search.dense_weight})

    def _reranked(self, query: str, ranked: Ranked) -> tuple[Ranked, Ranked]:
        """(the list with its head rescored by the cross-encoder, that rescored head)."""
        depth = self.settings.rerank.depth
        rescored = self._rescored(query, [doc for doc, _ in ranked[:depth]])
        return rescored + ranked[depth:], rescored

    def _rescored(self, query: str, docs: list[Document]) -> Ranked:
        """``docs`` with their cross-encoder scores, best first (ties keep the given order)."""
        config = self.settings.rerank
        scores = cross_encoder(config.model, config.max_length, tuple(config.providers)).scores(query, [doc.content for doc in docs])
        return [(docs[i], float(scores[i])) for i in np.argsort(-scores, kind="stable")]

    def _rankings(self, queries: list[str], searched: list[tuple[str, ...]], base_vectors: np.ndarray | None,
                  top_k: int, filters: Mapping[str, Any]) -> dict[str, dict[int, Ranked]]:
        """For each expert that searches, one encoder pass and one index search over the queries it searches."""
        positions: dict[str, list[int]] = defaultdict(list)
        for i, names in enumerate(searched):
            for name in names:
                positions[name].append(i)
        rankings: dict[str, dict[int, Ranked]] = {}
        for name, rows in positions.items():
            expert = self._experts[name]
            if base_vectors is not None and expert.query_encoder.follows(self._router.encoder):
                vectors = expert.query_encoder.mapped(base_vectors[rows])  # the router's pass is this expert's pass
            else:
                vectors = expert.query_encoder.encode([queries[i] for i in rows], self.settings.batch_size)
            rankings[name] = dict(zip(rows, self._searcher.dense(expert, vectors, top_k, filters)))
        return rankings
