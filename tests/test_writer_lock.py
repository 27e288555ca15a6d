"""Issue #11, item 1: one writer per data directory. Any writer (a ``Retriever``, ``retriever build``,
``retriever serve``) holds an exclusive ``flock`` on ``<data_dir>/writer.lock``; a second writer is refused
at once with the holder's pid, host and command; readers are explicit (``read_only=True``,
``retriever serve --read-only``) and write nothing. The lock dies with its process, ``kill -9`` included.

The two-real-servers scenario of the issue, end to end, is in ``test_faults.py`` (marked slow)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest

from router_retriever import DataDirectoryLockedError, ReadOnlyError, Retriever, load_settings
from router_retriever.cli import main
from router_retriever.core.types import Document
from router_retriever.service.app import ServiceConfig, create_app

from conftest import copy_small, small_config
from service_server import ROOT, free_port, serve_in_thread

WAIT_S = 300  # generous: only a second writer that neither refuses nor exits takes this long, and the test says so
HOLDER = ("import sys, time; from pathlib import Path; from router_retriever.indexes.lock import WriterLock; "
          "lock = WriterLock.acquire(Path(sys.argv[1]), 'lock-holder-for-test'); print('locked', flush=True); time.sleep(300)")


@contextmanager
def lock_holder(folder: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the writer lock of ``folder`` (killed with SIGKILL on exit)."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


def test_a_second_writer_is_refused_naming_the_holder_until_the_holder_is_killed(tmp_path: Path) -> None:
    """Item 1: a writer in another process keeps every other writer out, and says who it is; readers open
    beside it and refuse writes; once the holder is killed (-9) the next writer gets the lock."""
    settings = load_settings(small_config(tmp_path))
    with lock_holder(settings.data_dir) as holder:
        with pytest.raises(DataDirectoryLockedError, match=rf"pid {holder.pid} on host \S+ \(lock-holder-for-test\).*"
                                                           r"one writer per data directory.*--read-only"):
            Retriever(settings)
        with closing(Retriever(settings, read_only=True)) as reader:
            assert reader.read_only and reader.count() == 0
            with pytest.raises(ReadOnlyError, match="read-only"):
                reader.add([Document("a", "text")])
            with pytest.raises(ReadOnlyError):
                reader.delete(["a"])
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        with closing(Retriever(settings)) as writer:  # the kernel dropped the dead holder's lock
            assert not writer.read_only
            with pytest.raises(DataDirectoryLockedError, match=rf"pid {os.getpid()} "):  # one per process too
                Retriever(settings)
        with closing(Retriever(settings)):  # close() gave the lock back
            pass


def test_serve_and_build_refuse_a_second_writer_before_doing_anything(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Item 1: `retriever serve` takes the lock before it listens, so a second one on the same data
    directory exits (rc 2) with a message naming the holder instead of starting to serve: its port never
    answers while it runs, and uvicorn never says it started."""
    config = small_config(tmp_path)
    with lock_holder(tmp_path / "data") as holder:
        port = free_port()
        command = [sys.executable, "-m", "router_retriever.cli", "--config", str(config), "serve", "--port", str(port)]
        log = tmp_path / "second-writer.log"  # a file, not a pipe: the child never blocks on a full one
        with log.open("w") as output:
            process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + WAIT_S
            while process.poll() is None:
                with socket.socket() as probe:
                    probe.settimeout(1)
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        pytest.fail("a second writer started serving the locked data directory")
                if time.monotonic() > deadline:
                    pytest.fail(f"a second writer neither refused nor exited in {WAIT_S} s")
                time.sleep(0.1)
        finally:
            process.kill()
            process.wait(timeout=10)
        err = log.read_text()
        assert process.returncode == 2, err
        assert f"already open for writing by pid {holder.pid}" in err and "lock-holder-for-test" in err
        assert "Traceback" not in err and "Started server process" not in err and "Uvicorn running" not in err
        assert main(["--config", str(config), "build"]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err


def test_readers_create_nothing(tmp_path: Path) -> None:
    """Item 1 (readers are explicit) and item 7: opening read-only writes nothing, not even the folder."""
    settings = load_settings(small_config(tmp_path))
    with closing(Retriever(settings, read_only=True)) as reader:
        assert reader.count() == 0 and reader.status().documents == 0
    assert not (tmp_path / "data").exists()


def test_read_only_server_searches_beside_the_writer_and_answers_writes_405(tmp_path: Path,
                                                                           small_built: Path) -> None:
    """Item 1: `serve --read-only` (here ``create_app(..., read_only=True)``) runs beside the writer, says
    so on /ready, searches, and answers writes with 405 and a clear message (never 500)."""
    settings = load_settings(copy_small(small_built, tmp_path))
    with closing(Retriever(settings)) as writer, serve_in_thread(create_app(settings, ServiceConfig(), read_only=True)) as url:
        deadline = time.monotonic() + WAIT_S
        while (ready := httpx.get(f"{url}/ready")).json()["detail"].startswith("retriever is loading"):
            assert time.monotonic() < deadline, f"the read-only server was not ready in {WAIT_S} s"
            time.sleep(0.05)
        assert ready.status_code == 200 and ready.json()["read_only"] and ready.json()["documents"] == writer.count()
        doc = writer.search("anything", top_k=1).hits[0]
        hits = httpx.post(f"{url}/search", json={"query": doc.text, "top_k": 1}, timeout=60).json()["hits"]
        assert hits[0]["id"] == doc.id
        for response in (httpx.post(f"{url}/documents", json={"documents": [{"id": "x", "text": "t"}]}),
                         httpx.delete(f"{url}/documents/{doc.id}")):
            assert response.status_code == 405 and response.json()["error"] == "ReadOnlyError"
            assert "read-only" in response.json()["detail"]
        assert writer.count() == 30
