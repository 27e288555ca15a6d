"""Pyserini BM25 baseline: JDK discovery, indexing with a cache, and the SciFact regression number."""

import time
from pathlib import Path

import pytest

from router_retriever.core.types import Document
from router_retriever.eval import bm25
from router_retriever.eval.bm25 import BM25Index, BM25UnavailableError, find_java_home, java_major_version, why_unavailable
from router_retriever.eval.datasets import load_collection
from router_retriever.metrics import evaluate

from conftest import SCIFACT, needs_scifact, skip_unless_available

needs_bm25 = pytest.mark.skipif(why_unavailable() is not None, reason=str(why_unavailable()))


def fake_jdk(root: Path, version: str) -> Path:
    root.mkdir(parents=True)
    (root / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    return root


def test_java_version_and_discovery(tmp_path, monkeypatch):
    jvm = tmp_path / "jvm"
    old, new, newest = fake_jdk(jvm / "jdk17", "17.0.15"), fake_jdk(jvm / "jdk21", "21.0.2"), fake_jdk(jvm / "jdk25", "25.0.3")
    assert [java_major_version(p) for p in (old, new, newest)] == [17, 21, 25]
    assert java_major_version(fake_jdk(tmp_path / "jdk8", "1.8.0_392")) == 8
    monkeypatch.setattr(bm25, "JVM_DIRS", (jvm,))
    monkeypatch.setenv("JAVA_HOME", str(new))
    assert find_java_home() == new  # a recent enough JAVA_HOME wins
    monkeypatch.setenv("JAVA_HOME", str(old))
    assert find_java_home() == newest  # too old: the newest JDK found
    with pytest.raises(BM25UnavailableError, match=r"Java 26\+ JDK.*jdk17 \(Java 17\)"):
        find_java_home(min_version=26)


@pytest.fixture(scope="module")
def scifact_test():
    if not SCIFACT.is_dir():
        skip_unless_available(f"real SciFact data not found at {SCIFACT}")
    return load_collection(f"{SCIFACT}:test")


@needs_bm25
def test_small_real_slice_and_cache(scifact_test, tmp_path):
    docs = scifact_test.docs[:300]
    index = BM25Index.build(docs, tmp_path)
    assert index.num_docs == 300
    assert BM25Index.build(docs, tmp_path).path == index.path  # cached: same corpus, same folder
    assert BM25Index.build(docs[:299], tmp_path).path != index.path
    queries = {f"q{i}": d.title for i, d in enumerate(docs[:20])}
    run = index.search_many(queries, k=5)
    assert set(run) == set(queries) and all(0 < len(hits) <= 5 for hits in run.values())
    top = [max(run[f"q{i}"], key=run[f"q{i}"].get) for i in range(20)]
    assert sum(t == d.id for t, d in zip(top, docs)) >= 18  # a title finds its own document


@needs_bm25
def test_remove_query_drops_the_hit_named_like_the_query(tmp_path):
    docs = [Document("a", "aspirin fever"), Document("b", "aspirin headache"), Document("c", "vitamin")]
    index = BM25Index.build(docs, tmp_path)
    assert set(index.search_many({"a": "aspirin"}, k=2)["a"]) == {"a", "b"}
    assert list(index.search_many({"a": "aspirin"}, k=2, remove_query=True)["a"]) == ["b"]
    assert index.search_many({"x": "unknownword"}, k=2) == {"x": {}}
    with pytest.raises(ValueError, match="k must be >= 1"):
        index.search_many({"a": "aspirin"}, k=0)


@needs_bm25
@needs_scifact
def test_scifact_matches_pyserini_beir_flat_regression(scifact_test, tmp_path):
    """Pyserini/Anserini BEIR (v1.0.0) SciFact flat, BM25 k1=0.9 b=0.4: nDCG@10 0.6789, R@100 0.9253."""
    start = time.perf_counter()
    index = BM25Index.build(scifact_test.docs, tmp_path)
    built = time.perf_counter()
    run = index.search_many(scifact_test.queries, k=100, remove_query=True)
    searched = time.perf_counter()
    result = evaluate(run, scifact_test.qrels)
    print(f"BM25 SciFact: index {built - start:.1f}s, 300 queries {searched - built:.1f}s, {result.mean}")
    assert index.num_docs == 5183
    assert abs(100 * result.mean["nDCG@10"] - 67.89) < 1.0
    assert abs(100 * result.mean["R@100"] - 92.53) < 1.0
