"""bge-small against its query-map experts (experts-beir5/<prefix><domain>) on each domain's TEST queries (run once,
after the recipe was frozen): nDCG@10, the delta and a paired randomization test, exact search over the whole
corpus. Documents are encoded once by the configured bge expert (vectors cached in the config's data dir, as
`train-expert --linear bge` caches them); an expert only maps the base query vectors.

    python scripts/recipe/evaluate_maps.py [--prefix bge-gen-] [domain ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from router_retriever import load_settings
from router_retriever.encoding.encoders import encoder
from router_retriever.encoding.query_map import load_query_map
from router_retriever.eval.datasets import load_beir_folder
from router_retriever.eval.significance import paired_randomization_test
from router_retriever.experts import document_spec, query_spec
from router_retriever.indexes.data_dir import EXPORTS_FOLDER
from router_retriever.metrics import evaluate
from router_retriever.training.trainer import encode_cached

BEIR = Path("../shared/data/beir")
EXPERTS = Path("experts-beir5")


def ranking(queries: np.ndarray, qids: list[str], doc_vectors: np.ndarray, doc_ids: list[str],
            k: int = 10) -> dict[str, dict[str, float]]:
    scores = queries @ doc_vectors.T
    top = np.argsort(-scores, axis=1)[:, :k + 1]
    run = {}
    for row, qid in enumerate(qids):
        hits = {doc_ids[j]: float(scores[row, j]) for j in top[row] if doc_ids[j] != qid}  # BEIR ignore_identical_ids
        run[qid] = dict(list(hits.items())[:k])
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("domains", nargs="*", default=["med", "cisi", "cranfield", "arguana"])
    ap.add_argument("--prefix", default="bge-gen-")
    ap.add_argument("--config", default="configs/beir5.toml")
    ap.add_argument("--data-dir", type=Path, default=Path("data/gpl"), help="where the vectors are cached")
    args = ap.parse_args()
    settings = load_settings(args.config, data_dir=args.data_dir.absolute())
    bge = settings.expert("bge")
    exports, cache = settings.data_dir / EXPORTS_FOLDER, settings.data_dir / "cache" / "vectors"
    documents, queries = encoder(document_spec(bge, exports), "document"), encoder(query_spec(bge, exports), "query")
    print("| domain | test queries | bge-small nDCG@10 | + query map | delta | paired p |")
    print("|---|---|---|---|---|---|")
    for name in args.domains:
        collection = load_beir_folder(BEIR / name, "test")
        texts = [d.content for d in collection.docs]
        by_text = encode_cached(documents, texts, cache)
        doc_vectors = np.stack([by_text[t] for t in texts])
        qids = sorted(collection.qrels)
        base_q = queries.encode([collection.queries[q] for q in qids], batch_size=64)
        mapped = load_query_map(str(EXPERTS / f"{args.prefix}{name}")).apply(base_q)
        doc_ids = [d.id for d in collection.docs]
        base = evaluate(ranking(base_q, qids, doc_vectors, doc_ids), collection.qrels)
        expert = evaluate(ranking(mapped, qids, doc_vectors, doc_ids), collection.qrels)
        p = paired_randomization_test([expert.per_query[q]["nDCG@10"] for q in qids],
                                      [base.per_query[q]["nDCG@10"] for q in qids])
        print(f"| {name} | {len(qids)} | {100 * base.headline:.2f} | {100 * expert.headline:.2f} | "
              f"{100 * (expert.headline - base.headline):+.2f} | {p:.4f} |", flush=True)


if __name__ == "__main__":
    main()
