"""Dev queries of the five domains of `configs/beir5.toml`, for choosing router and expert settings without a test
query (`mix_dev.py`, `domain_experts.py`).

A domain with labelled training queries (SciFact) gives those queries, cross-fitted: they are split into folds, and
each fold is searched by an engine whose SciFact query map and pilots were made from the other folds only
(``retriever train-expert --linear``, the map's own recipe), so the map's gain on them is the gain it has on unseen
claims. Every other domain gives the queries generated from its corpus (``experts-beir5/generated/<domain>.jsonl``;
a generated query's qrel is the document it was written from, and BM25 found that document when the query was
kept). They are also the four corpus-only domains' pilots (one of 172-205 per centroid), so routing them is
slightly easier than routing unseen queries.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from router_retriever.config import Settings
from router_retriever.core.types import Document
from router_retriever.corpus import Qrels, read_qrels, read_queries, read_training_queries
from router_retriever.eval.datasets import load_collection
from router_retriever.eval.domains import Group, config_library
from router_retriever.eval.runs import CorpusRuns, Run, corpus_dir
from router_retriever.metrics import HEADLINE, evaluate
from router_retriever.routing.pilot_building import domain_queries
from router_retriever.routing.pilots import PilotLibrary

Corpus = tuple[list[Document], Path]  # documents and their data directory in the evaluation's cache
BEIR = Path("../shared/data/beir")
GENERATED = Path("experts-beir5/generated")
FOLDS_DIR = Path("runs/mix-dev")  # the folds and their query maps
LABELLED = "scifact"  # the domain whose dev queries are its cross-fitted train queries
# the collection each domain's corpus comes from, as `retriever eval` names it (so its cached indexes are reused)
SPECS = {"scifact": "beir/scifact/test", "arguana": "beir/arguana"}


@dataclass
class DevPart:
    """Dev queries of one domain searched by one engine setting (a fold's, or the config's), with the pilot library
    it routes with and the one without its domain (the percentile learnt again from the other domains, as
    `retriever eval` leaves a domain out); both built once, since every variant routes with the same pilots."""

    domain: str
    settings: Settings
    library: PilotLibrary
    held_out_library: PilotLibrary
    queries: dict[str, str]
    qrels: Qrels


def dev_part(domain: str, settings: Settings, groups: list[Group], queries: dict[str, str], qrels: Qrels) -> DevPart:
    """The part of ``domain``'s dev queries (ids prefixed, so that none equals a document id: the eval drops a hit
    whose id is the query's), its pilot libraries made from ``groups``."""
    return DevPart(domain, settings, _library(settings, groups), _library(settings, [g for g in groups if g[0] != domain]),
                   {f"q:{q}": t for q, t in queries.items()}, {f"q:{q}": qrels[q] for q in queries})


def _library(settings: Settings, groups: list[Group]) -> PilotLibrary:
    library = config_library(settings, groups)
    assert library is not None
    return library


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


def corpora_of(settings: Settings, cache: Path) -> dict[str, Corpus]:
    """Each domain's corpus and its data directory in the evaluation's cache (so its indexes are reused)."""
    collections = {d.name: load_collection(SPECS.get(d.name, str(BEIR / d.name))) for d in settings.domains}
    return {name: (c.docs, corpus_dir(cache, c.name, c.docs)) for name, c in collections.items()}


def dev_parts(settings: Settings, config: str, cache: Path, folds: int, corpora: dict[str, Corpus]) -> list[DevPart]:
    """Every domain's dev queries with the engine setting that searches them (``folds`` 0: the labelled domain's
    generated queries, not its cross-fitted train queries)."""
    runs = CorpusRuns(settings, *corpora[LABELLED])  # the eval caches the pilots' vectors there
    groups = groups_of(settings, runs)
    parts = []
    for domain in settings.domains:
        if domain.name == LABELLED and folds:
            for folder in write_folds(BEIR / LABELLED, folds):
                varied = fold_settings(settings, config, folder, cache / "train-data")
                held = read_qrels(folder, "dev")
                queries = {q: t for q, t in read_queries(folder).items() if q in held}
                parts.append(dev_part(domain.name, varied, groups_of(varied, runs), queries, held))
            continue
        queries, qrels = read_training_queries(str(GENERATED / f"{domain.name}.jsonl"))
        assert qrels is not None
        parts.append(dev_part(domain.name, settings, groups, queries, qrels))
    runs.close()
    return parts


def expert_dev_runs(parts: list[DevPart], corpora: dict[str, Corpus],
                    experts_of: Mapping[str, Sequence[str]]) -> tuple[dict[str, dict[str, Run]], dict[str, Qrels]]:
    """Per domain of ``experts_of``, each expert named for it alone on the domain's dev queries (every part's, each
    searched with that part's settings: a fold with its own query map), and the domain's qrels."""
    runs: dict[str, dict[str, Run]] = {d: {e: {} for e in names} for d, names in experts_of.items()}
    qrels: dict[str, Qrels] = {d: {} for d in experts_of}
    for part in parts:
        if part.domain not in experts_of:
            continue
        part_runs = CorpusRuns(part.settings, *corpora[part.domain])
        for expert in experts_of[part.domain]:
            runs[part.domain][expert] |= part_runs.expert_run(expert, part.queries, f"{part.domain} dev: ")
        qrels[part.domain] |= part.qrels
        part_runs.close()
    return runs, qrels


def dev_ndcg(run: Run, qrels: Qrels) -> float:
    """nDCG@10 x100 of a dev run, to two decimals, as the recipe logs record it."""
    return round(100 * evaluate(run, qrels).mean[HEADLINE], 2)
