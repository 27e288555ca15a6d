"""Recall@10, query latency, throughput, build time and size of the FAISS index kinds (flat, HNSW, IVF-PQ).

Every index is built, saved and loaded through the engine's own ``VectorIndex`` and ``IndexConfig`` (the
search knobs are applied by ``load``, as in the engine), so the figures are those of what the retriever
runs. Recall@10 is measured against the flat (exact inner product) index over the same vectors. Latency is
that of single queries sent one at a time on one FAISS thread (p50/p95); throughput is one batched search
of every query on --threads threads.

Two vector sets:

- real: the document vectors the evaluation cached (``<corpora>/*/indexes/<encoder>/``, flat indexes built
  by ``retriever eval`` over configs/beir5.toml), pooled over its collections, one set per expert named by
  --experts (its document encoder), queried with the collections' real test queries encoded by that
  expert's query encoder (a seeded sample of at most --queries-per-collection per collection);
- synthetic: --synthetic-size unit vectors of a seeded Gaussian mixture (--clusters centres) of --dim
  dimensions (384, as the real vectors), queried with --synthetic-queries vectors drawn from the same
  mixture. Flat latency is also measured on the first --flat-sizes vectors of it (the mixture is drawn up
  to the largest).

    python -u bench/index_kinds.py [--corpora runs/eval/corpora] [--config configs/beir5.toml]
        [--experts general,bge] [--sets real,synthetic] [--synthetic-size 1000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np
from tqdm.auto import tqdm

from router_retriever.indexes.vector_index import IndexConfig, IndexManifest, VectorIndex

if TYPE_CHECKING:  # the engine (encoders, config) is imported by the real sets alone: the synthetic one needs FAISS
    from router_retriever import Settings

K = 10
DEFAULTS = IndexConfig()


@dataclass
class VectorSet:
    """Unit document vectors and query vectors of one benchmark set, with a line saying what they are."""

    name: str
    documents: np.ndarray
    queries: np.ndarray
    description: str


@dataclass
class Row:
    """The measured figures of one index configuration on one vector set."""

    kind: str
    params: str
    form: str
    build_s: float
    size_mb: float
    recall: float
    p50_ms: float
    p95_ms: float
    qps: float


def cached_documents(corpora: Path, encoder_identity: str) -> tuple[np.ndarray, list[str]]:
    """Every vector of the cached flat indexes of one document encoder, over all collections, and the
    collections' folder names."""
    parts, names = [], []
    for path in sorted(corpora.glob("*/indexes/*/manifest.json")):
        raw = json.loads(path.read_text())
        if raw.get("encoder") != encoder_identity:  # another encoder's index, or the BM25 index
            continue
        manifest = IndexManifest(**raw)
        if manifest.kind != "flat":
            raise SystemExit(f"{path}: a {manifest.kind} index; this benchmark reads exact (flat) indexes")
        index = faiss.read_index(str(path.parent / manifest.file))
        flat = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
        parts.append(flat.reconstruct_n(0, flat.ntotal))
        names.append(path.parents[2].name)
    if not parts:
        raise SystemExit(f"no cached index of {encoder_identity!r} under {corpora}: run `retriever eval` first")
    return np.vstack(parts), names


def test_queries(settings: Settings, per_collection: int, seed: int) -> list[str]:
    """A seeded sample of at most ``per_collection`` test queries of each configured corpus."""
    from router_retriever.corpus import read_queries
    from router_retriever.locations import resolve_location

    rng = np.random.default_rng(seed)
    texts: list[str] = []
    for source in settings.corpus:
        queries = list(read_queries(Path(resolve_location(source.path)), "test").values())
        chosen = rng.choice(len(queries), size=min(per_collection, len(queries)), replace=False)
        texts += [queries[i] for i in sorted(chosen)]
    return texts


def real_sets(corpora: Path, settings: Settings, experts: list[str], per_collection: int, seed: int) -> list[VectorSet]:
    """One set per expert: its document encoder's cached vectors and the real test queries it encodes."""
    from router_retriever.encoding.encoders import encoder
    from router_retriever.experts import document_spec, query_spec

    texts = test_queries(settings, per_collection, seed)
    sets = []
    for name in experts:
        config = settings.expert(name)
        documents, collections = cached_documents(corpora, document_spec(config).identity)
        queries = encoder(query_spec(config), "query").encode(texts, progress=True)
        sets.append(VectorSet(f"real/{name}", documents, queries,
                              f"{len(documents):,} document vectors of {document_spec(config).identity} "
                              f"({', '.join(collections)}); {len(queries):,} real test queries "
                              f"(at most {per_collection} per collection) by {query_spec(config).identity}"))
    return sets


