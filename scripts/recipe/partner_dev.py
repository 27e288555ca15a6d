"""Which partner each domain's expert should be fused with, and at what share, chosen on dev queries (issue #23:
experts of another model family, each with its own index, fused with the routed expert; ``[router.partners]``).
For each domain, its configured expert and a candidate partner (``--candidates``: the domain's expert of the other
family; never one trained on the domain's dev queries, ``IN_SAMPLE``) search the domain's dev queries alone
(`devqueries.py`), and their lists are fused as the engine fuses a partner's (min-max normalised scores, the
partner weighted ``share``) at each share of ``--shares``. The rule: a domain takes the share with the best dev
nDCG@10, and no partner when none beats its expert alone. Prints and logs one JSON line per domain; no test query
is read.

    python scripts/recipe/partner_dev.py [--config configs/beir5.toml] [--cache runs/eval] [--folds 5]
        [--candidates scifact=general,arguana=arguana,...] [--shares 0.1,0.2,...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from devqueries import corpora_of, dev_ndcg, dev_parts, expert_dev_runs
from domain_experts import IN_SAMPLE

from router_retriever import load_settings
from router_retriever.eval.runs import Run
from router_retriever.routing.fusion import weighted_fusion

CANDIDATES = "scifact=general,arguana=arguana,cranfield=cranfield,cisi=cisi,med=med"
SHARES = "0.1,0.2,0.3,0.4,0.5,0.6,0.7"


def fused_run(expert: Run, partner: Run, share: float) -> Run:
    """Each query's two lists fused as the engine fuses a partner's: ``1 - share`` and ``share`` of their min-max
    normalised scores."""
    run: Run = {}
    for qid, hits in expert.items():
        lists = {"expert": list(hits.items()), "partner": list(partner.get(qid, {}).items())}
        run[qid] = {d: s for d, s, _ in weighted_fusion(lists, {"expert": 1.0 - share, "partner": share})}
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/beir5.toml")
    ap.add_argument("--cache", type=Path, default=Path("runs/eval"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--candidates", default=CANDIDATES, help="domain=expert pairs: each domain's candidate partner")
    ap.add_argument("--shares", default=SHARES)
    ap.add_argument("--log", default="scripts/recipe/partner-dev.jsonl")
    args = ap.parse_args()
    settings = load_settings(args.config)
    candidates = dict(pair.split("=") for pair in args.candidates.split(","))
    shares = [float(s) for s in args.shares.split(",")]
    for domain, partner in candidates.items():
        if partner in IN_SAMPLE.get(domain, set()):
            raise SystemExit(f"{partner} was trained on {domain}'s dev queries: not a candidate")
    experts = {d.name: d.expert for d in settings.domains}
    corpora = corpora_of(settings, args.cache)
    parts = dev_parts(settings, args.config, args.cache, args.folds, corpora)
    runs, qrels = expert_dev_runs(parts, corpora, {d: [experts[d], partner] for d, partner in candidates.items()})
    with open(args.log, "a") as log:
        for domain, partner in candidates.items():
            expert_run, partner_run = runs[domain][experts[domain]], runs[domain][partner]
            alone = dev_ndcg(expert_run, qrels[domain])
            by_share = {share: dev_ndcg(fused_run(expert_run, partner_run, share), qrels[domain]) for share in shares}
            best = max(by_share, key=lambda share: by_share[share])
            row = {"domain": domain, "config": args.config, "expert": experts[domain], "partner": partner,
                   "queries": len(qrels[domain]), "expert_alone": alone, "partner_alone": dev_ndcg(partner_run, qrels[domain]),
                   "fused_by_share": by_share, "chosen_share": best if by_share[best] > alone else None}
            print(json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
