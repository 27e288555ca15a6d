"""Fault tests against real `retriever serve` processes (marked slow: `pytest -m slow`, which
scripts/test.sh runs after the default suite). Issue #11, item 1: the two-servers scenario of the issue,
and kill -9 in the middle of a stream of writes: no acknowledged document is ever lost or unfindable."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import copy_small
from service_server import server_process

pytestmark = pytest.mark.slow

A = {"id": "doc-A", "title": "Runbook A", "text": "Restart the replication slot after the standby falls behind by an hour."}
B = {"id": "doc-B", "title": "Runbook B", "text": "Rotate the object storage access keys every quarter."}


def _top(url: str, text: str) -> str:
    hits = httpx.post(f"{url}/search", json={"query": text, "top_k": 1}, timeout=60).json()["hits"]
    return hits[0]["id"] if hits else ""


def test_a_second_writing_server_is_refused_and_nothing_is_lost(small_built: Path, tmp_path: Path) -> None:
    """Item 1, the issue's scenario: two `serve` on one data directory. The second exits at once naming
    the first; a --read-only one runs beside it and answers writes 405; A posted to the writer survives
    its kill -9, and after a restart every stored document has its vector and A's text finds A."""
    config = copy_small(small_built, tmp_path)
    with server_process(config) as first:
        with server_process(config, ready=False) as second:
            assert second.process.wait(timeout=60) == 2
            assert f"already open for writing by pid {first.process.pid}" in second.stderr()
            assert "retriever serve --host 127.0.0.1 --port" in second.stderr() and "--read-only" in second.stderr()
        with server_process(config, "--read-only") as reader:
            refused = httpx.post(f"{reader.url}/documents", json={"documents": [B]}, timeout=60)
            assert refused.status_code == 405 and "read-only" in refused.json()["detail"]
            assert httpx.get(f"{reader.url}/ready").json()["read_only"] is True
        added = httpx.post(f"{first.url}/documents", json={"documents": [A]}, timeout=60)
        assert added.status_code == 200 and added.json()["documents"] == 31
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
    with server_process(config) as again:
        ready = httpx.get(f"{again.url}/ready").json()
        assert ready["documents"] == 31 and set(ready["indexes"].values()) == {31} and ready["missing"] == {}
        assert "re-encoded" not in ready["detail"]  # vectors were on disk before the document was stored
        assert _top(again.url, A["text"]) == A["id"] and _top(again.url, B["text"]) != B["id"]


def test_kill_9_during_writes_loses_no_acknowledged_document(small_built: Path, tmp_path: Path) -> None:
    """Item 1 (durability): documents are posted one by one while the writer is killed with SIGKILL. After
    a restart every acknowledged document is found by its exact text, every stored document has its
    vector (nothing to repair), and at most the one in flight is stored beyond the acknowledged ones."""
    config = copy_small(small_built, tmp_path)
    acknowledged: list[dict[str, str]] = []
    stop = threading.Event()

    def post(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(500):
                if stop.is_set():
                    return
                doc = {"id": f"crash-{i}", "text": f"Incident {i}: the shard {i * 7919 % 1000} lost quorum at step {i}."}
                try:
                    if http.post("/documents", json={"documents": [doc]}).status_code == 200:
                        acknowledged.append(doc)
                except httpx.HTTPError:
                    return  # the server is gone

    with server_process(config) as writer:
        thread = threading.Thread(target=post, args=(writer.url,), daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while len(acknowledged) < 12:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.01)
        os.kill(writer.process.pid, signal.SIGKILL)
        writer.process.wait(timeout=30)
        stop.set()
        thread.join(timeout=60)
    with server_process(config) as again:
        ready = httpx.get(f"{again.url}/ready").json()
        assert ready["missing"] == {} and "re-encoded" not in ready["detail"]
        assert 30 + len(acknowledged) <= ready["documents"] <= 30 + len(acknowledged) + 1
        assert all(count >= ready["documents"] for count in ready["indexes"].values())
        for doc in acknowledged:
            assert _top(again.url, doc["text"]) == doc["id"]
