"""The REST service: a FastAPI app over one ``Retriever``.

``create_app(retriever_or_settings)`` builds the app. Given settings, the app opens the retriever in a
background thread at startup (``/health`` answers at once, ``/ready`` once the indexes are loaded) and
closes it at shutdown. Request bounds in the OpenAPI schema come from the same ``Limits`` the engine
enforces. One writer per data directory: a server opened from settings takes the data directory's
writer lock (``retriever serve`` takes it before it listens, so a second one fails at once), repairs on
startup any document an index lacks, and serialises writes inside its process; ``read_only`` servers
take no lock and answer writes with 405.
"""

# No ``from __future__ import annotations``: FastAPI reads the request models (built per app from its
# limits) from the route functions' annotations at definition time.
import logging
import os
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router_retriever import __version__
from router_retriever.api import Retriever
from router_retriever.batching import QueryBatcher
from router_retriever.config import Settings
from router_retriever.core.errors import RetrieverError, UnavailableError
from router_retriever.core.types import MODES, Document
from router_retriever.indexes.lock import WriterLock
from router_retriever.parts import Parts
from router_retriever.service.auth import API_KEY_HEADER, api_key_guard, key_matches
from router_retriever.service.errors import RETRY_AFTER_S, NotReadyError, http_status
from router_retriever.service.metrics import Metrics, MetricsMiddleware
from router_retriever.service.playground import add_playground_routes
from router_retriever.service.schemas import (
    BatchSearchResponse,
    DeleteResponse,
    DocumentsResponse,
    ErrorResponse,
    ExpertOut,
    ExpertsResponse,
    HealthResponse,
    ReadyResponse,
    RequestModels,
    RouteOut,
    RouteResponse,
    SearchResponse,
    request_models,
)

API_KEY_ENV = "RETRIEVER_API_KEY"  # full access
READ_API_KEY_ENV = "RETRIEVER_READ_API_KEY"  # search only: no adds or deletes
ALLOWED_HOSTS_ENV = "RETRIEVER_ALLOWED_HOSTS"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")  # the Host names accepted without configuration
ANY_HOST = "*"
log = logging.getLogger("retriever.service")


@dataclass(frozen=True)
class ServiceConfig:
    """Credentials and accepted Host names: ``from_env`` reads ``RETRIEVER_API_KEY`` (full keys),
    ``RETRIEVER_READ_API_KEY`` (search-only keys) and ``RETRIEVER_ALLOWED_HOSTS`` (Host names accepted beside
    the loopback ones; ``*``: any), each comma-separated. Limits are settings (the config's ``[limits]`` table,
    ``RETRIEVER_MAX_*`` variables)."""

    api_keys: tuple[str, ...] = ()
    read_keys: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "ServiceConfig":
        def listed(name: str) -> tuple[str, ...]:
            return tuple(k.strip() for k in env.get(name, "").split(",") if k.strip())

        return cls(listed(API_KEY_ENV), listed(READ_API_KEY_ENV), listed(ALLOWED_HOSTS_ENV))

    @property
    def keyed(self) -> bool:
        """Whether any API key is configured (without one, every client may do everything)."""
        return bool(self.api_keys or self.read_keys)


