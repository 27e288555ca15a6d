"""What Ray Serve adds to one request, apart from the engine: sequential ``GET /health`` (no search work)
against the same app under uvicorn in this process and on Ray Serve (one replica, a local Ray cluster of
this process; the config's ``[ray]`` layout, split by default, whose parts /health does not call), both on
loopback, in one run; p50 and p99 of each and their difference.

    python bench/ray_overhead.py [--config C] [--data-dir D] [--requests 300]
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from router_retriever import load_settings
from router_retriever.ray.cluster import import_ray
from router_retriever.service.app import ServiceConfig, create_app
from router_retriever.service.ray_serve import DEPLOYMENT, serve_application

HOST = "127.0.0.1"


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def latencies(url: str, requests: int) -> np.ndarray:
    """Milliseconds of ``requests`` sequential GET /health over one keep-alive connection (after 20 warm-up)."""
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(20):
            http.get("/health").raise_for_status()
        out = []
        for _ in range(requests):
            start = time.perf_counter()
            http.get("/health").raise_for_status()
            out.append(time.perf_counter() - start)
    return np.asarray(out) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    settings = load_settings(args.config, data_dir=args.data_dir and args.data_dir.absolute())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, ServiceConfig(), read_only=True), host=HOST, port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.1)
    local = latencies(f"http://{HOST}:{port}", args.requests)
    server.should_exit = True
    thread.join()
    ray, serve = import_ray(), import_ray("ray.serve")
    ray.init(log_to_driver=False)
    try:
        port = free_port()
        serve.start(http_options={"host": HOST, "port": port})
        one = settings.model_copy(update={"ray": settings.ray.model_copy(update={"replicas": 1})})
        serve.run(serve_application(one, ServiceConfig(), read_only=True), name=DEPLOYMENT, route_prefix="/")
        on_ray = latencies(f"http://{HOST}:{port}", args.requests)
        serve.shutdown()
    finally:
        ray.shutdown()
    for name, ms in (("uvicorn", local), ("ray serve", on_ray)):
        print(f"{name:<10} p50 {np.percentile(ms, 50):6.2f} ms  p99 {np.percentile(ms, 99):6.2f} ms")
    print(f"Ray Serve adds {np.percentile(on_ray, 50) - np.percentile(local, 50):.2f} ms at p50, "
          f"{np.percentile(on_ray, 99) - np.percentile(local, 99):.2f} ms at p99 per request")


if __name__ == "__main__":
    main()
