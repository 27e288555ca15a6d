"""Fault tests against real `retriever serve` and `retriever build` processes (marked slow: `pytest -m slow`,
which scripts/test.sh runs after the default suite). Issue #11, item 1: the two-servers scenario of the issue,
and kill -9 in the middle of a stream of writes: no acknowledged document is ever lost or unfindable. Issue #24,
item 1: kill -9 at points all through `build --rebuild` leaves the directory searchable with every document, and
all through `train-expert` leaves a whole adapter folder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from router_retriever import Retriever, load_settings
from router_retriever.core.types import Document
from router_retriever.indexes.document_store import DocumentStore

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


# `retriever ARGS`, killing itself (SIGKILL) just before its KILL_AT-th file-system change (a rename or an unlink)
# under KILL_DATA_DIR, each change listed on stderr; KILL_AT=0 runs to the end
KILL_AT_CHANGE = """
import os, signal, sys
target, data_dir, seen = int(os.environ["KILL_AT"]), os.environ["KILL_DATA_DIR"], [0]
def counted(change):
    def call(*args, **kwargs):
        if any(str(arg).startswith(data_dir) for arg in args):
            seen[0] += 1
            print(f"change {seen[0]}: {change.__name__} {args[-1]}", file=sys.stderr, flush=True)
            if seen[0] == target:
                os.kill(os.getpid(), signal.SIGKILL)
        return change(*args, **kwargs)
    return call
os.replace, os.unlink = counted(os.replace), counted(os.unlink)
from router_retriever.cli import main
sys.exit(main(sys.argv[1:]))
"""
TIMED_KILLS_S = (1.0, 4.0)  # during start-up and model loading / encoding, whatever this machine reaches by then


def _rebuild(config: Path, kill_at: int = 0, after_s: float | None = None) -> subprocess.CompletedProcess[str]:
    """`retriever build --rebuild` killed before its ``kill_at``-th change, or after ``after_s`` seconds."""
    env = {**os.environ, "KILL_AT": str(kill_at), "KILL_DATA_DIR": str(config.parent / "data")}
    process = subprocess.Popen([sys.executable, "-c", KILL_AT_CHANGE, "--config", str(config), "build", "--rebuild"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if after_s is not None:
        time.sleep(after_s)
        process.kill()
    out, err = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _searchable_with_every_document(config: Path, docs: list[Document]) -> None:
    with closing(Retriever(load_settings(config), read_only=True)) as reader:
        state = reader.status()
        assert reader.count() == len(docs) and state.missing == {} and set(state.indexes.values()) == {len(docs)}
        for doc in docs[::7]:
            for mode in ("dense", "sparse"):
                assert reader.search(doc.content, top_k=1, mode=mode).hits[0].id == doc.id, (doc.id, mode)


def test_kill_9_anywhere_in_a_rebuild_leaves_the_directory_searchable(small_built: Path, tmp_path: Path) -> None:
    """Issue #24, item 1: `build --rebuild` killed with SIGKILL just before one of its file-system changes
    (spread over all of them, and around each manifest's commit) and at fixed times, 10 kills or more: every time
    the directory opens, every document is stored and found by dense and BM25 search, and no index lacks a
    vector; a last rebuild completes and leaves no orphan file."""
    config = copy_small(small_built, tmp_path)
    docs = [doc for _, batch in DocumentStore(tmp_path / "data" / "docs.sqlite", read_only=True).iter_documents()
            for doc in batch]
    full = _rebuild(config)
    assert full.returncode == 0, full.stderr
    changes = re.findall(r"change \d+: \w+ (\S+)", full.stderr)  # each changed path, in order
    commits = [i for i, path in enumerate(changes, 1) if path.endswith("manifest.json")]
    # the first and last change, every fifth of the way, and just before and after each manifest's commit
    points = sorted({1, len(changes), *range(1, len(changes), -(-len(changes) // 5)),
                     *commits, *(i + 1 for i in commits if i < len(changes))})
    killed = [_rebuild(config, kill_at=point) for point in points]
    killed += [_rebuild(config, after_s=after) for after in TIMED_KILLS_S]
    for run in killed:
        assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
        _searchable_with_every_document(config, docs)
    assert len(killed) >= 10
    assert _rebuild(config).returncode == 0
    _searchable_with_every_document(config, docs)
    leftovers = [path.name for path in (tmp_path / "data").rglob("*") if path.name.endswith(".tmp")
                 or path.name.startswith(".staging-")]
    assert leftovers == []
    for folder in (tmp_path / "data" / "indexes").iterdir():
        named = {entry["name"] for entry in json.loads((folder / "manifest.json").read_text()).get("files", {}).values()}
        named |= {json.loads((folder / "manifest.json").read_text()).get("file", "manifest.json"), "manifest.json"}
        assert {path.name for path in folder.iterdir()} == named, folder


def _train(corpus: Path, out: Path, after_s: float | None = None) -> subprocess.CompletedProcess[str]:
    """`retriever train-expert` (a LoRA on 48 documents' pseudo-queries, a checkpoint after each of its 8 short
    epochs), killed with SIGKILL ``after_s`` seconds after it started (None: run to the end)."""
    command = [sys.executable, "-m", "router_retriever.cli", "--data-dir", str(out.parent / "data"), "train-expert",
               "--name", "tiny", "--train", str(corpus), "--from-corpus", "--out", str(out), "--epochs", "8",
               "--max-steps", "16", "--batch-size", "72", "--per-doc", "3"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        if after_s is not None:
            time.sleep(after_s)
            process.send_signal(signal.SIGKILL)
        out_text, err_text = process.communicate(timeout=600)
        return subprocess.CompletedProcess(command, process.returncode, out_text, err_text)


def _whole_checkpoint(out: Path, files: set[str]) -> dict:
    """The checkpoint in ``out``: exactly ``files``, its card naming the weights' SHA-256 (so a card and weights
    of two different checkpoints never pass)."""
    import hashlib

    assert {path.name for path in out.iterdir()} == files
    card = json.loads((out / "training.json").read_text())
    for name, digest in card["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    return card


def test_kill_9_anywhere_in_train_expert_leaves_a_whole_adapter(tmp_path: Path, corpus_slice: list[Document]) -> None:
    """Issue #24: `train-expert` killed with SIGKILL at 10 points spread over a run (model load, training, the
    checkpoint after each epoch) always leaves the previous adapter or a newer one, whole, and no temporary
    folder once a run completes."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n" for d in corpus_slice[:48]))
    out = tmp_path / "expert"
    started = time.perf_counter()
    first = _train(corpus, out)
    duration = time.perf_counter() - started
    assert first.returncode == 0, first.stderr[-2000:]
    files = {path.name for path in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "training.json", "loss.png"} <= files
    steps = [_whole_checkpoint(out, files)["steps"]]
    kills = 0
    for attempt in range(16):  # a run faster than the first (the load varies) may end before its kill: try again
        if kills == 10:
            break
        run = _train(corpus, out, after_s=duration * (attempt % 10 + 1) / 12)
        assert run.returncode in (0, -signal.SIGKILL), run.stderr[-2000:]
        kills += run.returncode == -signal.SIGKILL
        steps.append(_whole_checkpoint(out, files)["steps"])
    assert kills == 10
    assert _train(corpus, out).returncode == 0
    assert _whole_checkpoint(out, files)["complete"]
    assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".tmp")] == []
    assert all(s > 0 for s in steps)
