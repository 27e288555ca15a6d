"""The REST service: a FastAPI app over one ``SearchPipeline``.

``create_app(pipeline_or_settings)`` builds the app. Given settings, the app loads the pipeline in a
background thread at startup (``/health`` answers at once, ``/ready`` once the indexes are loaded) and
closes it at shutdown. Run one process per data directory: writes are serialised inside that process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import ConfigError, InvalidRequestError, RetrieverError
from core.types import Document
from retriever import __version__
from retriever.batching import QueryBatcher
from retriever.config import MAX_TOP_K, Settings
from retriever.pipeline import SearchPipeline
from service.auth import api_key_guard
from service.errors import NotReadyError, http_status
from service.metrics import Metrics, MetricsMiddleware
from service.playground import add_playground_routes
from service.schemas import (
    BatchSearchRequest,
    BatchSearchResponse,
    DeleteResponse,
    DocumentsRequest,
    DocumentsResponse,
    ErrorResponse,
    ExpertOut,
    ExpertsResponse,
    HealthResponse,
    ReadyResponse,
    RouteOut,
    RouteRequest,
    RouteResponse,
    SearchOptions,
    SearchRequest,
    SearchResponse,
)

ENV_PREFIX = "RETRIEVER_"


@dataclass(frozen=True)
class ServiceConfig:
    """Limits and credentials; ``from_env`` reads ``RETRIEVER_API_KEY`` (comma-separated keys) and
    ``RETRIEVER_MAX_BODY_BYTES`` / ``_MAX_TOP_K`` / ``_MAX_BATCH`` / ``_MAX_DOCUMENTS``."""

    api_keys: tuple[str, ...] = ()
    max_body_bytes: int = 4 * 1024 * 1024
    max_top_k: int = 100
    max_batch: int = 64
    max_documents: int = 256

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_top_k", "max_batch", "max_documents"):
            if getattr(self, name) < 1:
                raise ConfigError(f"service limit {name} must be a positive integer")
        if self.max_top_k > MAX_TOP_K:
            raise ConfigError(f"service limit max_top_k must be at most {MAX_TOP_K}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ServiceConfig:
        values: dict[str, Any] = {}
        keys = [k.strip() for k in env.get(f"{ENV_PREFIX}API_KEY", "").split(",") if k.strip()]
        if keys:
            values["api_keys"] = tuple(keys)
        for field in fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if field.name != "api_keys" and raw is not None:
                try:
                    values[field.name] = int(raw)
                except ValueError as exc:
                    raise ConfigError(f"{ENV_PREFIX}{field.name.upper()} must be an integer, got {raw!r}") from exc
        return cls(**values)


class Engine:
    """The app's pipeline: given at creation, or loaded from settings in a background thread."""

    def __init__(self, source: SearchPipeline | Settings) -> None:
        self.pipeline = source if isinstance(source, SearchPipeline) else None
        self.settings = source if isinstance(source, Settings) else None
        self.error: str | None = None
        self._batcher: QueryBatcher | None = None
        self._batcher_lock = threading.Lock()

    def batcher(self) -> QueryBatcher:
        """Coalesces concurrent /search requests into batched pipeline calls (started on first use)."""
        pipeline = self.get()
        with self._batcher_lock:
            if self._batcher is None:
                self._batcher = QueryBatcher(pipeline)
            return self._batcher

    def start(self) -> None:
        if self.settings is not None:
            threading.Thread(target=self._load, args=(self.settings,), name="pipeline-loader", daemon=True).start()

    def stop(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
        if self.settings is not None and self.pipeline is not None:
            self.pipeline.close()

    def get(self) -> SearchPipeline:
        if self.pipeline is None:
            raise NotReadyError(f"pipeline failed to load: {self.error}" if self.error else "pipeline is loading")
        return self.pipeline

    def readiness(self) -> ReadyResponse:
        try:
            pipeline = self.get()
        except NotReadyError as exc:
            return ReadyResponse(ready=False, detail=str(exc))
        documents = len(pipeline.store.docs)
        indexes = {name: index.count for name, index in pipeline.store.indexes.items()}
        missing = [e.name for e in pipeline.experts.values() if e.index.is_empty and documents]
        detail = f"indexes of {', '.join(missing)} not built: run `retriever build`" if missing else "ok"
        return ReadyResponse(ready=not missing, detail=detail, documents=documents, indexes=indexes)

    def _load(self, settings: Settings) -> None:
        try:
            self.pipeline = SearchPipeline(settings)
        except Exception as exc:  # reported by /ready, the server stays up to say so
            self.error = f"{type(exc).__name__}: {exc}"


class BodyLimitMiddleware:
    """Answers 413 to request bodies over ``limit`` bytes: declared ones at once, streamed ones once
    they pass the limit (FastAPI passes an HTTPException raised while reading the body through)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            await _error(status.HTTP_413_CONTENT_TOO_LARGE, self._message, "HTTPError")(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, self._message)
            return message

        await self.app(scope, limited_receive, send)

    @property
    def _message(self) -> str:
        return f"request body larger than {self.limit} bytes"


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 422, 503)}


def create_app(source: SearchPipeline | Settings, config: ServiceConfig | None = None) -> FastAPI:
    """The service over a pipeline (not closed by the app) or over settings (loaded and closed by it)."""
    config = config or ServiceConfig.from_env()
    engine = Engine(source)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title="RouterRetriever search service", version=__version__, lifespan=lifespan,
                  description="Multi-expert dense retrieval: a pilot-embedding router picks the expert per query.")
    app.add_middleware(BodyLimitMiddleware, limit=config.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _add_error_handlers(app)
    metrics.track_documents(lambda: len(engine.pipeline.store.docs) if engine.pipeline else 0)
    guarded = [Depends(api_key_guard(config.api_keys))]
    _add_probe_routes(app, engine, metrics, guarded)
    _add_search_routes(app, engine, metrics, config, guarded)
    _add_document_routes(app, engine, config, guarded)
    add_playground_routes(app)
    return app


def _add_probe_routes(app: FastAPI, engine: Engine, metrics: Metrics, guarded: list) -> None:
    @app.get("/health", response_model=HealthResponse, tags=["ops"], summary="Liveness: the process answers")
    def health() -> HealthResponse:
        return HealthResponse()

    @app.get("/ready", response_model=ReadyResponse, tags=["ops"], responses={503: {"model": ReadyResponse}},
             summary="Readiness: pipeline loaded and every expert's index built")
    def ready() -> JSONResponse:
        state = engine.readiness()
        return JSONResponse(state.model_dump(), status.HTTP_200_OK if state.ready else 503)

    @app.get("/metrics", tags=["ops"], dependencies=guarded, summary="Prometheus metrics",
             responses={200: {"content": {"text/plain": {}}}, 401: ERRORS[401]}, response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/experts", response_model=ExpertsResponse, tags=["search"], dependencies=guarded,
             responses=ERRORS, summary="The configured experts and their indexes")
    def experts() -> ExpertsResponse:
        pipeline = engine.get()
        return ExpertsResponse(experts=[ExpertOut.model_validate(e.describe()) for e in pipeline.experts.values()],
                               default_route_top_m=pipeline.settings.router.top_m,
                               routed=pipeline.router is not None)


def _add_search_routes(app: FastAPI, engine: Engine, metrics: Metrics, config: ServiceConfig,
                       guarded: list) -> None:
    @app.post("/search", response_model=SearchResponse, tags=["search"], dependencies=guarded,
              responses=ERRORS, summary="Route a query to its expert and search that expert's index")
    def search(request: SearchRequest) -> SearchResponse:
        _check_top_k(request)
        result = engine.batcher().search(request.query, request.top_k, request.expert, request.route_top_m,
                                         request.filters)
        metrics.count_routes([result.route])
        return SearchResponse.of(result, request.with_text)

    @app.post("/search/batch", response_model=BatchSearchResponse, tags=["search"], dependencies=guarded,
              responses=ERRORS, summary="Search many queries in one call (one encoder pass per expert)")
    def search_batch(request: BatchSearchRequest) -> BatchSearchResponse:
        if len(request.queries) > config.max_batch:
            raise InvalidRequestError(f"at most {config.max_batch} queries per batch (got {len(request.queries)})")
        _check_top_k(request)
        results = engine.get().search_many(request.queries, request.top_k, request.expert, request.route_top_m,
                                           request.filters)
        metrics.count_routes(r.route for r in results)
        return BatchSearchResponse(results=[SearchResponse.of(r, request.with_text) for r in results])

    @app.post("/route", response_model=RouteResponse, tags=["search"], dependencies=guarded,
              responses=ERRORS, summary="Explain the route of a query without searching")
    def route(request: RouteRequest) -> RouteResponse:
        return RouteResponse(query=request.query, route=RouteOut.of(engine.get().route(request.query,
                                                                                    request.route_top_m)))

    def _check_top_k(options: SearchOptions) -> None:
        if options.top_k > config.max_top_k:
            raise InvalidRequestError(f"top_k must be at most {config.max_top_k} (got {options.top_k})")


def _add_document_routes(app: FastAPI, engine: Engine, config: ServiceConfig, guarded: list) -> None:
    @app.post("/documents", response_model=DocumentsResponse, tags=["documents"], dependencies=guarded,
              responses=ERRORS, summary="Add or replace documents; persisted and searchable on return")
    def add_documents(request: DocumentsRequest) -> DocumentsResponse:
        if len(request.documents) > config.max_documents:
            raise InvalidRequestError(
                f"at most {config.max_documents} documents per request (got {len(request.documents)})")
        pipeline = engine.get()
        docs = [Document(id=d.id, title=d.title, text=d.text, metadata=d.metadata) for d in request.documents]
        upserted = pipeline.add_documents(docs)
        return DocumentsResponse(upserted=upserted, documents=len(pipeline.store.docs))

    @app.delete("/documents/{doc_id:path}", response_model=DeleteResponse, tags=["documents"],
                dependencies=guarded, responses=ERRORS, summary="Delete a document; persisted on return")
    def delete_document(doc_id: str) -> DeleteResponse:
        pipeline = engine.get()
        if not pipeline.delete_documents([doc_id]):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"document {doc_id!r} not found")
        return DeleteResponse(deleted=doc_id, documents=len(pipeline.store.docs))


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as ``ErrorResponse``: engine errors with their own status, validation errors as 422."""

    @app.exception_handler(RetrieverError)
    def engine_error(_: Request, exc: RetrieverError) -> JSONResponse:
        return _error(http_status(exc), str(exc), type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        message = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems)
        return _error(422, f"invalid request: {message}", "ValidationError", problems)

    @app.exception_handler(StarletteHTTPException)
    def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), "HTTPError", headers=exc.headers)


def _error(code: int, detail: str, kind: str, problems: list | None = None,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(detail=detail, error=kind, errors=problems)
    return JSONResponse(body.model_dump(exclude_none=True), code, headers=dict(headers or {}))