def mixture(n: int, centres: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors: a random centre plus isotropic Gaussian noise of norm about ``noise``, normalised."""
    dim = centres.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        chunk = centres[rng.integers(0, len(centres), stop - start)]
        chunk += rng.standard_normal(chunk.shape, dtype=np.float32) * np.float32(noise / np.sqrt(dim))
        out[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def synthetic_vectors(n: int, n_queries: int, dim: int, clusters: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Documents and queries drawn alike from one seeded Gaussian mixture of unit vectors."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return mixture(n, centres, noise, rng), mixture(n_queries, centres, noise, rng)


def sweep(kinds: list[str], ef_search: list[int], nprobe: list[int], pq_m: list[int], refine: list[int]) -> list[IndexConfig]:
    """Flat (always: the reference), HNSW at each efSearch, IVF-PQ of each pq_m at each nprobe without
    refinement (refine factor 0) or re-ranking that many x k candidates exactly."""
    configs = [IndexConfig(kind="flat")]
    if "hnsw" in kinds:
        configs += [IndexConfig(kind="hnsw", hnsw_ef_search=ef) for ef in ef_search]
    if "ivfpq" in kinds:
        configs += [IndexConfig(kind="ivfpq", pq_m=m, ivf_nprobe=p, pq_refine=r > 0, pq_refine_factor=max(r, 1))
                    for m in pq_m for r in refine for p in nprobe]
    return configs


def build_key(config: IndexConfig) -> IndexConfig:
    """The configuration with its search-time knobs at their defaults: configs sharing it share one build."""
    return config.model_copy(update={"hnsw_ef_search": DEFAULTS.hnsw_ef_search, "ivf_nprobe": DEFAULTS.ivf_nprobe,
                                     "pq_refine_factor": DEFAULTS.pq_refine_factor})


def params(config: IndexConfig) -> str:
    """The parameters of a configuration that matter for its kind, as a table cell."""
    if config.kind == "hnsw":
        return f"M={config.hnsw_m} efC={config.hnsw_ef_construction} efSearch={config.hnsw_ef_search}"
    if config.kind == "ivfpq":
        nlist = config.ivf_nlist or "4*sqrt(n)"
        refine = f"{config.pq_refine_factor}x" if config.pq_refine else "no"
        return f"nlist={nlist} pq_m={config.pq_m} nprobe={config.ivf_nprobe} refine={refine}"
    return ""


def build(vectors: np.ndarray, config: IndexConfig, folder: Path) -> tuple[float, int]:
    """Build and save one index; returns its build seconds (train + add) and its file's bytes."""
    index = VectorIndex(folder, "bench", config)
    start = time.perf_counter()
    index.build(vectors, np.arange(len(vectors), dtype=np.int64))
    seconds = time.perf_counter() - start
    manifest = index.save()
    return seconds, (folder / manifest.file).stat().st_size


def latencies_ms(index: VectorIndex, queries: np.ndarray) -> tuple[float, float]:
    """p50 and p95 of single-query searches, one at a time on one FAISS thread (after a short warm-up).

    One thread: a single query gains nothing from a second one, and on shared cores an OpenMP region waits
    for its descheduled sibling (tens of ms per query on these loaded cores)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for query in queries[:5]:
            index.search(query[None, :], K)
        seconds = []
        for query in queries:
            start = time.perf_counter()
            index.search(query[None, :], K)
            seconds.append(time.perf_counter() - start)
    finally:
        faiss.omp_set_num_threads(threads)
    p50, p95 = np.percentile(np.asarray(seconds) * 1000, [50, 95])
    return float(p50), float(p95)


def recall_at_k(ids: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the exact top-k found in the approximate top-k."""
    return float((ids[:, :, None] == truth[:, None, :]).any(axis=2).sum(axis=1).mean() / truth.shape[1])


def measure(vs: VectorSet, configs: list[IndexConfig], single: int, workdir: Path) -> Iterator[Row]:
    """Every configuration on one set, one row each as it is measured (flat first: its batch answer is the
    exact top-k)."""
    built: dict[IndexConfig, tuple[Path, float, int]] = {}
    truth = np.zeros((0, K), dtype=np.int64)
    for config in tqdm(configs, desc=vs.name, unit="config"):
        key = build_key(config)
        if key not in built:
            folder = Path(tempfile.mkdtemp(dir=workdir))
            built[key] = (folder, *build(vs.documents, key, folder))
        folder, build_s, size = built[key]
        index = VectorIndex(folder, "bench", config)
        form = index.load().form
        p50, p95 = latencies_ms(index, vs.queries[:single])
        start = time.perf_counter()
        _, ids = index.search(vs.queries, K)
        qps = len(vs.queries) / (time.perf_counter() - start)
        if config.kind == "flat":
            truth = ids
        yield Row(config.kind, params(config), form, build_s, size / 2**20, recall_at_k(ids, truth), p50, p95, qps)


def flat_scaling(documents: np.ndarray, queries: np.ndarray, sizes: Iterable[int], single: int) -> list[tuple[int, float, float, float]]:
    """Flat (exact) single-query p50/p95 and batch throughput over the first ``size`` documents (in memory)."""
    out = []
    for size in tqdm(sizes, desc="flat scaling", unit="size"):
        index = VectorIndex(Path(), "bench", IndexConfig(kind="flat"))
        index.build(documents[:size], np.arange(size, dtype=np.int64))
        p50, p95 = latencies_ms(index, queries[:single])
        start = time.perf_counter()
        index.search(queries, K)
        out.append((size, p50, p95, len(queries) / (time.perf_counter() - start)))
    return out


def report(vs: VectorSet, configs: list[IndexConfig], single: int, workdir: Path) -> None:
    """Print one set's table, each row as soon as it is measured."""
    print(f"\n### {vs.name}: {vs.description}")
    print(f"(single-query latency over {min(single, len(vs.queries))} queries; throughput: one batch of "
          f"{len(vs.queries)})\n")
    print("| kind | parameters | form | build s | size MiB | recall@10 | p50 ms | p95 ms | batch q/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in measure(vs, configs, single, workdir):
        tqdm.write(f"| {r.kind} | {r.params} | {r.form} | {r.build_s:.1f} | {r.size_mb:.1f} | {r.recall:.3f} | "
                   f"{r.p50_ms:.2f} | {r.p95_ms:.2f} | {r.qps:,.0f} |")


def ints(text: str) -> list[int]:
    """A comma-separated list of integers (an argparse type)."""
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=Path("runs/eval/corpora"), help="the evaluation's corpus folders")
    parser.add_argument("--config", type=Path, default=Path("configs/beir5.toml"), help="experts and corpora of the eval")
    parser.add_argument("--experts", default="general,bge", help="experts whose document vectors form the real sets")
    parser.add_argument("--queries-per-collection", type=int, default=300)
    parser.add_argument("--sets", default="real,synthetic")
    parser.add_argument("--synthetic-size", type=int, default=1_000_000)
    parser.add_argument("--synthetic-queries", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=384, help="of the synthetic vectors (the real ones are 384-d)")
    parser.add_argument("--clusters", type=int, default=1_000)
    parser.add_argument("--noise", type=float, default=1.0, help="norm of the noise added to a unit centre")
    parser.add_argument("--flat-sizes", type=ints, default=[100_000, 250_000, 500_000, 1_000_000])
    parser.add_argument("--ef-search", type=ints, default=[16, 32, 64, 128, 256])
    parser.add_argument("--nprobe", type=ints, default=[8, 16, 32, 64, 128])
    parser.add_argument("--pq-m", type=ints, default=[16, 32, 64], help="IVF-PQ sub-quantisers (each divides the dimension)")
    parser.add_argument("--kinds", default="hnsw,ivfpq", help="index kinds measured beside flat")
    parser.add_argument("--refine", type=ints, default=[0, 4], help="IVF-PQ refine factors: 0 = none, F = F x k re-ranked")
    parser.add_argument("--single", type=int, default=300, help="queries timed one at a time")
    parser.add_argument("--threads", type=int, default=2, help="FAISS OpenMP threads (the cores are shared)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    faiss.omp_set_num_threads(args.threads)
    sets = args.sets.split(",")
    configs = sweep(args.kinds.split(","), args.ef_search, args.nprobe, args.pq_m, args.refine)
    print(f"# index kinds, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} CPUs, {args.threads} FAISS "
          f"threads, faiss {faiss.__version__}, k={K}; recall@10 against the flat index")
    with tempfile.TemporaryDirectory(prefix="index-kinds-") as tmp:
        if "real" in sets:
            from router_retriever import load_settings

            settings = load_settings(args.config)
            for vs in real_sets(args.corpora, settings, args.experts.split(","), args.queries_per_collection, args.seed):
                report(vs, configs, args.single, Path(tmp))
        if "synthetic" in sets:
            documents, queries = synthetic_vectors(max([args.synthetic_size, *args.flat_sizes]), args.synthetic_queries,
                                                   args.dim, args.clusters, args.noise, args.seed)
            vs = VectorSet(f"synthetic/{args.synthetic_size}", documents[: args.synthetic_size], queries,
                           f"SYNTHETIC: {args.synthetic_size:,} unit vectors, {args.dim}-d, a Gaussian mixture of "
                           f"{args.clusters} centres (noise {args.noise}, seed {args.seed}); {len(queries):,} queries "
                           "from the same mixture")
            report(vs, configs, args.single, Path(tmp))
            print(f"\n### flat (exact) latency by corpus size, on the synthetic mixture ({len(queries)} queries)\n")
            print("| vectors | p50 ms | p95 ms | batch q/s |")
            print("|---|---|---|---|")
            for n, p50, p95, qps in flat_scaling(documents, queries, sorted(args.flat_sizes), args.single):
                print(f"| {n:,} | {p50:.2f} | {p95:.2f} | {qps:,.0f} |")

if __name__ == "__main__":
    main()
