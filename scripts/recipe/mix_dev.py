"""Dev sweep for soft mixing (issue #23 item 3): the engine's search (``Retriever.search_many``, the config's router
and pilots) with ``[router] top_m`` / ``mix_temperature`` variants, scored on queries no test set holds. One JSON
line per variant goes to the log.

The dev queries (`devqueries.py`): SciFact's train queries cross-fitted in ``--folds`` folds, each fold searched with
a query map and pilots made from the other folds; the other domains' queries generated from their corpora.
``--folds 0`` scores SciFact on its generated queries instead (what the first sweep did).

``--held-out`` also scores each variant as issue #23 scores unseen domains, on the dev queries: each domain left
out in turn (its pilots dropped, the fallback percentile learnt again without it), its dev queries searched by the
engine (dense), against the fallback expert alone on the same queries.

    python scripts/recipe/mix_dev.py [--config configs/beir5.toml] [--cache runs/eval] [--folds 5] [--held-out] VARIANT ...

A VARIANT is ``top_m:temperature[:fallback][:peak=W]`` (``2:0.02``; ``2:rrf`` fuses the two lists by reciprocal rank;
``1:-`` is hard top-1 routing; ``fallback`` sets ``router.mix_fallback``: the fallback expert's list joins;
``peak=W`` sets ``router.mix_peak_weight``: the lists' peaks join the router scores in the mixing weights;
``share=S`` gives every configured partner (``[router.partners]``) the share S, ``share=0`` none).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from devqueries import Corpus, DevPart, corpora_of, dev_parts

from router_retriever import load_settings
from router_retriever.config import Settings
from router_retriever.corpus import Qrels
from router_retriever.eval.runs import CorpusRuns, Run
from router_retriever.experts import router_identity
from router_retriever.metrics import HEADLINE, evaluate


def variant_settings(settings: Settings, variant: str) -> Settings:
    """``settings`` with the router's top_m and mixing of ``variant`` (``m:T``, ``m:rrf`` or ``1:-``, then
    optionally ``:fallback``, ``:peak=W`` and ``:share=S``)."""
    top_m, temperature, *extra = variant.split(":")
    mix = None if temperature in ("rrf", "-") else float(temperature)
    peak = next((float(e.removeprefix("peak=")) for e in extra if e.startswith("peak=")), 0.0)
    share = next((float(e.removeprefix("share=")) for e in extra if e.startswith("share=")), None)
    partners = {} if share == 0 else {e: p.model_copy(update={"share": share}) if share else p
                                      for e, p in settings.router.partners.items()}
    router = settings.router.model_copy(update={"top_m": int(top_m), "mix_temperature": mix, "partners": partners,
                                                "mix_fallback": "fallback" in extra, "mix_peak_weight": peak})
    return settings.model_copy(update={"router": router})


def scores(parts: list[DevPart], corpora: dict[str, Corpus], mode: str, variant: str | None,
           held_out: bool = False) -> dict[str, float]:
    """nDCG@10 x100 per domain of the engine's search of its dev queries with ``variant``'s router settings
    (``held_out``: without the domain's pilots, so its expert is not routed to), or (``variant`` None) of the
    fallback expert alone."""
    runs: dict[str, Run] = {p.domain: {} for p in parts}
    qrels: dict[str, Qrels] = {p.domain: {} for p in parts}
    for part in parts:
        settings = part.settings if variant is None else variant_settings(part.settings, variant)
        part_runs = CorpusRuns(settings, *corpora[part.domain])
        library = None if variant is None else part.held_out_library if held_out else part.library
        engine = part_runs.engine_run(part.queries, library, mode, None if variant else settings.router.fallback)  # type: ignore[arg-type]
        runs[part.domain] |= engine.run
        qrels[part.domain] |= part.qrels
        part_runs.close()
    return {n: 100 * evaluate(runs[n], qrels[n]).mean[HEADLINE] for n in runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/beir5.toml")
    ap.add_argument("--cache", type=Path, default=Path("runs/eval"))
    ap.add_argument("--modes", default="dense,hybrid")
    ap.add_argument("--folds", type=int, default=5, help="cross-fitting folds of SciFact's train queries (0: its "
                    "generated queries instead)")
    ap.add_argument("--held-out", action="store_true", help="dense mode: also each domain left out in turn, its dev "
                    "queries routed among the others, against the fallback expert alone on them")
    ap.add_argument("--log", default="scripts/recipe/mix-dev.jsonl")
    ap.add_argument("variants", nargs="+")
    args = ap.parse_args()
    settings = load_settings(args.config)
    names = [d.name for d in settings.domains]
    corpora = corpora_of(settings, args.cache)
    parts = dev_parts(settings, args.config, args.cache, args.folds, corpora)
    print("dev queries: " + ", ".join(f"{n} {sum(len(p.queries) for p in parts if p.domain == n)}" for n in names))
    base = scores(parts, corpora, "dense", None) if args.held_out else {}
    with open(args.log, "a") as log:
        for variant in args.variants:
            for mode in args.modes.split(","):
                found = scores(parts, corpora, mode, variant)
                row = {"variant": variant, "mode": mode, "config": args.config, "router": router_identity(settings),
                       "scifact_dev": f"train queries, {args.folds} folds" if args.folds else "generated queries",
                       "partners": {e: [p.expert, p.share]
                                    for e, p in variant_settings(settings, variant).router.partners.items()},
                       "mean": round(float(np.mean(list(found.values()))), 2), **{n: round(s, 2) for n, s in found.items()}}
                if args.held_out and mode == "dense":
                    left_out = scores(parts, corpora, mode, variant, held_out=True)
                    row["held_out_vs_fallback"] = {n: round(left_out[n] - base[n], 2) for n in names}
                print(json.dumps(row), flush=True)
                log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
