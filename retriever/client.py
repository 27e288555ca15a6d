"""Small clients of the REST service, sync and async, returning the engine's own result types.

    with RetrieverClient("http://127.0.0.1:8000", api_key=None) as client:
        result = client.search("vitamin D and birth weight", top_k=5)
        print(result.route.expert, [hit.id for hit in result.hits])

    async with AsyncRetrieverClient("http://127.0.0.1:8000") as client:
        result = await client.search("vitamin D and birth weight", top_k=5)

Both clients describe each request as a ``_Call`` (method, path, body, and how to read the answer) built by
the module's functions; a client only sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from router_retriever.core.errors import RetrieverError
from router_retriever.core.types import Document, Hit, Mode, Provenance, Route, SearchResult

T = TypeVar("T")


class ServiceError(RetrieverError):
    """An error answer of the service: its HTTP status, message and error kind."""

    def __init__(self, status_code: int, detail: str, kind: str = "") -> None:
        super().__init__(f"{status_code} {kind}: {detail}" if kind else f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.kind = kind


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One request to the service and the function that turns its response into the method's result."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    body: Mapping[str, Any] | None = None


class RetrieverClient:
    """Calls ``/search``, ``/search/batch``, ``/route``, ``/experts``, ``/documents`` and the probes."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(transport=transport, **_http_options(base_url, api_key, timeout))

    def search(self, query: str, top_k: int = 10, *, expert: str | None = None, route_top_m: int | None = None,
               filters: Mapping[str, Any] | None = None, with_text: bool = True, mode: Mode | None = None,
               rerank: bool | None = None) -> SearchResult:
        return self._send(_search_call(query, _options(top_k, expert=expert, route_top_m=route_top_m, filters=filters,
                                                       with_text=with_text, mode=mode, rerank=rerank)))

    def search_batch(self, queries: Sequence[str], top_k: int = 10, *, expert: str | None = None,
                     route_top_m: int | None = None, filters: Mapping[str, Any] | None = None,
                     with_text: bool = True, mode: Mode | None = None, rerank: bool | None = None) -> list[SearchResult]:
        return self._send(_search_batch_call(queries, _options(top_k, expert=expert, route_top_m=route_top_m,
                                                               filters=filters, with_text=with_text, mode=mode,
                                                               rerank=rerank)))

    def route(self, query: str, route_top_m: int | None = None) -> Route:
        return self._send(_route_call(query, route_top_m))

    def experts(self) -> list[dict[str, Any]]:
        return self._send(_EXPERTS_CALL)

    def add_documents(self, docs: Sequence[Document]) -> int:
        """Add or replace documents; returns how many were written."""
        return self._send(_add_documents_call(docs))

    def delete_document(self, doc_id: str) -> bool:
        """Delete a document; False when it did not exist."""
        return self._send(_delete_document_call(doc_id))

    def health(self) -> bool:
        return self._send(_HEALTH_CALL)

    def ready(self) -> bool:
        return self._send(_READY_CALL)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RetrieverClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _send(self, call: _Call[T]) -> T:
        return call.read(self._http.request(call.method, call.path, json=call.body))


