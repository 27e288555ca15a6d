"""Which expert each domain should route to, chosen on dev queries (issue #23: a domain whose own expert is worse
than the base model there should not route to it). Every configured expert searches each domain's dev queries
alone (`devqueries.py`: SciFact's train queries cross-fitted, each fold with a `bge-scifact` map made from the other
folds; the other domains' generated queries); an expert trained on a domain's dev queries is not a candidate for
that domain (``IN_SAMPLE``, from each expert's training.json). Prints each domain's candidates best first and
appends one JSON line per domain to the log; no test query is read.

    python scripts/recipe/domain_experts.py [--config configs/beir5.toml] [--cache runs/eval] [--folds 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from devqueries import corpora_of, dev_ndcg, dev_parts, expert_dev_runs

from router_retriever import load_settings

# experts trained on a domain's dev queries: SciFact's train queries, or the domain's generated queries
IN_SAMPLE = {"scifact": {"scifact", "multitask", "bge-multitask", "gen-scifact"},
             **{d: {f"gen-{d}", f"bge-gen-{d}"} for d in ("arguana", "cranfield", "cisi", "med")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/beir5.toml")
    ap.add_argument("--cache", type=Path, default=Path("runs/eval"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--log", default="scripts/recipe/domain-experts.jsonl")
    args = ap.parse_args()
    settings = load_settings(args.config)
    corpora = corpora_of(settings, args.cache)
    parts = dev_parts(settings, args.config, args.cache, args.folds, corpora)
    experts = [e.name for e in settings.experts]
    runs, qrels = expert_dev_runs(parts, corpora, {d.name: [e for e in experts if e not in IN_SAMPLE.get(d.name, set())]
                                                   for d in settings.domains})
    with open(args.log, "a") as log:
        for domain in settings.domains:
            scored = {e: dev_ndcg(run, qrels[domain.name]) for e, run in runs[domain.name].items() if run}
            ranked = dict(sorted(scored.items(), key=lambda item: -item[1]))
            row = {"domain": domain.name, "config": args.config, "configured": domain.expert,
                   "best": next(iter(ranked)), "queries": len(qrels[domain.name]), "ndcg@10": ranked}
            print(json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
