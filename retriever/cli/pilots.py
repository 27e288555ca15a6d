"""``retriever pilots build``: re-embed the pilot library from the configured domains."""

from __future__ import annotations

import argparse

from router_retriever.cli.common import command, open_retriever


def register(sub: argparse._SubParsersAction) -> None:
    parser = command(sub, "pilots", run, "rebuild the pilot library from the configured domains")
    parser.add_argument("action", choices=["build"])


def run(args: argparse.Namespace) -> int:
    with open_retriever(args) as retriever:
        sources = {d.name: d.source for d in retriever.settings.domains}
        library = retriever.rebuild_pilots()
        for pilot in library.describe():
            print(f"pilot: expert={pilot['expert']} domain={pilot['domain']} queries={pilot['queries']} "
                  f"({sources.get(str(pilot['domain']), '')})")
        if library.calibrated_percentile is not None:
            print(f"fallback percentile learnt from the pilots (each domain left out in turn): "
                  f"{library.calibrated_percentile:g} (configured: {retriever.settings.router.fallback_percentile})")
    return 0
