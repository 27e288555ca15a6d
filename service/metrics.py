"""Prometheus metrics of one service instance: requests, latency, routes and documents."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router_retriever.core.types import Route

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Counters and histograms in a registry of their own (several apps can live in one process)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("retriever_requests", "HTTP requests by endpoint and status",
                                ["method", "endpoint", "status"], registry=self.registry)
        self.latency = Histogram("retriever_request_duration_seconds", "HTTP request latency by endpoint",
                                 ["method", "endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.routes = Counter("retriever_routed_queries", "Queries answered by each expert (first choice)",
                              ["expert", "forced"], registry=self.registry)
        self.documents = Gauge("retriever_documents", "Documents in the store", registry=self.registry)

    def count_routes(self, routes: Iterable[Route]) -> None:
        for route in routes:
            self.routes.labels(expert=route.expert, forced=str(route.forced).lower()).inc()

    def track_documents(self, count: Callable[[], int]) -> None:
        """Read the document count at scrape time."""
        self.documents.set_function(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request and times it, labelled by route template (not raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            endpoint = _endpoint(scope)
            self.metrics.latency.labels(scope["method"], endpoint).observe(time.perf_counter() - start)
            self.metrics.requests.labels(scope["method"], endpoint, str(status)).inc()


def _endpoint(scope: Scope) -> str:
    """The route template that served a request: FastAPI's own routes name themselves in the scope; the plain
    Starlette ones (``/docs``, ``/openapi.json``, ...) are matched here; anything else is "unmatched"."""
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    app = scope.get("app")
    for candidate in getattr(app, "routes", ()):
        if isinstance(candidate, BaseRoute) and candidate.matches(scope)[0] == Match.FULL:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"
