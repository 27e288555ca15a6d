"""Issue #11, item 1 (second half): when the store and an index disagree on load, /ready and the CLI say so
with the counts of each, and a writer repairs it by re-encoding only the documents the index lacks.

The disagreement is the one two writers on one directory used to leave behind: a document stored whose
vector was lost (here: the index folder restored from before the document was added)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import numpy as np
import pytest

import router_retriever.encoding.encoders as encoders
from router_retriever import Retriever, load_settings
from router_retriever.cli import main
from router_retriever.core.types import Document
from router_retriever.service.app import ServiceConfig, create_app

from conftest import copy_small
from service_server import serve_in_thread

LOST = Document("lost-1", "Quarterly backups of the tape library are verified by restoring one archive at random.",
                "Tape backup verification")


def lose_a_vector(config: Path) -> str:
    """Add ``LOST`` through a writer, then put the index back as it was before: stored, not indexed.
    Returns the index's name (its document encoder)."""
    indexes = config.parent / "data" / "indexes"
    shutil.copytree(indexes, config.parent / "indexes-before")
    with closing(Retriever(load_settings(config))) as writer:
        writer.add([LOST])
        name = writer.experts()[0].document_encoder
    shutil.rmtree(indexes)
    shutil.copytree(config.parent / "indexes-before", indexes)
    return name


@pytest.fixture
def broken(small_built: Path, tmp_path: Path) -> tuple[Path, str]:
    config = copy_small(small_built, tmp_path)
    return config, lose_a_vector(config)


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text a document or query encoder is asked to encode from now on."""
    texts: list[str] = []
    original: Callable[..., np.ndarray] = encoders.Encoder.encode

    def counting(self: encoders.Encoder, batch: list[str], *args: object, **kwargs: object) -> np.ndarray:
        texts.extend(batch)
        return original(self, batch, *args, **kwargs)

    monkeypatch.setattr(encoders.Encoder, "encode", counting)
    return texts


def _wait_loaded(url: str) -> httpx.Response:
    deadline = time.monotonic() + 120
    while (ready := httpx.get(f"{url}/ready")).json()["detail"].startswith("retriever is loading"):
        assert time.monotonic() < deadline, ready.text
        time.sleep(0.05)
    return ready


def test_readers_report_the_documents_an_index_lacks(broken: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Item 1: the counts of each side on /ready (not ready), in `retriever experts` and as a warning of
    `retriever search`; a reader repairs nothing."""
    config, name = broken
    with closing(Retriever(load_settings(config), read_only=True)) as reader:
        state = reader.status()
        assert (state.documents, state.indexes, state.missing) == (31, {name: 30, "bm25": 30}, {name: 1, "bm25": 1})
    settings = load_settings(config)
    with serve_in_thread(create_app(settings, ServiceConfig(), read_only=True)) as url:
        ready = _wait_loaded(url)
        body = ready.json()
        assert ready.status_code == 503 and not body["ready"]
        assert (body["documents"], body["indexes"], body["missing"]) == (31, {name: 30, "bm25": 30}, {name: 1, "bm25": 1})
        assert f"index {name} holds 30 vectors but the store 31 documents: 1 stored documents have no vector" in body["detail"]
    assert main(["--config", str(config), "experts"]) == 0
    assert "1 of the store's 31 documents have no vector: run `retriever build`" in capsys.readouterr().out
    assert main(["--config", str(config), "search", LOST.text, "-k", "1"]) == 0
    err = capsys.readouterr().err
    assert f"warning: index {name} holds 30 vectors for 31 documents: 1 stored documents cannot be found" in err
    with closing(Retriever(load_settings(config), read_only=True)) as reader:
        assert reader.status().missing == {name: 1, "bm25": 1}


def test_the_writer_re_encodes_only_what_is_missing_at_startup(broken: tuple[Path, str], encoded: list[str]) -> None:
    """Item 1: a writing server repairs before it is ready (one document encoded, not 31), says so on
    /ready, and the lost document is found by its exact text."""
    config, name = broken
    with serve_in_thread(create_app(load_settings(config), ServiceConfig())) as url:
        ready = _wait_loaded(url)
        body = ready.json()
        assert ready.status_code == 200 and body["ready"], body
        assert (body["documents"], body["indexes"], body["missing"]) == (31, {name: 31, "bm25": 31}, {})
        assert f"at startup re-encoded 1 documents missing from index {name}" in body["detail"]
        assert encoded == [LOST.content]
        hits = httpx.post(f"{url}/search", json={"query": LOST.text, "top_k": 1}, timeout=60).json()["hits"]
        assert hits[0]["id"] == LOST.id


def test_build_says_what_it_repairs(broken: tuple[Path, str], encoded: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Item 1: `retriever build` names the gap with both counts and re-encodes only the missing document."""
    config, name = broken
    assert main(["--config", str(config), "build"]) == 0
    out = capsys.readouterr().out
    assert f"index {name} holds 30 vectors for 31 documents: re-encoding the 1 that have none" in out
    assert f"encoded 1 documents into the index of {name}" in out and encoded == [LOST.content]
    with closing(Retriever(load_settings(config), read_only=True)) as reader:
        assert reader.status().missing == {} and reader.search(LOST.text, top_k=1).hits[0].id == LOST.id
