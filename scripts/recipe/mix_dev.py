"""Dev sweep for soft mixing (issue #23 item 3): the engine's search (``Retriever.search_many``, the config's router
and pilots) with ``[router] top_m`` / ``mix_temperature`` variants, scored on queries no test set holds. One JSON
line per variant goes to the log.

The dev queries of a domain with labelled training queries (SciFact) are those queries, cross-fitted: they are
split into ``--folds`` folds, and each fold is searched by an engine whose SciFact query map and pilots were made
from the other folds only (``retriever train-expert --linear``, the map's own recipe), so the map's gain on them is
the gain it has on unseen claims. Every other domain's dev queries are the queries generated from its corpus
(``experts-beir5/generated/<domain>.jsonl``; a generated query's qrel is the document it was written from). These
are also the four corpus-only domains' pilots (one of 172-205 per centroid), so routing them is slightly easier
than routing unseen queries; every variant is compared under that same bias. ``--folds 0`` scores SciFact on its
generated queries instead (what the first sweep did).

``--held-out`` also scores each variant as issue #23 scores unseen domains, on the dev queries: each domain left
out in turn (its pilots dropped, the fallback percentile learnt again without it), its dev queries searched by the
engine (dense), against the fallback expert alone on the same queries.

    python scripts/recipe/mix_dev.py [--config configs/beir5.toml] [--cache runs/eval] [--folds 5] [--held-out] VARIANT ...

A VARIANT is ``top_m:temperature[:fallback]`` (``2:0.02``; ``2:rrf`` fuses the two lists by reciprocal rank; ``1:-``
is hard top-1 routing; a third part ``fallback`` sets ``router.mix_fallback``: the fallback expert's list joins).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router_retriever import load_settings
from router_retriever.config import Settings
from router_retriever.core.types import Document
from router_retriever.corpus import Qrels, read_qrels, read_queries, read_training_queries
from router_retriever.eval.datasets import load_collection
from router_retriever.eval.domains import Group, config_library
from router_retriever.eval.runs import CorpusRuns, Run, corpus_dir
from router_retriever.experts import router_identity
from router_retriever.metrics import HEADLINE, evaluate
from router_retriever.routing.pilot_building import domain_queries
from router_retriever.routing.pilots import PilotLibrary

BEIR = Path("../shared/data/beir")
GENERATED = Path("experts-beir5/generated")
FOLDS_DIR = Path("runs/mix-dev")
LABELLED = "scifact"  # the domain whose dev queries are its cross-fitted train queries
# the collection each domain's corpus comes from, as `retriever eval` names it (so its cached indexes are reused)
SPECS = {"scifact": "beir/scifact/test", "arguana": "beir/arguana"}


@dataclass
class DevPart:
    """Dev queries of one domain searched by one engine setting (a fold's, or the config's)."""

    domain: str
    settings: Settings
    groups: list[Group]
    queries: dict[str, str]
    qrels: Qrels

    def library(self, held_out: bool = False) -> PilotLibrary:
        """The engine's pilot library; ``held_out``: without this part's domain (its percentile learnt again
        from the other domains, as `retriever eval` leaves a domain out)."""
        library = config_library(self.settings, [g for g in self.groups if not (held_out and g[0] == self.domain)])
        assert library is not None
        return library


def variant_settings(settings: Settings, variant: str) -> Settings:
    """``settings`` with the router's top_m and mixing of ``variant`` (``m:T``, ``m:rrf`` or ``1:-``, then
    optionally ``:fallback``)."""
    top_m, temperature, *fallback = variant.split(":")
    mix = None if temperature in ("rrf", "-") else float(temperature)
    router = settings.router.model_copy(update={"top_m": int(top_m), "mix_temperature": mix,
                                                "mix_fallback": fallback == ["fallback"]})
    return settings.model_copy(update={"router": router})


def prefixed(queries: dict[str, str], qrels: Qrels) -> tuple[dict[str, str], Qrels]:
    """Query ids prefixed, so that none equals a document id (the eval drops a hit whose id is the query's)."""
    return {f"q:{q}": t for q, t in queries.items()}, {f"q:{q}": qrels[q] for q in queries}


def groups_of(settings: Settings, runs: CorpusRuns) -> list[Group]:
    """The config's domain pilot groups under ``settings`` (vectors from the cache of ``runs``)."""
    return [(d.name, d.expert, runs.base_vectors(domain_queries(d)[0])) for d in settings.domains]


def fold_settings(settings: Settings, config: str, folder: Path, cache: Path) -> Settings:
    """``settings`` with the labelled domain's pilots and query map made from ``folder``'s train split (the map
    trained here unless present, with ``retriever train-expert --linear``)."""
    domain = next(d for d in settings.domains if d.name == LABELLED)
    expert = next(e for e in settings.experts if e.name == domain.expert)
    assert expert.query_map is not None, f"{expert.name} is not a query-map expert"
    base = next(e for e in settings.experts if e.query_map is None and e.model == expert.model)
    out = folder / expert.name
    if not (out / "query_map.safetensors").is_file():
        subprocess.run([sys.executable, "-m", "router_retriever.cli", "--config", config, "--data-dir", str(cache),
                        "train-expert", "--name", expert.name, "--linear", base.name, "--train", f"{folder}:train",
                        "--out", str(out)], check=True)
    experts = [e.model_copy(update={"query_map": str(out.resolve())}) if e.name == expert.name else e
               for e in settings.experts]
    domains = [d.model_copy(update={"queries": f"{folder.resolve()}:train"}) if d is domain else d
               for d in settings.domains]
    return settings.model_copy(update={"experts": experts, "domains": domains})


def write_folds(source: Path, folds: int, seed: int = 0) -> list[Path]:
    """BEIR folders of ``source``'s train queries, one per fold: qrels/train.tsv the other folds, qrels/dev.tsv
    the fold (a seeded split by query)."""
    qrels = read_qrels(source, "train")
    qids = sorted(qrels)
    random.Random(seed).shuffle(qids)
    folders = []
    for k in range(folds):
        folder = FOLDS_DIR / f"{LABELLED}-fold{k}of{folds}"
        (folder / "qrels").mkdir(parents=True, exist_ok=True)
        for name in ("corpus.jsonl", "queries.jsonl"):
            if not (folder / name).exists():
                (folder / name).symlink_to((source / name).resolve())
        held = set(qids[k::folds])
        for split, chosen in (("train", [q for q in qids if q not in held]), ("dev", [q for q in qids if q in held])):
            rows = [f"{q}\t{d}\t{g}" for q in chosen for d, g in qrels[q].items()]
            (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
        folders.append(folder)
    return folders


def dev_parts(settings: Settings, args: argparse.Namespace, corpora: dict[str, tuple[list[Document], Path]]) -> list[DevPart]:
    """Every domain's dev queries with the engine setting that searches them."""
    runs = CorpusRuns(settings, *corpora[LABELLED])  # the eval caches the pilots' vectors there
    groups = groups_of(settings, runs)
    parts = []
    for domain in settings.domains:
        if domain.name == LABELLED and args.folds:
            for folder in write_folds(BEIR / LABELLED, args.folds):
                varied = fold_settings(settings, args.config, folder, args.cache / "train-data")
                held = read_qrels(folder, "dev")
                queries = {q: t for q, t in read_queries(folder).items() if q in held}
                parts.append(DevPart(domain.name, varied, groups_of(varied, runs), *prefixed(queries, held)))
            continue
        queries, qrels = read_training_queries(str(GENERATED / f"{domain.name}.jsonl"))
        assert qrels is not None
        parts.append(DevPart(domain.name, settings, groups, *prefixed(queries, qrels)))
    runs.close()
    return parts


def scores(parts: list[DevPart], corpora: dict[str, tuple[list[Document], Path]], mode: str, variant: str | None,
           held_out: bool = False) -> dict[str, float]:
    """nDCG@10 x100 per domain of the engine's search of its dev queries with ``variant``'s router settings
    (``held_out``: without the domain's pilots, so its expert is not routed to), or (``variant`` None) of the
    fallback expert alone."""
    runs: dict[str, Run] = {p.domain: {} for p in parts}
    qrels: dict[str, Qrels] = {p.domain: {} for p in parts}
    for part in parts:
        settings = part.settings if variant is None else variant_settings(part.settings, variant)
        part_runs = CorpusRuns(settings, *corpora[part.domain])
        library = None if variant is None else part.library(held_out)
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
    ap.add_argument("--folds", type=int, default=5, help=f"cross-fitting folds of {LABELLED}'s train queries (0: "
                    "its generated queries instead)")
    ap.add_argument("--held-out", action="store_true", help="dense mode: also each domain left out in turn, its dev "
                    "queries routed among the others, against the fallback expert alone on them")
    ap.add_argument("--log", default="scripts/recipe/mix-dev.jsonl")
    ap.add_argument("variants", nargs="+")
    args = ap.parse_args()
    settings = load_settings(args.config)
    names = [d.name for d in settings.domains]
    collections = {name: load_collection(SPECS.get(name, str(BEIR / name))) for name in names}
    corpora = {name: (c.docs, corpus_dir(args.cache, c.name, c.docs)) for name, c in collections.items()}
    parts = dev_parts(settings, args, corpora)
    print("dev queries: " + ", ".join(f"{n} {sum(len(p.queries) for p in parts if p.domain == n)}" for n in names))
    base = scores(parts, corpora, "dense", None) if args.held_out else {}
    with open(args.log, "a") as log:
        for variant in args.variants:
            for mode in args.modes.split(","):
                found = scores(parts, corpora, mode, variant)
                row = {"variant": variant, "mode": mode, "config": args.config, "router": router_identity(settings),
                       "scifact_dev": f"train queries, {args.folds} folds" if args.folds else "generated queries",
                       "mean": round(float(np.mean(list(found.values()))), 2), **{n: round(s, 2) for n, s in found.items()}}
                if args.held_out and mode == "dense":
                    left_out = scores(parts, corpora, mode, variant, held_out=True)
                    row["held_out_vs_fallback"] = {n: round(left_out[n] - base[n], 2) for n in names}
                print(json.dumps(row), flush=True)
                log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
