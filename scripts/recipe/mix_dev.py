"""Dev sweep for soft mixing (issue #23 item 3): the engine's search (``Retriever.search_many``, the config's router
and pilots) with ``[router] top_m`` / ``mix_temperature`` variants, scored on the queries generated from each
domain's corpus (``experts-beir5/generated/<domain>.jsonl``; a generated query's qrel is the document it was written
from). No test query is read. SciFact's train queries are not used: `bge-scifact` was trained on them, so they
would favour routing to it alone. One JSON line per variant goes to the log.

The four corpus-only domains' generated queries are also their pilots (one of 172-205 per centroid), so routing
them is slightly easier than routing unseen queries; the sweep compares variants under that same bias.

    python scripts/recipe/mix_dev.py [--config configs/beir5.toml] [--cache runs/eval] VARIANT ...

A VARIANT is ``top_m:temperature[:fallback]`` (``2:0.02``; ``2:rrf`` fuses the two lists by reciprocal rank; ``1:-``
is hard top-1 routing; a third part ``fallback`` sets ``router.mix_fallback``: the fallback expert's list joins).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from router_retriever import load_settings
from router_retriever.config import Settings
from router_retriever.corpus import read_training_queries
from router_retriever.eval.datasets import load_collection
from router_retriever.eval.domains import config_library
from router_retriever.eval.runs import CorpusRuns, corpus_dir
from router_retriever.experts import router_identity
from router_retriever.metrics import HEADLINE, evaluate
from router_retriever.routing.pilot_building import domain_queries

BEIR = Path("../shared/data/beir")
GENERATED = Path("experts-beir5/generated")
# the collection each domain's corpus comes from, as `retriever eval` names it (so its cached indexes are reused)
SPECS = {"scifact": "beir/scifact/test", "arguana": "beir/arguana"}


def variant_settings(settings: Settings, variant: str) -> Settings:
    """``settings`` with the router's top_m and mixing of ``variant`` (``m:T``, ``m:rrf`` or ``1:-``, then
    optionally ``:fallback``)."""
    top_m, temperature, *fallback = variant.split(":")
    mix = None if temperature in ("rrf", "-") else float(temperature)
    router = settings.router.model_copy(update={"top_m": int(top_m), "mix_temperature": mix,
                                                "mix_fallback": fallback == ["fallback"]})
    return settings.model_copy(update={"router": router})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/beir5.toml")
    ap.add_argument("--cache", type=Path, default=Path("runs/eval"))
    ap.add_argument("--modes", default="dense,hybrid")
    ap.add_argument("--log", default="scripts/recipe/mix-dev.jsonl")
    ap.add_argument("variants", nargs="+")
    args = ap.parse_args()
    settings = load_settings(args.config)
    dev = {}
    for domain in settings.domains:
        queries, qrels = read_training_queries(str(GENERATED / f"{domain.name}.jsonl"))
        assert qrels is not None
        # prefixed ids: the eval drops a hit whose id equals the query's (ArguAna), and generated queries are numbered
        dev[domain.name] = ({f"q:{q}": t for q, t in queries.items()}, {f"q:{q}": r for q, r in qrels.items()})
    collections = {name: load_collection(SPECS.get(name, str(BEIR / name))) for name in dev}
    corpora = {name: (c.docs, corpus_dir(args.cache, c.name, c.docs)) for name, c in collections.items()}
    first = CorpusRuns(settings, *next(iter(corpora.values())))  # the eval caches the pilots' vectors there
    groups = [(d.name, d.expert, first.base_vectors(domain_queries(d)[0])) for d in settings.domains]
    first.close()
    library = config_library(settings, groups)
    assert library is not None
    print(f"fallback below the {library.percentile(settings.router.fallback_percentile):g}th percentile; dev queries: "
          + ", ".join(f"{n} {len(q)}" for n, (q, _) in dev.items()))
    with open(args.log, "a") as log:
        for variant in args.variants:
            varied = variant_settings(settings, variant)
            for mode in args.modes.split(","):
                scores = {}
                for name, (queries, qrels) in dev.items():
                    variant_runs = CorpusRuns(varied, *corpora[name])
                    engine = variant_runs.engine_run(queries, library, mode)  # type: ignore[arg-type]
                    scores[name] = 100 * evaluate(engine.run, qrels).mean[HEADLINE]
                    variant_runs.close()
                row = {"variant": variant, "mode": mode, "config": args.config, "router": router_identity(settings),
                       "mean": round(float(np.mean(list(scores.values()))), 2),
                       **{n: round(s, 2) for n, s in scores.items()}}
                print(json.dumps(row), flush=True)
                log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