class AsyncRetrieverClient:
    """The same calls as ``RetrieverClient``, awaited; bound to the event loop that first uses it."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(transport=transport, **_http_options(base_url, api_key, timeout))

    async def search(self, query: str, top_k: int = 10, *, expert: str | None = None,
                     route_top_m: int | None = None, filters: Mapping[str, Any] | None = None,
                     with_text: bool = True, mode: Mode | None = None, rerank: bool | None = None) -> SearchResult:
        return await self._send(_search_call(query, _options(top_k, expert=expert, route_top_m=route_top_m,
                                                             filters=filters, with_text=with_text, mode=mode,
                                                             rerank=rerank)))

    async def search_batch(self, queries: Sequence[str], top_k: int = 10, *, expert: str | None = None,
                           route_top_m: int | None = None, filters: Mapping[str, Any] | None = None,
                           with_text: bool = True, mode: Mode | None = None,
                           rerank: bool | None = None) -> list[SearchResult]:
        return await self._send(_search_batch_call(queries, _options(top_k, expert=expert, route_top_m=route_top_m,
                                                                     filters=filters, with_text=with_text, mode=mode,
                                                                     rerank=rerank)))

    async def route(self, query: str, route_top_m: int | None = None) -> Route:
        return await self._send(_route_call(query, route_top_m))

    async def experts(self) -> list[dict[str, Any]]:
        return await self._send(_EXPERTS_CALL)

    async def add_documents(self, docs: Sequence[Document]) -> int:
        """Add or replace documents; returns how many were written."""
        return await self._send(_add_documents_call(docs))

    async def delete_document(self, doc_id: str) -> bool:
        """Delete a document; False when it did not exist."""
        return await self._send(_delete_document_call(doc_id))

    async def health(self) -> bool:
        return await self._send(_HEALTH_CALL)

    async def ready(self) -> bool:
        return await self._send(_READY_CALL)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRetrieverClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _send(self, call: _Call[T]) -> T:
        return call.read(await self._http.request(call.method, call.path, json=call.body))


def _http_options(base_url: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    return {"base_url": base_url, "headers": {"X-API-Key": api_key} if api_key else {}, "timeout": timeout}


def _json(response: httpx.Response) -> Any:
    """The body of a success answer; a ``ServiceError`` for any other."""
    if response.is_success:
        return response.json()
    try:
        error = response.json()
        detail, kind = str(error["detail"]), str(error.get("error", ""))
    except (ValueError, KeyError, TypeError):
        detail, kind = response.text, ""
    raise ServiceError(response.status_code, detail, kind)


def _ok(response: httpx.Response) -> bool:
    return response.status_code == 200


def _deleted(response: httpx.Response) -> bool:
    if response.status_code == 404:
        return False
    _json(response)
    return True


def _options(top_k: int, *, expert: str | None, route_top_m: int | None, filters: Mapping[str, Any] | None,
             with_text: bool, mode: Mode | None, rerank: bool | None) -> dict[str, Any]:
    """The request body's search options (those left at None are not sent)."""
    options = {"top_k": top_k, "expert": expert, "route_top_m": route_top_m,
               "filters": dict(filters) if filters else None, "with_text": with_text, "mode": mode, "rerank": rerank}
    return {k: v for k, v in options.items() if v is not None}


def _search_call(query: str, options: dict[str, Any]) -> _Call[SearchResult]:
    body = options | {"query": query}
    return _Call("POST", "/search", lambda response: _result(_json(response)), body)


def _search_batch_call(queries: Sequence[str], options: dict[str, Any]) -> _Call[list[SearchResult]]:
    body = options | {"queries": list(queries)}
    return _Call("POST", "/search/batch", lambda response: [_result(r) for r in _json(response)["results"]], body)


def _route_call(query: str, route_top_m: int | None) -> _Call[Route]:
    body = {"query": query} | ({"route_top_m": route_top_m} if route_top_m is not None else {})
    return _Call("POST", "/route", lambda response: _route(_json(response)["route"]), body)


def _add_documents_call(docs: Sequence[Document]) -> _Call[int]:
    body = {"documents": [{"id": d.id, "title": d.title, "text": d.text, "metadata": d.metadata} for d in docs]}
    return _Call("POST", "/documents", lambda response: int(_json(response)["upserted"]), body)


def _delete_document_call(doc_id: str) -> _Call[bool]:
    return _Call("DELETE", f"/documents/{quote(doc_id, safe='')}", _deleted)


_EXPERTS_CALL: _Call[list[dict[str, Any]]] = _Call("GET", "/experts", lambda response: _json(response)["experts"])
_HEALTH_CALL: _Call[bool] = _Call("GET", "/health", _ok)
_READY_CALL: _Call[bool] = _Call("GET", "/ready", _ok)


def _route(data: Mapping[str, Any]) -> Route:
    return Route(experts=tuple(data["experts"]), scores=dict(data["scores"]), forced=bool(data["forced"]),
                 fallback=bool(data.get("fallback", False)))


def _result(data: Mapping[str, Any]) -> SearchResult:
    hits = [Hit(id=h["id"], score=h["score"], expert=h["expert"], title=h["title"], text=h["text"] or "",
                metadata=h["metadata"], provenance=tuple(Provenance(**p) for p in h.get("provenance", ())))
            for h in data["hits"]]
    return SearchResult(query=data["query"], hits=hits, route=_route(data["route"]), mode=data.get("mode", "dense"))
