"""Issue #11, item 2: following the "rebuild it" advice never deletes documents added through the API.

`retriever build --rebuild` re-encodes every index from the documents in the store; re-reading the corpus
is `--reset`, which first lists what it would remove or revert and needs `--discard-added` to do so."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from router_retriever import IndexCorruptError, Retriever, load_settings
from router_retriever.cli import main
from router_retriever.core.types import Document

from conftest import small_config

KEEP = Document("keep-1", "The on-call engineer rotates the TLS certificates of the ingress every ninety days.",
                "Certificate rotation runbook")


def test_rebuild_after_a_corrupt_index_keeps_documents_added_through_the_api(
        tmp_path: Path, corpus_slice: list[Document], capsys: pytest.CaptureFixture[str]) -> None:
    """Item 2: HNSW store built from a corpus; keep-1 added through the API; the index file truncated.
    `build` says what to run; `build --rebuild` keeps every document (keep-1 included) and finds keep-1;
    `build --reset` refuses, naming keep-1 and a document changed through the API, until --discard-added."""
    docs = corpus_slice[:30]
    config = small_config(tmp_path, docs, kind="hnsw")
    assert main(["--config", str(config), "build"]) == 0
    changed = Document(docs[0].id, "A new version of this abstract, written through the API.", docs[0].title)
    with closing(Retriever(load_settings(config))) as writer:
        writer.add([KEEP, changed])
    index_file = next((tmp_path / "data" / "indexes").glob("*/index-*.faiss"))
    index_file.write_bytes(index_file.read_bytes()[: index_file.stat().st_size // 2])
    capsys.readouterr()

    assert main(["--config", str(config), "build"]) == 2
    err = capsys.readouterr().err
    assert "corrupt or truncated" in err and "`retriever build --rebuild` (keeps every document)" in err

    assert main(["--config", str(config), "build", "--rebuild"]) == 0
    assert "re-encoding the 31 documents in the store into every index" in capsys.readouterr().out
    with closing(Retriever(load_settings(config), read_only=True)) as reader:
        assert reader.count() == 31 and reader.status().indexes == {reader.experts()[0].document_encoder: 31, "bm25": 31}
        assert reader.search(KEEP.text, top_k=1).hits[0].id == KEEP.id
        assert {h.id: h.text for h in reader.search(changed.content, top_k=3).hits}[changed.id] == changed.text

    assert main(["--config", str(config), "build", "--reset"]) == 2
    err = capsys.readouterr().err
    assert "--reset would remove 1 documents the corpus lacks (keep-1)" in err
    assert f"revert 1 documents changed since the corpus was read ({docs[0].id})" in err
    assert "--reset --discard-added" in err and "--rebuild" in err
    with closing(Retriever(load_settings(config), read_only=True)) as reader:
        assert reader.count() == 31  # nothing was touched

    assert main(["--config", str(config), "build", "--reset", "--discard-added"]) == 0
    with closing(Retriever(load_settings(config), read_only=True)) as reader:
        assert reader.count() == 30 and KEEP.id not in {h.id for h in reader.search(KEEP.text, top_k=5).hits}


def test_a_corrupt_index_names_the_rebuild_that_keeps_documents(tmp_path: Path, corpus_slice: list[Document]) -> None:
    """Item 2: the error itself (also seen by the service and the Python API) points at `--rebuild`."""
    config = small_config(tmp_path, corpus_slice[:5])
    assert main(["--config", str(config), "build"]) == 0
    (next((tmp_path / "data" / "indexes").glob("*/manifest.json"))).write_text("{")
    with closing(Retriever(load_settings(config), read_only=True)) as reader, pytest.raises(
            IndexCorruptError, match=r"re-encode it from the documents in the store: `retriever build --rebuild`"):
        reader.search("vitamin D", mode="dense")
    assert main(["--config", str(config), "build", "--rebuild"]) == 0
    with closing(Retriever(load_settings(config), read_only=True)) as reader:
        assert reader.count() == 5 and reader.status().missing == {}