class RetrieverLoader:
    """The app's retriever: given at creation, or opened from settings in a background thread."""

    def __init__(self, source: Retriever | Settings, read_only: bool = False, writer_lock: WriterLock | None = None,
                 parts: Parts | None = None) -> None:
        self.parts = parts
        self.retriever = source if isinstance(source, Retriever) else None
        self.settings = source.settings if isinstance(source, Retriever) else source
        self.owned = not isinstance(source, Retriever)
        self.read_only = source.read_only if isinstance(source, Retriever) else read_only
        self.writer_lock = writer_lock
        self.error: str | None = None
        self.loading = "retriever is loading"
        self.repaired: dict[str, int] = {}
        self._batcher: QueryBatcher | None = None
        self._batcher_lock = threading.Lock()

    def batcher(self) -> QueryBatcher:
        """Coalesces concurrent /search requests into batched retriever calls (started on first use)."""
        retriever = self.get()
        with self._batcher_lock:
            if self._batcher is None:
                self._batcher = QueryBatcher(retriever, self.settings.limits.max_batch)
            return self._batcher

    def start(self) -> None:
        if self.retriever is None:
            threading.Thread(target=self._open, name="retriever-loader", daemon=True).start()

    def stop(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
        if self.owned and self.retriever is not None:
            self.retriever.close()

    def get(self) -> Retriever:
        if self.retriever is None:
            raise NotReadyError(f"retriever failed to load: {self.error}" if self.error else self.loading)
        return self.retriever

    def readiness(self) -> ReadyResponse:
        try:
            retriever = self.get()
            state = retriever.status()
            retriever.pilots()  # a damaged pilot library fails every routed search
        except RetrieverError as exc:  # loading; a part on Ray Serve restarting; a damaged file
            return ReadyResponse(ready=False, detail=str(exc), read_only=self.read_only)
        problems = [f"indexes of {', '.join(state.unbuilt)} not built: run `retriever build`"] if state.unbuilt else []
        problems += list(state.unreadable.values())  # each names the file and `retriever build --rebuild`
        problems += [f"index {name} holds {state.indexes[name]} vectors but the store {state.documents} documents: "
                     f"{count} stored documents have no vector and cannot be found (a writer re-encodes them: "
                     "`retriever build`, or `retriever serve` without --read-only at startup)"
                     for name, count in state.missing.items()]
        if self.read_only and not state.documents:
            problems.append(f"read-only over {self.settings.data_dir}, which holds no documents: run `retriever build`")
        detail = "; ".join(problems) or "ok"
        if self.repaired:
            detail += "; at startup re-encoded " + ", ".join(f"{n} documents missing from index {name}"
                                                             for name, n in self.repaired.items())
        return ReadyResponse(ready=not problems, detail=detail, documents=state.documents, indexes=state.indexes,
                             missing=state.missing, stale=state.stale, read_only=self.read_only)

    def _open(self) -> None:
        try:
            retriever = Retriever(self.settings, read_only=self.read_only, writer_lock=self.writer_lock,
                                  parts=self.parts)
            state = retriever.status() if not retriever.read_only else None
            if state and state.missing:  # stored but unfindable: re-encode those alone
                self.loading = "retriever is loading: re-encoding " + ", ".join(
                    f"{n} of {state.documents} documents missing from index {name} ({state.indexes[name]} vectors)"
                    for name, n in state.missing.items())
                self.repaired = retriever.repair()
            self.retriever = retriever
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


class HostCheckMiddleware:
    """Answers 400 to a request whose ``Host`` header names none of ``allowed`` (port ignored; ``*``: any), so
    that a web page cannot reach a loopback server through a DNS name rebound to 127.0.0.1."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = {name.lower().strip("[]") for name in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or ANY_HOST in self.allowed:
            await self.app(scope, receive, send)
            return
        host = _host_name(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
        if host not in self.allowed:
            message = (f"Host {host!r} is not served here: accepted are {', '.join(sorted(self.allowed))} (add names "
                       f"with {ALLOWED_HOSTS_ENV})")
            await _error(status.HTTP_400_BAD_REQUEST, message, "HTTPError")(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _host_name(header: str) -> str:
    """The name of a Host header without its port: ``[::1]:8000`` -> ``::1``, ``localhost:8000`` -> ``localhost``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 422, 503)}
WRITE_ERRORS = {**ERRORS, 403: {"model": ErrorResponse, "description": "A search-only key (RETRIEVER_READ_API_KEY)"},
                405: {"model": ErrorResponse, "description": "Read-only server (`retriever serve --read-only`)"}}


def create_app(source: Retriever | Settings, config: ServiceConfig | None = None, *, read_only: bool = False,
               writer_lock: WriterLock | None = None, parts: Parts | None = None) -> FastAPI:
    """The service over a retriever (not closed by the app) or over settings (opened and closed by it, for
    writing with ``writer_lock`` if the caller holds it already, else taking it; or ``read_only``), its
    query encoders and indexes from ``parts`` (default: in this process; ``router_retriever.service.ray_serve``: deployments)."""
    config = config or ServiceConfig.from_env()
    loader = RetrieverLoader(source, read_only, writer_lock, parts)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loader.start()
        yield
        loader.stop()

    app = FastAPI(title="RouterRetriever search service", version=__version__, lifespan=lifespan,
                  description="Multi-expert dense retrieval: a pilot-embedding router picks the expert per query.")
    app.add_middleware(BodyLimitMiddleware, limit=loader.settings.limits.max_body_bytes)
    app.add_middleware(HostCheckMiddleware, allowed=LOOPBACK_HOSTS + config.allowed_hosts)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _add_error_handlers(app)
    metrics.track_documents(lambda: loader.retriever.count() if loader.retriever else 0)
    # no key: no scheme in OpenAPI; search keys may read, full keys may also write
    readers = [Depends(api_key_guard(config.api_keys + config.read_keys))] if config.keyed else []
    writers = [Depends(api_key_guard(config.api_keys, search_only=config.read_keys))] if config.keyed else []
    _add_probe_routes(app, loader, metrics, readers, config)
    models = request_models(loader.settings.limits, len(loader.settings.experts))
    _add_search_routes(app, loader, metrics, models, readers)
    _add_document_routes(app, loader, models, writers)
    add_playground_routes(app)
    return app


