"""Search latency and throughput of the retriever, measured in one run on one corpus.

Prints: single-expert (forced) latency p50/p95, routed (dense) latency p50/p95 and their ratio (and, when the
config gives routed experts partners, routed dense without them), the top-m
routed experts fused (soft mixing with the config's ``router.mix_temperature``, else RRF) against one, sparse
(BM25), hybrid and reranked-hybrid latency with their ratios to routed dense, the reranker's cost per
candidate, batched throughput (queries/s) and document-encoding throughput (docs/s).

    python bench/latency.py [--config CONFIG] [--data-dir DIR] [--queries 200] [--top-m 2] [--rerank-queries 20]

Uses the configured data directory (default: the packaged demo; run `retriever demo` or
`retriever build` first) and the real SciFact test claims of the shipped corpus as queries.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np

from router_retriever import Retriever
from router_retriever.corpus import read_corpus, read_queries
from router_retriever.locations import resolve_location

DEMO = Path(resolve_location("pkg:retriever/data/scifact-1k"))


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def _without_partners(retriever: Retriever) -> Retriever:
    """A read-only retriever over the same data directory, its routed experts searched without their partners."""
    settings = retriever.settings
    alone = Retriever(settings.model_copy(update={"router": settings.router.model_copy(update={"partners": {}})}),
                      read_only=True)
    for query in ("warm-up", "load the models"):
        alone.search(query, mode="dense")
    return alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--encode-docs", type=int, default=300)
    parser.add_argument("--top-m", type=int, default=2, help="experts fused per query in the mixing line (1: skip)")
    parser.add_argument("--rerank-queries", type=int, default=20, help="queries timed with reranking (0: skip)")
    args = parser.parse_args()

    retriever = Retriever.from_config(args.config, data_dir=args.data_dir and args.data_dir.absolute())
    if retriever.status().unbuilt:
        raise SystemExit("indexes are not built: run `retriever demo` or `retriever build` first")
    queries = list(read_queries(DEMO, "test").values())[: args.queries]
    for query in queries[:10]:  # warm-up: first calls load models and allocate buffers
        retriever.search(query)

    routes = [retriever.route(q).expert for q in queries]
    experts = [info.name for info in retriever.experts()]
    print(f"corpus: {retriever.count()} docs; experts: {', '.join(experts)}; "
          f"{len(queries)} queries, routed to {dict(Counter(routes))}")
    routed = [timed(retriever.search, q, mode="dense") for q in queries]
    single = [timed(retriever.search, q, expert=e, mode="dense") for q, e in zip(queries, routes)]
    (s50, s95), (r50, r95) = percentiles(single), percentiles(routed)
    print(f"single expert (forced, same expert as routed): p50 {s50:.1f} ms  p95 {s95:.1f} ms")
    print(f"routed dense (router pass + expert pass):      p50 {r50:.1f} ms  p95 {r95:.1f} ms")
    print(f"routed / single latency ratio:                 p50 {r50 / s50:.2f}  p95 {r95 / s95:.2f}")
    if retriever.settings.router.partners:
        alone = _without_partners(retriever)
        a50, a95 = percentiles([timed(alone.search, q, mode="dense") for q in queries])
        alone.close()
        print(f"routed dense without [router.partners]:        p50 {a50:.1f} ms  p95 {a95:.1f} ms  "
              f"(partners: x{r50 / a50:.2f} / x{r95 / a95:.2f})")
    if args.top_m > 1:
        temperature = retriever.settings.router.mix_temperature
        fusion = f"soft mixing, T {temperature:g}" if temperature is not None else "RRF"
        m50, m95 = percentiles([timed(retriever.search, q, mode="dense", top_m=args.top_m) for q in queries])
        print(f"{f'top-{args.top_m} experts fused ({fusion}):':<47}p50 {m50:.1f} ms  p95 {m95:.1f} ms  "
              f"(x{m50 / s50:.2f} / x{m95 / s95:.2f} single expert)")
    p50 = {}
    for mode in ("sparse", "hybrid"):
        p50[mode], m95 = percentiles([timed(retriever.search, q, mode=mode) for q in queries])
        print(f"{mode + ':':<47}p50 {p50[mode]:.1f} ms  p95 {m95:.1f} ms  "
              f"(x{p50[mode] / r50:.2f} / x{m95 / r95:.2f} routed dense)")
    if args.rerank_queries:
        depth = retriever.settings.rerank.depth
        retriever.search(queries[0], mode="hybrid", rerank=True)  # load the cross-encoder outside the timing
        k50, k95 = percentiles([timed(retriever.search, q, mode="hybrid", rerank=True)
                                for q in queries[: args.rerank_queries]])
        print(f"hybrid + rerank top {depth} ({args.rerank_queries} queries):    p50 {k50:.1f} ms  p95 {k95:.1f} ms  "
              f"(x{k50 / r50:.1f} routed dense; {(k50 - p50['hybrid']) / depth:.0f} ms per reranked candidate)")

    batch_seconds = timed(retriever.search_many, queries, 10, mode="dense")
    print(f"batched routed search: {len(queries) / batch_seconds:.1f} queries/s "
          f"(vs {len(queries) / sum(routed):.1f} queries/s one at a time)")

    docs = [d.content for d in read_corpus(DEMO)[: args.encode_docs]]
    for name in experts:
        retriever.embed_documents(docs[:8], name)  # load the model outside the timing
        seconds = timed(retriever.embed_documents, docs, name)
        print(f"document encoding, {name}: {len(docs) / seconds:.1f} docs/s")
    retriever.close()


if __name__ == "__main__":
    main()
