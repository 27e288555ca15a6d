"""``retriever serve``: the REST service under uvicorn.

Wire it into a parser whose parent has ``--config`` and ``--data-dir`` with ``add_parser(subparsers)``;
``python -m service.cli [--config C] [--data-dir D] serve`` runs it without the retriever CLI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``serve`` subcommand (its handler is ``args.run``)."""
    text = "run the REST search service (API key and limits from RETRIEVER_* environment variables)"
    serve = subparsers.add_parser("serve", help=text, description=text)
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(run=cmd_serve)
    return serve


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the configured experts and indexes until interrupted (one process: writes stay serialised)."""
    import uvicorn

    from retriever.cli import _settings
    from service.app import ServiceConfig, create_app

    app = create_app(_settings(args), ServiceConfig.from_env())
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, workers=1)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``serve`` command alone, with the retriever CLI's ``--config``/``--data-dir`` and error output."""
    from core.errors import RetrieverError

    parser = argparse.ArgumentParser(prog="python -m service.cli")
    parser.add_argument("--config", type=Path, help="TOML config (default: the packaged demo config)")
    parser.add_argument("--data-dir", type=Path, help="override the config's data directory")
    add_parser(parser.add_subparsers(required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except RetrieverError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
