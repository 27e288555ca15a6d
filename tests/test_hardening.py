"""Issue #24 (hardening): damaged files give one clean error naming the fix, a closed pipe ends quietly,
missing extras name the extra to install, and the Python API builds what `retriever build` builds."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from router_retriever import Retriever, load_settings
from router_retriever.cli import main
from router_retriever.core.types import Document
from router_retriever.service.app import ALLOWED_HOSTS_ENV, API_KEY_ENV, READ_API_KEY_ENV, ServiceConfig, create_app
from router_retriever.service.cli import INSECURE_ENV, service_config

from conftest import copy_small, small_config


def test_search_into_a_closed_pipe_ends_without_a_traceback(small_built: Path, tmp_path: Path) -> None:
    """Item 5: `retriever search ... --json | head -1` (here: a pipe already closed by its reader) exits
    without a BrokenPipeError traceback or an "Exception ignored" at exit."""
    config = copy_small(small_built, tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte: every write fails with EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "router_retriever.cli", "--config", str(config), "search", "vitamin D",
                               "--mode", "sparse", "--json"], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=300)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr and done.returncode == 1


def _damage(store: Path, kind: str) -> None:
    """The issue's three kinds of damage to a SQLite file."""
    data = store.read_bytes()
    if kind == "garbage":
        store.write_bytes(data[:4096] + os.urandom(len(data) - 4096))
    elif kind == "truncated":
        store.write_bytes(data[:5000])
    else:
        store.write_bytes(b"this is no database header" + data[26:])


