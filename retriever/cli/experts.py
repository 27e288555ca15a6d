"""``retriever experts``: the configured experts, their indexes, pilots and which ones the router reaches."""

from __future__ import annotations

import argparse

from retriever.cli.common import command, open_retriever


def register(sub: argparse._SubParsersAction) -> None:
    command(sub, "experts", run, "list the configured experts, their indexes and pilots")


def run(args: argparse.Namespace) -> int:
    with open_retriever(args) as retriever:
        for info in retriever.experts():
            print(f"{info.name}: {info.description}")
            print(f"    query encoder: {info.query_encoder}")
            size = f"{info.dimension}-d, {info.index_documents} vectors" if info.dimension else "not built"
            print(f"    index: {info.document_encoder} ({info.index_kind}, {size})")
            reach = f"routable (domains: {', '.join(info.domains)})" if info.routable else "not routable: no pilots " \
                "(reachable with --expert or top-m fusion)"
            print(f"    router: {reach}")
        for pilot in retriever.pilots():
            print(f"pilot: expert={pilot['expert']} domain={pilot['domain']} queries={pilot['queries']}")
    return 0
