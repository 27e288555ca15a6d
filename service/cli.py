"""``retriever serve``: the REST service under uvicorn (registered through the ``retriever.commands``
entry point group, so the engine's CLI does not import the service)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from router_retriever.config import Settings, load_settings
from router_retriever.core.errors import ConfigError
from router_retriever.extras import require_extra
from router_retriever.indexes.lock import WriterLock
from router_retriever.ray.cluster import import_ray, ray_cluster

if TYPE_CHECKING:
    from router_retriever.service.app import ServiceConfig

INSECURE_ENV = "RETRIEVER_INSECURE"  # "1": as --insecure (a container whose port is published on loopback only)


def register(sub: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command with the CLI's ``command`` helper (common options, ``args.run``)."""
    serve = command(sub, "serve", run,
                    "run the REST search service (API key from RETRIEVER_API_KEY, limits from [limits] / RETRIEVER_MAX_*)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only; any other "
                       "needs an API key, or --insecure)")
    serve.add_argument("--insecure", action="store_true", default=os.environ.get(INSECURE_ENV) == "1",
                       help=f"serve a non-loopback --host without an API key: every client may add and delete "
                            f"documents (or {INSECURE_ENV}=1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--read-only", action="store_true",
                       help="serve searches without the data directory's writer lock (beside its one writer); "
                            "writes answer 405. It reloads an index the writer saved at its next search")
    serve.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                       help="serve on a Ray cluster through Ray Serve ([ray] split, replica counts; the [ray] extra): ADDRESS "
                            "as ray.init takes it ('auto': the cluster `ray start` runs here), none: a local one")


def run(args: argparse.Namespace) -> int:
    """Serve the configured experts and indexes until interrupted. The writer lock of the data directory is
    taken before listening (a second writer fails here, naming the holder) and held until exit."""
    require_extra("service", "serve")
    import uvicorn

    from router_retriever.service.app import ServiceConfig, create_app

    settings = load_settings(args.config, data_dir=args.data_dir)
    config = service_config(args, ServiceConfig.from_env())
    if args.ray is not None:
        return _run_on_ray(args, settings, config)
    lock = None if args.read_only else WriterLock.acquire(
        settings.data_dir, command=f"retriever serve --host {args.host} --port {args.port}")
    try:
        app = create_app(settings, config, read_only=args.read_only, writer_lock=lock)
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, workers=1)
    finally:
        if lock is not None:
            lock.release()
    return 0


def service_config(args: argparse.Namespace, config: ServiceConfig) -> ServiceConfig:
    """``config`` for serving on ``--host``: refused (``ConfigError``) for a non-loopback interface without an API
    key unless ``--insecure``; a named interface's own name joins the accepted Host names."""
    loopback = is_loopback(args.host)
    if not loopback and not config.keyed and not args.insecure:
        raise ConfigError(f"--host {args.host} serves other machines, and no API key is set: anyone could add and "
                          "delete documents. Set RETRIEVER_API_KEY (full access; RETRIEVER_READ_API_KEY: search "
                          "only), or pass --insecure to serve without a key anyway")
    if loopback or _is_wildcard(args.host):
        return config
    return replace(config, allowed_hosts=(*config.allowed_hosts, args.host))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback interface."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _run_on_ray(args: argparse.Namespace, settings: Settings, config: ServiceConfig) -> int:
    """Serve through Ray Serve's HTTP proxy on ``--host``/``--port`` until interrupted (the replicas take the
    writer lock themselves, or serve read-only: ``router_retriever.service.ray_serve``)."""
    from router_retriever.service.ray_serve import DEPLOYMENT, serve_application

    serve = import_ray("ray.serve")
    with ray_cluster(args.ray):
        serve.start(http_options={"host": args.host, "port": args.port})
        try:
            serve.run(serve_application(settings, config, args.read_only), name=DEPLOYMENT,
                      route_prefix="/")
            layout = ("split: router, query encoders and index shards as deployments, read-only" if settings.ray.split
                      else "the whole app per replica")
            print(f"serving on http://{args.host}:{args.port} through Ray Serve ({settings.ray.replicas} ingress "
                  f"replicas; {layout}); Ctrl-C stops", flush=True)
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            serve.shutdown()
    return 0
