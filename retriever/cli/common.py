"""What every command shares: ``--config`` / ``--data-dir`` (accepted before or after the command),
loading the retriever they name, and printing a search result."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from router_retriever.api import Retriever
from router_retriever.config import Settings, load_settings
from router_retriever.core.types import SearchResult


def add_common_options(parser: argparse.ArgumentParser, top_level: bool = False) -> None:
    """``--config`` and ``--data-dir``; on a command they override the global ones only when given."""
    default = None if top_level else argparse.SUPPRESS
    parser.add_argument("--config", type=Path, default=default, help="TOML config (default: the packaged demo config)")
    parser.add_argument("--data-dir", type=_working_path, default=default,
                        help="override the config's data directory (a relative path is taken from the working "
                             "directory, as any command-line path; the config's own data_dir from its folder)")


def _working_path(text: str) -> Path:
    """A command-line path, anchored at the working directory (never at the config file's folder)."""
    return Path(text).expanduser().absolute()


def command(sub: argparse._SubParsersAction, name: str, run: Callable[[argparse.Namespace], int],
            help_text: str) -> argparse.ArgumentParser:
    """A subcommand with the common options and ``args.run`` set to ``run``."""
    parser = sub.add_parser(name, help=help_text, description=help_text)
    add_common_options(parser)
    parser.set_defaults(run=run)
    return parser


def settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, data_dir=args.data_dir)


def open_retriever(args: argparse.Namespace, read_only: bool = False) -> Retriever:
    """The retriever the options name: a writer (holding the data directory's writer lock) or a reader."""
    return Retriever(settings(args), read_only=read_only)


def format_result(result: SearchResult) -> str:
    """Human-readable hits with the mode, the route, every expert's router score and each hit's provenance."""
    scores = ", ".join(f"{name} {score:.3f}" for name, score in result.route.scores.items())
    how = "forced" if result.route.forced else f"router scores: {scores}"
    if result.route.fallback:
        how = f"fallback: unlike every domain's pilots; {how}"
    lines = [f"query: {result.query}", f"mode: {result.mode}; route: {' + '.join(result.route.experts)} ({how})"]
    for rank, hit in enumerate(result.hits, 1):
        title = (hit.title or hit.text)[:80]
        found = " ".join(f"{p.retriever}#{p.rank}" for p in hit.provenance) or hit.expert
        lines.append(f"  {rank:2d}. {hit.score:.4f}  [{found}] {hit.id}  {title}")
    return "\n".join(lines)
