"""Dev sweep of soft mixing over the routed experts (`[router] top_m` and `mix_temperature`) against hard top-1
routing, scored on GENERATED queries only: `experts-beir5/generated/<domain>.jsonl` holds queries a small LLM wrote
for sampled documents of each collection (`retriever generate-queries`), each with its document as the one relevant
answer (known-item nDCG@10). No test query is read. The experts of the config were trained on corpus sentences
(and SciFact's on its train split), not on these queries. SciFact's 809 train queries are scored too, as a view
on real queries (in-sample for `bge-scifact`, which was trained on them).

Each collection's indexes and expert runs come from the evaluation's cache (`runs/eval/corpora/<name>-*`); the
router is the engine's (the config's pilots, fallback and floor). One JSON line per (top-m, temperature) goes to
the log. Usage: mix_dev.py [--config configs/beir5.toml] [--log scripts/recipe/mix-dev.jsonl]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from eval.datasets import load_collection
from eval.domains import config_library
from eval.runs import CorpusRuns, ExpertTable, corpus_dir, expert_table
from retriever import HEADLINE, PilotRouter, Route, domain_queries, evaluate, load_settings
from retriever.fusion import weighted_fusion
from retriever.router import mix_weights

ROOT = Path(__file__).resolve().parents[2]
BEIR = ROOT.parent / "shared" / "data" / "beir"
COLLECTIONS = {"scifact": "beir/scifact/test", "arguana": "beir/arguana", "cranfield": str(BEIR / "cranfield"),
               "cisi": str(BEIR / "cisi"), "med": str(BEIR / "med")}
TOP_M = (2, 3)
TEMPERATURES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


def generated(name: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """A collection's generated queries as a known-item query set: (queries, qrels)."""
    pairs = [json.loads(line) for line in (ROOT / "experts-beir5" / "generated" / f"{name}.jsonl").read_text().splitlines() if line]
    return ({f"gen-{i}": p["query"] for i, p in enumerate(pairs)}, {f"gen-{i}": {p["doc_id"]: 1} for i, p in enumerate(pairs)})


def mixed(table: ExpertTable, routes: list[Route], temperature: float | None) -> dict[str, dict[str, float]]:
    """Per query, its routed experts' runs fused by the router's softmax weights (one expert: its run as it is)."""
    out = {}
    for qid, route in zip(table.qids, routes):
        lists = {e: sorted(table.runs[e][qid].items(), key=lambda kv: -kv[1]) for e in route.experts}
        if len(lists) == 1 or temperature is None:
            out[qid] = table.runs[route.experts[0]][qid]
            continue
        out[qid] = {d: s for d, s, _ in weighted_fusion(lists, mix_weights(route, temperature))[:100]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "beir5.toml")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "eval", help="the evaluation's cache")
    parser.add_argument("--log", type=Path, default=ROOT / "scripts" / "recipe" / "mix-dev.jsonl")
    args = parser.parse_args()
    settings = load_settings(args.config)
    routed = list(dict.fromkeys([d.expert for d in settings.domains] + [settings.router.fallback or settings.experts[0].name]))
    family = settings.model_copy(update={"experts": [e for e in settings.experts if e.name in routed]})
    tables: dict[str, ExpertTable] = {}
    judged: dict[str, dict[str, dict[str, int]]] = {}
    first: CorpusRuns | None = None
    for name, spec in COLLECTIONS.items():
        if not (ROOT / "experts-beir5" / "generated" / f"{name}.jsonl").is_file():
            print(f"{name}: no generated queries, skipped")
            continue
        test = load_collection(spec)
        runs = CorpusRuns(family, test.docs, corpus_dir(args.out, test.name, test.docs), 100)
        first = first or runs
        queries, judged[name] = generated(name)
        tables[name] = expert_table(runs, name, "generated", queries, judged[name])
        if name == "scifact":
            train = load_collection("beir/scifact/train")
            tables["scifact-train"], judged["scifact-train"] = expert_table(runs, name, "train", train.queries, train.qrels), train.qrels
        runs.close()
    assert first is not None, "no generated queries found"
    library = config_library(settings, [(d.name, d.expert, first.base_vectors(domain_queries(d)[0])) for d in settings.domains])
    assert library is not None
    router = PilotRouter(library, routed, settings.router.aggregate, settings.router.fallback, settings.router.fallback_percentile)
    rows: list[dict] = []
    for top_m, temperature in [(1, None)] + [(m, t) for m in TOP_M for t in TEMPERATURES]:
        scores = {}
        for name, table in tables.items():
            routes = router.route(table.vectors.astype(np.float32), top_m)
            scores[name] = round(100 * evaluate(mixed(table, routes, temperature), judged[name]).mean[HEADLINE], 2)
        generated_mean = float(np.mean([v for k, v in scores.items() if k != "scifact-train"]))
        row = {"top_m": top_m, "temperature": temperature, "generated_mean": round(generated_mean, 2), **scores,
               "config": str(args.config.relative_to(ROOT)), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        rows.append(row)
        print(json.dumps(row))
    with args.log.open("a") as log:
        for row in rows:
            log.write(json.dumps(row) + "\n")
    best = max(rows, key=lambda r: r["generated_mean"])
    print(f"best on generated queries: top_m {best['top_m']}, temperature {best['temperature']} "
          f"({best['generated_mean']} against hard routing {rows[0]['generated_mean']})")


if __name__ == "__main__":
    main()
