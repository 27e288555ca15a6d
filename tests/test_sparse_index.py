"""SparseIndex (BM25 with bm25s) on the shipped SciFact slice: real documents, real queries, real judgements."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from router_retriever.core.errors import IndexCorruptError, IndexMismatchError, IndexNotBuiltError, InvalidRequestError
from router_retriever.eval.datasets import Collection, load_beir_folder
from router_retriever.indexes.sparse_index import MANIFEST, SparseConfig, SparseIndex
from router_retriever.metrics import evaluate

SLICE = Path(__file__).resolve().parents[1] / "retriever/data/scifact-1k"
# nDCG@10 of the default SparseConfig on the slice's 300 test queries over its 1,000 documents, measured
# once: 0.8006 (the slice holds every judged document plus 333 others, so it is easier than full SciFact,
# where the same settings score 0.676 and Pyserini 0.679). A 0.02 margin absorbs tie-order changes only.
NDCG_FLOOR = 0.78
# top-1 rate of a document's exact title over all 1,000 titles, measured 0.994: the six misses are generic or
# truncated titles ("Anxiety", "Summary", "the Development of Autoimmune Myocarditis in Mice by an", ...)
TITLE_TOP1_FLOOR = 0.99


def iids_for(n: int) -> np.ndarray:
    """Sparse, non-contiguous iids so a row/iid mix-up cannot pass unnoticed."""
    return np.arange(n, dtype=np.int64) * 3 + 10


@pytest.fixture(scope="module")
def collection() -> Collection:
    return load_beir_folder(SLICE, "test")


@pytest.fixture(scope="module")
def built(collection: Collection, tmp_path_factory: pytest.TempPathFactory) -> SparseIndex:
    """The whole slice, indexed and saved (tests must not change it: they work on copies)."""
    index = SparseIndex(tmp_path_factory.mktemp("sparse") / "bm25", SparseConfig())
    index.build(iids_for(len(collection.docs)), [d.content for d in collection.docs])
    index.save()
    return index


@pytest.fixture()
def copy(built: SparseIndex, tmp_path: Path) -> SparseIndex:
    """A loaded copy of the saved slice index that a test may change."""
    folder = tmp_path / "bm25"
    shutil.copytree(built.folder, folder)
    index = SparseIndex(folder, SparseConfig())
    index.load()
    return index


def test_exact_title_finds_its_document_first(collection, built):
    titles = [d.title for d in collection.docs]
    _, ids = built.search(titles, 1)
    rate = float(np.mean(ids[:, 0] == iids_for(len(titles))))
    assert rate >= TITLE_TOP1_FLOOR, rate
    # a specific, long title finds its own document first, by iid
    doc = next(i for i, d in enumerate(collection.docs) if len(d.title.split()) >= 8)
    assert built.search([collection.docs[doc].title], 3)[1][0, 0] == iids_for(len(titles))[doc]


def test_shapes_padding_and_order(built):
    scores, ids = built.search(["vitamin D deficiency", "zzzunknownword"], 10_000)
    assert scores.shape == ids.shape == (2, 10_000) and scores.dtype == np.float32 and ids.dtype == np.int64
    hits = ids[0] >= 0
    assert 0 < hits.sum() < 1000 and not hits[hits.sum():].any()  # hits first, then -1 padding
    assert np.all(np.diff(scores[0, hits]) <= 0) and np.all(scores[0, hits] > 0)
    assert np.all(ids[1] == -1) and np.all(scores[1] == 0)
    with pytest.raises(InvalidRequestError):
        built.search(["x"], -1)


def test_ndcg_on_the_slice_test_queries(collection, built):
    qids = list(collection.queries)
    scores, ids = built.search([collection.queries[q] for q in qids], 10)
    doc_id = dict(zip(iids_for(len(collection.docs)).tolist(), (d.id for d in collection.docs)))
    run = {q: {doc_id[int(i)]: float(s) for i, s in zip(ids[n], scores[n]) if i >= 0} for n, q in enumerate(qids)}
    ndcg = evaluate(run, collection.qrels, ["nDCG@10"]).headline
    assert ndcg >= NDCG_FLOOR, ndcg


def test_empty_and_stopword_only_queries_return_no_hits(built, tmp_path):
    scores, ids = built.search(["", "   ", "the of and is", "a"], 5)
    assert ids.shape == (4, 5) and np.all(ids == -1) and np.all(scores == 0)
    assert built.search([], 5)[1].shape == (0, 5)
    empty = SparseIndex(tmp_path / "never-built", SparseConfig())
    assert empty.count == 0 and np.all(empty.search(["vitamin"], 3)[1] == -1)
    with pytest.raises(IndexNotBuiltError):
        empty.save()
    with pytest.raises(IndexNotBuiltError):
        empty.load()
    stopwords_only = SparseIndex(tmp_path / "stopwords", SparseConfig())
    stopwords_only.build(np.array([1, 2]), ["the of and", ""])
    stopwords_only.save()
    stopwords_only.load()
    assert stopwords_only.count == 2 and np.all(stopwords_only.search(["the", "vitamin"], 2)[1] == -1)


def test_save_load_roundtrip_gives_identical_results(collection, built):
    queries = list(collection.queries.values())[:100]
    again = SparseIndex(built.folder, SparseConfig())
    manifest = again.load()
    assert manifest.count == again.count == built.count == len(collection.docs)
    (s1, i1), (s2, i2) = built.search(queries, 20), again.search(queries, 20)
    assert np.array_equal(i1, i2) and np.array_equal(s1, s2)
    assert (i1 >= 0).sum() > 1000  # the comparison covers real hits, not padding


def test_truncated_or_missing_file_raises_index_corrupt(built, tmp_path):
    manifest = json.loads((built.folder / MANIFEST).read_text())
    for role in ("data", "docs", "vocab"):
        folder = tmp_path / role
        shutil.copytree(built.folder, folder)
        path = folder / manifest["files"][role]["name"]
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.raises(IndexCorruptError, match="checksum"):
            SparseIndex(folder, SparseConfig()).load()
    folder = tmp_path / "missing"
    shutil.copytree(built.folder, folder)
    (folder / manifest["files"]["indptr"]["name"]).unlink()
    with pytest.raises(IndexCorruptError, match="missing"):
        SparseIndex(folder, SparseConfig()).load()
    (folder / MANIFEST).write_text((folder / MANIFEST).read_text()[:100])
    with pytest.raises(IndexCorruptError, match="manifest"):
        SparseIndex(folder, SparseConfig()).load()


def test_other_settings_are_refused(built):
    for config in (SparseConfig(k1=1.2), SparseConfig(stemmer=None), SparseConfig(method="atire")):
        with pytest.raises(IndexMismatchError):
            SparseIndex(built.folder, config).load()


def test_removed_iids_never_come_back(collection, copy):
    titles = [d.title for d in collection.docs[:20]]
    gone = copy.search(titles, 1)[1][:, 0]  # each title's top document
    assert np.all(gone >= 0)
    assert copy.remove(gone) == len(set(gone.tolist()))
    assert copy.remove(gone) == 0 and copy.remove([999_999]) == 0
    assert copy.count == len(collection.docs) - len(set(gone.tolist()))

    def returned() -> set[int]:
        return set(copy.search(titles, 1000)[1].ravel().tolist())

    assert not returned() & set(gone.tolist())
    copy.save()
    assert json.loads((copy.folder / MANIFEST).read_text())["tombstones"] == sorted(set(gone.tolist()))
    copy.load()
    assert not returned() & set(gone.tolist())
    count = copy.count
    copy.compact()  # drops the tombstoned rows and recomputes the statistics
    assert copy.count == count and copy.save().tombstones == [] and not returned() & set(gone.tolist())
    copy.add(np.array([5]), [collection.docs[0].content])  # a rebuild drops the tombstoned rows
    assert not returned() & set(gone.tolist())
    assert copy.search([titles[0]], 1)[1][0, 0] == 5  # the same text under a new iid is a new document


def test_added_documents_are_found_and_match_a_full_build(collection, built, tmp_path):
    docs, iids = collection.docs, iids_for(len(collection.docs))
    index = SparseIndex(tmp_path / "bm25", SparseConfig())
    index.build(iids[:-5], [d.content for d in docs[:-5]])
    assert np.all(index.search([d.title for d in docs[-5:]], 1000)[1] != iids[-5, None])  # not there yet
    index.add(iids[-5:], [d.content for d in docs[-5:]])
    assert index.count == len(docs)
    assert index.search([d.title for d in docs[-5:]], 1)[1][:, 0].tolist() == iids[-5:].tolist()
    # add recomputes corpus-wide statistics: same scores as building over all documents at once
    queries = list(collection.queries.values())[:50]
    (s1, i1), (s2, i2) = index.search(queries, 10), built.search(queries, 10)
    np.testing.assert_allclose(s1, s2, rtol=1e-6)
    assert np.mean(i1 == i2) > 0.99  # equal scores may swap places
    with pytest.raises(InvalidRequestError, match="already"):
        index.add(iids[:1], ["again"])
    with pytest.raises(InvalidRequestError):
        index.add(np.array([1, 2]), ["one text"])
