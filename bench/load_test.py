"""Load test of the REST service on loopback, against the Python retriever called directly, in one run.

    python bench/load_test.py --clients 32 --duration 30 [--config C] [--data-dir D] [--ray 1 2 [--ray-whole-app]]

Builds missing indexes of the configured corpus, starts ``python -m router_retriever.service.cli serve`` on 127.0.0.1
over the same data, drives ``POST /search`` with N concurrent clients (one keep-alive connection each)
for the duration, then searches in-process from N threads for the same duration, through the same
``QueryBatcher`` the service uses (so the ratio is the HTTP layer's cost). Prints
throughput, p50/p95/p99 latency and errors of both, and the service's overhead ratios. ``--ray N ...``
adds, between the two, the same app on Ray Serve (a local Ray cluster of this process, ``router_retriever.service.ray_serve``,
read-only) and its ratios to the single-process service: split into its deployments (the config's
``[ray] split``, the default), N replicas of every deployment (ingress, router, encoders, shards); with
``--ray-whole-app``, N replicas of the whole app. Exits 1 on errors.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from router_retriever import Retriever, Settings, load_settings
from router_retriever.batching import QueryBatcher
from router_retriever.cli.demo import DEMO_QUERIES
from router_retriever.corpus import read_corpora, read_queries
from router_retriever.locations import resolve_location
from router_retriever.ray.cluster import import_ray

HOST = "127.0.0.1"  # loopback only, by design
MAX_CLIENTS = 256
MAX_DURATION_S = 600


@dataclass
class Phase:
    """Latencies (seconds) and errors of one timed phase."""

    name: str
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")

    def row(self) -> str:
        return (f"{self.name:<8} {len(self.latencies):>8} {self.throughput:>9.1f} {self.percentile(50):>8.1f} "
                f"{self.percentile(95):>8.1f} {self.percentile(99):>8.1f} {self.errors:>7}")


def measure(name: str, clients: int, seconds: float, make_call: Callable[[], Callable[[str], None]],
            queries: Sequence[str]) -> Phase:
    """A short two-client warm-up, then the timed phase."""
    drive("warmup", 2, 2.0, make_call, queries)
    return drive(name, clients, seconds, make_call, queries)


def drive(name: str, clients: int, seconds: float, make_call: Callable[[], Callable[[str], None]],
          queries: Sequence[str]) -> Phase:
    """Run ``clients`` threads, each calling its own ``make_call()`` on rotating queries until time is up."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(worker: int) -> None:
        nonlocal errors
        call = make_call()
        mine: list[float] = []
        failed = 0
        n = worker
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                call(queries[n % len(queries)])
                mine.append(time.perf_counter() - start)
            except Exception as exc:  # every failure counts as an error
                failed += 1
                if failed == 1:
                    print(f"[{name}] client {worker}: {type(exc).__name__}: {exc}", file=sys.stderr)
            n += clients
        with lock:
            latencies.extend(mine)
            errors += failed

    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Phase(name, time.perf_counter() - start, latencies, errors)


def http_caller(url: str, top_k: int) -> Callable[[], Callable[[str], None]]:
    def make() -> Callable[[str], None]:
        http = httpx.Client(base_url=url, timeout=30)

        def call(query: str) -> None:
            http.post("/search", json={"query": query, "top_k": top_k}).raise_for_status()

        return call

    return make


def direct_caller(batcher: QueryBatcher, top_k: int) -> Callable[[], Callable[[str], None]]:
    """In-process calls through the same batching the service applies to concurrent /search requests."""

    def make() -> Callable[[str], None]:
        def call(query: str) -> None:
            batcher.search(query, top_k=top_k)

        return call

    return make


