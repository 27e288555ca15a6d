"""Command line: ``retriever COMMAND``. One module per command; the table below lists the built-in ones,
and other packages add theirs through the ``retriever.commands`` entry point group (``eval``, ``data``
and ``serve`` come from ``router_retriever.eval.cli`` and ``router_retriever.service.cli``), so the engine never imports them."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from router_retriever.cli.common import add_common_options, command
from router_retriever.core.errors import RetrieverError

COMMANDS = (  # built-in commands, in help order; each module has ``register(subparsers)``
    "router_retriever.cli.build",
    "router_retriever.cli.search",
    "router_retriever.cli.experts",
    "router_retriever.cli.pilots",
    "router_retriever.cli.generate_queries",
    "router_retriever.cli.train_expert",
    "router_retriever.cli.demo",
)
PLUGIN_GROUP = "retriever.commands"


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # here, not at exit: a closed pipe (``| head -1``) is answered below
        return code
    except RetrieverError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of stdout went away: stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit cannot fail again
        return 1


def parser() -> argparse.ArgumentParser:
    """The full parser: global options, built-in commands, then plug-in commands."""
    from router_retriever import __version__

    root = argparse.ArgumentParser(prog="retriever", description="Multi-expert dense retrieval: build indexes, "
                                   "search, train experts, evaluate on BEIR, serve the REST API.")
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_common_options(root, top_level=True)
    sub = root.add_subparsers(required=True, metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(module).register(sub)
    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        plugin.load()(sub, command)  # a plug-in adds its commands with the same ``command`` helper
    return root
