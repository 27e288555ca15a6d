"""Issue #11, item 3: small and empty stores work for every index kind (IVF-PQ stays exact until it has
enough vectors to train, then trains), and no path of the service answers 500. Item 5 (last part): an
approximate index returns every live document when top_k nears their number."""

from __future__ import annotations

import json
import time
from contextlib import closing
from pathlib import Path

import httpx
import numpy as np
import pytest

from router_retriever import Retriever, load_settings
from router_retriever.cli import main
from router_retriever.core.types import Document
from router_retriever.indexes.vector_index import IndexConfig, VectorIndex, train_threshold
from router_retriever.service.app import ServiceConfig, create_app

from conftest import small_config
from service_server import serve_in_thread

KINDS = ["flat", "hnsw", "ivfpq"]


def _unit(rng: np.random.Generator, n: int, dim: int = 64, clusters: int = 0, spread: float = 0.05) -> np.ndarray:
    """Unit vectors: uniform, or around ``clusters`` centres (what trips an HNSW walk)."""
    if clusters:
        centres = rng.normal(size=(clusters, dim))
        vectors = centres[rng.integers(0, clusters, n)] + spread * rng.normal(size=(n, dim))
    else:
        vectors = rng.normal(size=(n, dim))
    vectors = vectors.astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_ivfpq_stays_exact_until_it_can_train_then_trains(tmp_path: Path) -> None:
    """Item 3: 0, 1 and 10 vectors build, search, save and load (form "exact" in the manifest); adding past
    the training threshold trains on every vector held (form "ivfpq"), and nothing is lost on the way."""
    rng = np.random.default_rng(0)
    config = IndexConfig(kind="ivfpq")
    for n in (0, 1, 10):
        index = VectorIndex(tmp_path / f"n{n}", "encoder", config)
        index.build(_unit(rng, n), np.arange(n))
        assert index.form == "exact" and index.search(_unit(rng, 2), 5)[1].shape == (2, min(n, 5))
        assert index.save().form == "exact"
        loaded = VectorIndex(tmp_path / f"n{n}", "encoder", config)
        assert loaded.load().form == "exact" and loaded.count == n
    index = VectorIndex(tmp_path / "grows", "encoder", config)
    threshold = train_threshold(config)
    added = 0
    while added < threshold + 50:
        index.add(_unit(rng, 100), np.arange(added, added + 100))
        added += 100
        assert index.form == ("exact" if added < threshold else "ivfpq")
    manifest = index.save()
    assert (manifest.form, manifest.count) == ("ivfpq", added)
    assert json.loads((tmp_path / "grows" / "manifest.json").read_text())["form"] == "ivfpq"
    assert sorted(index.ids().tolist()) == list(range(added))
    _, ids = index.search(_unit(rng, 3), added)
    assert (ids >= 0).all() and all(len(set(row)) == added for row in ids.tolist())


@pytest.mark.parametrize("kind", KINDS)
def test_build_over_ten_documents_works_for_every_kind(tmp_path: Path, corpus_slice: list[Document], kind: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Item 3: `retriever build` over 10 documents (IVF-PQ crashed with a FAISS RuntimeError, rc 1)."""
    docs = corpus_slice[:10]
    config = small_config(tmp_path, docs, kind=kind)
    assert main(["--config", str(config), "build"]) == 0, capsys.readouterr().err
    assert "10 documents in" in capsys.readouterr().out
    assert main(["--config", str(config), "search", docs[4].title, "-k", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["id"] == docs[4].id


@pytest.mark.parametrize("kind", KINDS)
def test_first_document_posted_to_an_empty_store_is_indexed_for_every_kind(tmp_path: Path, kind: str) -> None:
    """Item 3: POST /documents to an empty store answers 200 and the document is found (IVF-PQ answered a
    plain-text 500)."""
    settings = load_settings(small_config(tmp_path, kind=kind))
    with serve_in_thread(create_app(settings, ServiceConfig())) as url, httpx.Client(base_url=url, timeout=60) as http:
        deadline = time.monotonic() + 60
        while http.get("/ready").json()["detail"].startswith("retriever is loading"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        added = http.post("/documents", json={"documents": [{"id": "first", "title": "Disk full",
                                                             "text": "The volume ran out of inodes."}]})
        assert added.status_code == 200, added.text
        assert added.json() == {"upserted": 1, "documents": 1}
        hits = http.post("/search", json={"query": "volume out of inodes", "top_k": 5}).json()["hits"]
        assert [h["id"] for h in hits] == ["first"]
    with closing(Retriever(settings)) as reopened:  # the server closed its retriever: persisted, as answered
        assert reopened.count() == 1 and reopened.search("inodes", top_k=1).hits[0].id == "first"


def test_hnsw_returns_every_live_document_when_top_k_nears_their_number(tmp_path: Path) -> None:
    """Item 5: HNSW's graph walk can miss nodes when k nears the number of vectors (295 of 300 in the
    issue); such queries fall back to exhaustive search, so every vector comes back, best first."""
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 300, clusters=10)
    index = VectorIndex(tmp_path / "hnsw", "encoder", IndexConfig(kind="hnsw"))
    index.build(vectors, np.arange(1000, 1300))
    scores, ids = index.search(vectors[:20], 300)
    assert all(sorted(row) == list(range(1000, 1300)) for row in ids.tolist())
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    exact = vectors[:20] @ vectors.T
    assert np.allclose(scores[:, 0], exact.max(axis=1), atol=1e-5) and (ids[:, 0] == np.arange(1000, 1020)).all()