@contextmanager
def service(config: Path | None, data_dir: Path) -> Iterator[str]:
    """The service in a subprocess on a free loopback port, once ready."""
    with closing(socket.socket()) as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    # --read-only: this process holds the data directory's writer lock, and the service only searches
    command = [sys.executable, "-m", "router_retriever.cli", *(["--config", str(config)] if config else []),
               "--data-dir", str(data_dir), "serve", "--host", HOST, "--port", str(port), "--log-level", "warning",
               "--read-only"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(command, env=env)
    url = f"http://{HOST}:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def ray_service(settings: Settings, replicas: int, whole_app: bool = False) -> Iterator[str]:
    """The same app on Ray Serve, read-only, on a free loopback port, once ready: ``replicas`` replicas of every
    deployment of the split layout, or of the whole app (``whole_app``, or ``[ray] split = false``); Ray must
    be initialised."""
    from router_retriever.service.app import ServiceConfig
    from router_retriever.service.ray_serve import DEPLOYMENT, reservations, serve_application

    serve = import_ray("ray.serve")
    with closing(socket.socket()) as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    serve.start(http_options={"host": HOST, "port": port})
    try:
        counts = {"replicas": replicas, "router_replicas": replicas, "encoder_replicas": replicas,
                  "shard_replicas": replicas, "split": settings.ray.split and not whole_app}
        scaled = settings.model_copy(update={"ray": settings.ray.model_copy(update=counts)})
        cpus = min(1.0, float(import_ray().cluster_resources()["CPU"]) / sum(reservations(scaled)))
        scaled = scaled.model_copy(update={"ray": scaled.ray.model_copy(update={"replica_cpus": cpus, "part_cpus": cpus})})
        serve.run(serve_application(scaled, ServiceConfig(), read_only=True), name=DEPLOYMENT, route_prefix="/")
        url = f"http://{HOST}:{port}"
        wait_ready(url)
        yield url
    finally:
        serve.shutdown()


def wait_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"service exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("service did not become ready")


def workload(settings: Settings) -> list[str]:
    """The corpus's own queries (real claims) plus the demo's SRE queries, so both experts get traffic."""
    queries = list(DEMO_QUERIES)
    for spec in settings.corpus:
        folder = Path(resolve_location(spec.path))
        if (folder / "queries.jsonl").is_file():
            queries += list(read_queries(folder).values())
    return queries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="TOML config (default: the packaged demo config)")
    parser.add_argument("--data-dir", type=Path, help="data directory (default: the config's)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--ray", type=int, nargs="*", default=[], metavar="REPLICAS",
                        help="also measure the app on Ray Serve with these replica counts")
    parser.add_argument("--ray-whole-app", action="store_true",
                        help="with --ray: replicas of the whole app ([ray] split = false) instead of the split layout")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--clients must be 1..{MAX_CLIENTS} and --duration 0..{MAX_DURATION_S} seconds")

    settings = load_settings(args.config, data_dir=args.data_dir and args.data_dir.absolute())
    retriever = Retriever(settings)
    retriever.build(read_corpora(settings.corpus) if settings.corpus else None)
    queries = workload(settings)
    print(f"{retriever.count()} documents, {len(queries)} queries, {args.clients} clients, "
          f"{args.duration:.0f} s per phase, top_k={args.top_k}")
    with service(args.config, settings.data_dir) as url:
        http = measure("service", args.clients, args.duration, http_caller(url, args.top_k), queries)
    on_ray = []
    if args.ray:
        ray = import_ray()
        ray.init(log_to_driver=False)
        try:
            for replicas in args.ray:
                with ray_service(settings, replicas, args.ray_whole_app) as url:
                    on_ray.append(measure(f"ray x{replicas}", args.clients, args.duration, http_caller(url, args.top_k),
                                          queries))
        finally:
            ray.shutdown()
    batcher = QueryBatcher(retriever)
    direct = measure("direct", args.clients, args.duration, direct_caller(batcher, args.top_k), queries)
    batcher.close()
    retriever.close()

    print(f"{'mode':<8} {'requests':>8} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for phase in (http, *on_ray, direct):
        print(phase.row())
    print(f"service overhead: throughput x{direct.throughput / http.throughput:.2f} lower, "
          f"p50 latency x{http.percentile(50) / direct.percentile(50):.2f}, "
          f"p99 latency x{http.percentile(99) / direct.percentile(99):.2f} (service / direct)")
    for phase in on_ray:
        print(f"{phase.name} overhead: throughput x{http.throughput / phase.throughput:.2f} lower, "
              f"p50 latency x{phase.percentile(50) / http.percentile(50):.2f}, "
              f"p99 latency x{phase.percentile(99) / http.percentile(99):.2f} (Ray Serve / service)")
    return 1 if any(phase.errors for phase in (http, *on_ray, direct)) else 0


if __name__ == "__main__":
    sys.exit(main())
