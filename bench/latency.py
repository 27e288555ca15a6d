"""Search latency and throughput of the retriever, measured in one run on one corpus.

Prints: single-expert (forced) latency p50/p95, routed latency p50/p95 and their ratio, batched
throughput (queries/s) and document-encoding throughput (docs/s).

    python bench/latency.py [--config CONFIG] [--data-dir DIR] [--queries 200] [--encode-docs 300]

Uses the configured data directory (default: the packaged demo; run `retriever demo` or
`retriever build` first) and the real SciFact test claims of the shipped corpus as queries.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np

from retriever import Retriever, read_corpus, read_queries, resolve_location

DEMO = Path(resolve_location("pkg:retriever/data/scifact-1k"))


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--encode-docs", type=int, default=300)
    args = parser.parse_args()

    retriever = Retriever.from_config(args.config, data_dir=args.data_dir)
    if retriever.status().unbuilt:
        raise SystemExit("indexes are not built: run `retriever demo` or `retriever build` first")
    queries = list(read_queries(DEMO, "test").values())[: args.queries]
    for query in queries[:10]:  # warm-up: first calls load models and allocate buffers
        retriever.search(query)

    routes = [retriever.route(q).expert for q in queries]
    experts = [info.name for info in retriever.experts()]
    print(f"corpus: {retriever.count()} docs; experts: {', '.join(experts)}; "
          f"{len(queries)} queries, routed to {dict(Counter(routes))}")
    routed = [timed(retriever.search, q) for q in queries]
    single = [timed(retriever.search, q, expert=e) for q, e in zip(queries, routes)]
    (s50, s95), (r50, r95) = percentiles(single), percentiles(routed)
    print(f"single expert (forced, same expert as routed): p50 {s50:.1f} ms  p95 {s95:.1f} ms")
    print(f"routed (router pass + expert pass):            p50 {r50:.1f} ms  p95 {r95:.1f} ms")
    print(f"routed / single latency ratio:                 p50 {r50 / s50:.2f}  p95 {r95 / s95:.2f}")

    batch_seconds = timed(retriever.search_many, queries, 10)
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
