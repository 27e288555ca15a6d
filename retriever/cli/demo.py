"""``retriever demo``: build the packaged demo if needed and answer a few real queries."""

from __future__ import annotations

import argparse

from router_retriever.cli import build
from router_retriever.cli.common import command, format_result, open_retriever, settings

DEMO_QUERIES = (
    # SciFact test claims, first sentences of held-out PostgreSQL documents and held-out SRE sentences from
    # the SRE model's card: real text, never used for training or as pilots.
    "0-dimensional biomaterials show inductive properties.",
    "Vitamin D deficiency is unrelated to birth weight.",
    "Sets the amount of memory the database server uses for shared memory buffers.",
    "There are several common reasons the server might fail to start.",
    "PodDisruptionBudget, ensures minimum available replicas during disruptions",
)


def register(sub: argparse._SubParsersAction) -> None:
    command(sub, "demo", run, "build the packaged demo if needed and answer a few real queries")


def run(args: argparse.Namespace) -> int:
    config = settings(args)
    print(f"demo data directory: {config.data_dir} (experts: {', '.join(e.name for e in config.experts)})")
    build.run(build.with_defaults(args))
    print("\nThe demo corpus holds science abstracts (SciFact) and PostgreSQL documentation; it has no Kubernetes "
          "documents, so the SRE question's hits show what the SRE encoder finds without them.")
    with open_retriever(args, read_only=True) as retriever:
        for result in retriever.search_many(list(DEMO_QUERIES), top_k=3):
            print()
            print(format_result(result))
    return 0