@pytest.mark.parametrize("kind", ["garbage", "truncated", "header"])
def test_a_damaged_store_gives_one_line_naming_the_file_and_the_way_back(
        small_built: Path, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Item 2: search (hybrid, sparse), experts, build and build --rebuild over a damaged docs.sqlite each
    exit 2 with one line naming the file and how to recover, never a sqlite3 traceback."""
    config = copy_small(small_built, tmp_path)
    store = tmp_path / "data" / "docs.sqlite"
    for leftover in ("docs.sqlite-wal", "docs.sqlite-shm"):
        (tmp_path / "data" / leftover).unlink(missing_ok=True)
    _damage(store, kind)
    capsys.readouterr()
    for command in (["search", "vitamin D"], ["search", "vitamin D", "--mode", "sparse"], ["experts"], ["build"],
                    ["build", "--rebuild"]):
        assert main(["--config", str(config), *command]) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: the document store {store} is damaged"), (command, err)
        assert "--reset --discard-added" in err and ".recover" in err


def test_the_python_api_builds_the_configured_corpus_as_the_cli_does(tmp_path: Path,
                                                                     corpus_slice: list[Document]) -> None:
    """Item 9: `Retriever.from_config(cfg).build()` on an empty store reads the config's corpus, as
    `retriever build` does (it returned {} and held 0 documents)."""
    config = small_config(tmp_path, corpus_slice[:5])
    with Retriever.from_config(config) as retriever:
        built = retriever.build(progress=False)
        assert retriever.count() == 5 and set(built.values()) == {5} and len(built) == 2
        assert retriever.search(corpus_slice[3].content, top_k=1).hits[0].id == corpus_slice[3].id


@pytest.mark.parametrize(("command", "module", "extra"), [
    (["serve"], "uvicorn", "service"),
    (["eval", "pkg:retriever/data/scifact-1k:test"], "matplotlib", "eval"),
    (["eval", "pkg:retriever/data/scifact-1k:test"], "ir_datasets", "eval"),
    (["train-expert", "--name", "x", "--train", "pkg:retriever/data/scifact-1k"], "matplotlib", "train"),
])
def test_a_command_missing_its_extra_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], command: list[str],
                                                     module: str, extra: str) -> None:
    """Item 8: `serve`, `eval` and `train-expert` without their extra print one line naming the missing module
    and the extra to install (they ended in ModuleNotFoundError tracebacks, eval's only after its runs)."""
    monkeypatch.setitem(sys.modules, module, None)  # what an environment without the extra imports
    assert main(["--data-dir", str(tmp_path / "data"), *command]) == 2
    err = capsys.readouterr().err
    assert err == f"error: `retriever {command[0]}` needs {module}, which is not installed: " \
                  f"pip install 'router-retriever[{extra}]'\n"
    assert not (tmp_path / "data").exists()


def test_a_writer_removes_what_a_crash_left_and_no_manifest_names(small_built: Path, tmp_path: Path) -> None:
    """Item 6: temp files of interrupted atomic writes, index files no manifest names and a BM25 staging folder
    stay while only readers open the directory, and go when a writer opens it; committed files stay."""
    config = copy_small(small_built, tmp_path)
    data = tmp_path / "data"
    dense = next(p for p in (data / "indexes").iterdir() if p.name != "bm25")
    committed = sorted(p.relative_to(data) for p in data.rglob("*") if p.is_file())
    orphans = [dense / ".manifest.json.x1y2z3.tmp", dense / "index-0123456789ab.faiss",
               dense / ".index-0123456789ab.faiss.abc.tmp", dense / "shard-001" / "index-ba9876543210.faiss",
               data / "indexes" / "bm25" / ".manifest.json.q1w2.tmp", data / "indexes" / "bm25" / "data-0123456789ab.npy",
               data / "indexes" / "bm25" / ".staging-k3j4" / "params.index.json", data / ".pilots.npz.u7v8.tmp"]
    for orphan in orphans:
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"left by kill -9")
    Retriever(load_settings(config), read_only=True).close()
    assert all(orphan.exists() for orphan in orphans)  # a reader writes nothing
    Retriever(load_settings(config)).close()
    assert [orphan for orphan in orphans if orphan.exists()] == []
    assert sorted(p.relative_to(data) for p in data.rglob("*") if p.is_file()) == committed
    with Retriever(load_settings(config), read_only=True) as reader:
        assert reader.count() == 30 and reader.status().missing == {}


def test_a_damaged_pilot_library_is_not_ready_names_its_fix_and_is_rebuilt(
        tmp_path: Path, corpus_slice: list[Document], capsys: pytest.CaptureFixture[str]) -> None:
    """Item 3: a damaged pilots.npz makes /ready answer 503 (it said ready while /search answered 503), every
    message names `retriever pilots build` instead of numpy's allow_pickle, and `build --rebuild` rebuilds it."""
    domain = f'[[domains]]\nname = "science"\ncorpus = "{tmp_path / "corpus.jsonl"}"\npilot_queries = 10\nexpert = "general"\n'
    config = small_config(tmp_path, corpus_slice[:5], extra=domain)
    assert main(["--config", str(config), "build"]) == 0
    pilots = tmp_path / "data" / "pilots.npz"
    pilots.write_bytes(b"\x00" * 64 + pilots.read_bytes()[64:])
    with TestClient(create_app(load_settings(config), ServiceConfig(), read_only=True), base_url="http://localhost") as http:
        ready = _when_loaded(http)
        assert ready.status_code == 503 and ready.json()["ready"] is False
        searched = http.post("/search", json={"query": "vitamin D", "mode": "dense"})
        assert searched.status_code == 503
        for detail in (ready.json()["detail"], searched.json()["detail"]):
            assert "`retriever pilots build`" in detail and "pickle" not in detail
    capsys.readouterr()
    assert main(["--config", str(config), "search", "vitamin D"]) == 2
    assert "`retriever pilots build`" in capsys.readouterr().err
    assert main(["--config", str(config), "build", "--rebuild"]) == 0
    assert main(["--config", str(config), "search", "vitamin D"]) == 0


def _when_loaded(http: TestClient, key: str | None = None) -> httpx.Response:
    """``/ready`` (asked with ``key``, which shows its detail) once the retriever has loaded (or failed to)."""
    headers = {"X-API-Key": key} if key else {}
    deadline = time.monotonic() + 120
    while "loading" in (ready := http.get("/ready", headers=headers)).json()["detail"] and time.monotonic() < deadline:
        time.sleep(0.1)
    return ready


def test_a_corrupt_vector_index_leaves_bm25_searches_working(small_built: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Item 4: a truncated .faiss file no longer stops `--mode sparse` (which needs no vector index); dense
    searches and /ready still say it is corrupt and that `retriever build --rebuild` repairs it."""
    config = copy_small(small_built, tmp_path)
    index_file = next((tmp_path / "data" / "indexes").glob("*/index-*.faiss"))
    index_file.write_bytes(index_file.read_bytes()[:500])
    capsys.readouterr()
    assert main(["--config", str(config), "search", "cells and patients", "--mode", "sparse", "-k", "3"]) == 0
    out, err = capsys.readouterr()
    assert " 1. " in out and err.startswith("warning: only BM25 (--mode sparse) can answer: index file")
    assert main(["--config", str(config), "search", "cells and patients", "--mode", "dense"]) == 2
    err = capsys.readouterr().err
    assert f"{index_file} is corrupt or truncated" in err and "`retriever build --rebuild`" in err
    assert main(["--config", str(config), "experts"]) == 0
    assert "unusable: index file" in capsys.readouterr().out
    with TestClient(create_app(load_settings(config), ServiceConfig(), read_only=True), base_url="http://localhost") as http:
        ready = _when_loaded(http)
        assert ready.status_code == 503 and "`retriever build --rebuild`" in ready.json()["detail"]
        assert http.post("/search", json={"query": "cells and patients", "mode": "sparse"}).json()["hits"]
        assert http.post("/search", json={"query": "cells and patients", "mode": "dense"}).status_code == 503


# ---- security: safe by default on a network -------------------------------------------------------
FULL, SEARCH = "full-key", "search-key"


def test_serve_refuses_a_network_bind_without_a_key_unless_insecure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`retriever serve --host 0.0.0.0` without a key started silently: it is refused before anything opens,
    naming RETRIEVER_API_KEY and --insecure; loopback needs no key, and a named interface's name is accepted."""
    for name in (API_KEY_ENV, READ_API_KEY_ENV, INSECURE_ENV):
        monkeypatch.delenv(name, raising=False)
    assert main(["--data-dir", str(tmp_path / "data"), "serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "--host 0.0.0.0 serves other machines, and no API key is set" in err and "--insecure" in err
    assert not (tmp_path / "data").exists()
    args = argparse.Namespace(host="0.0.0.0", insecure=False)
    assert service_config(args, ServiceConfig(read_keys=(SEARCH,))).allowed_hosts == ()
    named = argparse.Namespace(host="search.internal", insecure=True)
    assert service_config(named, ServiceConfig()).allowed_hosts == ("search.internal",)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert service_config(argparse.Namespace(host=host, insecure=False), ServiceConfig()) == ServiceConfig()


def test_only_loopback_or_configured_host_names_are_served(tmp_path: Path) -> None:
    """DNS rebinding: a request whose Host header names another site is refused with 400."""
    config = small_config(tmp_path)
    app = create_app(load_settings(config), ServiceConfig(allowed_hosts=("search.internal",)), read_only=True)
    with TestClient(app, base_url="http://localhost") as http:
        for host in ("localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "search.internal:8000"):
            assert http.get("/health", headers={"host": host}).status_code == 200, host
        for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", ""):
            refused = http.get("/health", headers={"host": host})
            assert refused.status_code == 400 and "is not served here" in refused.json()["detail"], host


def test_ready_keeps_file_paths_behind_the_key(tmp_path: Path) -> None:
    """/ready answered unauthenticated clients with absolute paths in its detail: now only with a key."""
    config = small_config(tmp_path)
    app = create_app(load_settings(config), ServiceConfig(api_keys=(FULL,), read_keys=(SEARCH,)), read_only=True)
    with TestClient(app, base_url="http://localhost") as http:
        _when_loaded(http, FULL)
        anonymous = http.get("/ready")
        assert anonymous.status_code == 503 and str(tmp_path) not in anonymous.json()["detail"]
        for key in (FULL, SEARCH):
            keyed = http.get("/ready", headers={"X-API-Key": key})
            assert keyed.status_code == 503 and str(tmp_path) in keyed.json()["detail"]


def test_a_search_key_may_search_but_not_write(small_built: Path, tmp_path: Path) -> None:
    """RETRIEVER_READ_API_KEY: every read endpoint, but adds and deletes answer 403; RETRIEVER_API_KEY does all."""
    assert ServiceConfig.from_env({READ_API_KEY_ENV: "a, b", ALLOWED_HOSTS_ENV: "x.internal"}) == ServiceConfig(
        (), ("a", "b"), ("x.internal",))
    config = copy_small(small_built, tmp_path)
    doc = {"id": "new-1", "text": "Runbook: rotate the ingress certificates every ninety days."}
    with TestClient(create_app(load_settings(config), ServiceConfig((FULL,), (SEARCH,))), base_url="http://localhost") as http:
        assert _when_loaded(http, SEARCH).status_code == 200
        search = {"X-API-Key": SEARCH}
        assert http.post("/search", json={"query": "cells", "mode": "sparse"}, headers=search).status_code == 200
        assert http.get("/experts", headers=search).status_code == 200
        assert http.get("/metrics", headers=search).status_code == 200
        for refused in (http.post("/documents", json={"documents": [doc]}, headers=search),
                        http.delete(f"/documents/{small_built.name}", headers=search)):
            assert refused.status_code == 403 and "may only search" in refused.json()["detail"]
        assert http.post("/documents", json={"documents": [doc]}).status_code == 401
        added = http.post("/documents", json={"documents": [doc]}, headers={"X-API-Key": FULL})
        assert added.status_code == 200 and added.json()["documents"] == 31
        assert http.delete("/documents/new-1", headers={"X-API-Key": FULL}).status_code == 200


def test_metrics_name_the_playground_and_docs_routes(tmp_path: Path) -> None:
    """/, /docs and /openapi.json were counted as "unmatched"."""
    app = create_app(load_settings(small_config(tmp_path)), ServiceConfig(), read_only=True)
    with TestClient(app, base_url="http://localhost") as http:
        for path in ("/", "/docs", "/openapi.json", "/no-such-page"):
            http.get(path)
        text = http.get("/metrics").text
    for path in ("/", "/docs", "/openapi.json"):
        assert f'endpoint="{path}",method="GET",status="200"' in text, path
    assert 'endpoint="unmatched",method="GET",status="404"' in text


def test_a_reader_follows_its_writer_without_a_restart(small_built: Path, tmp_path: Path) -> None:
    """Item 7: a document replaced on the writer vanished from a read-only retriever (`serve --read-only`) until
    it restarted: neither version was found. Now the reader reloads what the writer saved: the new version, an
    added document and a delete are all seen, in dense and BM25 search, and the document count follows."""
    config = copy_small(small_built, tmp_path)
    with Retriever(load_settings(config), read_only=True) as reader, Retriever(load_settings(config)) as writer:
        target = reader.search("cells", top_k=1, mode="sparse").hits[0]
        replaced = Document(target.id, "Quarterly rotation of the object storage access keys for the backup bucket.",
                            "Key rotation")
        added = Document("added-1", "The standby replica falls behind when the replication slot is dropped.", "Lag")
        writer.add([replaced, added])
        for mode in ("dense", "sparse"):
            assert reader.search(replaced.text, top_k=1, mode=mode).hits[0].id == target.id, mode
            assert reader.search(added.text, top_k=1, mode=mode).hits[0].id == added.id, mode
        assert reader.count() == 31
        writer.delete([added.id])
        for mode in ("dense", "sparse"):
            assert added.id not in {hit.id for hit in reader.search(added.text, top_k=5, mode=mode).hits}, mode
        assert reader.count() == 30 and reader.status().missing == {}


def test_a_rebuild_to_another_shard_layout_replaces_the_old_one(small_built: Path, tmp_path: Path) -> None:
    """Item 1: with `[index] shards = 2` over an unsharded index, the directory still opens (BM25 answers, the
    vector index says it is of another layout); `build --rebuild` commits the sharded index and removes the old
    layout's files."""
    config = copy_small(small_built, tmp_path)
    config.write_text(config.read_text().replace('kind = "flat"', 'kind = "flat"\nshards = 2'))
    with Retriever(load_settings(config), read_only=True) as reader:
        assert "config wants shards = 2" in next(iter(reader.status().unreadable.values()))
    assert main(["--config", str(config), "build", "--rebuild"]) == 0
    folder = next(p for p in (tmp_path / "data" / "indexes").iterdir() if p.name != "bm25")
    assert sorted(p.name for p in folder.iterdir()) == ["shard-000", "shard-001", "shards.json"]
    with Retriever(load_settings(config), read_only=True) as reader:
        doc = reader.search("cells", top_k=1, mode="sparse").hits[0]
        assert reader.status().unreadable == {} and reader.count() == 30
        assert reader.search(doc.text, top_k=1, mode="dense").hits[0].id == doc.id


def test_replace_folder_swaps_whole_folders(tmp_path: Path) -> None:
    """A checkpoint folder (train-expert's adapter) is replaced as one step: the new files all appear at once,
    a failed write leaves the old folder as it was, and an earlier crash's temporary folders are removed."""
    from router_retriever.indexes.atomic import replace_folder

    folder = tmp_path / "expert"
    replace_folder(folder, lambda new: (new / "weights").write_text("1"))
    (tmp_path / ".expert.crashed.tmp").mkdir()

    def failing(new: Path) -> None:
        (new / "weights").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        replace_folder(folder, failing)
    assert [p.name for p in folder.iterdir()] == ["weights"] and (folder / "weights").read_text() == "1"
    replace_folder(folder, lambda new: (new / "card").write_text("2"))
    assert [p.name for p in folder.iterdir()] == ["card"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expert"]