def _add_probe_routes(app: FastAPI, loader: RetrieverLoader, metrics: Metrics, guarded: list,
                      config: ServiceConfig) -> None:
    @app.get("/health", response_model=HealthResponse, tags=["ops"], summary="Liveness: the process answers")
    def health() -> HealthResponse:
        return HealthResponse()

    @app.get("/ready", response_model=ReadyResponse, tags=["ops"], responses={503: {"model": ReadyResponse}},
             summary="Readiness: retriever loaded and every expert's index built")
    def ready(request: Request) -> JSONResponse:
        state = loader.readiness()
        if not state.ready and config.keyed and not key_matches(request.headers.get(API_KEY_HEADER),
                                                                config.api_keys + config.read_keys):
            log.warning("not ready: %s", state.detail)  # file paths stay in the log and behind the key
            state = state.model_copy(update={"detail": "not ready: the details are shown with an API key "
                                                       f"({API_KEY_HEADER}) and in the server log"})
        return JSONResponse(state.model_dump(), status.HTTP_200_OK if state.ready else 503)

    @app.get("/metrics", tags=["ops"], dependencies=guarded, summary="Prometheus metrics",
             responses={200: {"content": {"text/plain": {}}}, 401: ERRORS[401]}, response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/experts", response_model=ExpertsResponse, tags=["search"], dependencies=guarded,
             responses=ERRORS, summary="The configured experts and their indexes")
    def experts() -> ExpertsResponse:
        retriever = loader.get()
        infos = retriever.experts()
        return ExpertsResponse(experts=[ExpertOut.of(info) for info in infos],
                               default_route_top_m=retriever.settings.router.top_m,
                               routed=any(info.domains for info in infos), modes=list(MODES),
                               default_mode=retriever.settings.search.mode, rerank=retriever.settings.rerank.enabled)


def _add_search_routes(app: FastAPI, loader: RetrieverLoader, metrics: Metrics, models: RequestModels,
                       guarded: list) -> None:
    @app.post("/search", response_model=SearchResponse, tags=["search"], dependencies=guarded,
              responses=ERRORS, summary="Route a query to its expert and search that expert's index")
    def search(request: models.search) -> SearchResponse:  # type: ignore[name-defined]
        result = loader.batcher().search(request.query, request.top_k, expert=request.expert,
                                         top_m=request.route_top_m, filters=request.filters, mode=request.mode,
                                         rerank=request.rerank)
        metrics.count_routes([result.route])
        return SearchResponse.of(result, request.with_text)

    @app.post("/search/batch", response_model=BatchSearchResponse, tags=["search"], dependencies=guarded,
              responses=ERRORS, summary="Search many queries in one call (one encoder pass per expert)")
    def search_batch(request: models.batch) -> BatchSearchResponse:  # type: ignore[name-defined]
        results = loader.get().search_many(request.queries, request.top_k, expert=request.expert,
                                           top_m=request.route_top_m, filters=request.filters, mode=request.mode,
                                           rerank=request.rerank)
        metrics.count_routes(r.route for r in results)
        return BatchSearchResponse(results=[SearchResponse.of(r, request.with_text) for r in results])

    @app.post("/route", response_model=RouteResponse, tags=["search"], dependencies=guarded,
              responses=ERRORS, summary="Explain the route of a query without searching")
    def route(request: models.route) -> RouteResponse:  # type: ignore[name-defined]
        return RouteResponse(query=request.query, route=RouteOut.of(loader.get().route(request.query,
                                                                                    request.route_top_m)))


def _add_document_routes(app: FastAPI, loader: RetrieverLoader, models: RequestModels, guarded: list) -> None:
    @app.post("/documents", response_model=DocumentsResponse, tags=["documents"], dependencies=guarded,
              responses=WRITE_ERRORS, summary="Add or replace documents; persisted and searchable on return")
    def add_documents(request: models.documents) -> DocumentsResponse:  # type: ignore[name-defined]
        retriever = loader.get()
        docs = [Document(id=d.id, title=d.title, text=d.text, metadata=d.metadata) for d in request.documents]
        return DocumentsResponse(upserted=retriever.add(docs), documents=retriever.count())

    @app.delete("/documents/{doc_id:path}", response_model=DeleteResponse, tags=["documents"],
                dependencies=guarded, responses=WRITE_ERRORS, summary="Delete a document; persisted on return")
    def delete_document(doc_id: str) -> DeleteResponse:
        retriever = loader.get()
        if not retriever.delete([doc_id]):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"document {doc_id!r} not found")
        return DeleteResponse(deleted=doc_id, documents=retriever.count())


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as ``ErrorResponse``: engine errors with their own status, validation errors as 422."""

    @app.exception_handler(RetrieverError)
    def engine_error(_: Request, exc: RetrieverError) -> JSONResponse:
        code = http_status(exc)
        headers = {"Allow": ""} if code == 405 else None
        if isinstance(exc, NotReadyError | UnavailableError):  # loading, or a part restarting: try again soon
            headers = {"Retry-After": str(RETRY_AFTER_S)}
        return _error(code, str(exc), type(exc).__name__, headers=headers)

    @app.exception_handler(Exception)
    def unexpected_error(_: Request, exc: Exception) -> JSONResponse:  # a bug: still JSON, and logged by uvicorn
        return _error(500, f"internal error ({type(exc).__name__}); the server log has the details", "InternalError")

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
