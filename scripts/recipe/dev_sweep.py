"""Dev sweep: train a SciFact expert from the SciFact corpus alone and score it on SciFact TRAIN queries.

Only SciFact train queries/qrels are read (never a test split). Each configuration appends one JSON line
to the log. Usage: dev_sweep.py --tag T [--kind sentences --per-doc 3 --lr 1e-3 --epochs 1 ...]
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

from router_retriever.corpus import read_qrels, read_queries
from router_retriever.eval.significance import paired_randomization_test
from router_retriever.metrics import evaluate
from router_retriever.training.pseudo_queries import sample_documents
from router_retriever.training.trainer import TrainingOptions, pairs_from_corpus, pseudo_query_pairs, train_query_adapter


def dev_set():
    folder = devkit.BEIR / "scifact"
    qrels = read_qrels(folder, "train")
    queries = {q: t for q, t in read_queries(folder, "train").items() if q in qrels}
    return queries, qrels


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", required=True)
    ap.add_argument("--kind", default="sentences")
    ap.add_argument("--per-doc", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--negatives", default="all")
    ap.add_argument("--max-docs", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", default="/tmp/recipe-dev.jsonl")
    ap.add_argument("--keep", type=Path, help="keep the adapter here")
    args = ap.parse_args()

    docs = devkit.corpus("scifact")
    vectors = devkit.doc_vectors("scifact", docs)
    devkit.install_vector_cache(docs, vectors)
    doc_ids = [d.id for d in docs]
    queries, qrels = dev_set()
    train_docs = sample_documents(docs, args.max_docs or 0, seed=args.seed)
    if args.kind == "title":
        pairs = pairs_from_corpus(train_docs)
    elif args.kind == "first-sentence":
        pairs = pairs_from_corpus(train_docs, use_titles=False)
    else:
        pairs = pseudo_query_pairs(train_docs, kind=args.kind, per_doc=args.per_doc, seed=args.seed)
    out = args.keep or Path(tempfile.mkdtemp(prefix="recipe-dev-"))
    started = time.perf_counter()
    options = TrainingOptions(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, scale=args.scale,
                              seed=args.seed, max_steps=args.max_steps)
    report = train_query_adapter(devkit.BASE, pairs, out, options, negatives=args.negatives)
    train_s = time.perf_counter() - started
    base = evaluate(devkit.run(devkit.query_model(None), queries, doc_ids, vectors), qrels)
    expert = evaluate(devkit.run(devkit.query_model(out), queries, doc_ids, vectors), qrels)
    qids = sorted(qrels)
    a = [expert.per_query[q]["nDCG@10"] for q in qids]
    b = [base.per_query[q]["nDCG@10"] for q in qids]
    row = {"tag": args.tag, **{k: v for k, v in vars(args).items() if k not in ("tag", "log", "keep")},
           "n_pairs": len(pairs), "steps": report.steps, "train_s": round(train_s, 1),
           "final_loss": sum(report.losses[-20:]) / len(report.losses[-20:]),
           "base": round(100 * base.headline, 2), "expert": round(100 * expert.headline, 2),
           "delta": round(100 * (expert.headline - base.headline), 2),
           "p": paired_randomization_test(a, b, resamples=2000)}
    print(json.dumps(row))
    with open(args.log, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
