"""`retriever eval` (the full comparison table) and `retriever data add` (install a BEIR folder for ir-datasets)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from router_retriever.extras import require_extra

DEFAULT_CACHE = Path("runs/eval")


def register(subparsers: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the `eval` and `data` commands with the retriever CLI's ``command`` helper (entry point plug-in)."""
    ev = command(subparsers, "eval", cmd_eval,
                 "evaluate BM25, every expert, the routers, fusions and oracles on BEIR collections "
                 "(ir-datasets ids such as beir/scifact/test, or BEIR folders DIR[:split])")
    ev.add_argument("collections", nargs="*", default=["beir/scifact/test"], metavar="COLLECTION",
                    help="ir-datasets id or BEIR folder[:split] (default: beir/scifact/test)")
    ev.add_argument("--out", type=Path, help="report folder (default: runs/eval/results/<collections>)")
    ev.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                    help="indexes and cached per-expert rankings, one folder per corpus (default: runs/eval)")
    ev.add_argument("--bm25", action=argparse.BooleanOptionalAction, default=True, help="include Pyserini BM25")
    ev.add_argument("--top-k", type=int, default=100, help="ranking depth cached per expert (default 100)")
    ev.add_argument("--top-m", type=int, default=2, help="largest m for top-m routed fusion (default 2)")
    ev.add_argument("--folds", type=int, default=5, help="cross-validation folds for collections without a train split")
    ev.add_argument("--rerank-depth", type=int, default=0, metavar="N",
                    help="also rerank the engine hybrid's top N with the cross-encoder (slow on CPU; default 0: off)")
    ev.add_argument("--check", action="store_true",
                    help="also assert the published figures (SciFact: BM25 67.9, all-MiniLM-L6-v2 64.5; ArguAna: 39.7, 50.2; +-1.0)")

    data = subparsers.add_parser("data", help="install evaluation data for ir-datasets (offline)")
    data_sub = data.add_subparsers(required=True, metavar="ACTION")
    add = data_sub.add_parser("add", help="install a BEIR-layout folder as ir-datasets' beir/<name>",
                              description="Validate a BEIR folder (corpus.jsonl, queries.jsonl, qrels/*.tsv) and "
                                          "write $IR_DATASETS_HOME/beir/<name>/source.zip, so "
                                          "ir_datasets.load('beir/<name>/<split>') works offline.")
    add.add_argument("path", type=Path, help="BEIR folder, e.g. ../shared/data/beir/scifact")
    add.add_argument("--name", help="BEIR dataset name (default: the folder name)")
    add.set_defaults(run=cmd_data_add)
    known = data_sub.add_parser("known-item", help="make a known-item BEIR folder from a corpus without queries",
                                description="Each document's pseudo-query (first sentence or title) must find the rest "
                                            "of it; train/test follow the --holdout split of `retriever train-expert`.")
    known.add_argument("corpus", help="BEIR folder, corpus.jsonl or pkg: location")
    known.add_argument("out", type=Path, help="new BEIR folder to write")
    known.add_argument("--holdout", type=float, default=0.2, help="share of documents whose queries are test (0.2)")
    known.add_argument("--pseudo-queries", choices=("title", "first-sentence"), default="first-sentence")
    known.set_defaults(run=cmd_data_known_item)


def cmd_data_add(args: argparse.Namespace) -> int:
    from router_retriever.eval.datasets import dataset_ids, install_beir_folder, load_collection

    target = install_beir_folder(args.path, args.name)
    name = args.name or args.path.name
    print(f"installed {args.path} as ir-datasets beir/{name}: {target}")
    for dataset_id in dataset_ids(name, [p.stem for p in (args.path / "qrels").glob("*.tsv")]):
        c = load_collection(dataset_id)
        print(f"  {dataset_id}: {len(c.docs)} documents, {len(c.queries)} queries, "
              f"{sum(map(len, c.qrels.values()))} judgements")
    return 0


def cmd_data_known_item(args: argparse.Namespace) -> int:
    from router_retriever.corpus import read_corpora
    from router_retriever.eval.known_item import write_known_item_folder

    counts = write_known_item_folder(read_corpora([args.corpus]), args.out, args.holdout,
                                     use_titles=args.pseudo_queries == "title")
    print(f"wrote {args.out}: {counts['train']} train and {counts['test']} test known-item queries "
          f"(evaluate with: retriever eval {args.out}:test)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    require_extra("eval", "eval")  # before hours of encoding: the report's plot needs matplotlib
    from router_retriever.eval.harness import check_references, run_eval
    from router_retriever.eval.protocol import collection_label
    from router_retriever.eval.report import markdown, write_report

    start = time.perf_counter()
    report = run_eval(args.collections, config=args.config, out=args.cache, bm25=args.bm25,
                      top_k=args.top_k, top_m=args.top_m, folds=args.folds,
                      rerank_depth=args.rerank_depth)
    out = args.out or args.cache / "results" / "+".join(collection_label(c.test) for c in report.collections)
    paths = write_report(report, out)
    print()
    print(markdown(report))
    print("\n".join(f"{kind}: {path}" for kind, path in paths.items()))
    print(f"{report.queries_encoded} queries encoded this run; {time.perf_counter() - start:.0f} s")
    if args.check:
        passed, failed = check_references(report)
        for line in passed:
            print(f"check passed: {line}")
        for line in failed:
            print(f"CHECK FAILED: {line}", file=sys.stderr)
        if failed or not passed:
            if not passed and not failed:
                print("CHECK FAILED: no reference applies (needs full SciFact or ArguAna with BM25 and/or all-MiniLM-L6-v2)",
                      file=sys.stderr)
            return 1
    return 0
