"""Real servers on 127.0.0.1 for the service and adapter tests: uvicorn in a thread or a subprocess, or the
same app on Ray Serve (a local Ray cluster of this process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import uvicorn
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn on a fresh loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started, "uvicorn did not start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextmanager
def serve_in_subprocess(config: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """``python -m router_retriever.cli --config CONFIG serve`` on a free loopback port, once ``/ready`` says so."""
    with server_process(config, env=env) as server:
        yield server.url


@dataclass
class Server:
    """A service subprocess: its process (to kill, ``kill -9`` included), URL and captured stderr."""

    process: subprocess.Popen
    url: str
    log: IO[str]

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()


@contextmanager
def server_process(config: Path, *options: str, env: Mapping[str, str] | None = None,
                   ready: bool = True) -> Iterator[Server]:
    """``retriever --config CONFIG serve OPTIONS`` in a subprocess on a free loopback port, yielded once
    ``/ready`` says so (if ``ready``); whatever is left of it is stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "router_retriever.cli", "--config", str(config), "serve", "--port", str(port),
               "--log-level", "warning", *options]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})}, stderr=log, text=True)
        server = Server(process, f"http://127.0.0.1:{port}", log)
        try:
            if ready:
                _wait(lambda: _ready(server), "service did not become ready", timeout=120)
            yield server
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=30)


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(server: Server) -> bool:
    if server.process.poll() is not None:
        raise RuntimeError(f"service exited with status {server.process.returncode}: {server.stderr()}")
    try:
        return httpx.get(f"{server.url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(condition: Callable[[], bool], message: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(0.05)


@dataclass(frozen=True)
class Served:
    """A running service under test: its URL, and whether it takes writes (the split Serve layout does not)."""

    url: str
    writable: bool = True
    on_ray: bool = False


# a split Serve service small enough for two shared cores: one replica of everything, light CPU reservations
RAY_SPLIT = ("[ray]\nsplit = true\nreplicas = 1\nreplica_cpus = 0.25\nrouter_replicas = 1\nencoder_replicas = 1\n"
             "shard_replicas = 1\npart_cpus = 0.25\ncall_timeout_s = 20\n")


@contextmanager
def serve_on_ray(config: Path, api_keys: tuple[str, ...] = (), timeout: float = 240) -> Iterator[str]:
    """The service of ``config`` on Ray Serve (its ``[ray]`` layout), on a local Ray cluster of this process
    (127.0.0.1) started here and stopped on exit; yields its URL once ``/ready`` says so."""
    import ray
    from ray import serve

    from router_retriever import load_settings
    from router_retriever.service.app import ServiceConfig
    from router_retriever.service.ray_serve import DEPLOYMENT, serve_application

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(serve_application(load_settings(config), ServiceConfig(api_keys=api_keys), read_only=False),
                  name=DEPLOYMENT, route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: _answers_ready(url), "the Serve application did not get ready", timeout=timeout)
        yield url
    finally:
        serve.shutdown()
        ray.shutdown()


def _answers_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False
