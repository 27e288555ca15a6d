"""``retriever experts``: the configured experts, their indexes, pilots and which ones the router reaches."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from router_retriever.cli.common import command, open_retriever
from router_retriever.config import PartnerConfig


def register(sub: argparse._SubParsersAction) -> None:
    command(sub, "experts", run, "list the configured experts, their indexes and pilots")


def run(args: argparse.Namespace) -> int:
    with open_retriever(args, read_only=True) as retriever:  # a reader: lists a directory a server is writing
        state = retriever.status()
        for info in retriever.experts():
            print(f"{info.name}: {info.description}")
            print(f"    query encoder: {info.query_encoder}")
            size = f"{info.dimension}-d, {info.index_documents} vectors" if info.dimension else "not built"
            if info.document_encoder in state.unreadable:
                size = f"unusable: {state.unreadable[info.document_encoder]}"
            if state.missing.get(info.document_encoder):
                size += (f"; {state.missing[info.document_encoder]} of the store's {state.documents} documents have "
                         "no vector: run `retriever build`")
            print(f"    index: {info.document_encoder} ({info.index_kind}, {size})")
            fallback = retriever.settings.router.fallback
            reach = f"routable (domains: {', '.join(info.domains)})" if info.routable else (
                "the router's fallback: queries unlike every domain's pilots come here"
                if info.name == fallback and retriever.pilots() else
                f"not routable: no pilots; reach it with `--expert {info.name}` (the router and top-m fusion only "
                f"choose among experts with pilots), or add a [[domains]] table with expert = \"{info.name}\" and "
                "run `retriever pilots build`")
            print(f"    router: {reach}")
            for line in _partner_lines(retriever.settings.router.partners, info.name):
                print(f"    {line}")
        for pilot in retriever.pilots():
            print(f"pilot: expert={pilot['expert']} domain={pilot['domain']} queries={pilot['queries']}")
    return 0


def _partner_lines(partners: Mapping[str, PartnerConfig], name: str) -> list[str]:
    """What ``[router.partners]`` makes of expert ``name``: its partner, and the routed experts it partners."""
    lines = [f"partner: {p.expert} (share {p.share:g}) searches every query routed here; the two lists are fused"
             for routed, p in partners.items() if routed == name]
    lines += [f"partner of {routed} (share {p.share:g}): searches every query routed there"
              for routed, p in partners.items() if p.expert == name]
    return lines
