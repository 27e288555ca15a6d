"""Which BM25 the engine embeds: bm25s (``router_retriever.indexes.sparse_index.SparseIndex``) or Pyserini/Lucene
(``router_retriever.eval.bm25``).

One run on real BEIR SciFact (5,183 documents, 300 test queries; title + text), both with k1 0.9, b 0.4.
Prints, for each: nDCG@10 and R@100, index build time, single-query latency p50/p95 (top-10, one query
per call, after a warm-up), batched throughput (all queries in one call, top-10 and top-100, median of 3), and
what adding one document costs. Pyserini is skipped, with the reason, when it or a Java 21+ JDK is
missing. bm25s settings variants (stemmer, stopwords) follow unless --no-variants.

    python bench/bm25_choice.py [--data /work/shared/data/beir/scifact] [--split test] [--no-variants]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from router_retriever.core.types import Document
from router_retriever.eval.bm25 import why_unavailable
from router_retriever.eval.datasets import Collection, load_beir_folder
from router_retriever.indexes.sparse_index import SparseConfig, SparseIndex
from router_retriever.metrics import evaluate

SCIFACT = Path(__file__).resolve().parents[1].parent / "shared/data/beir/scifact"
MEASURES = ("nDCG@10", "R@100")
PUBLISHED = "Pyserini BEIR flat regression, SciFact nDCG@10 67.9"


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def p50_p95(seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):6.2f} ms   p95 {np.percentile(ms, 95):6.2f} ms"


def scores(run: dict[str, dict[str, float]], collection: Collection) -> str:
    mean = evaluate(run, collection.qrels, MEASURES).mean
    return "   ".join(f"{m} {100 * mean[m]:.1f}" for m in MEASURES)


def line(label: str, value: str) -> None:
    print(f"  {label:<40} {value}")


@contextmanager
def java_log_to(path: Path) -> Iterator[None]:
    """Send what the JVM prints (Anserini's log4j lines) to ``path`` instead of the terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def bench_bm25s(collection: Collection, folder: Path) -> None:
    docs, qids = collection.docs, list(collection.queries)
    queries = [collection.queries[q] for q in qids]
    iids = np.arange(len(docs), dtype=np.int64)
    index = SparseIndex(folder, SparseConfig())
    print(f"bm25s {version('bm25s')} + PyStemmer {version('PyStemmer')} (SparseIndex, {index.config})")
    build_s, _ = timed(index.build, iids, [d.content for d in docs])
    save_s, _ = timed(index.save)
    load_s, _ = timed(SparseIndex(folder, SparseConfig()).load)

    batch: dict[int, list[float]] = {10: [], 100: []}
    for k in (10, 100):
        for _ in range(3):
            seconds, (top, ids) = timed(index.search, queries, k)
            batch[k].append(seconds)
    run = {q: {docs[i].id: float(s) for i, s in zip(ids[n], top[n]) if i >= 0} for n, q in enumerate(qids)}
    for q in queries[:20]:
        index.search([q], 10)
    single = [timed(index.search, [q], 10)[0] for q in queries]

    # add one real document to the other 5,182: remove it, add it back under a fresh iid (add rebuilds)
    last, adds, removes, found = docs[-1], [], [], True
    current = int(iids[-1])
    for attempt in range(3):
        removes.append(timed(index.remove, [current])[0])
        current = len(docs) + attempt
        adds.append(timed(index.add, np.array([current]), [last.content])[0])
        found &= bool(index.search([last.title], 1)[1][0, 0] == current)
    line("quality", scores(run, collection))
    line("build (tokenize + index)", f"{build_s:.2f} s for {len(docs)} docs   (save {save_s:.2f} s, load {load_s:.2f} s)")
    line("single query, top-10", p50_p95(single))
    line("batched, all queries in one call", "   ".join(
        f"top-{k}: {len(queries) / statistics.median(t):.0f} queries/s" for k, t in batch.items()) + "   (one thread)")
    line("add one document", f"{1000 * statistics.median(adds):.0f} ms (median of 3; rebuild over {index.count} docs); "
                             f"found by its title at rank 1: {found}")
    line("remove one document", f"{1000 * statistics.median(removes):.2f} ms (tombstone)")


def bench_variants(collection: Collection, folder: Path) -> None:
    print("bm25s settings (k1 0.9, b 0.4, lucene):")
    docs, qids = collection.docs, list(collection.queries)
    variants = {"stemmer english, stopwords en (default)": SparseConfig(),
                "stemmer porter, stopwords en": SparseConfig(stemmer="porter"),
                "no stemmer, stopwords en": SparseConfig(stemmer=None),
                "stemmer english, no stopwords": SparseConfig(stopwords=None)}
    for label, config in variants.items():
        index = SparseIndex(folder / label.replace(" ", "_").replace(",", ""), config)
        index.build(np.arange(len(docs), dtype=np.int64), [d.content for d in docs])
        top, ids = index.search([collection.queries[q] for q in qids], 100)
        run = {q: {docs[i].id: float(s) for i, s in zip(ids[n], top[n]) if i >= 0} for n, q in enumerate(qids)}
        line(label, scores(run, collection))


def bench_pyserini(collection: Collection, folder: Path) -> None:
    reason = why_unavailable()
    if reason is not None:
        print(f"Pyserini: skipped: {reason}")
        return
    from router_retriever.eval.bm25 import BM25Index, find_java_home

    print(f"Pyserini {version('pyserini')} (Lucene BM25 k1 0.9 b 0.4, Anserini's English analyzer; "
          f"Java at {find_java_home()})")
    docs: list[Document] = collection.docs
    qids = list(collection.queries)
    # the JVM starts on first use: time it apart, with a one-document index, so "build" is indexing only
    folder.mkdir(parents=True)
    with java_log_to(folder / "java.log"):
        jvm_s, tiny = timed(BM25Index.build, docs[:1], folder / "warm-up", threads=2)
        tiny.close()
        build_s, index = timed(BM25Index.build, docs, folder / "cache", threads=2)
    batch: dict[int, list[float]] = {10: [], 100: []}
    for k in (10, 100):
        for _ in range(3):
            seconds, run = timed(index.search_many, collection.queries, k, 2)
            batch[k].append(seconds)
    for q in qids[:20]:
        index.search_many({q: collection.queries[q]}, 10, 1)
    single = [timed(index.search_many, {q: collection.queries[q]}, 10, 1)[0] for q in qids]
    line("quality", f"{scores(run, collection)}   (published: {PUBLISHED})")
    line("build (write JSON + index)", f"{build_s:.2f} s for {len(docs)} docs   (JVM start + 1-doc index first: {jvm_s:.2f} s)")
    line("single query, top-10", p50_p95(single))
    line("batched, all queries in one call", "   ".join(
        f"top-{k}: {len(qids) / statistics.median(t):.0f} queries/s" for k, t in batch.items()) + "   (2 threads)")
    line("add one document", f"no incremental add in router_retriever.eval.bm25.BM25Index: a rebuild, {build_s:.2f} s")
    index.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SCIFACT, help="a BEIR-layout folder (default: SciFact)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--no-variants", action="store_true", help="skip the bm25s settings comparison")
    args = parser.parse_args()

    collection = load_beir_folder(args.data, args.split)
    print(f"{collection.name}: {len(collection.docs)} docs, {len(collection.queries)} queries; "
          f"{os.cpu_count()} CPUs; title + text; k1 0.9, b 0.4")
    with tempfile.TemporaryDirectory(prefix="bm25-choice-") as tmp:
        bench_bm25s(collection, Path(tmp) / "bm25s")
        bench_pyserini(collection, Path(tmp) / "pyserini")
        if not args.no_variants:
            bench_variants(collection, Path(tmp) / "variants")


if __name__ == "__main__":
    main()
