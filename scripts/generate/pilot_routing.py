"""Routing with generated-query pilots against corpus-sentence pilots (issue #22 item 4), on configs/beir5.toml's
router (bge-small's query pass, one centroid per domain, fallback to bge below the learnt percentile).

Three pilot sets, none made from a test query: SciFact train queries with sentences of the other four corpora (the
config's pilots until the generated ones), the same with the four corpus-only domains' pilots taken from their
generated queries (experts-beir5/generated/<domain>.jsonl; the config's now), and all five from generated queries
(a router made from corpora alone).
The test queries of each collection are only routed and counted: the share sent to their own domain's expert, and
the share sent to the fallback.

    python scripts/generate/pilot_routing.py [--config configs/beir5.toml] [--beir ../shared/data/beir]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from router_retriever.config import DomainConfig, load_settings
from router_retriever.encoding.encoders import encoder
from router_retriever.eval.datasets import load_beir_folder
from router_retriever.experts import query_spec
from router_retriever.indexes.data_dir import EXPORTS_FOLDER
from router_retriever.routing.pilot_building import domain_library
from router_retriever.routing.router import PilotRouter

GENERATED = Path("experts-beir5/generated")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/beir5.toml")
    ap.add_argument("--beir", type=Path, default=Path("../shared/data/beir"))
    args = ap.parse_args()
    settings = load_settings(args.config)
    base = settings.expert(settings.router.expert or settings.experts[0].name)
    query_encoder = encoder(query_spec(base, settings.data_dir / EXPORTS_FOLDER), "query")

    def generated(domain: DomainConfig) -> DomainConfig:
        return domain.model_copy(update={"queries": str(GENERATED / f"{domain.name}.jsonl"), "corpus": None})

    def sentences(domain: DomainConfig) -> DomainConfig:
        return domain.model_copy(update={"queries": None, "corpus": str(args.beir / domain.name)})

    def corpus_only(domain: DomainConfig) -> bool:  # a domain whose config pilots are its generated queries
        return domain.queries is not None and Path(domain.queries).resolve() == (GENERATED / f"{domain.name}.jsonl").resolve()

    pilot_sets = {
        "SciFact train queries; corpus sentences": [sentences(d) if corpus_only(d) else d for d in settings.domains],
        "generated for the four corpus-only domains (the config's)": [generated(d) if corpus_only(d) else d
                                                                      for d in settings.domains],
        "generated for all five": [generated(d) for d in settings.domains],
    }
    collections = {d.name: load_beir_folder(args.beir / d.name, "test") for d in settings.domains}
    vectors = {name: query_encoder.encode([c.queries[q] for q in sorted(c.qrels)], batch_size=64)
               for name, c in collections.items()}
    print("| pilots | " + " | ".join(f"{n}: own / fallback" for n in collections) + " | mean own |")
    print("|---|" + "---|" * (len(collections) + 1))
    for label, domains in pilot_sets.items():
        library = domain_library(query_encoder, domains, 64)
        router = PilotRouter(library, [d.expert for d in domains], fallback=settings.router.fallback,
                             percentile=settings.router.fallback_percentile)
        cells, own_shares = [], []
        for domain in domains:
            routes = router.route(vectors[domain.name])
            own = sum(r.expert == domain.expert for r in routes) / len(routes)
            fallback = sum(r.fallback for r in routes) / len(routes)
            own_shares.append(own)
            cells.append(f"{100 * own:.1f}% / {100 * fallback:.1f}%")
        print(f"| {label} (fallback below the {router.percentile:g}th percentile) | " + " | ".join(cells)
              + f" | {100 * sum(own_shares) / len(own_shares):.1f}% |")


if __name__ == "__main__":
    main()
