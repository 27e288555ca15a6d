"""``retriever serve``: the REST service under uvicorn (registered through the ``retriever.commands``
entry point group, so the engine's CLI does not import the service)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from retriever import load_settings


def register(sub: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command with the CLI's ``command`` helper (common options, ``args.run``)."""
    serve = command(sub, "serve", run,
                    "run the REST search service (API key from RETRIEVER_API_KEY, limits from [limits] / RETRIEVER_MAX_*)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def run(args: argparse.Namespace) -> int:
    """Serve the configured experts and indexes until interrupted (one process: writes stay serialised)."""
    import uvicorn

    from service.app import ServiceConfig, create_app

    app = create_app(load_settings(args.config, data_dir=args.data_dir), ServiceConfig.from_env())
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, workers=1)
    return 0
