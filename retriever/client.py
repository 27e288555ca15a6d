"""A small synchronous client of the REST service, returning the pipeline's own result types.

    with RetrieverClient("http://127.0.0.1:8000", api_key=None) as client:
        result = client.search("vitamin D and birth weight", top_k=5)
        print(result.route.expert, [hit.id for hit in result.hits])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from retriever.errors import RetrieverError
from retriever.types import Document, Hit, Route, SearchResult


class ServiceError(RetrieverError):
    """An error answer of the service: its HTTP status, message and error kind."""

    def __init__(self, status_code: int, detail: str, kind: str = "") -> None:
        super().__init__(f"{status_code} {kind}: {detail}" if kind else f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.kind = kind


class RetrieverClient:
    """Calls ``/search``, ``/search/batch``, ``/route``, ``/experts``, ``/documents`` and the probes."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)

    def search(self, query: str, top_k: int = 10, expert: str | None = None, route_top_m: int | None = None,
               filters: Mapping[str, Any] | None = None, with_text: bool = True) -> SearchResult:
        body = _options(top_k, expert, route_top_m, filters, with_text) | {"query": query}
        return _result(self._call("POST", "/search", body))

    def search_batch(self, queries: Sequence[str], top_k: int = 10, expert: str | None = None,
                     route_top_m: int | None = None, filters: Mapping[str, Any] | None = None,
                     with_text: bool = True) -> list[SearchResult]:
        body = _options(top_k, expert, route_top_m, filters, with_text) | {"queries": list(queries)}
        return [_result(r) for r in self._call("POST", "/search/batch", body)["results"]]

    def route(self, query: str, route_top_m: int | None = None) -> Route:
        body = {"query": query} | ({"route_top_m": route_top_m} if route_top_m is not None else {})
        return _route(self._call("POST", "/route", body)["route"])

    def experts(self) -> list[dict[str, Any]]:
        return self._call("GET", "/experts")["experts"]

    def add_documents(self, docs: Sequence[Document]) -> int:
        """Add or replace documents; returns how many were written."""
        body = {"documents": [{"id": d.id, "title": d.title, "text": d.text, "metadata": d.metadata} for d in docs]}
        return self._call("POST", "/documents", body)["upserted"]

    def delete_document(self, doc_id: str) -> bool:
        """Delete a document; False when it did not exist."""
        try:
            self._call("DELETE", f"/documents/{quote(doc_id, safe='')}")
        except ServiceError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    def health(self) -> bool:
        return self._http.get("/health").status_code == 200

    def ready(self) -> bool:
        return self._http.get("/ready").status_code == 200

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RetrieverClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = self._http.request(method, path, json=body)
        if response.is_success:
            return response.json()
        try:
            error = response.json()
            detail, kind = str(error["detail"]), str(error.get("error", ""))
        except (ValueError, KeyError, TypeError):
            detail, kind = response.text, ""
        raise ServiceError(response.status_code, detail, kind)


def _options(top_k: int, expert: str | None, route_top_m: int | None, filters: Mapping[str, Any] | None,
             with_text: bool) -> dict[str, Any]:
    options = {"top_k": top_k, "expert": expert, "route_top_m": route_top_m,
               "filters": dict(filters) if filters else None, "with_text": with_text}
    return {k: v for k, v in options.items() if v is not None}


def _route(data: Mapping[str, Any]) -> Route:
    return Route(experts=tuple(data["experts"]), scores=dict(data["scores"]), forced=bool(data["forced"]))


def _result(data: Mapping[str, Any]) -> SearchResult:
    hits = [Hit(id=h["id"], score=h["score"], expert=h["expert"], title=h["title"], text=h["text"] or "",
                metadata=h["metadata"]) for h in data["hits"]]
    return SearchResult(query=data["query"], hits=hits, route=_route(data["route"]))
