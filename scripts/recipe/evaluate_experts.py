"""Base all-MiniLM-L6-v2 vs each domain's corpus-only expert on that domain's TEST queries (run once, after
the recipe was frozen on SciFact train queries). Prints nDCG@10, the delta and a paired randomization test.

    python scripts/recipe/evaluate_experts.py [--experts experts-beir5] [domain ...]

Documents are encoded once with the base model (the experts' document side; cached in /tmp/recipe-cache);
for an expert only the queries are encoded (base + merged LoRA) and ranked by cosine over all documents.
ArguAna: a retrieved document whose id equals the query id is dropped (BEIR ignore_identical_ids).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import devkit

from router_retriever.eval.datasets import load_beir_folder
from router_retriever.eval.significance import paired_randomization_test
from router_retriever.metrics import evaluate

DOMAINS = ("scifact", "arguana", "cranfield", "cisi", "med")
CORPUS_ONLY = ("arguana", "cranfield", "cisi", "med")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("domains", nargs="*", default=list(DOMAINS))
    ap.add_argument("--experts", type=Path, default=Path(__file__).resolve().parents[2] / "experts-beir5")
    ap.add_argument("--prefix", default="", help="expert folder = EXPERTS/<prefix><domain> (e.g. gen-)")
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()

    base_model = devkit.query_model(None)
    rows = []
    for name in args.domains:
        collection = load_beir_folder(devkit.BEIR / name, "test")
        vectors = devkit.doc_vectors(name, collection.docs)
        doc_ids = [d.id for d in collection.docs]
        queries = {q: t for q, t in collection.queries.items() if q in collection.qrels}
        drop = name == "arguana"
        base = evaluate(devkit.run(base_model, queries, doc_ids, vectors, drop_identical=drop), collection.qrels)
        expert = evaluate(devkit.run(devkit.query_model(args.experts / f"{args.prefix}{name}"), queries, doc_ids, vectors,
                                     drop_identical=drop), collection.qrels)
        qids = sorted(collection.qrels)
        p = paired_randomization_test([expert.per_query[q]["nDCG@10"] for q in qids],
                                      [base.per_query[q]["nDCG@10"] for q in qids], resamples=args.resamples)
        card = json.loads((args.experts / f"{args.prefix}{name}" / "training.json").read_text())
        rows.append({"domain": name, "queries": len(qids), "base": 100 * base.headline,
                     "expert": 100 * expert.headline, "delta": 100 * (expert.headline - base.headline), "p": p,
                     "pairs": card["n_pairs"], "steps": card["steps"], "train_s": card["wall_time_s"]})
        print(f"{name}: done", file=sys.stderr)

    print("| domain | test queries | base nDCG@10 | expert nDCG@10 | delta | paired p | training pairs / steps / wall s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        p = "n/a" if r["p"] is None else f"{r['p']:.4f}"
        print(f"| {r['domain']} | {r['queries']} | {r['base']:.2f} | {r['expert']:.2f} | {r['delta']:+.2f} | {p} | "
              f"{r['pairs']} / {r['steps']} / {r['train_s']:.0f} |")
    gains = [r["delta"] for r in rows if r["domain"] in CORPUS_ONLY]
    if gains:
        print(f"\nmean gain over the corpus-only domains ({len(gains)} of {len(CORPUS_ONLY)}): {sum(gains) / len(gains):+.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
