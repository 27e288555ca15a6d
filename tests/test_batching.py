"""Concurrent single-query searches coalesced into batched retriever calls."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.errors import InvalidRequestError, UnknownExpertError
from retriever import Retriever
from retriever.batching import QueryBatcher


def test_concurrent_searches_are_batched_and_equal_single_searches(
        retriever: Retriever, test_queries: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    queries = list(test_queries.values())[:24]
    expected = {q: [h.id for h in retriever.search(q, top_k=5).hits] for q in queries}
    sizes: list[int] = []
    original = retriever.search_many
    first_call = threading.Event()

    def recording(batch, *args, **kwargs):
        sizes.append(len(batch))
        if not first_call.is_set():
            first_call.set()
            time.sleep(0.2)  # the other callers queue meanwhile
        return original(batch, *args, **kwargs)

    monkeypatch.setattr(retriever, "search_many", recording)
    batcher = QueryBatcher(retriever)
    with ThreadPoolExecutor(max_workers=len(queries)) as pool:
        results = list(pool.map(lambda q: batcher.search(q, top_k=5), queries))
    batcher.close()
    assert [[h.id for h in r.hits] for r in results] == [expected[q] for q in queries]
    assert [r.query for r in results] == queries
    assert sum(sizes) == len(queries) and len(sizes) < len(queries) and max(sizes) > 1


def test_a_bad_request_fails_alone(retriever: Retriever) -> None:
    batcher = QueryBatcher(retriever)
    calls = [("   ", {}), ("vitamin D", {"expert": "finance"}), ("vitamin D", {}), ("pod crash", {"top_k": 2})]
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(batcher.search, q, **kw) for q, kw in calls]
    with pytest.raises(InvalidRequestError, match="non-empty string"):
        futures[0].result()
    with pytest.raises(UnknownExpertError, match="finance"):
        futures[1].result()
    assert len(futures[2].result().hits) == 10 and len(futures[3].result().hits) == 2
    batcher.close()
