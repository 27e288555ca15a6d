"""Coalescing concurrent single-query searches into ``search_many`` calls.

Under concurrent load each request would otherwise run its own router and expert passes, one after
another behind the encoder lock. ``QueryBatcher`` hands every query to one worker thread, which takes
whatever is waiting (no added wait at low load) and serves requests with the same options in one
``search_many`` call: one encoder pass per expert per batch.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from router_retriever.api import Retriever
from router_retriever.core.errors import UnavailableError
from router_retriever.core.types import Mode, SearchResult


@dataclass
class _Request:
    query: str
    top_k: int
    expert: str | None
    top_m: int | None
    filters: Mapping[str, Any] | None
    mode: Mode | None = None
    rerank: bool | None = None
    future: Future = field(default_factory=Future)

    @property
    def options(self) -> str:
        """Requests with equal options can share one ``search_many`` call."""
        return json.dumps([self.top_k, self.expert, self.top_m, self.filters, self.mode, self.rerank], sort_keys=True,
                          default=str)


class QueryBatcher:
    """Thread-safe ``search`` that batches concurrent callers; ``close`` stops the worker."""

    def __init__(self, retriever: Retriever, max_batch: int = 64) -> None:
        self.retriever = retriever
        self.max_batch = max_batch
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="query-batcher", daemon=True)
        self._worker.start()

    def search(self, query: str, top_k: int = 10, *, expert: str | None = None, top_m: int | None = None,
               filters: Mapping[str, Any] | None = None, mode: Mode | None = None,
               rerank: bool | None = None) -> SearchResult:
        """Same contract as ``Retriever.search`` (same results, same errors)."""
        request = _Request(query, top_k, expert, top_m, filters, mode, rerank)
        self._queue.put(request)
        return request.future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join()

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if waiting is None:
                    self._queue.put(None)  # serve what was taken, then stop
                    break
                batch.append(waiting)
            groups: dict[str, list[_Request]] = defaultdict(list)
            for request in batch:
                groups[request.options].append(request)
            for requests in groups.values():
                self._serve(requests)

    def _serve(self, requests: list[_Request]) -> None:
        first = requests[0]
        try:
            results = self.retriever.search_many([r.query for r in requests], first.top_k, expert=first.expert,
                                                 top_m=first.top_m, filters=first.filters, mode=first.mode,
                                                 rerank=first.rerank)
        except UnavailableError as exc:  # a part elsewhere is down, not a bad query: each retry would wait again
            for request in requests:
                request.future.set_exception(exc)
            return
        except Exception as exc:  # handed to the caller; a bad query must not fail the others
            if len(requests) == 1:
                first.future.set_exception(exc)
            else:
                for request in requests:
                    self._serve([request])
            return
        for request, result in zip(requests, results, strict=True):
            request.future.set_result(result)
