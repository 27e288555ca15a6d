"""Concurrent single-query searches coalesced into batched retriever calls."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from router_retriever import Retriever
from router_retriever.batching import QueryBatcher
from router_retriever.core.errors import InvalidRequestError, UnknownExpertError

WAIT_S = 120  # generous: only a hung batcher takes this long, and then the test says so


def test_concurrent_searches_are_batched_and_equal_single_searches(
        retriever: Retriever, test_queries: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The first batch's search is held until every other caller's request is queued (whatever the machine's
    speed), so the rest are served by one more ``search_many`` call."""
    queries = list(test_queries.values())[:24]
    expected = {q: [h.id for h in retriever.search(q, top_k=5).hits] for q in queries}
    sizes: list[int] = []
    stalled: list[str] = []  # said here, not raised: the batcher would hand an exception to the callers
    original = retriever.search_many
    batcher = QueryBatcher(retriever)

    def recording(batch, *args, **kwargs):
        sizes.append(len(batch))
        if len(sizes) == 1:  # hold the worker until the other callers have all queued
            deadline = time.monotonic() + WAIT_S
            while batcher._queue.qsize() < len(queries) - len(batch):
                if time.monotonic() > deadline:
                    stalled.append(f"{batcher._queue.qsize()} of {len(queries) - len(batch)} requests queued in {WAIT_S} s")
                    break
                time.sleep(0.01)
        return original(batch, *args, **kwargs)

    monkeypatch.setattr(retriever, "search_many", recording)
    with ThreadPoolExecutor(max_workers=len(queries)) as pool:
        futures = [pool.submit(batcher.search, q, top_k=5) for q in queries]
        results = [future.result(timeout=WAIT_S) for future in futures]
    batcher.close()
    assert not stalled, stalled
    assert [[h.id for h in r.hits] for r in results] == [expected[q] for q in queries]
    assert [r.query for r in results] == queries
    assert sum(sizes) == len(queries) and len(sizes) == 2 and sizes[1] == len(queries) - sizes[0], sizes


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
