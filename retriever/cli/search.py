"""``retriever search QUERY``: route, search, print the hits with the route and every expert's score."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from router_retriever.cli.common import command, format_result, open_retriever, settings
from router_retriever.core.errors import IndexNotBuiltError, InvalidRequestError
from router_retriever.core.types import MODES, Status
from router_retriever.validation import valid_top_k, valid_top_m


def register(sub: argparse._SubParsersAction) -> None:
    parser = command(sub, "search", run, "search, printing hits, the route and per-expert scores")
    parser.add_argument("query")
    parser.add_argument("-k", "--top-k", type=int, default=10)
    parser.add_argument("--expert", help="force this expert (skip routing)")
    parser.add_argument("--top-m", type=int, help="search the m best experts and fuse their lists (RRF)")
    parser.add_argument("--mode", choices=MODES, help="dense (routed experts), sparse (BM25) or hybrid (both fused); "
                        "default: the config's [search] mode")
    parser.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=None,
                        help="rescore the top candidates with the cross-encoder (default: the config's [rerank])")
    parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help="metadata filter")
    parser.add_argument("--json", action="store_true", help="print JSON (the REST response's shape)")


def run(args: argparse.Namespace) -> int:
    filters = dict(key_value(f) for f in args.filter)
    config = settings(args)  # flags first: nothing is opened or loaded for a bad one
    valid_top_k(args.top_k, config.limits, "--top-k")
    if args.top_m is not None:
        valid_top_m(args.top_m, len(config.experts), "--top-m")
    if args.expert is not None:
        config.expert(args.expert)
    with open_retriever(args, read_only=True) as retriever:  # a reader: runs beside a writer, creates nothing
        if not retriever.count():
            where = "does not exist" if not (config.data_dir / "docs.sqlite").is_file() else "holds no documents"
            raise IndexNotBuiltError(f"nothing to search: the data directory {config.data_dir.resolve()} {where}. Run "
                                     "`retriever build` (it loads the config's corpus, or --corpus DIR) with the same "
                                     "--config/--data-dir, or point them at a built data directory")
        for problem in stale_index_warnings(retriever.status()):
            print(f"warning: {problem}", file=sys.stderr)
        result = retriever.search(args.query, args.top_k, expert=args.expert, top_m=args.top_m, filters=filters,
                                  mode=args.mode, rerank=args.rerank)
    if args.json:
        print(json.dumps({**asdict(result), "route": {"expert": result.route.expert, **asdict(result.route)}}, indent=2))
    else:
        print(format_result(result))
    return 0


def stale_index_warnings(state: Status) -> list[str]:
    """What a reader should know about indexes that lag behind the store or cannot be used."""
    return [f"index {name} holds {state.indexes[name]} vectors for {state.documents} documents: {count} stored "
            "documents cannot be found until `retriever build` re-encodes them" for name, count in state.missing.items()
            ] + [f"only BM25 (--mode sparse) can answer: {problem}" for problem in state.unreadable.values()]


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE parsed as JSON when it is JSON (numbers, lists), else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InvalidRequestError(f"filter {text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
