"""Command line: ``retriever COMMAND``. One module per command; the table below lists the built-in ones,
and other packages add theirs through the ``retriever.commands`` entry point group (``eval``, ``data``
and ``serve`` come from ``eval.cli`` and ``service.cli``), so the engine never imports them."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from core.errors import RetrieverError
from retriever.cli.common import add_common_options, command

COMMANDS = (  # built-in commands, in help order; each module has ``register(subparsers)``
    "retriever.cli.build",
    "retriever.cli.search",
    "retriever.cli.experts",
    "retriever.cli.pilots",
    "retriever.cli.generate_queries",
    "retriever.cli.train_expert",
    "retriever.cli.demo",
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
    from retriever import __version__

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
